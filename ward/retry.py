"""What a client does after a failed attempt: give up, refresh its token, or try again.

The decisions follow etcd's Go client (3.4): a call that meets `Unavailable` moves to the next
ready endpoint, with exponential backoff until its deadline, but only if it is safe to repeat
(a read) or was never sent; an invalid or expired token is refreshed once per call. Long-lived
streams (watch, keep-alive) reopen after any transport failure. Both clients act on the same
`Step`s; only how they wait differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from ward.deadline import Deadline
from ward.errors import EtcdError, InvalidAuthTokenError, error_from_rpc

__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_MIN_S",
    "KEEPALIVE_TRANSIENT",
    "WATCH_TRANSIENT",
    "Attempts",
    "Step",
    "StreamPolicy",
    "never_sent",
    "stream_step",
]

BACKOFF_MIN_S = 0.025
BACKOFF_MAX_S = 0.5

# Details gRPC gives a call that failed before it left the client (no connection to send it
# on): such a call is safe to repeat elsewhere even if it changes something.
_NOT_SENT = ("failed to connect to all addresses", "Connection refused", "DNS resolution failed")

# Statuses of a stream broken by the transport, after which it is opened again; anything else
# is the server's answer and ends it. Keep-alives halt on any other status, as clientv3's do;
# watches also reopen after UNKNOWN, which a stopping server may end them with.
KEEPALIVE_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
WATCH_TRANSIENT = (*KEEPALIVE_TRANSIENT, grpc.StatusCode.UNKNOWN)


def never_sent(exc: grpc.RpcError) -> bool:
    """Whether the failed call never reached a server."""
    details = exc.details() if callable(getattr(exc, "details", None)) else ""
    return any(marker in (details or "") for marker in _NOT_SENT)


@dataclass(frozen=True, slots=True)
class Step:
    """The decision after a failure: `retry` after `delay` seconds, or raise `error`.

    `refresh_token` asks for a new auth token first; `forget_endpoint` makes the client choose
    its endpoint again (the one that failed may be down).
    """

    error: EtcdError
    retry: bool
    delay: float = 0.0
    refresh_token: bool = False
    forget_endpoint: bool = False


class Attempts:
    """The attempts of one call: its deadline and what it may still try."""

    def __init__(
        self, deadline: Deadline, *, failover: bool, safe: bool, pinned: bool, can_refresh: bool
    ) -> None:
        self.deadline = deadline
        # With one endpoint a call waits for it (etcdctl's behaviour); with several, a call on
        # a dead endpoint must fail fast so that it can move on to a live one.
        self.wait_for_ready = not failover
        self._failover = failover
        self._safe = safe
        self._pinned = pinned
        self._can_refresh = can_refresh
        self._backoff = BACKOFF_MIN_S

    def grpc_options(self, metadata: tuple[tuple[str, str], ...] | None) -> dict[str, Any]:
        """The keyword arguments of the next attempt's stub call."""
        return {
            "timeout": self.deadline.remaining(),
            "metadata": metadata,
            "wait_for_ready": self.wait_for_ready,
        }

    def after(self, exc: grpc.RpcError) -> Step:
        """What to do after the attempt that failed with `exc`."""
        err = self.deadline.translate(exc)
        if isinstance(err, InvalidAuthTokenError) and self._can_refresh:
            # Tokens expire; fetch a fresh one and try once more.
            self._can_refresh = False
            return Step(err, retry=True, refresh_token=True)
        if exc.code() != grpc.StatusCode.UNAVAILABLE or self._pinned:
            return Step(err, retry=False)
        if not self._failover or not (self._safe or never_sent(exc)):
            return Step(err, retry=False, forget_endpoint=True)
        remaining = self.deadline.remaining()
        if remaining is not None and remaining <= self._backoff:
            return Step(err, retry=False, forget_endpoint=True)
        delay = self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
        return Step(err, retry=True, delay=delay, forget_endpoint=True)


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """How a long-lived stream is kept: the type of the responses it hands its reader, the
    backoff between attempts to reopen it (doubling from `retry_min_s` to `retry_max_s`), the
    statuses after which it is reopened, and the name of the thread or task that runs it."""

    kind: type
    retry_min_s: float
    retry_max_s: float
    transient: tuple[grpc.StatusCode, ...]
    name: str

    def next_delay(self, delay: float) -> float:
        """The pause after the next failure, `delay` being this one's."""
        return min(delay * 2, self.retry_max_s)


def stream_step(
    exc: grpc.RpcError, *, can_refresh: bool, transient: tuple[grpc.StatusCode, ...]
) -> Step:
    """What a broken long-lived stream does: reopen (with a fresh token if it was refused for
    its token and the client can fetch one; after a `transient` status), or end with the
    server's error."""
    err = error_from_rpc(exc)
    if isinstance(err, InvalidAuthTokenError) and can_refresh:
        return Step(err, retry=True, refresh_token=True, forget_endpoint=True)
    if exc.code() in transient:
        return Step(err, retry=True, forget_endpoint=True)
    return Step(err, retry=False)
