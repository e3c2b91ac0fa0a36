"""The Raft log, hard state and membership, in the member's lmdb environment.

Implements `server.raft.Storage` for the core's reads; the driver writes through the mutators,
inside the same write transaction that applies committed entries, so a `Ready` becomes durable
with one fsync.
"""

from __future__ import annotations

import struct

import lmdb

from server.raft import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata
from server.raft.errors import LogCompacted, LogUnavailable
from server.raft.storage import limit_size
from server.storage.backend import Backend

_IDX = struct.Struct(">Q")
_HDR = struct.Struct(">QB")  # term, entry type
_HS = struct.Struct(">QQQ")
_SNAP = struct.Struct(">QQ")  # index, term of the last entry compacted away

K_HARDSTATE = b"raft/hardstate"
K_CONFSTATE = b"raft/confstate"
K_SNAPSHOT = b"raft/snapshot"
K_APPLIED = b"raft/applied"


def _encode_conf(cs: ConfState) -> bytes:
    return struct.pack(
        f">II{len(cs.voters)}Q{len(cs.learners)}Q",
        len(cs.voters),
        len(cs.learners),
        *cs.voters,
        *cs.learners,
    )


def _decode_conf(raw: bytes) -> ConfState:
    nv, nl = struct.unpack_from(">II", raw)
    ids = struct.unpack_from(f">{nv + nl}Q", raw, 8)
    return ConfState(voters=tuple(ids[:nv]), learners=tuple(ids[nv:]))


class RaftLog:
    """`server.raft.Storage` on lmdb, with the driver's write operations."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        with backend.read() as txn:
            raw = txn.get(K_SNAPSHOT, db=backend.meta)
            self._snap_index, self._snap_term = _SNAP.unpack(raw) if raw else (0, 0)
            cur = txn.cursor(db=backend.raftlog)
            self._last = _IDX.unpack(cur.key())[0] if cur.last() else self._snap_index
            raw = txn.get(K_HARDSTATE, db=backend.meta)
            self._hs = HardState(*_HS.unpack(raw)) if raw else HardState()
            raw = txn.get(K_CONFSTATE, db=backend.meta)
            self._cs = _decode_conf(raw) if raw else ConfState()
            raw = txn.get(K_APPLIED, db=backend.meta)
            self.applied = _IDX.unpack(raw)[0] if raw else 0

    # ---- server.raft.Storage ----

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hs, self._cs

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        if lo <= self._snap_index:
            raise LogCompacted(f"index {lo} is compacted")
        if hi > self._last + 1:
            raise LogUnavailable(f"entries up to {hi - 1} requested, last is {self._last}")
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
                e = _decode_entry(idx, v)
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
        meta = SnapshotMetadata(conf_state=self._cs, index=self._snap_index, term=self._snap_term)
        return Snapshot(metadata=meta)

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

    def set_hard_state(self, txn: lmdb.Transaction, hs: HardState) -> None:
        txn.put(K_HARDSTATE, _HS.pack(hs.term, hs.vote, hs.commit), db=self._b.meta)
        self._hs = hs

    def set_conf_state(self, txn: lmdb.Transaction, cs: ConfState) -> None:
        txn.put(K_CONFSTATE, _encode_conf(cs), db=self._b.meta)
        self._cs = cs

    def set_applied(self, txn: lmdb.Transaction, index: int) -> None:
        txn.put(K_APPLIED, _IDX.pack(index), db=self._b.meta)
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
        txn.put(K_SNAPSHOT, _SNAP.pack(index, term), db=self._b.meta)
        self._snap_index, self._snap_term = index, term
        self._last = max(self._last, index)


def _decode_entry(index: int, raw: bytes) -> Entry:
    term, typ = _HDR.unpack_from(raw)
    return Entry(term=term, index=index, type=EntryType(typ), data=raw[_HDR.size :])
