"""RawNode: the Ready/Advance contract, the single-member write path, restarts, replay."""

from __future__ import annotations

import random

import pytest
from raft_harness import Network, raft_of

from server.raft import (
    Config,
    ConfigError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    InvariantViolation,
    MemoryStorage,
    Message,
    MessageRejected,
    MessageType,
    ProposalDropped,
    RawNode,
    Ready,
    SoftState,
    StateType,
)


def _single(
    storage: MemoryStorage | None = None, applied: int = 0
) -> tuple[RawNode, MemoryStorage]:
    storage = storage or MemoryStorage(conf_state=ConfState(voters=(1,)))
    return RawNode(Config(id=1, applied=applied, rng=random.Random(0)), storage), storage


def _handle(node: RawNode, storage: MemoryStorage) -> Ready:
    """Persist, apply (nothing) and advance one Ready, as the driver does."""
    rd = node.ready()
    if rd.hard_state is not None:
        storage.set_hard_state(rd.hard_state)
    storage.append(rd.entries)
    node.advance(rd)
    return rd


def test_single_member_campaign_leads_at_term_1_with_empty_entry() -> None:
    node, storage = _single()
    node.campaign()
    rd = _handle(node, storage)
    assert rd.soft_state == SoftState(lead=1, raft_state=StateType.LEADER)
    assert rd.hard_state == HardState(term=1, vote=1, commit=1)
    assert rd.entries == [Entry(term=1, index=1)]
    assert rd.committed_entries == [Entry(term=1, index=1)]
    assert rd.messages == [] and rd.must_sync


def test_single_member_proposal_is_persisted_and_committed_in_one_ready() -> None:
    node, storage = _single()
    node.campaign()
    _handle(node, storage)
    node.propose(b"x")
    assert node.has_ready()
    rd = _handle(node, storage)
    expected = [Entry(term=1, index=2, data=b"x")]
    assert rd.entries == expected
    assert rd.committed_entries == expected
    assert rd.hard_state == HardState(term=1, vote=1, commit=2)
    assert not node.has_ready()


def test_propose_many_appends_a_batch_committed_together() -> None:
    node, storage = _single()
    node.campaign()
    _handle(node, storage)
    node.propose_many([b"a", b"b", b"c"])
    node.propose(b"d")
    rd = _handle(node, storage)
    assert [e.data for e in rd.committed_entries] == [b"a", b"b", b"c", b"d"]
    assert [e.index for e in rd.entries] == [2, 3, 4, 5]


def test_propose_raises_when_not_leader() -> None:
    net = Network([1, 2, 3], seed=1)
    with pytest.raises(ProposalDropped):
        net.nodes[1].raw.propose(b"x")  # no leader yet
    net.elect(1)
    with pytest.raises(ProposalDropped):
        net.nodes[2].raw.propose(b"x")
    with pytest.raises(ProposalDropped):
        net.nodes[2].raw.propose_many([b"x"])


def test_restart_single_member_from_storage_leads_again_without_reapplying() -> None:
    node, storage = _single()
    node.campaign()
    _handle(node, storage)
    node.propose_many([b"a", b"b"])
    _handle(node, storage)
    node2, _ = _single(storage, applied=3)
    assert node2.status().hard_state == HardState(term=1, vote=1, commit=3)
    assert not node2.has_ready()
    node2.campaign()
    node2.propose(b"c")
    rd = _handle(node2, storage)
    assert rd.hard_state is not None and rd.hard_state.term == 2
    # Only the new term's empty entry and "c" are handed out: 1..3 were applied before.
    assert [(e.index, e.term, e.data) for e in rd.committed_entries] == [
        (4, 2, b""),
        (5, 2, b"c"),
    ]


def test_restart_hands_out_committed_but_unapplied_entries_again() -> None:
    node, storage = _single()
    node.campaign()
    _handle(node, storage)
    node.propose_many([b"a", b"b"])
    _handle(node, storage)
    node2, _ = _single(storage, applied=1)
    rd = node2.ready()
    assert [e.data for e in rd.committed_entries] == [b"a", b"b"]
    assert rd.entries == [] and rd.hard_state is None


def test_restart_cluster_member_rejoins_from_its_storage() -> None:
    net = Network([1, 2, 3], seed=11)
    net.elect(1)
    for i in range(5):
        net.propose(1, b"%d" % i)
    net.nodes[2].restart()
    assert raft_of(net.nodes[2].raw).log.committed == net.nodes[1].commit
    net.propose(1, b"after")
    assert net.nodes[2].applied[-1] == b"after"
    assert net.nodes[2].applied == net.nodes[1].applied


def test_restart_refuses_hard_state_committing_past_the_log() -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1,)))
    storage.set_hard_state(HardState(term=1, commit=5))
    with pytest.raises(InvariantViolation):
        RawNode(Config(id=1), storage)


def test_ready_twice_without_advance_is_refused() -> None:
    node, _ = _single()
    node.campaign()
    node.ready()
    with pytest.raises(InvariantViolation):
        node.ready()


def test_must_sync_only_when_term_vote_or_entries_change() -> None:
    net = Network([1, 2, 3], seed=1)
    net.elect(1)
    node = net.nodes[2]
    commit = node.commit
    node.raw.step(Message(type=MessageType.HEARTBEAT, to=2, from_=1, term=node.term, commit=commit))
    rd = node.raw.ready()
    assert rd.messages and not rd.must_sync
    node.raw.advance(rd)


def test_step_rejects_local_message_types_from_network() -> None:
    node, _ = _single()
    for t in (MessageType.HUP, MessageType.BEAT, MessageType.TRANSFER_LEADER):
        with pytest.raises(MessageRejected):
            node.step(Message(type=t, to=1, from_=2))
    with pytest.raises(MessageRejected):
        node.step(Message(type=MessageType.APP, to=1, from_=0, term=1))


def test_forwarded_proposal_is_committed_by_the_leader() -> None:
    net = Network([1, 2, 3], seed=1)
    net.elect(1)
    net.nodes[1].raw.step(
        Message(type=MessageType.PROP, to=1, from_=2, entries=(Entry(0, 0, data=b"fwd"),))
    )
    net.stabilize()
    assert b"fwd" in net.nodes[3].applied


def test_proposal_from_network_must_be_normal_entries() -> None:
    node, _ = _single()
    node.campaign()
    with pytest.raises(MessageRejected):
        node.step(Message(type=MessageType.PROP, to=1, from_=2))
    cc = Entry(0, 0, type=EntryType.CONF_CHANGE, data=b"x")
    with pytest.raises(MessageRejected):
        node.step(Message(type=MessageType.PROP, to=1, from_=2, entries=(cc,)))
    with pytest.raises(MessageRejected):
        node.step(Message(type=MessageType.PROP, to=1, from_=2, term=5, entries=(Entry(0, 0),)))


def test_follower_drops_a_forwarded_proposal() -> None:
    net = Network([1, 2, 3], seed=1)
    net.elect(1)
    with pytest.raises(ProposalDropped):
        net.nodes[2].raw.step(
            Message(type=MessageType.PROP, to=2, from_=3, entries=(Entry(0, 0, data=b"x"),))
        )


def test_leader_rejects_response_from_non_member() -> None:
    node, _ = _single()
    node.campaign()
    with pytest.raises(MessageRejected):
        node.step(Message(type=MessageType.APP_RESP, to=1, from_=9, term=1, index=1))


def test_status_reports_progress_only_on_leader() -> None:
    net = Network([1, 2, 3], seed=1)
    net.elect(1)
    net.propose(1, b"a")
    st = net.nodes[1].raw.status()
    assert st.id == 1 and st.applied == 2
    assert {nid: p.match for nid, p in st.progress.items()} == {1: 2, 2: 2, 3: 2}
    assert net.nodes[2].raw.status().progress == {}
    assert net.nodes[2].raw.status().soft_state == SoftState(lead=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": 0},
        {"id": 1, "heartbeat_tick": 0},
        {"id": 1, "election_tick": 1, "heartbeat_tick": 1},
        {"id": 1, "max_inflight_msgs": 0},
        {"id": 1, "max_size_per_msg": 0},
        {"id": 1, "applied": -1},
    ],
)
def test_config_rejects_out_of_range_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        Config(**kwargs)


def _scripted_run(seed: int) -> list[Message]:
    net = Network([1, 2, 3, 4, 5], seed=seed)
    net.drop_rate = 0.1
    net.delay_rate = 0.3
    for i in range(30):
        net.tick(3)
        net.try_propose(b"%d" % i)
        if i == 10 and net.leaders():
            net.isolate(net.leader())
        if i == 20:
            net.heal()
    return net.trace


def test_same_seed_replays_the_same_message_trace() -> None:
    first = _scripted_run(42)
    second = _scripted_run(42)
    assert len(first) > 100
    assert first == second
    assert _scripted_run(43) != first


@pytest.mark.parametrize(
    "entries",
    [
        (Entry(term=1, index=3),),  # gap after index 1
        (Entry(term=1, index=2), Entry(term=1, index=2)),  # repeated index
        (Entry(term=9, index=2),),  # term above the sender's
    ],
)
def test_step_rejects_append_with_malformed_entries(entries: tuple[Entry, ...]) -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2)))
    node = RawNode(Config(id=2), storage)
    msg = Message(type=MessageType.APP, to=2, from_=1, term=2, index=1, log_term=1, entries=entries)
    with pytest.raises(MessageRejected):
        node.step(msg)
    assert not node.has_ready()
