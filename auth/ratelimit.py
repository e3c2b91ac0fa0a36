"""A token-bucket limit on failed Authenticate calls, per user name and per client address.

Each failure takes one token from the bucket of the user name tried and one from the bucket of
the client address; an empty bucket refuses further attempts (even with the right password) until
it refills. The per-name bucket stops slow guessing of one account from many addresses; the
per-address bucket stops one address from trying many names. Buckets are separate, so failures
against one name never limit another name tried from elsewhere.

Only failures are recorded, so a full bucket need not be stored: the table holds only buckets
that have lost tokens, and is bounded (past ``max_entries`` the bucket touched longest ago is
forgotten, which can only make a limit milder).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from auth.errors import TooManyRequests


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """A bucket of ``burst`` failures that refills at ``per_second`` failures a second."""

    burst: float
    per_second: float

    def __post_init__(self) -> None:
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if self.per_second <= 0:
            raise ValueError("per_second must be positive")


DEFAULT_USER_LIMIT = RateLimit(burst=5, per_second=0.1)
"""5 failures at once, then one every 10 s, per user name."""

DEFAULT_ADDRESS_LIMIT = RateLimit(burst=20, per_second=0.5)
"""20 failures at once, then one every 2 s, per client address: several users may share one."""

DEFAULT_MAX_ENTRIES = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class _Buckets:
    def __init__(self, limit: RateLimit, max_entries: int) -> None:
        self.limit = limit
        self.max_entries = max_entries
        self.table: OrderedDict[str, _Bucket] = OrderedDict()

    def _level(self, key: str, now: float) -> float:
        bucket = self.table.get(key)
        if bucket is None:
            return self.limit.burst
        level = bucket.tokens + (now - bucket.stamp) * self.limit.per_second
        if level >= self.limit.burst:
            del self.table[key]
            return self.limit.burst
        return level

    def allows(self, key: str, now: float) -> bool:
        return self._level(key, now) >= 1

    def take(self, key: str, now: float) -> None:
        level = max(self._level(key, now) - 1, 0.0)
        self.table[key] = _Bucket(level, now)
        self.table.move_to_end(key)
        while len(self.table) > self.max_entries:
            self.table.popitem(last=False)


class RateLimiter:
    """Limits failed authentications; ``clock`` gives monotonic seconds (injectable in tests)."""

    def __init__(
        self,
        *,
        per_user: RateLimit = DEFAULT_USER_LIMIT,
        per_address: RateLimit = DEFAULT_ADDRESS_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._lock = threading.Lock()
        self._users = _Buckets(per_user, max_entries)
        self._addresses = _Buckets(per_address, max_entries)

    def check(self, *, user: str, address: str = "") -> None:
        """Raise ``TooManyRequests`` if this user name or this address has no attempts left.

        An empty ``address`` (unknown) is not limited by address.
        """
        now = self._clock()
        with self._lock:
            if not self._users.allows(user, now):
                raise TooManyRequests()
            if address and not self._addresses.allows(address, now):
                raise TooManyRequests()

    def record_failure(self, *, user: str, address: str = "") -> None:
        """Count one failed attempt against the user name and the address."""
        now = self._clock()
        with self._lock:
            self._users.take(user, now)
            if address:
                self._addresses.take(address, now)
