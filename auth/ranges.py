"""The permission interval index: which keys one user may read and write.

Every grant becomes a half-open interval of byte strings, with ``None`` as the end meaning
"no upper bound":

- a single key ``k`` (empty ``range_end``) is ``[k, k + b"\\0")``, the one string ``k``;
- a from-key grant (``range_end == b"\\0"``) is ``[k, None)``;
- a range grant is ``[k, range_end)``.

A grant with an empty key, or a range grant whose end is not above its key, grants nothing (etcd
refuses to create them; old data may hold them). The read and the write grants of all of a
user's roles are merged into two sorted lists of disjoint, non-touching intervals, so one
``bisect`` answers a query: a request's keys are allowed exactly when one merged interval holds
them all. Because a single-key grant is the one-string interval, it never covers a from-key or a
range request that starts at that key (SECURITY 3).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from auth.model import FROM_KEY, Permission, PermissionType

Interval = tuple[bytes, bytes | None]


def grant_interval(key: bytes, range_end: bytes) -> Interval | None:
    """The keys a grant of ``[key, range_end)`` in etcd's encoding covers, or None if none."""
    if not key:
        return None
    if not range_end:
        return (key, key + b"\x00")
    if range_end == FROM_KEY:
        return (key, None)
    if range_end <= key:
        return None
    return (key, range_end)


def is_valid_permission_range(key: bytes, range_end: bytes) -> bool:
    """Whether etcd accepts a grant on ``key``/``range_end`` (``isValidPermissionRange``)."""
    if not key:
        return False
    return not range_end or range_end == FROM_KEY or key < range_end


def _end_after(a: bytes | None, b: bytes | None) -> bool:
    """Whether end ``a`` lies strictly after end ``b`` (``None`` is past every key)."""
    if a is None:
        return b is not None
    return b is not None and a > b


@dataclass(frozen=True, slots=True)
class IntervalSet:
    """Disjoint, non-touching intervals sorted by start; built with ``IntervalSet.of``."""

    begins: tuple[bytes, ...]
    ends: tuple[bytes | None, ...]

    @classmethod
    def of(cls, intervals: Iterable[Interval]) -> IntervalSet:
        """Merge intervals; overlapping and touching ones become one."""
        begins: list[bytes] = []
        ends: list[bytes | None] = []
        for begin, end in sorted(intervals, key=lambda iv: iv[0]):
            if begins:
                last_end = ends[-1]
                # Touching counts: [a, b) and [b, c) hold every key of [a, c).
                if last_end is None or begin <= last_end:
                    if _end_after(end, last_end):
                        ends[-1] = end
                    continue
            begins.append(begin)
            ends.append(end)
        return cls(tuple(begins), tuple(ends))

    def _holding(self, key: bytes) -> int:
        """Index of the interval that would hold ``key`` (the last starting at or before it)."""
        return bisect_right(self.begins, key) - 1

    def contains(self, key: bytes) -> bool:
        """Whether ``key`` lies in one of the intervals."""
        i = self._holding(key)
        if i < 0:
            return False
        end = self.ends[i]
        return end is None or key < end

    def covers(self, begin: bytes, end: bytes | None) -> bool:
        """Whether every key of the non-empty ``[begin, end)`` lies in the intervals."""
        i = self._holding(begin)
        if i < 0:
            return False
        have = self.ends[i]
        if have is None:
            return True
        return begin < have and end is not None and end <= have

    def reaches_across(self, low: bytes, high: bytes) -> bool:
        """Whether one interval starts below ``low`` and ends after ``high``.

        How etcd's interval tree answers a request range that names no key (see ``allows``).
        """
        i = bisect_left(self.begins, low) - 1
        if i < 0:
            return False
        end = self.ends[i]
        return end is None or end > high

    def allows(self, key: bytes, range_end: bytes) -> bool:
        """Whether a request on ``key``/``range_end`` (etcd's encoding) lies within the set.

        An empty ``range_end`` asks for the single key; ``b"\\0"`` for every key from ``key``
        on; anything else for ``[key, range_end)``. A range that names no key
        (``range_end <= key``) is decided as etcd decides it: allowed when one granted interval
        starts below ``range_end`` and ends after ``key``. (etcd looks at its grants one by one,
        Ward at the merged ones, so Ward also allows it where two adjacent grants meet inside that
        stretch; no key is read or written either way.)
        """
        if not range_end:
            return self.contains(key)
        if range_end == FROM_KEY:
            return self.covers(key, None)
        if key < range_end:
            return self.covers(key, range_end)
        return self.reaches_across(range_end, key)

    def __len__(self) -> int:
        return len(self.begins)


@dataclass(frozen=True, slots=True)
class UserPermissions:
    """One user's merged grants: what the permission check consults.

    ``is_root`` users hold the ``root`` role and bypass the interval checks.
    """

    read: IntervalSet
    write: IntervalSet
    is_root: bool = False

    def can_read(self, key: bytes, range_end: bytes = b"") -> bool:
        """Whether a read of ``key``/``range_end`` (etcd's encoding) is allowed."""
        return self.is_root or self.read.allows(key, range_end)

    def can_write(self, key: bytes, range_end: bytes = b"") -> bool:
        """Whether a write of ``key``/``range_end`` (etcd's encoding) is allowed."""
        return self.is_root or self.write.allows(key, range_end)


def build_user_permissions(
    permissions: Iterable[Permission], *, is_root: bool = False
) -> UserPermissions:
    """Merge the permissions of all of a user's roles; cost O(n log n) in their number."""
    reads: list[Interval] = []
    writes: list[Interval] = []
    for perm in permissions:
        interval = grant_interval(perm.key, perm.range_end)
        if interval is None:
            continue
        if perm.perm_type in (PermissionType.READ, PermissionType.READWRITE):
            reads.append(interval)
        if perm.perm_type in (PermissionType.WRITE, PermissionType.READWRITE):
            writes.append(interval)
    return UserPermissions(IntervalSet.of(reads), IntervalSet.of(writes), is_root=is_root)
