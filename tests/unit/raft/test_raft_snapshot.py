"""Snapshots streamed in chunks, and how log compaction sends followers to them."""

from __future__ import annotations

import random
import zlib

import pytest
from raft_harness import Network, log_terms, raft_of

from server.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    Snapshot,
    SnapshotChunk,
    SnapshotMetadata,
    StateType,
)
from server.raft.progress import ProgressState

MT = MessageType


def _lagging(chunk: int = 64, **options: int) -> Network:
    """Leader 1 whose log was compacted past everything follower 3 has; 3 is back up."""
    net = Network([1, 2, 3], seed=21, options={"max_snapshot_chunk": chunk, **options})
    net.elect(1)
    net.down.add(3)
    for i in range(20):
        net.propose(1, b"entry-%02d" % i)
    net.nodes[1].snapshot_and_compact()
    net.down.discard(3)
    return net


def _snaps(msgs: list[Message], to: int = 3) -> list[Message]:
    return [m for m in msgs if m.type == MT.SNAP and m.to == to]


def _start_transfer(net: Network) -> list[Message]:
    """Heartbeats and answers between 1 and 3 by hand until the leader starts streaming to 3;
    returns those first chunks (not delivered)."""
    net.nodes[1].raw.tick()  # heartbeat_tick is 1: the leader broadcasts heartbeats
    to3 = [m for m in net.nodes[1].drain() if m.to == 3]
    for _ in range(4):  # the follower first refuses an append it cannot attach
        out = net.exchange([m for m in net.exchange(to3) if m.to == 1])
        chunks = _snaps(out)
        if chunks:
            return chunks
        to3 = [m for m in out if m.to == 3]
    raise AssertionError("the leader did not start a snapshot transfer")


def _c(m: Message) -> SnapshotChunk:
    assert m.chunk is not None
    return m.chunk


def _image(net: Network, nid: int = 1) -> bytes:
    return net.nodes[nid].storage.snapshot().data


def _progress_state(net: Network, nid: int) -> ProgressState:
    return raft_of(net.nodes[1].raw).trk.progress[nid].state


# -- chunked transfer ----------------------------------------------------------------------


def test_snapshot_streams_in_bounded_ordered_chunks() -> None:
    net = _lagging(chunk=64)
    net.tick(3)
    image = _image(net)
    chunks = [m.chunk for m in _snaps(net.trace) if m.chunk is not None]
    assert len(image) > 4 * 64  # several chunks, more than one window
    assert len(chunks) == -(-len(image) // 64)
    assert all(len(c.data) <= 64 for c in chunks)
    assert [c.offset for c in chunks] == list(range(0, len(image), 64))
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert len({c.transfer for c in chunks}) == 1
    assert b"".join(c.data for c in chunks) == image
    assert chunks[-1].checksum == zlib.crc32(image)
    # The follower installed the image, then got the rest by entries.
    assert net.nodes[3].applied == net.nodes[1].applied
    assert net.nodes[3].storage.snapshot().data == image


def test_follower_installs_nothing_until_the_last_chunk_checks_out() -> None:
    net = _lagging(chunk=64, max_inflight_snapshot_chunks=1)
    pending = _start_transfer(net)
    follower = raft_of(net.nodes[3].raw)
    installed_at = None
    for round_ in range(20):
        assert len(pending) == 1  # one chunk in flight at a time with a window of 1
        net.nodes[3].raw.step(pending[0])
        rd = net.nodes[3].raw.ready()
        assert [c.offset for c in rd.snapshot_chunks] == [_c(pending[0]).offset]
        if rd.snapshot is None:
            assert follower.log.first_index() == 1  # the log is untouched meanwhile
            assert [m.type for m in rd.messages] == [MT.SNAP_RESP]
        else:
            installed_at = round_
            assert _c(pending[0]).done
            assert rd.snapshot.data == b""  # the image came through snapshot_chunks
            assert rd.must_sync
        net.nodes[3].raw.advance(rd)
        if installed_at is not None:
            break
        # Stage what the follower accepted, as the driver would, and let the leader go on.
        for c in rd.snapshot_chunks:
            net.nodes[3].storage.stage_snapshot_chunk(c)
        pending = _snaps(net.exchange(rd.messages))
    assert installed_at is not None and installed_at >= 4


def test_chunk_window_bounded_by_count_and_bytes() -> None:
    net = _lagging(chunk=32, max_inflight_snapshot_chunks=3)
    assert len(_start_transfer(net)) == 3
    net = _lagging(chunk=32, max_inflight_snapshot_chunks=8, max_inflight_bytes=1 << 20)
    assert len(_start_transfer(net)) == 8
    # The byte budget also bounds the window: 100 bytes allow four 32-byte chunks (the fourth
    # crosses it, as an append message may).
    net = _lagging(chunk=32, max_size_per_msg=64, max_inflight_bytes=100)
    chunks = _start_transfer(net)
    assert len(chunks) == 4
    # Each acknowledgement opens the window by the chunks it covers.
    ack = net.exchange(chunks[:1])
    assert [m.type for m in ack if m.to == 1] == [MT.SNAP_RESP]
    more = _snaps(net.exchange([m for m in ack if m.to == 1]))
    assert [_c(m).offset for m in more] == [128]


def test_lost_chunk_restarts_the_transfer_from_offset_zero() -> None:
    net = _lagging(chunk=64)
    dropped: list[SnapshotChunk] = []

    def lose_second_chunk_once(m: Message) -> bool:
        c = m.chunk
        if m.type == MT.SNAP and c is not None and c.offset == 64 and not dropped:
            dropped.append(c)
            return False
        return True

    net.msg_filter = lose_second_chunk_once
    net.tick(3)
    assert dropped
    chunks = [m.chunk for m in _snaps(net.trace) if m.chunk is not None]
    transfers = sorted({c.transfer for c in chunks})
    assert len(transfers) == 2
    second = [c for c in chunks if c.transfer == transfers[1]]
    assert second[0].offset == 0 and second[-1].done
    refusals = [m for m in net.trace if m.type == MT.SNAP_RESP and m.reject]
    assert refusals and all(_c(m).transfer == transfers[0] for m in refusals)
    assert net.nodes[3].applied == net.nodes[1].applied


def test_reordered_chunk_restarts_the_transfer_and_installs_nothing() -> None:
    net = _lagging(chunk=64)
    first = _start_transfer(net)
    assert len(first) == 4
    # Chunk 0 arrives, then chunk 2 overtakes chunk 1.
    answers = net.exchange([first[0], first[2]])
    refusal = [m for m in answers if m.type == MT.SNAP_RESP and m.reject]
    assert len(refusal) == 1
    assert net.nodes[3].storage.snapshot().metadata.index == 0  # nothing installed
    # The late chunk 1 is refused too: the follower dropped the attempt.
    late = net.exchange([first[1]])
    assert [m.reject for m in late if m.type == MT.SNAP_RESP] == [True]
    # The leader restarts once, from offset 0, under a new transfer id (the second refusal
    # names the abandoned attempt and is ignored).
    refusals = [m for m in answers + late if m.to == 1 and m.reject]
    assert len(refusals) == 2
    restarted = _snaps(net.exchange(refusals))
    assert _c(restarted[0]).offset == 0
    assert {_c(m).transfer for m in restarted} == {_c(first[0]).transfer + 1}
    net.pump(restarted)
    assert net.nodes[3].applied == net.nodes[1].applied


def test_corrupt_chunk_is_refused() -> None:
    net = _lagging(chunk=64)
    first = _start_transfer(net)
    c = first[1].chunk
    assert c is not None
    bad = Message(
        type=MT.SNAP,
        to=3,
        from_=1,
        term=first[1].term,
        chunk=SnapshotChunk(
            metadata=c.metadata,
            offset=c.offset,
            data=bytes(len(c.data)),  # same length, wrong bytes
            done=c.done,
            checksum=c.checksum,
            transfer=c.transfer,
        ),
    )
    answers = net.exchange([first[0], bad])
    assert [m.reject for m in answers if m.type == MT.SNAP_RESP] == [False, True]
    assert net.nodes[3].storage.snapshot().metadata.index == 0
    net.pump(answers)
    assert net.nodes[3].applied == net.nodes[1].applied  # the restarted transfer got through


def test_straggler_from_an_abandoned_transfer_does_not_disturb_the_current_one() -> None:
    net = _lagging(chunk=64)
    first = _start_transfer(net)
    net.nodes[1].raw.report_snapshot(3, failed=True)
    assert _progress_state(net, 3) == ProgressState.PROBE
    second = _start_transfer(net)
    assert _c(second[0]).transfer > _c(first[0]).transfer
    answers = net.exchange([second[0], first[1]])  # a chunk of the old attempt arrives late
    assert [m.reject for m in answers if m.type == MT.SNAP_RESP] == [False]
    net.pump(second[1:] + [m for m in answers if m.to == 1])
    assert net.nodes[3].applied == net.nodes[1].applied
    transfers = {_c(m).transfer for m in _snaps(net.trace)}
    assert transfers <= {_c(first[0]).transfer, _c(second[0]).transfer}


def test_stalled_transfer_is_restarted_after_an_election_timeout() -> None:
    net = _lagging(chunk=64)
    first = _start_transfer(net)
    # Every chunk of the first attempt is lost; nothing tells the leader.
    del first
    leader = net.nodes[1].raw
    for _ in range(9):
        leader.tick()
        net.nodes[1].drain()  # heartbeats lost too
    assert _progress_state(net, 3) == ProgressState.SNAPSHOT
    leader.tick()  # the tenth tick without progress: give up
    net.nodes[1].drain()
    assert _progress_state(net, 3) == ProgressState.PROBE
    net.tick(2)  # the follower answers a heartbeat: a new transfer gets through
    assert net.nodes[3].applied == net.nodes[1].applied


def test_report_snapshot_failed_aborts_and_waits_for_a_heartbeat() -> None:
    net = _lagging(chunk=64)
    first = _start_transfer(net)
    leader = net.nodes[1].raw
    leader.report_snapshot(3, failed=True)
    st = leader.status().progress[3]
    assert (st.state, st.pending_snapshot) == ("probe", 0)
    # Late acknowledgements of the abandoned attempt change nothing.
    answers = net.exchange(first[:1])
    assert not _snaps(net.exchange([m for m in answers if m.to == 1]))
    assert leader.status().progress[3].state == "probe"
    second = _start_transfer(net)
    assert _c(second[0]).offset == 0


def test_report_snapshot_success_counts_only_once_every_chunk_was_sent() -> None:
    net = _lagging(chunk=64)
    _start_transfer(net)
    leader = net.nodes[1].raw
    leader.report_snapshot(3, failed=False)  # mid-transfer: ignored
    assert leader.status().progress[3].state == "snapshot"
    # A one-chunk image: once sent, a success report moves to probing past it (etcd).
    net = _lagging(chunk=1 << 20)
    _start_transfer(net)
    leader = net.nodes[1].raw
    pending = leader.status().progress[3].pending_snapshot
    leader.report_snapshot(3, failed=False)
    st = leader.status().progress[3]
    assert (st.state, st.next) == ("probe", pending + 1)


def test_image_replaced_mid_transfer_restarts_with_the_newer_image() -> None:
    net = _lagging(chunk=64)
    first = _start_transfer(net)
    old_index = _c(first[0]).metadata.index
    net.propose(1, b"after the first image")
    net.nodes[1].snapshot_and_compact()
    new_meta = net.nodes[1].storage.snapshot().metadata
    assert new_meta.index > old_index
    # The acknowledgements of the first chunks make the leader read on: the image is gone.
    net.pump(first)
    net.tick(2)
    metas = [_c(m).metadata for m in _snaps(net.trace)]
    assert metas[-1] == new_meta
    assert net.nodes[3].storage.snapshot().metadata == new_meta
    assert net.nodes[3].applied == net.nodes[1].applied


class _BytesOnlyStorage:
    """A Storage that serves images only as ``snapshot().data`` (no SnapshotReader)."""

    def __init__(self, inner: MemoryStorage) -> None:
        self.inner = inner

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.inner.initial_state()

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        return self.inner.entries(lo, hi, max_size)

    def term(self, index: int) -> int:
        return self.inner.term(index)

    def first_index(self) -> int:
        return self.inner.first_index()

    def last_index(self) -> int:
        return self.inner.last_index()

    def snapshot(self) -> Snapshot:
        return self.inner.snapshot()


@pytest.mark.parametrize("image", [b"", b"x" * 150])
def test_storage_without_reader_has_its_image_sliced(image: bytes) -> None:
    cs = ConfState(voters=(1, 2))
    inner = MemoryStorage(conf_state=cs)
    inner.append([Entry(term=1, index=i) for i in range(1, 6)])
    inner.set_hard_state(HardState(term=1, commit=5))
    inner.create_snapshot(5, cs, image)
    inner.compact(5)
    leader = RawNode(
        Config(id=1, pre_vote=False, max_snapshot_chunk=64, rng=random.Random(0)),
        _BytesOnlyStorage(inner),
    )
    fstore = MemoryStorage(conf_state=cs)
    follower = RawNode(Config(id=2, rng=random.Random(1)), fstore)
    leader.campaign()
    leader.step(Message(type=MT.VOTE_RESP, to=1, from_=2, term=2))
    nodes = {1: (leader, inner), 2: (follower, fstore)}
    msgs: list[Message] = []
    chunks: list[SnapshotChunk] = []
    for _ in range(30):
        for node, store in nodes.values():
            while node.has_ready():
                rd = node.ready()
                for c in rd.snapshot_chunks:
                    store.stage_snapshot_chunk(c)
                if rd.snapshot is not None:
                    store.apply_snapshot(rd.snapshot)
                if rd.hard_state is not None:
                    store.set_hard_state(rd.hard_state)
                store.append(rd.entries)
                msgs.extend(rd.messages)
                node.advance(rd)
        batch, msgs = msgs, []
        for m in batch:
            if m.type == MT.SNAP and m.chunk is not None:
                chunks.append(m.chunk)
            nodes[m.to][0].step(m)
    assert [len(c.data) for c in chunks] == ([64, 64, 22] if image else [0])
    assert fstore.snapshot() == Snapshot(data=image, metadata=inner.snapshot().metadata)
    assert fstore.last_index() == 6  # the leader's empty entry followed by append


def test_whole_snapshot_in_one_message_is_accepted() -> None:
    # etcd's form: the image in Message.snapshot, no chunk.
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2)))
    node = RawNode(Config(id=2, rng=random.Random(0)), storage)
    meta = SnapshotMetadata(conf_state=ConfState(voters=(1, 2)), index=11, term=11)
    node.step(
        Message(type=MT.SNAP, to=2, from_=1, term=11, snapshot=Snapshot(data=b"img", metadata=meta))
    )
    rd = node.ready()
    assert [c.data for c in rd.snapshot_chunks] == [b"img"]
    assert rd.snapshot is not None and rd.snapshot.metadata == meta
    assert [(m.type, m.index) for m in rd.messages] == [(MT.APP_RESP, 11)]
    r = raft_of(node)
    assert (r.log.last_index(), r.log.last_term(), r.log.committed) == (11, 11, 11)


def test_snapshot_not_needed_is_answered_without_staging() -> None:
    # etcd TestRestoreIgnoreSnapshot: a snapshot at or below our commit index changes nothing;
    # one whose last entry we hold just moves the commit index.
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2)))
    storage.append([Entry(term=1, index=i) for i in (1, 2, 3)])
    storage.set_hard_state(HardState(term=1, commit=1))
    node = RawNode(Config(id=2, rng=random.Random(0)), storage)
    cs = ConfState(voters=(1, 2))
    for index, commit in ((1, 1), (3, 3)):
        chunk = SnapshotChunk(metadata=SnapshotMetadata(conf_state=cs, index=index, term=1))
        node.step(Message(type=MT.SNAP, to=2, from_=1, term=1, chunk=chunk))
        rd = node.ready()
        assert rd.snapshot is None and rd.snapshot_chunks == []
        assert [(m.type, m.index) for m in rd.messages] == [(MT.APP_RESP, commit)]
        node.advance(rd)
    assert raft_of(node).log.last_index() == 3


def test_image_older_than_our_own_compacted_log_is_not_installed() -> None:
    # The follower compacted past index 5 itself: an image at 5 would roll it back.
    cs = ConfState(voters=(1, 2))
    storage = MemoryStorage(conf_state=cs)
    storage.append([Entry(term=1, index=i) for i in range(1, 11)])
    storage.set_hard_state(HardState(term=1, commit=10))
    storage.create_snapshot(8, cs, b"newer image")
    storage.compact(8)
    node = RawNode(Config(id=2, applied=10, rng=random.Random(0)), storage)
    meta = SnapshotMetadata(conf_state=cs, index=5, term=1)
    chunk = SnapshotChunk(metadata=meta, data=b"older image", checksum=zlib.crc32(b"older image"))
    node.step(Message(type=MT.SNAP, to=2, from_=1, term=1, chunk=chunk))
    rd = node.ready()
    assert rd.snapshot is None and rd.snapshot_chunks == []
    assert [(m.type, m.index) for m in rd.messages] == [(MT.APP_RESP, 10)]


def test_snapshot_of_a_configuration_without_us_is_ignored() -> None:
    node = RawNode(Config(id=2, rng=random.Random(0)), MemoryStorage(conf_state=ConfState((1, 2))))
    meta = SnapshotMetadata(conf_state=ConfState(voters=(1, 3)), index=5, term=1)
    node.step(Message(type=MT.SNAP, to=2, from_=1, term=1, chunk=SnapshotChunk(metadata=meta)))
    rd = node.ready()
    assert rd.snapshot is None and rd.messages == []


def test_pending_snapshot_pauses_appends_to_that_follower() -> None:
    # etcd TestPendingSnapshotPauseReplication.
    net = _lagging(chunk=64)
    _start_transfer(net)
    net.nodes[1].raw.propose(b"more")
    sent = net.nodes[1].drain()
    assert not [m for m in sent if m.to == 3 and m.type == MT.APP]
    assert [m for m in sent if m.to == 2 and m.type == MT.APP]


def test_append_response_past_pending_snapshot_ends_the_transfer() -> None:
    # etcd TestSnapshotAbort: the follower caught up some other way; replicate from there.
    net = _lagging(chunk=64)
    _start_transfer(net)
    leader = net.nodes[1]
    last = leader.raft.log.last_index()
    leader.raw.step(Message(type=MT.APP_RESP, to=1, from_=3, term=leader.term, index=last))
    st = leader.raw.status().progress[3]
    assert (st.state, st.match, st.pending_snapshot) == ("replicate", last, 0)


# -- log compaction interplay ----------------------------------------------------------------


def test_compacted_leader_sends_snapshot_then_entries_to_lagging_follower() -> None:
    net = _lagging(chunk=64)
    net.tick(3)
    snap_index = net.nodes[1].storage.snapshot().metadata.index
    assert net.nodes[3].storage.snapshot().metadata.index == snap_index
    net.propose(1, b"after")
    appends = [m for m in net.trace if m.type == MT.APP and m.to == 3 and m.entries]
    assert appends and appends[-1].entries[-1].data == b"after"
    assert min(m.index for m in appends if m.index >= snap_index) == snap_index
    assert net.nodes[3].applied == net.nodes[1].applied
    assert log_terms(net.nodes[3].raw) == log_terms(net.nodes[1].raw)


def test_slow_follower_restores_and_commits_with_the_rest() -> None:
    # etcd TestSlowNodeRestore: after the snapshot, the follower's commit index keeps up.
    net = _lagging(chunk=64)
    net.tick(3)
    for i in range(3):
        net.propose(1, b"later-%d" % i)
    assert net.nodes[3].commit == net.nodes[1].commit
    assert net.nodes[3].applied[-3:] == [b"later-0", b"later-1", b"later-2"]


def test_new_member_with_empty_log_catches_up_by_snapshot_then_entries() -> None:
    net = Network([1, 2, 3], seed=22, options={"max_snapshot_chunk": 50})
    net.elect(1)
    for i in range(15):
        net.propose(1, b"before-%02d" % i)
    net.nodes[1].raw.propose_conf_change(ConfChange(type=ConfChangeType.ADD_NODE, node_id=4))
    net.stabilize()
    # The image is taken after the conf change is applied, so it includes the new member.
    net.nodes[1].snapshot_and_compact()
    net.add_node(4, ConfState())  # a fresh member: empty log, knows nothing yet
    net.tick(3)
    to4 = [m for m in net.trace if m.to == 4]
    first_snap = next(i for i, m in enumerate(to4) if m.type == MT.SNAP)
    assert all(m.type != MT.APP or not m.entries for m in to4[:first_snap])
    assert net.nodes[4].storage.conf_state == ConfState(voters=(1, 2, 3, 4))
    net.propose(1, b"after-join")
    assert net.nodes[4].applied == net.nodes[1].applied
    assert net.nodes[4].applied[-1] == b"after-join"
    later = [m for m in net.trace[len(to4) :] if m.to == 4 and m.type == MT.APP and m.entries]
    assert later  # the newest entry came by append, not by another snapshot
    # It counts for the quorum now: 1, 2 and 4 commit without 3.
    net.down.add(3)
    net.propose(1, b"quorum-with-4")
    assert net.nodes[1].applied[-1] == b"quorum-with-4"


def test_leader_waits_for_an_image_that_includes_the_new_member() -> None:
    net = Network([1, 2, 3], seed=23, options={"max_snapshot_chunk": 50})
    net.elect(1)
    for i in range(5):
        net.propose(1, b"e%d" % i)
    net.nodes[1].snapshot_and_compact()  # before the new member was added
    net.nodes[1].raw.propose_conf_change(
        ConfChange(type=ConfChangeType.ADD_LEARNER_NODE, node_id=4)
    )
    net.add_node(4, ConfState())
    net.stabilize()
    net.propose(1, b"e5")
    net.nodes[1].snapshot_and_compact()  # compacts the conf change away too
    net.tick(2)
    # Node 4 got the image that includes it (the one before was never sent to it).
    snaps = _snaps(net.trace, to=4)
    assert snaps and all(4 in _c(m).metadata.conf_state.learners for m in snaps)
    assert net.nodes[4].applied == net.nodes[1].applied


def test_leader_with_an_older_image_sends_nothing_to_the_new_member() -> None:
    net = Network([1, 2, 3], seed=24, options={"max_snapshot_chunk": 50})
    net.elect(1)
    net.propose(1, b"e0")
    net.nodes[1].raw.propose_conf_change(
        ConfChange(type=ConfChangeType.ADD_LEARNER_NODE, node_id=4)
    )
    net.stabilize()
    # Compact past the conf change, but keep the image from before it (a storage lagging
    # behind): the new member would refuse it, so the leader does not send it.
    storage = net.nodes[1].storage
    old_image = storage.snapshot()
    net.nodes[1].snapshot_and_compact()
    storage._snapshot = Snapshot(
        data=old_image.data,
        metadata=SnapshotMetadata(
            conf_state=ConfState(voters=(1, 2, 3)),
            index=storage.snapshot().metadata.index,
            term=storage.snapshot().metadata.term,
        ),
    )
    net.add_node(4, ConfState())
    net.tick(3)
    assert not _snaps(net.trace, to=4)
    assert net.nodes[1].raw.status().progress[4].state == "probe"


def test_learner_catches_up_by_snapshot() -> None:
    net = Network([1, 2], learners=(3,), seed=25, options={"max_snapshot_chunk": 40})
    net.elect(1)
    net.down.add(3)
    for i in range(10):
        net.propose(1, b"l%d" % i)
    net.nodes[1].snapshot_and_compact()
    net.down.discard(3)
    net.tick(3)
    assert _snaps(net.trace)
    assert net.nodes[3].applied == net.nodes[1].applied
    assert net.nodes[3].state == StateType.FOLLOWER


def test_follower_not_recently_active_is_not_sent_a_snapshot() -> None:
    # etcd TestIgnoreProvidingSnap: do not stream an image to a member that may be down.
    net = _lagging(chunk=64)
    raft_of(net.nodes[1].raw).trk.progress[3].recent_active = False
    net.nodes[1].raw.step(
        Message(type=MT.APP_RESP, to=1, from_=3, term=net.nodes[1].term, index=0, reject=True)
    )
    assert not _snaps(net.nodes[1].drain())


def test_log_compacted_again_during_the_transfer_leads_to_another() -> None:
    net = _lagging(chunk=64)
    first = _start_transfer(net)
    # Deliver the whole first image but hold back the follower's final answer.
    answers = net.exchange(first)
    held: list[Message] = []
    for _ in range(10):
        chunks = _snaps(net.exchange([m for m in answers if m.to == 1]))
        answers = net.exchange(chunks)
        held = [m for m in answers if m.type == MT.APP_RESP and m.from_ == 3]
        if held:
            break
    assert held and net.nodes[3].applied_index == _c(first[0]).metadata.index
    # Meanwhile the leader moved on and compacted past that image.
    net.down.add(3)
    net.propose(1, b"x")
    net.propose(1, b"y")
    net.nodes[1].snapshot_and_compact()
    net.down.discard(3)
    again = _snaps(net.exchange(held))
    assert again and _c(again[0]).offset == 0
    assert _c(again[0]).metadata == net.nodes[1].storage.snapshot().metadata
    net.pump(again)
    assert net.nodes[3].applied == net.nodes[1].applied
