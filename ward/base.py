"""What the sync and asyncio clients share: configuration, endpoints, token, retry decisions.

`ClientBase` holds everything about a client except its I/O. `ward.Client` and
`ward.aio.Client` subclass it and add only the mechanics: opening channels, sending calls and
waiting, blocking or with `await`.
"""

from __future__ import annotations

import os
from typing import Any

import grpc

from ward.channels import Channels, Stubs
from ward.deadline import Deadline
from ward.endpoints import TLSConfig, parse_endpoint
from ward.errors import EtcdError, NoEndpointsError
from ward.retry import Attempts, Step, stream_step
from ward.rpc import Call
from ward.tokens import Tokens

__all__ = ["ClientBase", "PathLike"]

PathLike = str | os.PathLike[str]


class ClientBase:
    """A client's configuration and state, without I/O (`ward.Client`, `ward.aio.Client`)."""

    def __init__(
        self,
        endpoints: list[str] | str = "127.0.0.1:2379",
        *,
        dial_timeout: float = 5.0,
        command_timeout: float = 5.0,
        cacert: PathLike | None = None,
        cert: PathLike | None = None,
        key: PathLike | None = None,
        insecure_skip_verify: bool = False,
        user: str | None = None,
        password: str | None = None,
        secure: bool = False,
        keepalive_time: float | None = None,
        keepalive_timeout: float | None = None,
    ) -> None:
        """Configure a client; nothing connects until the first call.

        `endpoints` is a list (or comma-separated string) of `host:port`, `http://host:port`,
        `https://host:port`, `unix://path` or `unixs://path`. A bare `host:port` uses TLS when
        any of `cacert`, `cert`, `key` is given or `secure` is set, as etcdctl 3.4 does.

        `cacert`, `cert` and `key` are PEM file paths (`ward.credentials.local_credentials()`
        finds a local server's); `insecure_skip_verify` trusts whatever certificate the server
        presents (for tests only). `user`/`password` authenticate once, on first use (or
        explicitly with `authenticate()`), and every call then carries the token, fetched anew
        when the server refuses it. `dial_timeout` bounds connecting and authenticating;
        `command_timeout` is every call's default `timeout`. `keepalive_time` and
        `keepalive_timeout` (seconds) turn on gRPC keepalive pings.
        """
        raw = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
        raw = [e.strip() for e in raw if e.strip()]
        if not raw:
            raise NoEndpointsError("etcdclient: no available endpoints")
        tls = TLSConfig.load(
            cacert=cacert, cert=cert, key=key, insecure_skip_verify=insecure_skip_verify
        )
        tls_by_default = secure or tls.has_material
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", -1)]
        if keepalive_time is not None:
            options.append(("grpc.keepalive_time_ms", int(keepalive_time * 1000)))
            options.append(("grpc.keepalive_permit_without_calls", 1))
        if keepalive_timeout is not None:
            options.append(("grpc.keepalive_timeout_ms", int(keepalive_timeout * 1000)))
        self._channels = Channels(
            [parse_endpoint(e, tls_by_default=tls_by_default) for e in raw],
            tls,
            tls_by_default=tls_by_default,
            options=options,
        )
        self._tokens = Tokens(user, password)
        self.dial_timeout = dial_timeout
        self.command_timeout = command_timeout
        self._init_io()

    def _init_io(self) -> None:
        """Set up the subclass's own state (it takes no arguments of its own)."""

    @property
    def endpoints(self) -> list[str]:
        """The endpoints as given."""
        return [e.raw for e in self._channels.endpoints]

    @property
    def _active(self) -> Stubs | None:
        # The connection calls use now; tests look at it to kill that very member.
        return self._channels.active

    @property
    def _token(self) -> str | None:
        return self._tokens.token

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline.after(self.command_timeout if timeout is None else timeout)

    def _dial_deadline(self) -> Deadline:
        # What a long-lived stream (watch, keep-alive) allows itself to (re)connect.
        return Deadline.after(self.dial_timeout)

    def _attempts(self, call: Call[Any], deadline: Deadline) -> Attempts:
        return Attempts(
            deadline,
            failover=call.endpoint is None and not self._channels.single,
            safe=call.safe,
            pinned=call.endpoint is not None,
            can_refresh=self._tokens.can_refresh and not call.anonymous,
        )

    def _retry_delay(self, attempts: Attempts, exc: grpc.RpcError, conn: Stubs) -> float:
        """Seconds to wait before attempting a failed call again; raises its error instead
        when it may not be repeated."""
        step = attempts.after(exc)
        self._apply(step, conn)
        if not step.retry:
            raise step.error from None
        return step.delay

    def _stream_broken(
        self, exc: grpc.RpcError, conn: Stubs | None, transient: tuple[grpc.StatusCode, ...]
    ) -> EtcdError | None:
        """After a long-lived stream broke: None to reopen it, else the error that ends it."""
        step = stream_step(exc, can_refresh=self._tokens.can_refresh, transient=transient)
        self._apply(step, conn)
        return None if step.retry else step.error

    def _apply(self, step: Step, conn: Stubs | None) -> None:
        if step.refresh_token:
            self._tokens.invalidate()
        if step.forget_endpoint:
            self._channels.forget(conn)

    def _fetch_timeout(self, deadline: Deadline) -> float:
        # How long preparing a TLS channel may take on the network.
        remaining = deadline.remaining()
        return self.dial_timeout if remaining is None else remaining
