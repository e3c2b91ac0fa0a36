"""Flow control: inflight windows (count and bytes), committed bytes per Ready, and the cap on
a leader's uncommitted log (etcd's raft_flow_control_test.go and its siblings in raft_test.go)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from raft_harness import Network, raft_of

from server.raft import (
    Config,
    ConfigError,
    ConfState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    UncommittedSizeExceeded,
)
from server.raft.raft import Raft

MT = MessageType


def _handle(node: RawNode, storage: MemoryStorage) -> list[Message]:
    """Drain every Ready as the driver would; returns the messages to send."""
    msgs: list[Message] = []
    while node.has_ready():
        rd = node.ready()
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        storage.append(rd.entries)
        msgs.extend(rd.messages)
        node.advance(rd)
    return msgs


def _leader(voters: tuple[int, ...] = (1, 2), **options: Any) -> tuple[RawNode, MemoryStorage]:
    """Node 1 elected at term 1 by stepping the votes in; its first Ready handled."""
    storage = MemoryStorage(conf_state=ConfState(voters=voters))
    node = RawNode(Config(id=1, pre_vote=False, rng=random.Random(0), **options), storage)
    node.campaign()
    for v in voters[1:]:
        node.step(Message(type=MT.VOTE_RESP, to=1, from_=v, term=1))
    _handle(node, storage)
    return node, storage


def _replicating(**options: Any) -> tuple[RawNode, MemoryStorage]:
    """Leader 1 with follower 2 acknowledged up to the empty entry: in replicate state."""
    node, storage = _leader(**options)
    node.step(Message(type=MT.APP_RESP, to=1, from_=2, term=1, index=1))
    _handle(node, storage)
    assert node.status().progress[2].state == "replicate"
    return node, storage


def _apps(msgs: list[Message], to: int = 2) -> list[Message]:
    return [m for m in msgs if m.type == MT.APP and m.to == to]


def _raft(node: RawNode) -> Raft:
    return raft_of(node)


# -- the inflight window (count) -------------------------------------------------------------


def test_appends_fill_the_window_then_stop() -> None:
    # etcd TestMsgAppFlowControlFull.
    node, storage = _replicating(max_inflight_msgs=3)
    for _ in range(3):
        node.propose(b"somedata")
        assert len(_apps(_handle(node, storage))) == 1
    assert _raft(node).trk.progress[2].is_paused()
    for _ in range(10):
        node.propose(b"somedata")
        assert _apps(_handle(node, storage)) == []


def test_acknowledgements_move_the_window_forward_and_stale_ones_do_not() -> None:
    # etcd TestMsgAppFlowControlMoveForward.
    node, storage = _replicating(max_inflight_msgs=3)
    for _ in range(3):
        node.propose(b"somedata")
    _handle(node, storage)
    pr = _raft(node).trk.progress[2]
    for index in range(2, 8):
        node.step(Message(type=MT.APP_RESP, to=1, from_=2, term=1, index=index))
        _handle(node, storage)
        node.propose(b"somedata")
        assert len(_apps(_handle(node, storage))) == 1
        assert pr.is_paused()
        for stale in range(index):
            node.step(Message(type=MT.APP_RESP, to=1, from_=2, term=1, index=stale))
            assert pr.is_paused()
        assert _apps(_handle(node, storage)) == []


def test_heartbeat_response_to_a_full_window_sends_one_empty_append() -> None:
    # etcd TestMsgAppFlowControlRecvHeartbeat: if every append of the window was lost, only an
    # answer to an empty append can free it.
    node, storage = _replicating(max_inflight_msgs=3)
    for _ in range(3):
        node.propose(b"somedata")
    _handle(node, storage)
    for _ in range(3):
        node.step(Message(type=MT.HEARTBEAT_RESP, to=1, from_=2, term=1))
        apps = _apps(_handle(node, storage))
        assert len(apps) == 1 and apps[0].entries == ()
        node.propose(b"somedata")
        assert _apps(_handle(node, storage)) == []


def test_replication_resumes_after_a_whole_window_of_appends_is_lost() -> None:
    net = Network([1, 2, 3], seed=31, options={"max_inflight_msgs": 2})
    net.elect(1)
    net.msg_filter = lambda m: not (m.type == MT.APP and m.to == 3)
    for i in range(6):
        net.propose(1, b"%d" % i)
    pr = raft_of(net.nodes[1].raw).trk.progress[3]
    assert pr.inflights.full()
    net.msg_filter = None
    net.tick(3)
    assert net.nodes[3].applied == net.nodes[1].applied
    assert len(net.nodes[3].applied) == 6


# -- the inflight window (bytes) -------------------------------------------------------------


def test_inflight_bytes_bound_the_window_besides_the_count() -> None:
    # etcd TestProgressFlowControl: 3 messages of up to 2048 bytes, at most 9000 bytes.
    node, storage = _leader(max_inflight_msgs=3, max_size_per_msg=2048, max_inflight_bytes=9000)
    _raft(node).trk.progress[2].become_probe()
    blob, large = b"a" * 1000, b"b" * 5000
    for i in range(22):
        node.propose(large if 10 <= i < 16 else blob)
    apps = _apps(_handle(node, storage))
    # Probing: one message, the empty entry and the first proposal.
    assert len(apps) == 1
    assert [len(e.data) for e in apps[0].entries] == [0, 1000]

    def ack_and_verify(index: int, *expected: int) -> int:
        node.step(Message(type=MT.APP_RESP, to=1, from_=2, term=1, index=index))
        apps = _apps(_handle(node, storage))
        assert [len(m.entries) for m in apps] == list(expected)
        return apps[-1].entries[-1].index

    index = ack_and_verify(apps[0].entries[-1].index, 2, 2, 2)  # three messages: count-bound
    index = ack_and_verify(index, 2, 1, 1)  # the third holds one large entry
    index = ack_and_verify(index, 1, 1)  # two large entries exceed the byte budget
    index = ack_and_verify(index, 1, 1)
    index = ack_and_verify(index, 1, 2, 2)  # small entries again
    ack_and_verify(index, 2)
    assert node.status().progress[2].inflight_bytes == 2000


def test_inflight_bytes_are_released_by_acknowledgement() -> None:
    node, storage = _replicating(max_inflight_msgs=100, max_size_per_msg=10, max_inflight_bytes=30)
    for _ in range(5):
        node.propose(b"x" * 10)
    assert len(_apps(_handle(node, storage))) == 3
    assert node.status().progress[2].inflight_bytes == 30
    # Entries 2 and 3 acknowledged: 20 bytes free, room for the two remaining entries.
    node.step(Message(type=MT.APP_RESP, to=1, from_=2, term=1, index=3))
    assert [m.entries[0].index for m in _apps(_handle(node, storage))] == [5, 6]
    assert node.status().progress[2].inflight_bytes == 30


# -- committed entries per Ready -------------------------------------------------------------


def test_committed_entries_per_ready_are_bounded_in_bytes() -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1,)))
    node = RawNode(
        Config(id=1, max_committed_size_per_ready=250, rng=random.Random(0)),
        storage,
    )
    node.campaign()
    _handle(node, storage)
    node.propose_many([b"%03d" % i + b"." * 97 for i in range(10)] + [b"L" * 1000])
    batches = []
    while node.has_ready():
        rd = node.ready()
        storage.append(rd.entries)
        if rd.committed_entries:
            batches.append(rd.committed_entries)
        node.advance(rd)
    sizes = [sum(len(e.data) for e in b) for b in batches]
    assert sizes == [200, 200, 200, 200, 200, 1000]  # a larger entry still comes, alone
    indexes = [e.index for b in batches for e in b]
    assert indexes == list(range(2, 13))


def test_committed_entries_per_ready_unbounded_by_default() -> None:
    storage = MemoryStorage(conf_state=ConfState(voters=(1,)))
    node = RawNode(Config(id=1, rng=random.Random(0)), storage)
    node.campaign()
    _handle(node, storage)
    node.propose_many([b"x" * 1000] * 50)
    rd = node.ready()
    assert len(rd.committed_entries) == 50


# -- the uncommitted log cap -----------------------------------------------------------------


def test_proposals_over_the_uncommitted_limit_are_dropped() -> None:
    # etcd TestUncommittedEntryLimit.
    max_entries = 1024
    data = b"testdata"
    node, storage = _leader(
        voters=(1, 2, 3),
        max_uncommitted_entries_size=max_entries * len(data),
        max_inflight_msgs=2048,
    )
    assert _raft(node).uncommitted_size == 0  # the leader's empty entry does not count
    for _ in range(max_entries):
        node.propose(data)
    with pytest.raises(UncommittedSizeExceeded):
        node.propose(data)
    with pytest.raises(ProposalDropped):  # the same error, for callers catching the base
        node.propose(data)
    # Once committed and applied, the budget is free again.
    _handle(node, storage)
    last = _raft(node).log.last_index()
    node.step(Message(type=MT.APP_RESP, to=1, from_=2, term=1, index=last))
    _handle(node, storage)
    assert _raft(node).uncommitted_size == 0
    # One proposal larger than the limit is accepted when nothing is outstanding...
    node.propose_many([data] * (2 * max_entries))
    # ...but nothing more until it drains.
    with pytest.raises(UncommittedSizeExceeded):
        node.propose(data)
    node.propose(b"")  # entries without data are always accepted
    _handle(node, storage)
    last = _raft(node).log.last_index()
    node.step(Message(type=MT.APP_RESP, to=1, from_=2, term=1, index=last))
    _handle(node, storage)
    assert _raft(node).uncommitted_size == 0
    node.propose(data)


def test_uncommitted_size_is_forgotten_by_a_new_term() -> None:
    node, _ = _leader(voters=(1, 2, 3), max_uncommitted_entries_size=16)
    node.propose(b"x" * 16)
    with pytest.raises(UncommittedSizeExceeded):
        node.propose(b"y")
    node.step(Message(type=MT.APP, to=1, from_=2, term=5, index=0, log_term=0))
    assert _raft(node).uncommitted_size == 0


def test_conf_changes_count_against_the_uncommitted_limit() -> None:
    from server.raft import ConfChange, ConfChangeType

    node, _ = _leader(voters=(1, 2, 3), max_uncommitted_entries_size=10)
    node.propose(b"0123456789")
    with pytest.raises(UncommittedSizeExceeded):
        node.propose_conf_change(ConfChange(type=ConfChangeType.ADD_LEARNER_NODE, node_id=4))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_inflight_bytes": -1},
        {"max_inflight_bytes": 100, "max_size_per_msg": 200},
        {"max_committed_size_per_ready": -1},
        {"max_uncommitted_entries_size": -1},
        {"max_snapshot_chunk": 0},
        {"max_inflight_snapshot_chunks": 0},
    ],
)
def test_config_rejects_out_of_range_flow_control(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Config(id=1, **kwargs)
