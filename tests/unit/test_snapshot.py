"""Raft snapshot images of the lmdb state machine: built, served in chunks, staged, installed.

Everything runs on real lmdb environments in tmp dirs: a leader-side member with keys, history
and leases serves its image piecewise into a follower's staging area, the follower installs it,
and both then hold the same state machine while the follower keeps its own identity and vote.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from server.apply import Applier, HeaderInfo
from server.raft import (
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RawNode,
    SnapshotChunk,
    SnapshotMetadata,
    SnapshotTemporarilyUnavailable,
)
from server.raft.errors import InvariantViolation
from server.state import ENTRY_LEASE_GRANT
from server.storage import raftmeta
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore
from server.storage.raftlog import RaftLog
from server.storage.snapshot import (
    K_CLUSTER_ID,
    K_MEMBER_ID,
    ImageError,
    image_name,
)
from server.wire import field_message, field_varint
from wardpb.etcdserverpb import rpc_pb2

REPO = Path(__file__).resolve().parents[2]
_U64 = struct.Struct(">Q")
CLUSTER = 0xC1
MiB = 1 << 20


class Member:
    """One member's storage as the driver holds it: backend, Raft log, keyspace, apply path."""

    def __init__(self, root: Path, member_id: int, *, sync: bool = False) -> None:
        self.root = root
        self.member_id = member_id
        self.sync = sync
        self.open()
        with self.backend.write() as txn:
            txn.put(K_MEMBER_ID, _U64.pack(member_id), db=self.backend.meta, overwrite=False)
            txn.put(K_CLUSTER_ID, _U64.pack(CLUSTER), db=self.backend.meta, overwrite=False)

    def open(self) -> None:
        opts = BackendOptions(map_size=256 * MiB, sync=self.sync)
        self.backend = Backend(self.root / "db", opts)
        self.log = RaftLog(self.backend)
        self.kv = KVStore(self.backend)
        self.applier = Applier(self.backend, self.kv, HeaderInfo(CLUSTER, self.member_id))

    def close(self) -> None:
        self.log.close()
        self.backend.close()

    @property
    def snap_dir(self) -> Path:
        return self.root / "snap"

    def kv_state(self) -> tuple[int, int, list[tuple[int, int]]]:
        """(hash of every version, current revision, leases): equal on members in sync."""
        with self.backend.read() as txn:
            rev = self.kv.current_revision(txn)
            return self.kv.hash_kv(txn, rev), rev, self.applier.leases(txn)

    def stored_id(self) -> int:
        with self.backend.read() as txn:
            return _U64.unpack(txn.get(K_MEMBER_ID, db=self.backend.meta))[0]

    def log_entries(self) -> int:
        with self.backend.read() as txn:
            return txn.stat(self.backend.raftlog)["entries"]


def fill(m: Member, keys: int, *, seed: int = 1) -> None:
    """Keys with history (overwrites, deletes) and leases (granted through the apply path)."""
    rnd = random.Random(seed)
    with m.backend.write() as txn:
        for i in range(1, 21):
            grant = rpc_pb2.LeaseGrantRequest(TTL=60 + i, ID=i).SerializeToString()
            data = field_message(1, field_varint(1, i)) + field_message(ENTRY_LEASE_GRANT, grant)
            assert m.applier.apply(txn, data).error is None
        for batch in range(0, keys, 1000):
            w = m.kv.writer(txn)
            for i in range(batch, min(batch + 1000, keys)):
                lease = i % 20 + 1 if i % 10 == 0 else 0
                w.put(b"key/%06d" % i, rnd.randbytes(60), lease)
            w.finish()
        w = m.kv.writer(txn)
        for i in range(0, keys, 5):
            w.put(b"key/%06d" % i, b"v2-" + rnd.randbytes(40), 0)
        w.finish()
        w = m.kv.writer(txn)
        for i in range(1, keys, 50):
            w.delete_range(b"key/%06d" % i, b"")
        w.finish()


def raft_history(m: Member, last: int, *, term: int, keep: int, voters=(1, 2)) -> None:
    """A log up to `last` (of `term`), applied to the end and compacted but for `keep`."""
    with m.backend.write() as txn:
        m.log.append(txn, [Entry(term=term, index=i, data=b"e%d" % i) for i in range(1, last + 1)])
        m.log.set_hard_state(txn, HardState(term=term, vote=1, commit=last))
        m.log.set_conf_state(txn, ConfState(voters=voters))
        m.log.set_applied(txn, last)
        m.log.compact(txn, last - keep)


def image_of(m: Member) -> SnapshotMetadata:
    """The metadata of `m`'s image, through the path the core takes: unavailable, then built."""
    with pytest.raises(SnapshotTemporarilyUnavailable):
        m.log.snapshot()
    assert m.log.images.wait(60)
    return m.log.snapshot().metadata


def transfer(src: Member, dst: Member, meta: SnapshotMetadata, chunk: int = MiB) -> int:
    """Stream `src`'s image into `dst`'s staging area as the core would; returns the chunks."""
    offset = n = 0
    while True:
        data, last = src.log.read_snapshot(meta, offset, chunk)
        dst.log.stage_chunk(SnapshotChunk(metadata=meta, offset=offset, data=data, done=last))
        offset += len(data)
        n += 1
        if last:
            return n


@pytest.fixture
def leader(tmp_path: Path) -> Member:
    m = Member(tmp_path / "leader", 1)
    fill(m, 10_000)
    raft_history(m, 120, term=2, keep=10)
    return m


@pytest.fixture
def follower(tmp_path: Path) -> Member:
    """Member 2: a little state of its own, its own vote, a log that stops at 4."""
    m = Member(tmp_path / "follower", 2)
    fill(m, 30, seed=2)
    with m.backend.write() as txn:
        m.log.append(txn, [Entry(term=1, index=i) for i in range(1, 5)])
        m.log.set_hard_state(txn, HardState(term=3, vote=2, commit=4))
        m.log.set_conf_state(txn, ConfState(voters=(1, 2)))
        m.log.set_applied(txn, 4)
    return m


def assert_installed(dst: Member, src_state: object, meta: SnapshotMetadata, hs: HardState) -> None:
    assert dst.kv_state() == src_state
    log = dst.log
    assert (log.first_index(), log.last_index()) == (meta.index + 1, meta.index)
    assert log.term(meta.index) == meta.term
    assert log.applied == meta.index
    assert dst.log_entries() == 0
    assert log.initial_state() == (
        HardState(term=hs.term, vote=hs.vote, commit=max(hs.commit, meta.index)),
        meta.conf_state,
    )
    assert dst.stored_id() == dst.member_id


# ---- the whole path ----


def test_image_streamed_in_chunks_installs_the_leaders_state_and_keeps_the_members_own(
    leader: Member, follower: Member
) -> None:
    meta = image_of(leader)
    assert (meta.index, meta.term, meta.conf_state) == (120, 2, ConfState(voters=(1, 2)))
    image = leader.log.images.image
    assert image is not None and image.path.name == image_name(meta)
    assert transfer(leader, follower, meta) == -(-image.size // MiB)

    follower.log.install(meta)

    assert_installed(follower, leader.kv_state(), meta, HardState(term=3, vote=2, commit=4))
    assert not any(follower.snap_dir.iterdir())  # the staging area is gone
    # Durable as it is: a restarted member reads the same back.
    follower.close()
    follower.open()
    assert_installed(follower, leader.kv_state(), meta, HardState(term=3, vote=2, commit=4))
    # And it goes on from there: entries after the image, applied on top of it.
    with follower.backend.write() as txn:
        follower.log.append(txn, [Entry(term=2, index=121)])
        w = follower.kv.writer(txn)
        w.put(b"after", b"install", 0)
        w.finish()
        follower.log.set_applied(txn, 121)
    assert follower.log.last_index() == 121 and follower.log.entries(121, 122)[0].term == 2
    assert follower.kv_state()[1] == leader.kv_state()[1] + 1


def test_the_image_carries_neither_the_leaders_identity_nor_its_log(leader: Member) -> None:
    meta = image_of(leader)
    img = leader.log.images.image
    assert img is not None
    probe = Backend(img.path.parent / "probe", BackendOptions(map_size=256 * MiB, sync=False))
    probe.close()
    shutil.copyfile(img.path, probe.path / "data.mdb")
    probe.reopen()
    with probe.read() as txn:
        assert txn.get(K_MEMBER_ID, db=probe.meta) is None
        assert txn.get(raftmeta.K_HARDSTATE, db=probe.meta) is None
        assert txn.stat(probe.raftlog)["entries"] == 0
        assert raftmeta.applied_metadata(txn, probe.meta, probe.raftlog) == meta
    probe.close()


def test_the_given_hard_state_is_kept_with_the_commit_raised_to_the_image(
    leader: Member, follower: Member
) -> None:
    meta = image_of(leader)
    transfer(leader, follower, meta, chunk=256 << 10)
    follower.log.install(meta, hard_state=HardState(term=4, vote=1, commit=4))
    assert_installed(follower, leader.kv_state(), meta, HardState(term=4, vote=1, commit=4))


# ---- leader side ----


def test_no_image_is_needed_before_the_log_is_compacted(tmp_path: Path) -> None:
    m = Member(tmp_path / "m", 1)
    assert m.log.snapshot().metadata.index == 0
    assert not m.log.images.building and not m.snap_dir.exists()


def test_a_new_image_is_built_once_the_log_is_compacted_past_the_old_one(leader: Member) -> None:
    first = image_of(leader)
    assert leader.log.snapshot().metadata == first  # still covers the compacted log
    with leader.backend.write() as txn:
        leader.log.append(txn, [Entry(term=3, index=i) for i in range(121, 201)])
        leader.log.set_applied(txn, 200)
        leader.log.compact(txn, 150)
    second = image_of(leader)
    assert (second.index, second.term) == (200, 3)
    assert [p.name for p in leader.snap_dir.iterdir()] == [image_name(second)]


def test_a_membership_change_makes_a_new_image(leader: Member) -> None:
    image_of(leader)
    with leader.backend.write() as txn:
        leader.log.append(txn, [Entry(term=2, index=121, type=EntryType.CONF_CHANGE)])
        leader.log.set_conf_state(txn, ConfState(voters=(1, 2, 3)))
        leader.log.set_applied(txn, 121)
    meta = image_of(leader)
    assert meta.index == 121 and meta.conf_state.voters == (1, 2, 3)


def test_an_image_replaced_mid_transfer_is_unavailable_and_the_new_one_is_served(
    leader: Member, follower: Member
) -> None:
    old = image_of(leader)
    data, last = leader.log.read_snapshot(old, 0, 64 << 10)
    assert data and not last
    with leader.backend.write() as txn:
        leader.log.append(txn, [Entry(term=2, index=i) for i in range(121, 131)])
        leader.log.set_applied(txn, 130)
        leader.log.compact(txn, 125)
    new = image_of(leader)
    with pytest.raises(SnapshotTemporarilyUnavailable):
        leader.log.read_snapshot(old, len(data), 64 << 10)
    assert not (leader.snap_dir / image_name(old)).exists()
    transfer(leader, follower, new, chunk=64 << 10)
    follower.log.install(new)
    assert follower.kv_state() == leader.kv_state()


def test_a_restart_serves_the_newest_image_and_deletes_leftovers(leader: Member) -> None:
    meta = image_of(leader)
    snap = leader.snap_dir
    stale = SnapshotMetadata(conf_state=meta.conf_state, index=3, term=1)
    img = leader.log.images.image
    assert img is not None
    shutil.copyfile(img.path, snap / image_name(stale))
    (snap / f"{image_name(meta)}.tmp").write_bytes(b"half an image")
    (snap / "build.tmp").mkdir()
    (snap / "recv.tmp").mkdir()
    (snap / "recv.tmp" / "data.mdb").write_bytes(b"half a transfer")
    leader.close()
    leader.open()
    assert [p.name for p in snap.iterdir()] == [image_name(meta)]
    assert leader.log.snapshot().metadata == meta
    assert leader.log.read_snapshot(meta, 0, 16)[0] == img.path.read_bytes()[:16]


def test_an_unreadable_newest_image_is_dropped_at_start(leader: Member) -> None:
    meta = image_of(leader)
    leader.close()
    (leader.snap_dir / image_name(meta)).write_bytes(b"\0" * 8192)
    leader.open()
    assert leader.log.images.image is None and not any(leader.snap_dir.iterdir())


def test_an_image_is_consistent_while_a_writer_commits_in_another_thread(
    leader: Member, follower: Member
) -> None:
    """Every commit of the writer applies one entry and one revision together; whatever commit
    the image was taken at, its applied index and its revision must belong together."""
    b, log, kv = leader.backend, leader.log, leader.kv
    with b.read() as txn:
        base_rev = kv.current_revision(txn)
    base_index = log.applied
    stop = threading.Event()
    wrote = [0]

    def writer() -> None:
        i = base_index
        while not stop.is_set():
            i += 1
            with b.write() as txn:
                log.append(txn, [Entry(term=2, index=i)])
                w = kv.writer(txn)
                for k in range(50):
                    w.put(b"hot/%03d" % k, b"%d" % i, 0)
                w.finish()
                log.set_applied(txn, i)
                log.compact(txn, i - 5)
            wrote[0] += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        while wrote[0] < 20:
            time.sleep(0.01)
        with pytest.raises(SnapshotTemporarilyUnavailable):
            log.snapshot()
        assert log.images.wait(60)
        before = wrote[0]
        while wrote[0] < before + 20:  # the writer went on meanwhile, unhindered
            time.sleep(0.01)
    finally:
        stop.set()
        t.join()
    img = log.images.image
    assert img is not None
    meta = img.metadata
    transfer(leader, follower, meta)
    follower.log.install(meta)
    state = follower.kv_state()
    assert state[1] - base_rev == meta.index - base_index
    with b.read() as txn:
        assert state[0] == kv.hash_kv(txn, state[1])


def test_closing_the_backend_waits_for_a_build(leader: Member) -> None:
    b = leader.backend
    released = threading.Event()
    closed = threading.Event()

    def hold() -> None:
        with b.hold() as env:
            released.wait(10)
            env.stat()  # still open: close waited

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.05)
    closer = threading.Thread(target=lambda: (b.close(), closed.set()))
    closer.start()
    assert not closed.wait(0.2)
    released.set()
    t.join()
    closer.join()
    assert closed.is_set()


# ---- follower side ----


def test_install_refuses_an_image_staged_for_another_snapshot(
    leader: Member, follower: Member
) -> None:
    meta = image_of(leader)
    before = follower.kv_state()
    half = SnapshotChunk(metadata=meta, offset=0, data=b"x" * 10, done=False)
    follower.log.stage_chunk(half)
    with pytest.raises(InvariantViolation):
        follower.log.install(meta)  # incomplete
    with pytest.raises(InvariantViolation):
        follower.log.stage_chunk(SnapshotChunk(metadata=meta, offset=5, data=b"y"))
    lie = SnapshotMetadata(conf_state=meta.conf_state, index=meta.index + 7, term=meta.term)
    transfer_as(leader, follower, meta, lie)
    with pytest.raises(ImageError):
        follower.log.install(lie)
    assert follower.kv_state() == before and follower.log.last_index() == 4
    assert not any(follower.snap_dir.iterdir())  # the refused image is not kept


def transfer_as(src: Member, dst: Member, meta: SnapshotMetadata, claimed: SnapshotMetadata):
    """Stream `meta`'s image into `dst` labelled as the image of `claimed`."""
    offset = 0
    while True:
        data, last = src.log.read_snapshot(meta, offset, MiB)
        dst.log.stage_chunk(SnapshotChunk(metadata=claimed, offset=offset, data=data, done=last))
        offset += len(data)
        if last:
            return


def test_a_transfer_started_over_replaces_what_was_staged(leader: Member, follower: Member) -> None:
    meta = image_of(leader)
    junk = SnapshotChunk(metadata=meta, offset=0, data=os.urandom(3 * MiB), done=False)
    follower.log.stage_chunk(junk)
    transfer(leader, follower, meta)
    follower.log.install(meta)
    assert follower.kv_state() == leader.kv_state()


# ---- crash safety: kill -9 at each step of an install ----

_CHILD = r"""
import os, signal, sys
from pathlib import Path
from server.raft import SnapshotChunk
from server.storage import raftmeta, snapshot
from server.storage.backend import Backend, BackendOptions
from server.storage.raftlog import RaftLog

root, image, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
meta = snapshot._read_image_metadata(image)

def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)

def then_die(fn):
    def wrapped(*a, **k):
        fn(*a, **k)
        die()
    return wrapped

if point == "in-staged-commit":
    raftmeta.reset_log = die
elif point == "before-rename":
    snapshot._rename = die
elif point == "after-rename":
    snapshot._rename = then_die(snapshot._rename)
elif point == "after-dir-fsync":
    snapshot._fsync_dir = then_die(snapshot._fsync_dir)
elif point == "after-reopen":
    Backend.reopen = then_die(Backend.reopen)

backend = Backend(root / "db", BackendOptions(map_size=256 << 20, sync=True))
log = RaftLog(backend)
data = image.read_bytes()
step = 64 << 10
chunks = range(0, len(data), step)
for n, off in enumerate(chunks):
    if point == "staging" and n == len(chunks) // 2:
        die()
    piece = data[off : off + step]
    last = off + step >= len(data)
    log.stage_chunk(SnapshotChunk(metadata=meta, offset=off, data=piece, done=last))
log.install(meta)
"""

CRASH_POINTS = {
    "staging": "old",
    "in-staged-commit": "old",
    "before-rename": "old",
    "after-rename": "new",
    "after-dir-fsync": "new",
    "after-reopen": "new",
    "completed": "new",
}


@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory: pytest.TempPathFactory):
    """A leader's image, and a closed follower to copy for each crash."""
    base = tmp_path_factory.mktemp("crash")
    src = Member(base / "leader", 1)
    fill(src, 3000)
    raft_history(src, 60, term=2, keep=5)
    meta = image_of(src)
    img = src.log.images.image
    assert img is not None
    src_state = src.kv_state()
    src.close()
    dst = Member(base / "follower", 2, sync=True)
    fill(dst, 30, seed=2)
    with dst.backend.write() as txn:
        dst.log.append(txn, [Entry(term=1, index=i) for i in range(1, 5)])
        dst.log.set_hard_state(txn, HardState(term=3, vote=2, commit=4))
        dst.log.set_conf_state(txn, ConfState(voters=(1, 2)))
        dst.log.set_applied(txn, 4)
    old_state = (dst.kv_state(), dst.log.initial_state(), dst.log.last_index())
    dst.close()
    return base, img.path, meta, src_state, old_state


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_a_kill_during_install_leaves_the_old_or_the_new_database(
    crash_setup: tuple, tmp_path: Path, point: str
) -> None:
    base, image, meta, src_state, old_state = crash_setup
    root = tmp_path / "follower"
    shutil.copytree(base / "follower", root)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), str(image), point],
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )
    expected_rc = 0 if point == "completed" else -signal.SIGKILL
    assert child.returncode == expected_rc, child.stderr.decode()

    m = Member(root, 2, sync=True)  # what a restarted member finds
    assert not [p for p in m.snap_dir.iterdir() if p.name.endswith(".tmp")]
    if CRASH_POINTS[point] == "old":
        assert (m.kv_state(), m.log.initial_state(), m.log.last_index()) == old_state
    else:
        assert_installed(m, src_state, meta, HardState(term=3, vote=2, commit=4))
    with m.backend.write() as txn:  # and it takes writes
        w = m.kv.writer(txn)
        w.put(b"after-crash", b"ok", 0)
        w.finish()
    m.close()


# ---- with the Raft core: a leader streams its image to a learner far behind ----


class Node:
    """A member driven as the driver does it, over lmdb: stage, install, persist, apply."""

    def __init__(self, root: Path, node_id: int, conf: ConfState, **options: int) -> None:
        self.m = Member(root, node_id)
        log = self.m.log
        if not log.initial_state()[1].voters:
            with self.m.backend.write() as txn:
                log.set_conf_state(txn, conf)
        cfg = Config(id=node_id, applied=log.applied, rng=random.Random(node_id), **options)
        self.raw = RawNode(cfg, log)
        self.installed: list[SnapshotMetadata] = []
        self.keep = 20  # entries kept behind the applied index when compacting

    def handle(self) -> list[Message]:
        out: list[Message] = []
        m = self.m
        while self.raw.has_ready():
            rd = self.raw.ready()
            for chunk in rd.snapshot_chunks:
                m.log.stage_chunk(chunk)
            if rd.snapshot is not None:
                m.log.install(rd.snapshot.metadata, hard_state=rd.hard_state)
                self.installed.append(rd.snapshot.metadata)
            with m.backend.write() as txn:
                m.log.append(txn, rd.entries)
                if rd.hard_state is not None:
                    m.log.set_hard_state(txn, rd.hard_state)
                last = 0
                for e in rd.committed_entries:
                    last = e.index
                    if e.type == EntryType.NORMAL and e.data:
                        key, value = e.data.split(b"=", 1)
                        w = m.kv.writer(txn)
                        w.put(key, value, 0)
                        w.finish()
                if last:
                    m.log.set_applied(txn, last)
                    if last - m.log.first_index() > 2 * self.keep:
                        m.log.compact(txn, last - self.keep)
            out.extend(rd.messages)
            self.raw.advance(rd)
        return out


def test_raft_core_sends_a_compacted_leaders_image_to_a_learner_in_chunks(tmp_path: Path) -> None:
    conf = ConfState(voters=(1,), learners=(2,))
    chunk = 64 << 10
    leader = Node(tmp_path / "n1", 1, conf, max_snapshot_chunk=chunk)
    learner = Node(tmp_path / "n2", 2, conf, max_snapshot_chunk=chunk)
    nodes = {1: leader, 2: learner}
    leader.raw.campaign()
    rnd = random.Random(5)
    # The learner is cut off while the leader commits and compacts far past it.
    for batch in range(40):
        leader.raw.propose_many(
            [b"k/%05d=%s" % (batch * 100 + i, rnd.randbytes(80).hex().encode()) for i in range(100)]
        )
        leader.handle()
    assert leader.m.log.first_index() > 3000

    snaps: list[Message] = []
    in_flight: list[Message] = []
    for _ in range(2000):
        leader.raw.tick()
        in_flight += leader.handle() + learner.handle()
        while in_flight:
            msgs, in_flight = in_flight, []
            for msg in msgs:
                if msg.type == MessageType.SNAP:
                    snaps.append(msg)
                nodes[msg.to].raw.step(msg)
            in_flight += leader.handle() + learner.handle()
        if learner.m.log.applied == leader.m.log.applied:
            break
        leader.m.log.images.wait(10)  # an image build started by the core; then go on
    else:
        raise AssertionError("the learner did not catch up")

    assert len(learner.installed) == 1
    meta = learner.installed[0]
    img = leader.m.log.images.image
    assert img is not None and img.metadata == meta and img.size > 4 * chunk
    assert len(snaps) >= -(-img.size // chunk)  # the image went piecewise
    assert all(len(m.chunk.data) <= chunk for m in snaps if m.chunk)
    assert learner.m.kv_state() == leader.m.kv_state()
    assert learner.m.stored_id() == 2

    # Replication goes on past the image.
    leader.raw.propose(b"after=image")
    for _ in range(10):
        leader.raw.tick()
        msgs = leader.handle() + learner.handle()
        while msgs:
            for msg in msgs:
                nodes[msg.to].raw.step(msg)
            msgs = leader.handle() + learner.handle()
    assert learner.m.log.applied == leader.m.log.applied
    assert learner.m.kv_state() == leader.m.kv_state()
