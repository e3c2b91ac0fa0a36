"""Log replication and the safety claims of the Raft paper (§5.3, §5.4, Figure 3)."""

from __future__ import annotations

import random

from raft_harness import Network, log_terms, raft_of

from server.raft import (
    Config,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    StateType,
)


def _chaos(seed: int, *, rounds: int = 40) -> Network:
    """A 5-node run with loss, reordering, partitions, crashes and proposals, then a heal."""
    net = Network([1, 2, 3, 4, 5], seed=seed)
    rng = random.Random(seed)
    counter = 0
    for _ in range(rounds):
        net.drop_rate = rng.choice([0.0, 0.1, 0.3])
        net.delay_rate = rng.choice([0.0, 0.2, 0.5])
        r = rng.random()
        if r < 0.15:
            nodes = list(net.nodes)
            rng.shuffle(nodes)
            cut = rng.randint(1, 2)
            net.partition(set(nodes[:cut]), set(nodes[cut:]))
        elif r < 0.3:
            net.heal()
        elif r < 0.4 and not net.down:
            net.down.add(rng.choice(list(net.nodes)))
        elif r < 0.5 and net.down:
            nid = net.down.pop()
            net.nodes[nid].restart()
        for _ in range(rng.randint(1, 5)):
            counter += 1
            net.try_propose(f"v{counter}".encode())
        net.tick(rng.randint(1, 6))
    return net


def _settle(net: Network) -> None:
    net.heal()
    for nid in list(net.down):
        net.nodes[nid].restart()
    net.down.clear()
    net.drop_rate = net.delay_rate = 0.0
    for _ in range(100):
        net.tick(5)
        if net.leaders() and len({n.commit for n in net.nodes.values()}) == 1:
            leader = net.nodes[net.leader()]
            if all(n.applied_index == leader.commit for n in net.nodes.values()):
                return
    raise AssertionError("cluster did not converge")


def test_state_machine_safety_under_chaos() -> None:
    # Raft §5.4.3: every node applies the same entry at each index; after healing all converge.
    for seed in range(4):
        net = _chaos(seed)
        _settle(net)
        applied = {nid: n.applied for nid, n in net.nodes.items()}
        first = applied[1]
        assert all(a == first for a in applied.values()), seed
        assert len(first) > 10, seed  # the run did make progress


def test_log_matching_and_leader_append_only_under_chaos() -> None:
    # The observer asserts log matching (§5.3) and leader append-only after every round.
    for seed in range(10, 13):
        net = _chaos(seed, rounds=30)
        assert net.observer.leader_logs  # leaders were observed
        _settle(net)
        logs = [log_terms(n.raw) for n in net.nodes.values()]
        assert all(lg == logs[0] for lg in logs)


def test_leader_completeness_new_leader_holds_committed_entries() -> None:
    net = Network([1, 2, 3, 4, 5], seed=1)
    net.elect(1)
    net.propose(1, b"a")
    net.partition({1, 2, 3}, {4, 5})
    net.propose(1, b"b")  # committed on 1, 2, 3 only
    committed = net.nodes[1].commit
    net.down.add(1)
    net.heal()
    net.tick(50)
    new_leader = net.leader()
    assert new_leader in (2, 3)  # 4 and 5 lack "b" and cannot win (§5.4.1)
    assert log_terms(net.nodes[new_leader].raw)[committed] == 1
    net.propose(new_leader, b"c")
    assert net.nodes[4].applied == [b"a", b"b", b"c"]


def test_partitioned_old_leader_cannot_commit() -> None:
    net = Network([1, 2, 3, 4, 5], seed=2)
    net.elect(1)
    net.propose(1, b"a")
    net.partition({1, 2}, {3, 4, 5})
    commit = net.nodes[1].commit
    net.nodes[1].raw.propose(b"lost")
    net.tick(5)
    assert net.nodes[1].commit == commit
    assert net.nodes[2].commit == commit
    assert b"lost" not in net.nodes[1].applied


def test_log_divergence_repaired_after_heal() -> None:
    net = Network([1, 2, 3, 4, 5], seed=3)
    net.elect(1)
    net.propose(1, b"a")
    net.partition({1, 2}, {3, 4, 5})
    for i in range(5):
        net.nodes[1].raw.propose(b"lost%d" % i)
    net.stabilize()
    net.tick(40)
    new_leader = net.leader()
    assert new_leader in (3, 4, 5)
    for i in range(3):
        net.propose(new_leader, b"kept%d" % i)
    net.heal()
    net.tick(5)
    expected = [b"a", b"kept0", b"kept1", b"kept2"]
    for n in net.nodes.values():
        assert n.applied == expected
    logs = [log_terms(n.raw) for n in net.nodes.values()]
    assert all(lg == logs[0] for lg in logs)


def test_conflicting_uncommitted_entries_are_overwritten_by_leader() -> None:
    # 3 holds two entries of term 2 nobody else has; the leader at term 3 replaces them.
    net = Network([1, 2, 3], logs={1: [1, 1], 2: [1, 1], 3: [1, 2, 2]}, seed=1)
    net.elect(1)
    net.propose(1, b"x")
    logs = [log_terms(n.raw) for n in net.nodes.values()]
    assert logs[0] == logs[1] == logs[2]
    assert logs[2][3] == 3  # the leader's empty entry of its term replaced (3, term 2)


def test_fast_backtracking_skips_a_whole_divergent_term_per_round_trip() -> None:
    # Follower 3 has 50 entries of a stale term 2 after the common prefix; without the reject
    # hint the leader would probe back one entry per round trip.
    logs = {1: [1] * 5 + [3] * 5, 2: [1] * 5 + [3] * 5, 3: [1] * 5 + [2] * 50}
    net = Network([1, 2, 3], logs=logs, seed=1)
    net.elect(1)
    rejects = [m for m in net.trace if m.type == MessageType.APP_RESP and m.reject]
    assert 1 <= len(rejects) <= 3
    assert log_terms(net.nodes[3].raw) == log_terms(net.nodes[1].raw)


def test_follower_rejects_append_that_does_not_match_its_log() -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2)))
    storage.append([Entry(term=1, index=1), Entry(term=1, index=2)])
    storage.set_hard_state(HardState(term=1))
    node = RawNode(Config(id=2, rng=random.Random(0)), storage)
    # (3, term 1) is past our log; (2, term 2) has the wrong term.
    for index, log_term in ((3, 1), (2, 2)):
        node.step(
            Message(
                type=MessageType.APP,
                to=2,
                from_=1,
                term=2,
                index=index,
                log_term=log_term,
                entries=(Entry(term=2, index=index + 1),),
            )
        )
    rd = node.ready()
    assert [(m.reject, m.index, m.reject_hint) for m in rd.messages] == [
        (True, 3, 2),
        (True, 2, 2),
    ]
    assert rd.entries == []


def test_leader_commits_only_entries_of_its_current_term_by_counting() -> None:
    # Raft §5.4.2 (Figure 8): replicas of an old-term entry on a majority do not commit it.
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2, 3)))
    storage.append([Entry(term=1, index=1), Entry(term=2, index=2)])
    storage.set_hard_state(HardState(term=2, commit=1))
    node = RawNode(Config(id=1, pre_vote=False, rng=random.Random(0)), storage)
    node.campaign()
    node.step(Message(type=MessageType.VOTE_RESP, to=1, from_=2, term=3))
    r = raft_of(node)
    assert r.state == StateType.LEADER and r.log.last_index() == 3
    # Both followers hold index 2 (term 2) but not yet the term-3 entry.
    for peer in (2, 3):
        node.step(Message(type=MessageType.APP_RESP, to=1, from_=peer, term=3, index=2))
    assert r.log.committed == 1
    node.step(Message(type=MessageType.APP_RESP, to=1, from_=2, term=3, index=3))
    assert r.log.committed == 3  # the term-3 entry commits, and index 2 with it


def test_follower_learns_commit_index_from_heartbeat_and_append() -> None:
    net = Network([1, 2, 3], seed=1)
    net.elect(1)
    net.propose(1, b"a")
    assert [n.applied for n in net.nodes.values()] == [[b"a"]] * 3
    assert {n.commit for n in net.nodes.values()} == {2}


def test_lagging_follower_catches_up_after_rejoining() -> None:
    net = Network([1, 2, 3], seed=8)
    net.elect(1)
    net.down.add(3)
    for i in range(30):
        net.propose(1, b"%d" % i)
    net.down.discard(3)
    net.tick(3)
    assert net.nodes[3].applied == net.nodes[1].applied
    assert len(net.nodes[3].applied) == 30


def test_pipeline_respects_inflight_limit() -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2)))
    node = RawNode(
        Config(id=1, max_inflight_msgs=3, max_size_per_msg=1, rng=random.Random(0)), storage
    )
    node.campaign()
    node.step(Message(type=MessageType.PRE_VOTE_RESP, to=1, from_=2, term=1))
    node.step(Message(type=MessageType.VOTE_RESP, to=1, from_=2, term=1))
    node.step(Message(type=MessageType.APP_RESP, to=1, from_=2, term=1, index=1))
    rd = node.ready()
    storage.append(rd.entries)
    node.advance(rd)
    for i in range(10):
        node.propose(b"%d" % i)
    msgs = [m for m in node.ready().messages if m.type == MessageType.APP]
    # One entry per message (size limit), at most three unacknowledged.
    assert len(msgs) == 3
    assert all(len(m.entries) == 1 for m in msgs)


def test_snapshot_sent_to_follower_behind_compacted_log() -> None:
    net = Network([1, 2, 3], seed=9)
    net.elect(1)
    net.down.add(3)
    for i in range(20):
        net.propose(1, b"%d" % i)
    net.nodes[1].snapshot_and_compact()
    net.down.discard(3)
    net.tick(3)
    assert any(m.type == MessageType.SNAP for m in net.trace)
    assert net.nodes[3].applied == net.nodes[1].applied
    net.propose(1, b"after")
    assert net.nodes[3].applied[-1] == b"after"
