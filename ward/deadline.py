"""Call deadlines, as both clients count them.

A timeout of `math.inf` means no deadline at all; every other timeout becomes a point on the
monotonic clock, so that retries and the connection wait of one call share a single budget.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from ward.errors import DeadlineExceededError, EtcdError, error_from_rpc

__all__ = ["Deadline"]

# A status that arrives within this much of the deadline is the deadline's doing: gRPC's own
# timer and ours do not fire at exactly the same instant.
_SLACK_S = 0.001


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a call must be over (`at`, monotonic seconds), or never (`at` is None)."""

    at: float | None

    @classmethod
    def after(cls, timeout: float) -> Deadline:
        """The deadline `timeout` seconds from now (none for `math.inf`)."""
        if math.isinf(timeout):
            return cls(None)
        return cls(time.monotonic() + max(timeout, 0.0))

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a deadline: gRPC's `timeout=`."""
        if self.at is None:
            return None
        return max(self.at - time.monotonic(), 0.0)

    def remaining_or_inf(self) -> float:
        """Seconds left, `math.inf` without a deadline: a client method's `timeout=`."""
        left = self.remaining()
        return math.inf if left is None else left

    def left(self) -> float | None:
        """Seconds left to wait (None: no deadline); raises `DeadlineExceededError` once none
        are."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceededError(DeadlineExceededError.MESSAGE)
        return remaining

    def passed(self) -> bool:
        """Whether the deadline has come."""
        return self.at is not None and time.monotonic() >= self.at - _SLACK_S

    def translate(self, exc: grpc.RpcError) -> EtcdError:
        """The `EtcdError` for a call that failed with `exc` under this deadline."""
        return error_from_rpc(exc, deadline_passed=self.passed())

    @contextlib.contextmanager
    def translating(self, *, cancel_ends: bool = False) -> Iterator[None]:
        """Raise a failed call's `EtcdError` instead of its `grpc.RpcError` (a stream that was
        cancelled just ends, with `cancel_ends`)."""
        try:
            yield
        except grpc.RpcError as exc:
            if not (cancel_ends and exc.code() == grpc.StatusCode.CANCELLED):
                raise self.translate(exc) from None
