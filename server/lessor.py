"""The lessor: when each lease expires, kept in the core process's memory, and who revokes it.

Leases themselves (ID → granted TTL) live in the `lease` database and change only through the
apply path, on every member alike. Deadlines do not: as in etcd, only the primary lessor (the
core process of the Raft leader) tracks them, keep-alives refresh them in memory without touching
the log, and an expired lease is revoked by proposing a `LeaseExpire` entry, which every member
applies. A member that becomes primary (at start, or on winning an election) gives every lease
its full TTL again plus an election timeout (etcd's `Promote`), so a restart never expires leases
at once.

`Lessor` is the schedule alone, with an injected clock; `LeaseExpirer` runs it on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger("ward.lessor")

# etcd's MaxLeaseTTL (seconds).
MAX_LEASE_TTL = 9_000_000_000
# An expired lease whose revocation did not get applied is proposed again after this long
# (etcd's expiredLeaseRetryInterval).
EXPIRED_RETRY_S = 3.0
# etcd revokes at most 1000 leases a second, half of them every 500 ms.
REVOKE_BATCH = 500
REVOKE_INTERVAL_S = 0.5
# How often the expirer looks at the member's Raft role when no deadline is nearer.
ROLE_CHECK_S = 0.5

FOREVER = math.inf


class NotPrimary(Exception):
    """Only the primary lessor (the leader's) renews leases: etcd's ErrNotPrimary."""


def min_lease_ttl(election_ticks: int, heartbeat_ms: int) -> int:
    """etcd's minimum TTL: 1.5 election timeouts, rounded up to whole seconds.

    A lease shorter than that could expire during a leader election and be revoked before a
    client had any chance to keep it alive.
    """
    ms = ((3 * election_ticks) // 2) * heartbeat_ms
    return max(1, math.ceil(ms / 1000))


@dataclass(slots=True)
class _Lease:
    ttl: int
    deadline: float = FOREVER  # FOREVER while this lessor is not primary
    # Bumped whenever the deadline moves, so that older heap entries of the lease are ignored.
    gen: int = 0


class Lessor:
    """The set of leases with their TTLs and, when primary, their deadlines.

    Fed from the apply path (`apply`) after each commit; asked by the Lease service (`renew`,
    `lookup`, `leases`) and by the expirer (`expired`). Not thread-safe: the core process uses
    it from its event loop only.
    """

    def __init__(
        self,
        *,
        min_ttl: int = 1,
        extend: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._min_ttl = min_ttl
        self._extend = extend
        self._clock = clock
        self._leases: dict[int, _Lease] = {}
        # (when to look at the lease, lease ID, its gen then). Entries are never updated in
        # place: one whose lease is gone or whose gen is old is dropped when it reaches the top.
        self._heap: list[tuple[float, int, int]] = []
        self.primary = False

    # ---- the lease table, as the apply path changes it ----

    def recover(self, leases: Iterable[tuple[int, int]]) -> None:
        """Load (ID, TTL) pairs from storage at start; none has a deadline until promoted."""
        for lid, ttl in leases:
            # etcd raises stored TTLs to the minimum too: the minimum may have grown since.
            lease = self._leases[lid] = _Lease(max(ttl, self._min_ttl))
            if self.primary:
                self._schedule(lid, lease, self._clock() + self._extend + lease.ttl)

    def reset(self, leases: Iterable[tuple[int, int]]) -> None:
        """Replace every lease by `leases`: the store was replaced by a snapshot image. As
        primary, each lease gets its full TTL plus the election timeout again, as on start."""
        self._leases = {}
        self._heap = []
        self.recover(leases)

    def apply(self, changes: Iterable[tuple[int, int]]) -> None:
        """Changes from the apply path: (ID, TTL) for a grant, (ID, 0) for a revocation."""
        for lid, ttl in changes:
            if ttl:
                lease = self._leases[lid] = _Lease(ttl)
                if self.primary:
                    self._schedule(lid, lease, self._clock() + ttl)
            else:
                self._leases.pop(lid, None)

    # ---- role ----

    def set_primary(self, primary: bool) -> None:
        """Follow the member's Raft role: promote on becoming leader, demote on losing it."""
        if primary and not self.primary:
            self.promote()
        elif not primary and self.primary:
            self.demote()

    def promote(self) -> None:
        """Become primary: every lease gets its full TTL again, plus the election timeout."""
        self.primary = True
        now = self._clock()
        self._heap = []
        for lid, lease in self._leases.items():
            self._schedule(lid, lease, now + self._extend + lease.ttl)

    def demote(self) -> None:
        """Stop tracking deadlines: the new leader's lessor owns them now."""
        self.primary = False
        self._heap = []
        for lease in self._leases.values():
            lease.deadline = FOREVER
            lease.gen += 1

    # ---- queries ----

    def renew(self, lid: int) -> int | None:
        """Refresh the lease's deadline; its TTL, or None when it is unknown or already expired.

        An expired lease is not brought back: its revocation is under way, and etcd answers
        such a keep-alive as if the lease were gone. Raises NotPrimary on a follower.
        """
        if not self.primary:
            raise NotPrimary
        lease = self._leases.get(lid)
        if lease is None:
            return None
        now = self._clock()
        if lease.deadline <= now:
            return None
        self._schedule(lid, lease, now + lease.ttl)
        return lease.ttl

    def lookup(self, lid: int) -> tuple[int, float] | None:
        """(granted TTL, seconds remaining) of a lease, or None if there is no such lease."""
        lease = self._leases.get(lid)
        if lease is None:
            return None
        return lease.ttl, lease.deadline - self._clock()

    def leases(self) -> list[int]:
        """Every lease ID, soonest deadline first (as etcd lists them)."""
        return sorted(self._leases, key=lambda lid: (self._leases[lid].deadline, lid))

    def __contains__(self, lid: int) -> bool:
        return lid in self._leases

    def __len__(self) -> int:
        return len(self._leases)

    # ---- expiry ----

    def expired(self, limit: int = REVOKE_BATCH) -> list[int]:
        """Up to `limit` leases past their deadline, to be revoked.

        Each is looked at again `EXPIRED_RETRY_S` later, so a revocation that never gets applied
        (a lost proposal, a leader change) is proposed again rather than forgotten, while one in
        flight is not proposed twice.
        """
        if not self.primary:
            return []
        now = self._clock()
        out: list[int] = []
        heap = self._heap
        while heap and len(out) < limit:
            when, lid, gen = heap[0]
            lease = self._leases.get(lid)
            if lease is None or lease.gen != gen:
                heapq.heappop(heap)  # revoked, or its deadline moved since
                continue
            if when > now:
                break
            heapq.heappop(heap)
            heapq.heappush(heap, (now + EXPIRED_RETRY_S, lid, gen))
            out.append(lid)
        return out

    def next_wakeup(self) -> float | None:
        """When `expired` may next have something to say (None: nothing scheduled)."""
        heap = self._heap
        while heap:
            _when, lid, gen = heap[0]
            lease = self._leases.get(lid)
            if lease is not None and lease.gen == gen:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def _schedule(self, lid: int, lease: _Lease, deadline: float) -> None:
        lease.deadline = deadline
        lease.gen += 1
        heapq.heappush(self._heap, (deadline, lid, lease.gen))

    def now(self) -> float:
        return self._clock()


Revoke = Callable[[list[int]], Awaitable[object]]


class LeaseExpirer:
    """Runs the lessor on the event loop: follows the Raft role, proposes expired leases' end.

    `revoke` proposes one `LeaseExpire` entry for the given IDs; the apply path skips IDs that
    are already gone, so a lease never expires twice even if a retry races its first proposal.
    """

    def __init__(self, lessor: Lessor, *, is_leader: Callable[[], bool], revoke: Revoke) -> None:
        self._lessor = lessor
        self._is_leader = is_leader
        self._revoke = revoke
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def sync_role(self) -> None:
        """Promote or demote the lessor to match the member's Raft role right now."""
        self._lessor.set_primary(self._is_leader())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-expirer")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _run(self) -> None:
        lessor = self._lessor
        while True:
            self.sync_role()
            ids = lessor.expired(REVOKE_BATCH)
            if ids:
                task = asyncio.create_task(self._propose(ids))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if len(ids) == REVOKE_BATCH:
                delay = REVOKE_INTERVAL_S  # etcd's revocation rate limit
            else:
                wake = lessor.next_wakeup()
                delay = ROLE_CHECK_S if wake is None else min(ROLE_CHECK_S, wake - lessor.now())
            await asyncio.sleep(max(delay, 0.001))

    async def _propose(self, ids: list[int]) -> None:
        try:
            await self._revoke(ids)
        except Exception as e:
            # The lessor looks at these leases again after EXPIRED_RETRY_S.
            log.warning("could not propose the expiry of %d leases: %s", len(ids), e)
