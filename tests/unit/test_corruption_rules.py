"""When the corruption checks (server.corruption) find a member's data wrong: etcd's rules."""

from __future__ import annotations

from server.corruption import KVHash, PeerHash, initial_mismatches, periodic_mismatch

ME = 0xA


def peer(member: int, h: int, rev: int, crev: int = 0) -> PeerHash:
    return PeerHash(member, (f"http://peer-{member:x}",), KVHash(h, rev, crev))


def test_at_start_only_a_different_hash_at_the_same_compacted_revision_is_corruption() -> None:
    local = KVHash(111, 10, 3)
    same = peer(1, 111, 12, 3)
    other_data = peer(2, 222, 10, 3)
    other_history = peer(3, 333, 10, 5)  # compacted further: hashes cover other revisions
    unreachable = PeerHash(4, (), error="could not connect")
    behind = PeerHash(5, (), error="etcdserver: mvcc: required revision is a future revision")
    found = initial_mismatches(local, [same, other_data, other_history, unreachable, behind])
    assert found == [other_data]
    assert initial_mismatches(local, [same, other_history, unreachable, behind]) == []


def test_a_healthy_pass_finds_nothing() -> None:
    before = after = KVHash(7, 20, 2)
    peers = [peer(1, 7, 20, 2), peer(2, 7, 18, 2), PeerHash(3, (), error="timeout")]
    assert periodic_mismatch(ME, before, after, peers) is None


def test_the_leader_blames_itself_when_its_hash_moved_without_a_new_revision() -> None:
    assert periodic_mismatch(ME, KVHash(7, 20, 2), KVHash(8, 20, 2), []) == (
        ME,
        "found hash mismatch",
    )
    # A write in between explains a new hash.
    assert periodic_mismatch(ME, KVHash(7, 20, 2), KVHash(8, 21, 2), []) is None


def test_a_follower_ahead_of_the_leader_or_with_other_data_is_blamed() -> None:
    before, after = KVHash(7, 20, 2), KVHash(7, 21, 2)
    assert periodic_mismatch(ME, before, after, [peer(1, 7, 22, 2)])[0] == 1  # type: ignore[index]
    assert periodic_mismatch(ME, before, after, [peer(2, 7, 20, 3)])[0] == 2  # type: ignore[index]
    assert periodic_mismatch(ME, before, after, [peer(3, 9, 20, 2)]) == (
        3,
        "same compact revision then hashes must match",
    )
    # Compacted less than the leader (it applies compactions later): no verdict.
    assert periodic_mismatch(ME, before, after, [peer(4, 9, 20, 1)]) is None


def test_only_the_first_finding_counts_as_etcd_raises_one_alarm_per_pass() -> None:
    before = after = KVHash(7, 20, 2)
    found = periodic_mismatch(ME, before, after, [peer(1, 8, 20, 2), peer(2, 9, 20, 2)])
    assert found is not None and found[0] == 1
