"""Elections: roles, votes, randomized timeouts, pre-vote, check-quorum and the leader lease."""

from __future__ import annotations

import random

import pytest
from raft_harness import Network, raft_of

from server.raft import (
    Config,
    ConfState,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    StateType,
)


def _drain(node: RawNode, storage: MemoryStorage) -> list[Message]:
    msgs: list[Message] = []
    while node.has_ready():
        rd = node.ready()
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        storage.append(rd.entries)
        msgs.extend(rd.messages)
        node.advance(rd)
    return msgs


def test_election_safety_at_most_one_leader_per_term_under_loss_and_reordering() -> None:
    # Raft §5.2: the observer asserts after every round that no term has two leaders.
    for seed in range(6):
        net = Network([1, 2, 3, 4, 5], seed=seed)
        net.drop_rate = 0.2
        net.delay_rate = 0.3
        for _ in range(15):
            net.tick(10)
            if net.leaders():
                net.isolate(net.leader())  # force further elections
            else:
                net.heal()
        assert len(net.observer.leader_of_term) >= 2


def test_election_completes_under_message_loss_and_reordering() -> None:
    for seed in range(5):
        net = Network([1, 2, 3, 4, 5], seed=seed)
        net.drop_rate = 0.3
        net.delay_rate = 0.3
        for _ in range(300):
            net.tick()
            if net.leaders():
                break
        assert net.leaders(), f"seed {seed}: no leader after 300 ticks"


def test_follower_times_out_within_randomized_election_timeout() -> None:
    # The timeout is drawn from [election_tick, 2 * election_tick).
    seen = set()
    for seed in range(40):
        storage = MemoryStorage(conf_state=ConfState(voters=(1, 2, 3)))
        node = RawNode(Config(id=1, election_tick=10, rng=random.Random(seed)), storage)
        ticks = 0
        while raft_of(node).state == StateType.FOLLOWER:
            node.tick()
            ticks += 1
            assert ticks < 20
        seen.add(ticks)
        assert raft_of(node).state == StateType.PRE_CANDIDATE
    assert min(seen) >= 10
    assert max(seen) <= 19
    assert len(seen) > 3  # actually randomized


def test_votes_once_per_term() -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2, 3)))
    node = RawNode(Config(id=1, rng=random.Random(1)), storage)
    node.step(Message(type=MessageType.VOTE, to=1, from_=2, term=5))
    node.step(Message(type=MessageType.VOTE, to=1, from_=3, term=5))
    node.step(Message(type=MessageType.VOTE, to=1, from_=2, term=5))  # re-sent: granted again
    resps = [m for m in _drain(node, storage) if m.type == MessageType.VOTE_RESP]
    assert [(m.to, m.reject) for m in resps] == [(2, False), (3, True), (2, False)]
    assert storage.hard_state == HardState(term=5, vote=2, commit=0)


def test_vote_refused_to_candidate_with_stale_log() -> None:
    net = Network([1, 2, 3], logs={1: [1, 1], 2: [1, 2], 3: [1]})
    node1 = net.nodes[1]
    # 2's log ends at term 2: a candidate whose log ends at (2, term 1) is behind it.
    node2 = net.nodes[2]
    node2.raw.step(Message(type=MessageType.VOTE, to=2, from_=1, term=3, index=2, log_term=1))
    # A longer log of the same last term is up to date for 3.
    node3 = net.nodes[3]
    node3.raw.step(Message(type=MessageType.VOTE, to=3, from_=1, term=3, index=2, log_term=1))
    (r2,) = node2.drain()
    (r3,) = node3.drain()
    assert r2.reject and not r3.reject
    assert node1.raw.status().soft_state.raft_state == StateType.FOLLOWER


def test_candidate_with_stale_log_cannot_win() -> None:
    net = Network([1, 2, 3], logs={1: [1], 2: [1, 2], 3: [1, 2]}, pre_vote=False)
    net.campaign(1)
    assert net.nodes[1].state != StateType.LEADER
    net.elect(2)


def test_split_vote_is_resolved_by_later_timeout() -> None:
    net = Network([1, 2, 3, 4], seed=3, pre_vote=False)
    # Two candidates in the same term split the four votes two by two.
    net.nodes[1].raw.campaign()
    net.nodes[3].raw.campaign()
    net.partition({1, 2}, {3, 4})
    net.stabilize()
    assert not net.leaders()
    net.heal()
    net.tick(40)
    assert len(net.leaders()) == 1


def test_pre_vote_keeps_term_when_election_cannot_be_won() -> None:
    net = Network([1, 2, 3], seed=2)
    net.elect(1)
    term = net.nodes[1].term
    net.isolate(3)
    net.tick(100)
    # The isolated node pre-campaigns again and again but never bumps its term.
    assert net.nodes[3].term == term
    assert net.nodes[3].state == StateType.PRE_CANDIDATE


def test_pre_vote_stops_rejoining_partitioned_node_from_disrupting_leader() -> None:
    net = Network([1, 2, 3], seed=4)
    net.elect(1)
    term = net.nodes[1].term
    net.isolate(3)
    net.tick(100)
    net.heal()
    net.tick(30)
    assert net.leaders() == [1]
    assert {n.term for n in net.nodes.values()} == {term}


def test_without_pre_vote_rejoining_partitioned_node_disrupts_leader() -> None:
    # The contrast to the test above: pre-vote is what keeps the term stable.
    net = Network([1, 2, 3], seed=4, pre_vote=False, check_quorum=False)
    net.elect(1)
    term = net.nodes[1].term
    net.isolate(3)
    net.tick(100)
    assert net.nodes[3].term > term + 1
    net.heal()
    net.tick(30)
    assert net.nodes[1].term > term


def test_check_quorum_leader_steps_down_when_cut_off() -> None:
    net = Network([1, 2, 3], seed=5)
    net.elect(1)
    net.isolate(1)
    # Acks from before the cut count for the current window, so stepping down takes at most
    # two election timeouts.
    net.tick(20)
    assert net.nodes[1].state == StateType.FOLLOWER
    assert net.nodes[1].raw.status().soft_state.lead == 0


def test_check_quorum_leader_stays_while_quorum_answers() -> None:
    net = Network([1, 2, 3], seed=5)
    net.elect(1)
    net.isolate(3)
    net.tick(50)
    assert net.nodes[1].state == StateType.LEADER


def test_without_check_quorum_cut_off_leader_stays_leader() -> None:
    net = Network([1, 2, 3], seed=5, check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.tick(50)
    assert net.nodes[1].state == StateType.LEADER


def test_follower_in_leader_lease_ignores_vote_request_of_higher_term() -> None:
    net = Network([1, 2, 3], seed=6)
    net.elect(1)
    term = net.nodes[2].term
    for t in (MessageType.VOTE, MessageType.PRE_VOTE):
        net.nodes[2].raw.step(
            Message(type=t, to=2, from_=3, term=term + 1, index=100, log_term=term)
        )
        assert net.nodes[2].drain() == []
    assert net.nodes[2].term == term
    assert raft_of(net.nodes[2].raw).vote == 1


def test_leader_in_lease_ignores_vote_request_of_higher_term() -> None:
    net = Network([1, 2, 3], seed=6)
    net.elect(1)
    term = net.nodes[1].term
    net.nodes[1].raw.step(
        Message(type=MessageType.VOTE, to=1, from_=3, term=term + 5, index=100, log_term=term)
    )
    assert net.nodes[1].state == StateType.LEADER
    assert net.nodes[1].term == term


def test_lease_expires_after_election_timeout_without_leader() -> None:
    net = Network([1, 2, 3], seed=6)
    net.elect(1)
    net.down.add(1)  # the leader crashes
    term = net.nodes[2].term
    net.tick(40)
    assert net.leaders() and net.leader() in (2, 3)
    assert net.nodes[2].term > term


def test_stale_leader_learns_new_term_from_reply_to_its_heartbeat() -> None:
    net = Network([1, 2, 3], seed=7, check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.tick(40)
    new_leader = net.leader()
    assert new_leader != 1 and net.nodes[1].state == StateType.LEADER
    net.heal()
    net.tick(2)
    assert net.nodes[1].state == StateType.FOLLOWER
    assert net.nodes[1].term == net.nodes[new_leader].term


@pytest.mark.parametrize("pre_vote", [True, False])
def test_sole_voter_campaign_becomes_leader_at_once(pre_vote: bool) -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1,)))
    node = RawNode(Config(id=1, pre_vote=pre_vote, rng=random.Random(0)), storage)
    node.campaign()
    st = node.status()
    assert st.soft_state.raft_state == StateType.LEADER
    assert st.hard_state.term == 1


def test_learner_does_not_campaign() -> None:
    net = Network([1, 2], learners=(3,), seed=1)
    net.nodes[3].raw.campaign()
    net.isolate(3)
    net.tick(100)
    assert net.nodes[3].state == StateType.FOLLOWER
    assert net.nodes[3].term == 0
