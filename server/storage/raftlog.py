"""The Raft log, hard state and membership, in the member's lmdb environment.

Implements `server.raft.Storage` (and `SnapshotReader`) for the core's reads; the driver writes
through the mutators, inside the same write transaction that applies committed entries, so a
`Ready` becomes durable with one fsync. Snapshot images of the environment (built for followers
that fell behind the compacted log, and received from the leader) are `server.storage.snapshot`'s;
`RaftLog` decides when one is needed and hands the driver `stage_chunk` and `install`.
"""

from __future__ import annotations

import os

import lmdb

from server.raft import ConfState, Entry, HardState, Snapshot, SnapshotChunk, SnapshotMetadata
from server.raft.errors import LogCompacted, LogUnavailable, SnapshotTemporarilyUnavailable
from server.raft.storage import limit_size
from server.storage import raftmeta
from server.storage.backend import Backend
from server.storage.raftmeta import ENTRY_HDR as _HDR
from server.storage.raftmeta import IDX as _IDX
from server.storage.raftmeta import (
    K_APPLIED,
    K_CONFSTATE,
    K_HARDSTATE,
    K_SNAPSHOT,
    decode_entry,
)
from server.storage.snapshot import ImageReceiver, ImageStore, snap_dir_of

__all__ = ["K_APPLIED", "K_CONFSTATE", "K_HARDSTATE", "K_SNAPSHOT", "RaftLog"]

# Entries kept in memory after they are persisted: the leader sends each one to every follower
# and applies it right after appending it, and a follower applies what it just appended, so
# almost every read of the log is of its newest entries; serving those from memory saves a read
# transaction and a decode per read. Older entries (a follower catching up) come from lmdb.
TAIL_ENTRIES = 4096


class RaftLog:
    """`server.raft.Storage` on lmdb, with the driver's write operations and snapshot images.

    Threads: the core calls the Storage methods from the event loop, the driver calls the
    mutators from its writer thread (never both at once), and an image may be building in a
    thread of its own meanwhile.
    """

    def __init__(self, backend: Backend, snap_dir: str | os.PathLike[str] | None = None) -> None:
        """`snap_dir` holds the snapshot images; by default `snap/` beside the database
        directory (the data dir's `member/snap`)."""
        self._b = backend
        directory = snap_dir if snap_dir is not None else snap_dir_of(backend)
        self.images = ImageStore(backend, directory)
        self._receiver = ImageReceiver(directory)
        self._tail: list[Entry] = []
        self._tail_first = 0  # index of _tail[0]
        self.reload()

    def reload(self) -> None:
        """Read the cached state again (done by `install`; after anything else that replaced
        the database's contents)."""
        b = self._b
        with b.read() as txn:
            self._snap_index, self._snap_term = raftmeta.compaction_point(txn, b.meta)
            self._last = raftmeta.last_index(txn, b.meta, b.raftlog)
            self._hs = raftmeta.hard_state(txn, b.meta)
            self._cs = raftmeta.conf_state(txn, b.meta)
            self.applied = raftmeta.applied(txn, b.meta)
        self._tail = []
        self._tail_first = self._last + 1

    # ---- server.raft.Storage ----

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hs, self._cs

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        if lo <= self._snap_index:
            raise LogCompacted(f"index {lo} is compacted")
        if hi > self._last + 1:
            raise LogUnavailable(f"entries up to {hi - 1} requested, last is {self._last}")
        if lo >= self._tail_first:
            return limit_size(self._tail[lo - self._tail_first : hi - self._tail_first], max_size)
        out: list[Entry] = []
        size = 0
        with self._b.read() as txn:
            cur = txn.cursor(db=self._b.raftlog)
            if not cur.set_key(_IDX.pack(lo)):
                raise LogUnavailable(f"index {lo} missing")
            for k, v in cur.iternext():
                idx = _IDX.unpack(k)[0]
                if idx >= hi:
                    break
                e = decode_entry(idx, v)
                size += len(e.data)
                if out and max_size is not None and size > max_size:
                    break
                out.append(e)
        return limit_size(out, max_size)

    def term(self, index: int) -> int:
        if index == self._snap_index:
            return self._snap_term
        if index < self._snap_index:
            raise LogCompacted(f"index {index} is compacted")
        if index > self._last:
            raise LogUnavailable(f"index {index} is past the last entry")
        if index >= self._tail_first:
            return self._tail[index - self._tail_first].term
        with self._b.read() as txn:
            raw = txn.get(_IDX.pack(index), db=self._b.raftlog)
        if raw is None:
            raise LogUnavailable(f"index {index} missing")
        return _HDR.unpack_from(raw)[0]

    def first_index(self) -> int:
        return self._snap_index + 1

    def last_index(self) -> int:
        return self._last

    def snapshot(self) -> Snapshot:
        """Metadata of the image followers get (no data: they read it with `read_snapshot`).

        The image must cover the compacted log, and its membership must be the current one (a
        member added since would refuse it); otherwise a new image is started in a thread and
        `SnapshotTemporarilyUnavailable` raised: the core asks again later.
        """
        img = self.images.image
        if img is not None:
            meta = img.metadata
            if meta.index >= self._snap_index and (
                meta.conf_state == self._cs or meta.index >= self.applied
            ):
                return Snapshot(metadata=meta)
        elif self._snap_index == 0:
            # Nothing compacted: no follower needs an image.
            return Snapshot(metadata=SnapshotMetadata(conf_state=self._cs))
        self.images.build_async()
        raise SnapshotTemporarilyUnavailable("a snapshot image is being built")

    # ---- server.raft.SnapshotReader ----

    def read_snapshot(
        self, metadata: SnapshotMetadata, offset: int, max_size: int
    ) -> tuple[bytes, bool]:
        return self.images.read(metadata, offset, max_size)

    # ---- writes, inside the driver's transaction ----

    def append(self, txn: lmdb.Transaction, entries: list[Entry]) -> None:
        """Persist entries, replacing any existing entries from the first one's index on."""
        if not entries:
            return
        db = self._b.raftlog
        first = entries[0].index
        if first <= self._last:
            # A new leader overwrote our uncommitted tail: drop it first.
            cur = txn.cursor(db=db)
            if cur.set_range(_IDX.pack(first)):
                while cur.delete():
                    pass
        put = txn.put
        hdr = _HDR.pack
        pack = _IDX.pack
        for e in entries:
            put(pack(e.index), hdr(e.term, e.type) + e.data, db=db)
        self._last = entries[-1].index
        self._cache(entries)

    def _cache(self, entries: list[Entry]) -> None:
        tail, first = self._tail, entries[0].index
        if first < self._tail_first or first > self._tail_first + len(tail):
            # Overwrites what came before the cached entries, or leaves a gap after them.
            tail.clear()
            self._tail_first = first
        else:
            del tail[first - self._tail_first :]
        tail.extend(entries)
        if len(tail) > 2 * TAIL_ENTRIES:
            drop = len(tail) - TAIL_ENTRIES
            del tail[:drop]
            self._tail_first += drop

    def set_hard_state(self, txn: lmdb.Transaction, hs: HardState) -> None:
        raftmeta.put_hard_state(txn, self._b.meta, hs)
        self._hs = hs

    def set_conf_state(self, txn: lmdb.Transaction, cs: ConfState) -> None:
        raftmeta.put_conf_state(txn, self._b.meta, cs)
        self._cs = cs

    def set_applied(self, txn: lmdb.Transaction, index: int) -> None:
        raftmeta.put_applied(txn, self._b.meta, index)
        self.applied = index

    def compact(self, txn: lmdb.Transaction, index: int) -> None:
        """Drop entries up to and including `index` (they are applied and in the store)."""
        if index <= self._snap_index:
            return
        db = self._b.raftlog
        # Read inside the writing transaction: the entry may have been appended in it.
        raw = txn.get(_IDX.pack(index), db=db)
        if raw is None:
            raise LogUnavailable(f"cannot compact to {index}: no such entry")
        term = _HDR.unpack_from(raw)[0]
        cur = txn.cursor(db=db)
        if cur.first():
            while (k := cur.key()) and _IDX.unpack(k)[0] <= index:
                cur.delete()
        raftmeta.put_compaction_point(txn, self._b.meta, index, term)
        self._snap_index, self._snap_term = index, term
        self._last = max(self._last, index)
        if index >= self._tail_first:
            del self._tail[: index + 1 - self._tail_first]
            self._tail_first = index + 1

    # ---- snapshots received from the leader ----

    def stage_chunk(self, chunk: SnapshotChunk) -> None:
        """Stage one chunk of `Ready.snapshot_chunks` (in order; offset 0 starts over)."""
        self._receiver.stage(chunk)

    def install(self, metadata: SnapshotMetadata, *, hard_state: HardState | None = None) -> None:
        """Replace the database by the image staged for `metadata` (`Ready.snapshot`).

        Keeps this member's identity and hard state (`hard_state` if given: pass the Ready's,
        so it is in the same commit; the commit index is raised to the image's index); the log
        becomes empty, compacted up to `metadata.index`, which is also the applied index.
        Crash-safe at every step (see `server.storage.snapshot`).

        The caller guarantees what `Backend.defragment` needs: no transaction open on the
        environment in this process, and every other process's handles closed (workers
        paused). A running image build is waited for. This log's cached fields are reloaded
        here; what else caches the store must be reloaded by the caller (see "Around install"
        in `server.storage.snapshot`).
        """
        self.images.wait()
        self._receiver.install(self._b, metadata, hard_state=hard_state)
        self.reload()

    def discard_staged(self) -> None:
        """Drop a partly received image (e.g. when this member stops following)."""
        self._receiver.discard()

    def close(self) -> None:
        """Wait for a running image build; close the served image and any staged one."""
        self.images.close()
        self._receiver.discard()
