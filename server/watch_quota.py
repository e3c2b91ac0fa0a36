"""Each tenant's open watchers in one member, held to its `quota_watchers`.

**Counted per member**, by its core process, for every serving process of the member: the core's
own Watch streams count directly (`LocalQuota`), a worker reserves each watcher over its link
before creating it and releases it when the watch ends (`LinkQuota`, `ipc.WATCHERS`). Why:

- not per serving process, as requests per second are: the kernel spreads a client's connections
  over the processes (`SO_REUSEPORT`), so the quota a tenant got would depend on that hashing
  (up to quota times the processes);
- not cluster-wide: a watcher lives on, and costs, the member that serves it, and nothing about it
  is replicated; an exact count across members would need a round trip between members at every
  watch creation, and a gossiped one would be stale. A tenant may therefore hold up to quota times
  the members watchers in a cluster, at most quota on any one member.

A worker's reservations go with its link: when a worker ends (or is killed), the core forgets
what it held, as its streams are gone too. A tenant's watchers are counted whether or not it has
a quota (0: none), so a quota a policy sets later holds the watchers already open to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import TYPE_CHECKING, Protocol

from auth.tenants import Tenant

if TYPE_CHECKING:
    from server.ipc import CoreLink

# What a refused WatchCreateRequest's cancel reason says, in the form etcd gives its own refusals
# there ("rpc error: code = PermissionDenied desc = ..."), with the tenant quotas' message.
TENANT_WATCH_QUOTA_REASON = (
    "rpc error: code = ResourceExhausted desc = ward: tenant quota exceeded: too many watchers"
)
# The core process's own streams, as an owner of reservations.
CORE = "core"


class WatcherCounts:
    """The member's count of open watchers per tenant, by owner (the core, or a worker's link)."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._owned: dict[Hashable, dict[str, int]] = {}

    def held(self, tenant: str) -> int:
        return self._held.get(tenant, 0)

    def reserve(self, owner: Hashable, tenant: str, quota: int) -> bool:
        """Count one more watcher of `tenant` for `owner`, unless that takes it past `quota`
        (0: no quota)."""
        held = self._held.get(tenant, 0)
        if quota and held >= quota:
            return False
        self._held[tenant] = held + 1
        owned = self._owned.setdefault(owner, {})
        owned[tenant] = owned.get(tenant, 0) + 1
        return True

    def release(self, owner: Hashable, tenant: str, n: int = 1) -> None:
        """`owner`'s watchers of `tenant` ended (never more than it holds)."""
        owned = self._owned.get(owner)
        if owned is None:
            return
        n = min(n, owned.get(tenant, 0))
        if n <= 0:
            return
        owned[tenant] -= n
        if not owned[tenant]:
            del owned[tenant]
        self._held[tenant] -= n
        if not self._held[tenant]:
            del self._held[tenant]

    def drop(self, owner: Hashable) -> None:
        """Everything `owner` held ended with it (a worker's link closed)."""
        for tenant, n in self._owned.pop(owner, {}).items():
            left = self._held.get(tenant, 0) - n
            if left > 0:
                self._held[tenant] = left
            else:
                self._held.pop(tenant, None)


class WatcherQuota(Protocol):
    """What a Watch service asks before it creates a tenant user's watcher."""

    async def reserve(self, tenant: Tenant) -> bool: ...

    def release(self, tenant: str, n: int = 1) -> None: ...


class LocalQuota:
    """The core process's streams, counted in the member's `WatcherCounts` directly."""

    def __init__(self, counts: WatcherCounts) -> None:
        self.counts = counts

    async def reserve(self, tenant: Tenant) -> bool:
        return self.counts.reserve(CORE, tenant.name, tenant.quota_watchers)

    def release(self, tenant: str, n: int = 1) -> None:
        self.counts.release(CORE, tenant, n)


class LinkQuota:
    """A worker's streams, counted by the core over the worker's link."""

    def __init__(self, link: CoreLink) -> None:
        self._link = link

    async def reserve(self, tenant: Tenant) -> bool:
        asked = asyncio.ensure_future(
            self._link.reserve_watcher(tenant.name, tenant.quota_watchers)
        )
        try:
            return await asyncio.shield(asked)
        except asyncio.CancelledError:
            # The stream ended while the core was answering: give back what it may have counted.
            def settle(f: asyncio.Future[bool]) -> None:
                if not f.cancelled() and f.exception() is None and f.result():
                    self.release(tenant.name)

            asked.add_done_callback(settle)
            raise

    def release(self, tenant: str, n: int = 1) -> None:
        self._link.release_watchers(tenant, n)
