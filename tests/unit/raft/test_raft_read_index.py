"""Read index: a read point confirmed by a heartbeat round (at once on a sole voter)."""

from __future__ import annotations

import random

import pytest
from raft_harness import Network, raft_of

from server.raft import (
    Config,
    ConfState,
    MemoryStorage,
    MessageType,
    ProposalDropped,
    RawNode,
    ReadState,
    StateType,
)


def test_sole_voter_answers_read_index_at_once() -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1,)))
    node = RawNode(Config(id=1, rng=random.Random(0)), storage)
    node.campaign()
    node.read_index(b"r1")
    rd = node.ready()
    assert rd.read_states == [ReadState(index=1, request_ctx=b"r1")]
    assert rd.messages == []


def test_leader_answers_read_index_only_after_quorum_acks_heartbeat() -> None:
    net = Network([1, 2, 3], seed=1)
    net.elect(1)
    net.propose(1, b"a")
    leader = net.nodes[1]
    leader.raw.read_index(b"r1")
    msgs = leader.drain()
    assert leader.read_states == []
    assert {(m.type, m.context) for m in msgs} == {(MessageType.HEARTBEAT, b"r1")}
    net.in_flight.extend(msgs)
    net.stabilize()
    assert leader.read_states == [ReadState(index=2, request_ctx=b"r1")]


def test_isolated_leader_never_answers_read_index() -> None:
    # A leader cut off from the quorum may already be deposed: serving reads would be stale.
    net = Network([1, 2, 3], seed=2, check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.nodes[1].raw.read_index(b"r1")
    net.tick(80)
    assert net.nodes[1].read_states == []
    assert net.nodes[1].state == StateType.LEADER
    assert net.leader() != 1  # the others have moved on


def test_lost_read_heartbeat_is_retried_by_next_heartbeat() -> None:
    net = Network([1, 2, 3], seed=3)
    net.elect(1)
    net.nodes[1].raw.read_index(b"r1")
    net.nodes[1].drain()  # the heartbeats carrying r1 are lost
    net.tick(1)
    assert net.nodes[1].read_states == [ReadState(index=1, request_ctx=b"r1")]


def test_follower_read_index_is_forwarded_and_answered_with_leader_commit() -> None:
    net = Network([1, 2, 3], seed=4)
    net.elect(1)
    net.propose(1, b"a")
    net.nodes[3].raw.read_index(b"f1")
    net.stabilize()
    assert net.nodes[3].read_states == [ReadState(index=2, request_ctx=b"f1")]
    assert net.nodes[1].read_states == []


def test_read_index_without_leader_is_dropped() -> None:
    net = Network([1, 2, 3], seed=5)
    with pytest.raises(ProposalDropped):
        net.nodes[2].raw.read_index(b"x")


def test_read_index_waits_for_new_leader_to_commit_in_its_term() -> None:
    net = Network([1, 2, 3], seed=6)
    net.nodes[1].raw.campaign()
    while net.nodes[1].state != StateType.LEADER:
        net.deliver_round()
    r = raft_of(net.nodes[1].raw)
    assert r.log.term(r.log.committed) != r.term  # its empty entry is not committed yet
    net.nodes[1].raw.read_index(b"early")
    assert r.pending_read_index
    net.stabilize()
    assert net.nodes[1].read_states == [ReadState(index=1, request_ctx=b"early")]


def test_several_pending_reads_are_released_in_order() -> None:
    net = Network([1, 2, 3], seed=7)
    net.elect(1)
    for ctx in (b"a", b"b", b"c"):
        net.nodes[1].raw.read_index(ctx)
    net.stabilize()
    assert [rs.request_ctx for rs in net.nodes[1].read_states] == [b"a", b"b", b"c"]


def test_empty_read_context_is_refused() -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1,)))
    node = RawNode(Config(id=1), storage)
    node.campaign()
    with pytest.raises(ProposalDropped):
        node.read_index(b"")
