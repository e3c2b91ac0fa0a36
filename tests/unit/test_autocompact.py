"""Auto compaction's schedules (etcd 3.4's periodic and revision compactors), on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from server import errors
from server.autocompact import (
    AutoCompactor,
    PeriodicSchedule,
    RevisionSchedule,
    make_schedule,
)


def run_periodic(
    s: PeriodicSchedule, revs_at: dict[float, int], until: float
) -> list[tuple[float, int]]:
    """Drive the schedule as AutoCompactor does; revision = revs_at's latest at or before t."""
    out = []
    t = 0.0

    def rev(at: float) -> int:
        return max((r for when, r in revs_at.items() if when <= at), default=0)

    while t < until:
        s.observe(t, rev(t))
        t = round(t + s.interval, 6)
        r = s.due(t, rev(t))
        if r is not None:
            s.done(t, r)
            out.append((t, r))
    return out


def test_periodic_one_hour_samples_every_six_minutes_and_compacts_hourly() -> None:
    s = PeriodicSchedule(3600.0, start=0.0)
    assert s.interval == 360.0 and s.compact_interval == 3600.0
    revs = {m * 60.0: 1 + m for m in range(0, 200)}  # revision = 1 + minutes since start
    got = run_periodic(s, revs, until=3 * 3600.0 + 1)
    # First after one period, then every hour, each at the revision of an hour before.
    assert got == [(3600.0, 1), (7200.0, 61), (10800.0, 121)]


def test_periodic_keeps_exactly_the_retention() -> None:
    s = PeriodicSchedule(600.0, start=0.0)  # 10 minutes: sample every minute, compact every 10
    assert s.interval == 60.0 and s.compact_interval == 600.0
    revs = {float(sec): 1 + sec // 60 for sec in range(0, 4000, 60)}  # rev = 1 + minutes
    got = run_periodic(s, revs, until=1800.0 + 1)
    # At 10 min the oldest sample (t=0, rev 1) is the revision of 10 minutes ago.
    assert got == [(600.0, 1), (1200.0, 11), (1800.0, 21)]


def test_periodic_longer_than_an_hour_compacts_hourly_keeping_the_whole_period() -> None:
    s = PeriodicSchedule(3 * 3600.0, start=0.0)
    assert s.compact_interval == 3600.0 and s.interval == 360.0
    revs = {float(sec): 1 + sec // 360 for sec in range(0, 6 * 3600, 360)}
    got = run_periodic(s, revs, until=5 * 3600.0 + 1)
    # Nothing before 3 h; then every hour, at the revision of 3 h before.
    assert got == [(10800.0, 1), (14400.0, 11), (18000.0, 21)]


def test_periodic_failure_retries_at_the_next_sample() -> None:
    s = PeriodicSchedule(600.0, start=0.0)
    for t in range(0, 600, 60):
        s.observe(float(t), 0)
    assert s.due(600.0, 0) is None  # revision 0: nothing to compact
    s2 = PeriodicSchedule(600.0, start=0.0)
    for t in range(0, 600, 60):
        s2.observe(float(t), 1 + t)
    assert s2.due(600.0, 601) == 1
    # Not marked done (the proposal failed): due again one sample later.
    s2.observe(600.0, 601)
    assert s2.due(660.0, 661) == 61
    s2.done(660.0, 61)
    assert s2.due(720.0, 721) is None
    assert s2.due(1260.0, 1261) is not None


def test_revision_mode() -> None:
    s = RevisionSchedule(10)
    assert s.interval == 300.0
    assert s.due(0.0, 5) is None  # not enough history
    assert s.due(0.0, 10) is None
    assert s.due(0.0, 25) == 15
    s.done(0.0, 15)
    assert s.due(300.0, 25) is None  # nothing new since
    assert s.due(600.0, 40) == 30


def test_make_schedule() -> None:
    assert make_schedule(0.0, 0, 0.0) is None
    assert isinstance(make_schedule(3600.0, 0, 0.0), PeriodicSchedule)
    r = make_schedule(0.0, 10, 0.0, interval=0.2)
    assert isinstance(r, RevisionSchedule) and r.interval == 0.2


def test_make_schedule_reads_the_internal_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARD_AUTO_COMPACTION_INTERVAL", "0.5")
    s = make_schedule(0.0, 3, 0.0)
    assert s is not None and s.interval == 0.5


def test_compactor_proposes_only_on_the_leader_and_treats_compacted_as_done() -> None:
    leader = False
    revision = 50
    proposed: list[int] = []
    fail: list[Exception] = []

    async def compact(rev: int) -> bytes:
        proposed.append(rev)
        if fail:
            raise fail.pop()
        return b""

    c = AutoCompactor(
        RevisionSchedule(10),
        is_leader=lambda: leader,
        revision=lambda: revision,
        compact=compact,
        clock=lambda: 0.0,
    )

    async def main() -> None:
        nonlocal leader, revision
        await c.check()
        assert proposed == []  # a follower proposes nothing
        leader = True
        fail.append(errors.STOPPED)
        await c.check()
        assert proposed == [40]
        await c.check()  # the failure is retried
        assert proposed == [40, 40]
        await c.check()  # done: not proposed again for the same revision
        assert proposed == [40, 40]
        revision = 60
        fail.append(errors.COMPACTED)
        await c.check()
        revision = 61
        await c.check()
        assert proposed == [40, 40, 50, 51]

    asyncio.run(main())
