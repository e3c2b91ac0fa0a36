"""Leadership transfer (Raft thesis §3.10), after etcd's TestLeaderTransfer* cases."""

from __future__ import annotations

import pytest
from raft_harness import Network, raft_of

from server.raft import (
    ConfChange,
    ConfChangeType,
    LeaderTransferInProgress,
    Message,
    MessageType,
    ProposalDropped,
    StateType,
)
from server.raft.raft import CAMPAIGN_TRANSFER

MT = MessageType


def _transferee(net: Network, nid: int) -> int:
    return net.nodes[nid].raw.status().lead_transferee


def _assert_led_by(net: Network, lead: int) -> None:
    """etcd's checkLeaderTransferState: one leader, known to all, no transfer pending."""
    assert net.leaders() == [lead]
    for n in net.nodes.values():
        if n.id not in net.down:
            assert n.raft.lead == lead, (n.id, n.raft.lead)
    assert _transferee(net, lead) == 0


def test_transfer_to_an_up_to_date_node_and_back() -> None:
    net = Network([1, 2, 3], seed=41)
    net.elect(1)
    net.nodes[1].raw.transfer_leader(2)
    net.stabilize()
    _assert_led_by(net, 2)
    net.propose(2, b"replicated")
    net.nodes[2].raw.transfer_leader(1)
    net.stabilize()
    _assert_led_by(net, 1)
    assert net.nodes[1].applied == [b"replicated"]


def test_transferee_is_caught_up_by_appends_before_timeout_now() -> None:
    net = Network([1, 2, 3], seed=42)
    net.elect(1)
    net.down.add(3)
    for i in range(5):
        net.propose(1, b"%d" % i)
    net.down.discard(3)
    start = len(net.trace)
    net.nodes[1].raw.transfer_leader(3)
    net.stabilize()
    _assert_led_by(net, 3)
    to3 = [m for m in net.trace[start:] if m.to == 3 and m.from_ == 1]
    timeout_at = next(i for i, m in enumerate(to3) if m.type == MT.TIMEOUT_NOW)
    assert any(m.type == MT.APP and m.entries for m in to3[:timeout_at])
    # TIMEOUT_NOW went out only once 3 held the whole log of the old leader.
    acks = [m for m in net.trace[start:] if m.from_ == 3 and m.type == MT.APP_RESP]
    assert acks and max(m.index for m in acks if not m.reject) == 6
    assert len(net.nodes[3].applied) == 5


def test_transfer_to_a_follower_that_needs_a_snapshot() -> None:
    # etcd TestLeaderTransferAfterSnapshot.
    net = Network([1, 2, 3], seed=43, options={"max_snapshot_chunk": 32})
    net.elect(1)
    net.down.add(3)
    for i in range(10):
        net.propose(1, b"s%d" % i)
    net.nodes[1].snapshot_and_compact()
    net.down.discard(3)
    net.nodes[1].raw.transfer_leader(3)
    net.stabilize()
    net.tick(1)
    _assert_led_by(net, 3)
    assert any(m.type == MT.SNAP and m.to == 3 for m in net.trace)
    assert net.nodes[3].applied == net.nodes[1].applied


def test_transfer_overrides_the_leader_lease_and_skips_pre_vote() -> None:
    # etcd TestLeaderTransferWithCheckQuorum: the followers heard from the leader within the
    # election timeout, yet grant the transferee's forced campaign.
    net = Network([1, 2, 3], seed=44, pre_vote=True, check_quorum=True)
    net.elect(1)
    start = len(net.trace)
    net.nodes[1].raw.transfer_leader(2)
    net.stabilize()
    _assert_led_by(net, 2)
    from2 = [m for m in net.trace[start:] if m.from_ == 2]
    assert not [m for m in from2 if m.type == MT.PRE_VOTE]
    votes = [m for m in from2 if m.type == MT.VOTE]
    assert votes and all(m.context == CAMPAIGN_TRANSFER for m in votes)


def test_transfer_to_self_cancels_a_pending_transfer() -> None:
    # etcd TestLeaderTransferBack.
    net = Network([1, 2, 3], seed=45)
    net.elect(1)
    net.isolate(3)
    net.nodes[1].raw.transfer_leader(3)
    assert _transferee(net, 1) == 3
    net.nodes[1].raw.transfer_leader(1)
    _assert_led_by(net, 1)
    net.propose(1, b"accepted again")


def test_transfer_to_self_without_a_pending_transfer_does_nothing() -> None:
    net = Network([1, 2, 3], seed=46)
    net.elect(1)
    net.nodes[1].raw.transfer_leader(1)
    net.stabilize()
    _assert_led_by(net, 1)


@pytest.mark.parametrize("target", [4, 9])
def test_transfer_to_a_learner_or_non_member_is_refused(target: int) -> None:
    net = Network([1, 2, 3], learners=(4,), seed=47)
    net.elect(1)
    with pytest.raises(ProposalDropped):
        net.nodes[1].raw.transfer_leader(target)
    assert _transferee(net, 1) == 0
    # The state machine ignores such a request even if it got that far.
    raft_of(net.nodes[1].raw).step(Message(type=MT.TRANSFER_LEADER, from_=target))
    assert _transferee(net, 1) == 0
    net.propose(1, b"still accepted")


def test_transfer_is_abandoned_after_an_election_timeout() -> None:
    # etcd TestLeaderTransferTimeout: still pending after a heartbeat timeout and until the
    # election timeout has passed.
    net = Network([1, 2, 3], seed=48)
    net.elect(1)
    net.isolate(3)
    leader = net.nodes[1]
    leader.raw.transfer_leader(3)
    for _ in range(9):
        leader.raw.tick()
        assert _transferee(net, 1) == 3
    leader.raw.tick()
    assert _transferee(net, 1) == 0
    assert leader.state == StateType.LEADER


def test_second_request_for_the_same_node_does_not_extend_the_deadline() -> None:
    # etcd TestLeaderTransferSecondTransferToSameNode.
    net = Network([1, 2, 3], seed=49)
    net.elect(1)
    net.isolate(3)
    leader = net.nodes[1]
    leader.raw.transfer_leader(3)
    for _ in range(5):
        leader.raw.tick()
    leader.raw.transfer_leader(3)
    for _ in range(5):
        leader.raw.tick()
    assert _transferee(net, 1) == 0


def test_second_request_for_another_node_replaces_the_first() -> None:
    # etcd TestLeaderTransferSecondTransferToAnotherNode.
    net = Network([1, 2, 3], seed=50)
    net.elect(1)
    net.isolate(3)
    net.nodes[1].raw.transfer_leader(3)
    net.nodes[1].raw.transfer_leader(2)
    net.stabilize()
    assert net.leaders() == [2]


def test_proposals_and_conf_changes_are_refused_during_a_transfer() -> None:
    # etcd TestLeaderTransferIgnoreProposal.
    net = Network([1, 2, 3], seed=51)
    net.elect(1)
    net.isolate(3)
    leader = net.nodes[1]
    last = leader.raft.log.last_index()
    leader.raw.transfer_leader(3)
    with pytest.raises(LeaderTransferInProgress):
        leader.raw.propose(b"x")
    with pytest.raises(LeaderTransferInProgress):
        leader.raw.propose_many([b"y", b"z"])
    with pytest.raises(LeaderTransferInProgress):
        leader.raw.propose_conf_change(ConfChange(type=ConfChangeType.REMOVE_NODE, node_id=2))
    assert leader.raft.log.last_index() == last
    # Reads are still served: they do not move the log the transferee must catch up with.
    leader.raw.read_index(b"read-during-transfer")
    net.stabilize()
    assert [rs.request_ctx for rs in leader.read_states] == [b"read-during-transfer"]


@pytest.mark.parametrize("change", [ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER_NODE])
def test_removing_or_demoting_the_transferee_cancels_the_transfer(
    change: ConfChangeType,
) -> None:
    # etcd TestLeaderTransferRemoveNode / TestLeaderTransferDemoteNode.
    net = Network([1, 2, 3], seed=52)
    net.elect(1)
    net.msg_filter = lambda m: m.type != MT.TIMEOUT_NOW
    net.nodes[1].raw.transfer_leader(3)
    assert _transferee(net, 1) == 3
    net.nodes[1].raw.apply_conf_change(ConfChange(type=change, node_id=3))
    assert _transferee(net, 1) == 0
    assert net.nodes[1].state == StateType.LEADER


def test_higher_term_vote_during_a_transfer_deposes_the_leader() -> None:
    # etcd TestLeaderTransferReceiveHigherTermVote.
    net = Network([1, 2, 3], seed=53, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.nodes[1].raw.transfer_leader(3)
    net.heal()
    net.isolate(3)
    net.campaign(2)
    assert net.leaders() == [2]
    assert net.nodes[1].raft.lead == 2  # (3 is cut off and has not heard yet)
    assert net.nodes[1].raw.status().lead_transferee == 0


def test_lost_timeout_now_leaves_the_leader_in_charge() -> None:
    net = Network([1, 2, 3], seed=54)
    net.elect(1)
    net.msg_filter = lambda m: m.type != MT.TIMEOUT_NOW
    net.nodes[1].raw.transfer_leader(2)
    net.stabilize()
    assert _transferee(net, 1) == 2
    net.tick(10)
    _assert_led_by(net, 1)
    net.propose(1, b"after the abandoned transfer")


def test_timeout_now_is_ignored_by_a_learner_and_a_non_member() -> None:
    # etcd TestTransferNonMember: a removed node told to campaign must not become leader.
    net = Network([1, 2, 3], learners=(4,), seed=55)
    net.elect(1)
    for nid in (4,):
        node = net.nodes[nid]
        node.raw.step(Message(type=MT.TIMEOUT_NOW, to=nid, from_=1, term=node.term))
        assert node.state == StateType.FOLLOWER
        assert not [m for m in node.drain() if m.type == MT.VOTE]
    # A node whose membership does not include itself.
    net.nodes[1].raw.propose_conf_change(ConfChange(type=ConfChangeType.REMOVE_NODE, node_id=3))
    net.stabilize()
    node3 = net.nodes[3]
    node3.raw.step(Message(type=MT.TIMEOUT_NOW, to=3, from_=1, term=node3.term))
    for voter in (1, 2):
        node3.raw.step(Message(type=MT.VOTE_RESP, to=3, from_=voter, term=node3.term + 1))
    assert node3.state == StateType.FOLLOWER
