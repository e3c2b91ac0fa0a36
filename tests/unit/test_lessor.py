"""The lessor's schedule with an injected clock, and the LeaseExpirer that drives it."""

from __future__ import annotations

import asyncio

import pytest

from server.lessor import (
    EXPIRED_RETRY_S,
    LeaseExpirer,
    Lessor,
    NotPrimary,
    min_lease_ttl,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


def primary(clock: Clock, **kw: float) -> Lessor:
    lessor = Lessor(clock=clock, **kw)  # type: ignore[arg-type]
    lessor.promote()
    return lessor


def test_min_ttl_is_etcds_one_and_a_half_election_timeouts_rounded_up() -> None:
    # etcd's defaults (100 ms heartbeat, 10 ticks): 15 ticks = 1.5 s -> 2 s.
    assert min_lease_ttl(10, 100) == 2
    assert min_lease_ttl(10, 300) == 5  # 4.5 s -> 5 s
    assert min_lease_ttl(20, 100) == 3
    assert min_lease_ttl(2, 10) == 1  # never 0


def test_a_granted_lease_expires_after_its_ttl_and_not_before(clock: Clock) -> None:
    lessor = primary(clock)
    lessor.apply([(7, 10)])
    clock.t += 9.99
    assert lessor.expired() == []
    clock.t += 0.01
    assert lessor.expired() == [7]


def test_an_expired_lease_is_proposed_once_then_again_only_after_the_retry_interval(
    clock: Clock,
) -> None:
    lessor = primary(clock)
    lessor.apply([(7, 5)])
    clock.t += 5
    assert lessor.expired() == [7]
    assert lessor.expired() == []  # its revocation is in flight
    clock.t += EXPIRED_RETRY_S - 0.01
    assert lessor.expired() == []
    clock.t += 0.01
    assert lessor.expired() == [7]  # never applied: proposed again


def test_a_revoked_lease_is_never_reported_expired(clock: Clock) -> None:
    lessor = primary(clock)
    lessor.apply([(7, 5), (8, 5)])
    clock.t += 6
    lessor.apply([(7, 0)])
    assert lessor.expired() == [8]
    assert 7 not in lessor and 8 in lessor


def test_renew_pushes_the_deadline_a_full_ttl_ahead(clock: Clock) -> None:
    lessor = primary(clock)
    lessor.apply([(7, 10)])
    clock.t += 8
    assert lessor.renew(7) == 10
    clock.t += 9
    assert lessor.expired() == []
    assert lessor.lookup(7) == (10, pytest.approx(1.0))
    clock.t += 1
    assert lessor.expired() == [7]


def test_renew_of_an_unknown_or_already_expired_lease_answers_none(clock: Clock) -> None:
    lessor = primary(clock)
    assert lessor.renew(99) is None
    lessor.apply([(7, 5)])
    clock.t += 5
    # Past its deadline the lease is not brought back, even before its revocation applies.
    assert lessor.renew(7) is None
    assert lessor.expired() == [7]
    assert lessor.renew(7) is None


def test_a_follower_lessor_tracks_no_deadlines_and_renews_nothing(clock: Clock) -> None:
    lessor = Lessor(clock=clock)
    lessor.apply([(7, 5)])
    clock.t += 100
    assert lessor.expired() == []
    with pytest.raises(NotPrimary):
        lessor.renew(7)
    assert lessor.leases() == [7]


def test_promote_gives_every_lease_its_full_ttl_plus_the_extension(clock: Clock) -> None:
    lessor = Lessor(clock=clock, extend=1.0)
    lessor.recover([(7, 20), (8, 5)])
    clock.t += 500  # time spent down, or as a follower, does not count
    lessor.set_primary(True)
    assert lessor.lookup(7) == (20, pytest.approx(21.0))
    clock.t += 5.99
    assert lessor.expired() == []
    clock.t += 0.01
    assert lessor.expired() == [8]


def test_recover_raises_stored_ttls_to_the_current_minimum(clock: Clock) -> None:
    lessor = Lessor(clock=clock, min_ttl=3)
    lessor.recover([(7, 1)])
    lessor.promote()
    assert lessor.lookup(7) == (3, pytest.approx(3.0))


def test_reset_replaces_every_lease_by_those_of_a_snapshot_image(clock: Clock) -> None:
    lessor = primary(clock, extend=1.0)
    lessor.apply([(7, 5), (8, 5)])
    clock.t += 4
    lessor.reset([(8, 10), (9, 2)])
    assert 7 not in lessor and len(lessor) == 2
    assert lessor.lookup(8) == (10, pytest.approx(11.0))  # a full TTL again, as on start
    clock.t += 3
    assert lessor.expired() == [9]  # nothing of 7's old deadline is left in the schedule


def test_demote_forgets_deadlines_and_a_new_promote_starts_them_over(clock: Clock) -> None:
    lessor = primary(clock)
    lessor.apply([(7, 5)])
    lessor.set_primary(False)
    clock.t += 10
    assert lessor.expired() == []
    lessor.set_primary(True)
    clock.t += 4.9
    assert lessor.expired() == []
    clock.t += 0.1
    assert lessor.expired() == [7]


def test_expired_returns_at_most_the_limit_and_the_rest_next_time(clock: Clock) -> None:
    lessor = primary(clock)
    lessor.apply([(i, 5) for i in range(1, 11)])
    clock.t += 5
    first = lessor.expired(limit=4)
    assert len(first) == 4
    rest = lessor.expired(limit=100)
    assert sorted(first + rest) == list(range(1, 11))


def test_leases_are_listed_soonest_deadline_first(clock: Clock) -> None:
    lessor = primary(clock)
    lessor.apply([(1, 30), (2, 10), (3, 12)])
    assert lessor.leases() == [2, 3, 1]
    clock.t += 9
    assert lessor.renew(2) == 10  # now due at +19, after lease 3
    assert lessor.leases() == [3, 2, 1]


def test_next_wakeup_skips_stale_entries(clock: Clock) -> None:
    lessor = primary(clock)
    assert lessor.next_wakeup() is None
    lessor.apply([(1, 5), (2, 10)])
    lessor.renew(1)
    clock.t += 1
    lessor.renew(1)  # due at +6
    assert lessor.next_wakeup() == pytest.approx(clock.t + 5)
    lessor.apply([(1, 0)])
    assert lessor.next_wakeup() == pytest.approx(clock.t + 9)


def test_expirer_proposes_expired_leases_only_while_leader() -> None:
    async def scenario() -> list[list[int]]:
        lessor = Lessor(min_ttl=1)
        proposed: list[list[int]] = []
        leader = {"is": False}

        async def revoke(ids: list[int]) -> None:
            proposed.append(ids)
            lessor.apply((i, 0) for i in ids)

        expirer = LeaseExpirer(lessor, is_leader=lambda: leader["is"], revoke=revoke)
        lessor.recover([(5, 1)])
        expirer.start()
        await asyncio.sleep(1.3)
        assert proposed == []  # not leader: nobody's deadline runs
        leader["is"] = True
        await asyncio.sleep(1.7)  # noticed within 0.5 s, then the 1 s TTL runs out
        await expirer.stop()
        return proposed

    assert asyncio.run(scenario()) == [[5]]


def test_expirer_keeps_running_when_a_proposal_fails() -> None:
    async def scenario() -> int:
        lessor = Lessor(min_ttl=1)
        calls = 0

        async def revoke(ids: list[int]) -> None:
            nonlocal calls
            calls += 1
            raise RuntimeError("no leader")

        expirer = LeaseExpirer(lessor, is_leader=lambda: True, revoke=revoke)
        expirer.sync_role()
        lessor.apply([(5, 1)])
        expirer.start()
        await asyncio.sleep(1.3)
        await expirer.stop()
        return calls

    assert asyncio.run(scenario()) == 1
