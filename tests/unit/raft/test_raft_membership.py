"""Membership changes one at a time, learners, and leadership transfer."""

from __future__ import annotations

import random

import pytest
from raft_harness import Network, raft_of

from server.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    HardState,
    InvalidConfChange,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    StateType,
)

ADD = ConfChangeType.ADD_NODE
REMOVE = ConfChangeType.REMOVE_NODE
LEARNER = ConfChangeType.ADD_LEARNER_NODE


def _change(net: Network, leader: int, cc: ConfChange) -> None:
    net.nodes[leader].raw.propose_conf_change(cc)
    net.stabilize()


def test_conf_change_round_trips_through_entry_bytes() -> None:
    cc = ConfChange(type=LEARNER, node_id=(1 << 64) - 1, context=b"https://n4:2380")
    assert ConfChange.decode(cc.encode()) == cc


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x09" + bytes(8), b"\x00" + bytes(8)])
def test_malformed_conf_change_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidConfChange):
        ConfChange.decode(data)


def test_add_voter_changes_quorum() -> None:
    net = Network([1, 2, 3], seed=1)
    net.elect(1)
    net.add_node(4, ConfState(voters=(1, 2, 3, 4)))
    _change(net, 1, ConfChange(type=ADD, node_id=4))
    assert all(n.storage.conf_state.voters == (1, 2, 3, 4) for n in net.nodes.values())
    net.propose(1, b"a")
    assert net.nodes[4].applied == [b"a"]
    # Four voters need three: the leader with one follower cannot commit any more.
    net.partition({1, 2}, {3, 4})
    commit = net.nodes[1].commit
    net.nodes[1].raw.propose(b"b")
    net.stabilize()
    assert net.nodes[1].commit == commit


def test_remove_voter_shrinks_quorum() -> None:
    net = Network([1, 2, 3], seed=2)
    net.elect(1)
    _change(net, 1, ConfChange(type=REMOVE, node_id=3))
    assert net.nodes[1].storage.conf_state == ConfState(voters=(1, 2))
    assert 3 not in raft_of(net.nodes[1].raw).trk.progress
    net.down.add(2)
    commit = net.nodes[1].commit
    net.nodes[1].raw.propose(b"x")
    net.stabilize()
    assert net.nodes[1].commit == commit  # two voters need both
    net.down.discard(2)
    net.tick(2)
    assert net.nodes[2].applied == [b"x"]


def test_removed_leader_steps_down_and_the_rest_elect_a_leader() -> None:
    net = Network([1, 2, 3], seed=3)
    net.elect(1)
    _change(net, 1, ConfChange(type=REMOVE, node_id=1))
    assert net.nodes[1].state == StateType.FOLLOWER
    net.down.add(1)
    net.tick(40)
    assert net.leader() in (2, 3)


def test_only_one_conf_change_in_flight() -> None:
    net = Network([1, 2, 3], seed=4)
    net.elect(1)
    net.nodes[1].raw.propose_conf_change(ConfChange(type=LEARNER, node_id=4))
    with pytest.raises(ProposalDropped):
        net.nodes[1].raw.propose_conf_change(ConfChange(type=LEARNER, node_id=5))
    net.stabilize()  # applied now
    net.nodes[1].raw.propose_conf_change(ConfChange(type=LEARNER, node_id=5))


def test_new_leader_refuses_conf_change_until_its_first_entry_is_applied() -> None:
    # Entries of earlier terms in the new leader's log may hold a conf change not yet applied.
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2, 3)))
    storage.append([Entry(term=1, index=1)])
    storage.set_hard_state(HardState(term=1))
    node = RawNode(Config(id=1, pre_vote=False, rng=random.Random(0)), storage)
    node.campaign()
    node.step(Message(type=MessageType.VOTE_RESP, to=1, from_=2, term=2))
    assert node.status().soft_state.raft_state == StateType.LEADER
    with pytest.raises(ProposalDropped):
        node.propose_conf_change(ConfChange(type=LEARNER, node_id=4))
    node.step(Message(type=MessageType.APP_RESP, to=1, from_=2, term=2, index=2))
    rd = node.ready()
    storage.append(rd.entries)
    assert [e.index for e in rd.committed_entries] == [1, 2]
    node.advance(rd)
    node.propose_conf_change(ConfChange(type=LEARNER, node_id=4))


def test_removing_the_last_voter_is_refused() -> None:
    net = Network([1], seed=5)
    net.elect(1)
    for t in (REMOVE, LEARNER):
        with pytest.raises(InvalidConfChange):
            net.nodes[1].raw.propose_conf_change(ConfChange(type=t, node_id=1))
        with pytest.raises(InvalidConfChange):
            net.nodes[1].raw.apply_conf_change(ConfChange(type=t, node_id=1))


def test_learner_receives_log_but_does_not_count_for_quorum() -> None:
    net = Network([1, 2, 3], learners=(4,), seed=6)
    net.elect(1)
    net.propose(1, b"a")
    assert net.nodes[4].applied == [b"a"]
    # Leader plus learner are not a quorum of three voters.
    net.partition({1, 4}, {2, 3})
    commit = net.nodes[1].commit
    net.nodes[1].raw.propose(b"b")
    net.stabilize()
    assert net.nodes[1].commit == commit


def test_learner_is_not_asked_for_votes() -> None:
    net = Network([1, 2, 3], learners=(4,), seed=7)
    net.elect(1)
    assert not [m for m in net.trace if m.to == 4 and m.type == MessageType.VOTE]
    assert not [m for m in net.trace if m.to == 4 and m.type == MessageType.PRE_VOTE]


def test_promote_learner_to_voter() -> None:
    net = Network([1, 2, 3], seed=8)
    net.elect(1)
    net.add_node(4, ConfState(voters=(1, 2, 3), learners=(4,)))
    _change(net, 1, ConfChange(type=LEARNER, node_id=4))
    net.propose(1, b"a")
    assert net.nodes[4].applied == [b"a"]
    assert net.nodes[1].storage.conf_state == ConfState(voters=(1, 2, 3), learners=(4,))
    _change(net, 1, ConfChange(type=ADD, node_id=4))
    assert all(n.storage.conf_state == ConfState(voters=(1, 2, 3, 4)) for n in net.nodes.values())
    assert raft_of(net.nodes[4].raw).promotable()
    # Now 4 counts: leader, 4 and 2 commit without 3.
    net.down.add(3)
    net.propose(1, b"b")
    assert net.nodes[1].applied == [b"a", b"b"]


def test_node_with_committed_unapplied_conf_change_does_not_campaign() -> None:
    net = Network([1, 2, 3], seed=9)
    net.elect(1)
    net.nodes[1].raw.propose_conf_change(ConfChange(type=LEARNER, node_id=4))
    # Replicate by hand so that 2 learns the commit but has not handled its Ready yet.
    for m in net.nodes[1].drain():
        net.nodes[m.to].raw.step(m)
    for nid in (2, 3):
        for m in net.nodes[nid].drain():
            net.nodes[1].raw.step(m)
    for m in net.nodes[1].drain():
        if m.to == 2:
            net.nodes[2].raw.step(m)
    r2 = raft_of(net.nodes[2].raw)
    assert r2.log.committed > r2.log.applied
    term = r2.term
    net.nodes[2].raw.campaign()
    assert r2.term == term and r2.state == StateType.FOLLOWER
    net.nodes[2].drain()  # applies the change
    net.nodes[2].raw.campaign()
    assert r2.state == StateType.PRE_CANDIDATE


def test_transfer_leader_to_caught_up_follower() -> None:
    net = Network([1, 2, 3], seed=10)
    net.elect(1)
    net.propose(1, b"a")
    term = net.nodes[1].term
    net.nodes[1].raw.transfer_leader(2)
    net.stabilize()
    assert net.leaders() == [2]
    assert net.nodes[2].term == term + 1
    net.propose(2, b"b")
    assert net.nodes[1].applied == [b"a", b"b"]


def test_transfer_leader_to_lagging_follower_waits_for_catch_up() -> None:
    net = Network([1, 2, 3], seed=11)
    net.elect(1)
    net.down.add(3)
    for i in range(5):
        net.propose(1, b"%d" % i)
    net.nodes[1].raw.transfer_leader(3)
    with pytest.raises(ProposalDropped):
        net.nodes[1].raw.propose(b"during transfer")
    net.down.discard(3)
    net.tick(2)
    assert net.leaders() == [3]
    assert len(net.nodes[3].applied) == 5


def test_transfer_leader_aborts_after_election_timeout() -> None:
    net = Network([1, 2, 3], seed=12)
    net.elect(1)
    net.down.add(3)
    net.nodes[1].raw.transfer_leader(3)
    net.tick(10)
    assert net.nodes[1].raw.status().lead_transferee == 0
    net.propose(1, b"ok")


def test_transfer_leader_only_on_leader() -> None:
    net = Network([1, 2, 3], seed=13)
    net.elect(1)
    with pytest.raises(ProposalDropped):
        net.nodes[2].raw.transfer_leader(3)
