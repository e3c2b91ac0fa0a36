"""The member's count of each tenant's open watchers (server/watch_quota.py)."""

from __future__ import annotations

import asyncio

from auth.tenants import Tenant
from server.watch_quota import CORE, LocalQuota, WatcherCounts


def test_a_tenant_is_held_to_its_quota_and_others_are_not() -> None:
    counts = WatcherCounts()
    for _ in range(3):
        assert counts.reserve(CORE, "acme", 3)
    assert not counts.reserve(CORE, "acme", 3)
    assert not counts.reserve("worker-1", "acme", 3)  # one count for every serving process
    assert counts.reserve("worker-1", "globex", 3)
    assert counts.held("acme") == 3 and counts.held("globex") == 1
    # No quota: counted, never refused.
    for _ in range(10):
        assert counts.reserve(CORE, "initech", 0)


def test_ended_watchers_give_their_place_back_and_never_more() -> None:
    counts = WatcherCounts()
    counts.reserve(CORE, "acme", 2)
    counts.reserve("worker-1", "acme", 2)
    counts.release("worker-1", "acme", 5)  # more than it holds: only what it holds
    assert counts.held("acme") == 1
    counts.release("worker-2", "acme")  # holds nothing
    assert counts.held("acme") == 1
    assert counts.reserve("worker-1", "acme", 2)
    assert not counts.reserve(CORE, "acme", 2)


def test_a_worker_that_goes_takes_its_watchers_with_it() -> None:
    counts = WatcherCounts()
    for _ in range(2):
        counts.reserve("worker-1", "acme", 3)
    counts.reserve(CORE, "acme", 3)
    counts.reserve("worker-1", "globex", 3)
    counts.drop("worker-1")
    assert (counts.held("acme"), counts.held("globex")) == (1, 0)
    counts.drop("worker-1")  # twice: nothing more
    assert counts.held("acme") == 1


def test_the_core_process_counts_directly() -> None:
    counts = WatcherCounts()
    quota = LocalQuota(counts)
    acme = Tenant("acme", b"/acme/", quota_watchers=1)

    async def run() -> tuple[bool, bool, bool]:
        first = await quota.reserve(acme)
        second = await quota.reserve(acme)
        quota.release("acme")
        return first, second, await quota.reserve(acme)

    assert asyncio.run(run()) == (True, False, True)
