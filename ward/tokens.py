"""A client's auth token: fetched for its user on first use, sent with every call, refreshed
when the server says it is invalid (simple tokens expire after `--auth-token-ttl` unused)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ward.deadline import Deadline
from ward.errors import AuthNotEnabledError
from ward.rpc import Call, Plan, stub_method
from wardpb.etcdserverpb import rpc_pb2

__all__ = ["Tokens"]

Metadata = tuple[tuple[str, str], ...]


class Tokens:
    """The token of `user` (None: the client does not authenticate)."""

    def __init__(self, user: str | None, password: str | None) -> None:
        self.user = user
        self._password = password if password is not None else ""
        self.token: str | None = None
        self._current = user is None

    @property
    def needed(self) -> bool:
        """Whether a token must be fetched before the next call."""
        return not self._current

    @property
    def can_refresh(self) -> bool:
        """Whether a refused token can be replaced (there is a user to authenticate)."""
        return self.user is not None

    def invalidate(self) -> None:
        """Fetch a new token before the next call."""
        if self.user is not None:
            self._current = False

    def metadata(self) -> Metadata | None:
        """The call metadata carrying the token, if there is one."""
        token = self.token
        return (("token", token),) if token else None

    def authenticate(self, timeout: float) -> Plan[None]:
        """The plan that fetches a token for the user and keeps it.

        A server with authentication disabled is fine: calls then go without a token.
        """
        return Plan(timeout, self._authenticate)

    def _authenticate(self, deadline: Deadline) -> Generator[Call[Any], Any, None]:
        if self.user is None:
            return
        request = rpc_pb2.AuthenticateRequest(name=self.user, password=self._password)
        token: str | None
        try:
            resp = yield Call(
                stub_method("auth.Authenticate"),
                request,
                deadline.remaining_or_inf(),
                safe=True,
                anonymous=True,
            )
            token = resp.token
        except AuthNotEnabledError:
            token = None
        self.token = token
        self._current = True
