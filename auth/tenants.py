"""Tenants: a named key prefix with quotas and delegated admins, and the namespace it defines.

A tenant user sees its tenant's prefix as the whole keyspace: every key it sends is prefixed on
the way in and stripped on the way out (`Namespace`). The mapping is total on what a client can
send, so whatever key or range end arrives, the result stays inside the prefix:

- a single key ``k`` becomes ``P+k``;
- a range ``[k, e)`` becomes ``[P+k, P+e)`` (still empty when ``e <= k``);
- from-key (``e == "\\0"``, "every key at or after k") becomes ``[P+k, end(P))``, where
  ``end(P)`` is the first key after every key with the prefix; etcd's "all keys"
  (``k == e == "\\0"``) is then the whole tenant.

`Namespace.contains` is the other half: the check that an absolute range is inside the tenant,
run where requests are authorized and where entries apply, so a request that never went through
the mapping still cannot leave the tenant.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from auth.model import FROM_KEY


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key after every key starting with `prefix` (etcd's GetPrefixRangeEnd);
    ``FROM_KEY`` when there is none (a prefix of only 0xff bytes)."""
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes((prefix[i] + 1,))
    return FROM_KEY


def valid_prefix(prefix: bytes) -> bool:
    """A tenant prefix must be non-empty and have an end (not only 0xff bytes)."""
    return bool(prefix) and prefix_end(prefix) != FROM_KEY


@dataclass(frozen=True, slots=True)
class Tenant:
    """A stored tenant. Quotas of 0 mean "no quota"."""

    name: str
    prefix: bytes
    quota_keys: int = 0
    quota_bytes: int = 0
    admins: tuple[str, ...] = ()
    # Leases held at once (enforced where entries apply); watchers open at once (counted per
    # member, across its serving processes: server.watch_quota); requests per second (enforced
    # by each serving process on its own).
    quota_leases: int = 0
    quota_watchers: int = 0
    quota_rps: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("tenant name must be a non-empty str")
        if not isinstance(self.prefix, bytes) or not valid_prefix(self.prefix):
            raise ValueError(f"tenant {self.name}: prefix must be non-empty and not all 0xff")
        quotas = (self.quota_keys, self.quota_bytes, self.quota_leases)
        if min(*quotas, self.quota_watchers, self.quota_rps) < 0:
            raise ValueError(f"tenant {self.name}: quotas cannot be negative")
        object.__setattr__(self, "admins", tuple(sorted(set(self.admins))))

    @property
    def namespace(self) -> Namespace:
        return _namespace(self.prefix)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a tenant holds now: live keys, and their key + value bytes."""

    keys: int = 0
    bytes: int = 0


class Namespace:
    """The key mapping of one tenant (see the module docstring)."""

    __slots__ = ("end", "prefix")

    def __init__(self, prefix: bytes) -> None:
        if not valid_prefix(prefix):
            raise ValueError("a namespace prefix must be non-empty and not all 0xff")
        self.prefix = prefix
        self.end = prefix_end(prefix)

    def __repr__(self) -> str:
        return f"Namespace({self.prefix!r})"

    def key(self, key: bytes) -> bytes:
        return self.prefix + key

    def range_end(self, range_end: bytes) -> bytes:
        """The absolute range end of a tenant's `range_end` (etcd's encoding)."""
        if not range_end:
            return b""
        if range_end == FROM_KEY:
            return self.end
        return self.prefix + range_end

    def strip(self, key: bytes) -> bytes:
        """The tenant's name for an absolute key inside the tenant."""
        if not key.startswith(self.prefix):
            # Never expected: every key handed back was read inside the namespace.
            raise ValueError("key outside the namespace")
        return key[len(self.prefix) :]

    def strip_end(self, range_end: bytes) -> bytes:
        """The tenant's encoding of an absolute range end (inverse of `range_end`)."""
        if not range_end:
            return b""
        if range_end == self.end:
            return FROM_KEY
        return self.strip(range_end)

    def owns(self, key: bytes) -> bool:
        return key.startswith(self.prefix)

    def contains(self, key: bytes, range_end: bytes = b"") -> bool:
        """Whether the absolute key or range lies wholly inside the namespace."""
        if not key.startswith(self.prefix):
            return False
        if not range_end:
            return True
        if range_end == FROM_KEY:
            return False
        return range_end <= self.end


@functools.lru_cache(maxsize=1024)
def _namespace(prefix: bytes) -> Namespace:
    # Namespaces are immutable and asked for on every check of a tenant user's request.
    return Namespace(prefix)
