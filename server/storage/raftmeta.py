"""Where a member's Raft state lives in lmdb, and how it is encoded.

`raftlog` maps an 8-byte big-endian index to the entry's term, type and data. `meta` holds the
hard state, the membership as of the applied index, the applied index and the compaction point
(index and term of the last entry compacted away). `RaftLog` reads and writes through these;
snapshot images (`server/storage/snapshot.py`) describe themselves and reset the log with them.

The functions take the database handles rather than a `Backend`: a snapshot image is opened as
an environment of its own.
"""

from __future__ import annotations

import struct
from typing import Any

import lmdb

from server.raft import ConfState, Entry, EntryType, HardState, SnapshotMetadata

IDX = struct.Struct(">Q")
ENTRY_HDR = struct.Struct(">QB")  # term, entry type; the data follows
_HS = struct.Struct(">QQQ")
_SNAP = struct.Struct(">QQ")  # index, term of the last entry compacted away

K_HARDSTATE = b"raft/hardstate"
K_CONFSTATE = b"raft/confstate"
K_SNAPSHOT = b"raft/snapshot"
K_APPLIED = b"raft/applied"

# py-lmdb has no public type for a database handle.
DB = Any


def encode_conf(cs: ConfState) -> bytes:
    return struct.pack(
        f">II{len(cs.voters)}Q{len(cs.learners)}Q",
        len(cs.voters),
        len(cs.learners),
        *cs.voters,
        *cs.learners,
    )


def decode_conf(raw: bytes | memoryview) -> ConfState:
    nv, nl = struct.unpack_from(">II", raw)
    ids = struct.unpack_from(f">{nv + nl}Q", raw, 8)
    return ConfState(voters=tuple(ids[:nv]), learners=tuple(ids[nv:]))


def decode_entry(index: int, raw: bytes | memoryview) -> Entry:
    term, typ = ENTRY_HDR.unpack_from(raw)
    # bytes() of a bytes slice is that slice itself: no copy beyond the slicing.
    return Entry(term=term, index=index, type=EntryType(typ), data=bytes(raw[ENTRY_HDR.size :]))


def entry_term(raw: bytes | memoryview) -> int:
    return ENTRY_HDR.unpack_from(raw)[0]


# ---- reads ----


def hard_state(txn: lmdb.Transaction, meta: DB) -> HardState:
    raw = txn.get(K_HARDSTATE, db=meta)
    return HardState(*_HS.unpack(raw)) if raw else HardState()


def conf_state(txn: lmdb.Transaction, meta: DB) -> ConfState:
    raw = txn.get(K_CONFSTATE, db=meta)
    return decode_conf(raw) if raw else ConfState()


def compaction_point(txn: lmdb.Transaction, meta: DB) -> tuple[int, int]:
    """(index, term) of the last entry compacted away; (0, 0) before the first compaction."""
    raw = txn.get(K_SNAPSHOT, db=meta)
    return _SNAP.unpack(raw) if raw else (0, 0)


def applied(txn: lmdb.Transaction, meta: DB) -> int:
    raw = txn.get(K_APPLIED, db=meta)
    return IDX.unpack(raw)[0] if raw else 0


def last_index(txn: lmdb.Transaction, meta: DB, log: DB) -> int:
    cur = txn.cursor(db=log)
    return IDX.unpack(cur.key())[0] if cur.last() else compaction_point(txn, meta)[0]


def applied_metadata(txn: lmdb.Transaction, meta: DB, log: DB) -> SnapshotMetadata:
    """What a copy of the state machine as `txn` sees it is an image of: the applied index,
    its term and the membership as of it (the driver stores all three in one commit)."""
    index = applied(txn, meta)
    snap_index, snap_term = compaction_point(txn, meta)
    if index == snap_index:
        term = snap_term
    else:
        raw = txn.get(IDX.pack(index), db=log)
        if raw is None:
            # The applied entry is never compacted away (compaction stays behind it).
            raise LookupError(f"applied entry {index} is not in the log")
        term = entry_term(raw)
    return SnapshotMetadata(conf_state=conf_state(txn, meta), index=index, term=term)


# ---- writes ----


def put_hard_state(txn: lmdb.Transaction, meta: DB, hs: HardState) -> None:
    txn.put(K_HARDSTATE, _HS.pack(hs.term, hs.vote, hs.commit), db=meta)


def put_conf_state(txn: lmdb.Transaction, meta: DB, cs: ConfState) -> None:
    txn.put(K_CONFSTATE, encode_conf(cs), db=meta)


def put_applied(txn: lmdb.Transaction, meta: DB, index: int) -> None:
    txn.put(K_APPLIED, IDX.pack(index), db=meta)


def put_compaction_point(txn: lmdb.Transaction, meta: DB, index: int, term: int) -> None:
    txn.put(K_SNAPSHOT, _SNAP.pack(index, term), db=meta)


def reset_log(txn: lmdb.Transaction, meta: DB, log: DB, snap: SnapshotMetadata) -> None:
    """Make the state as of `snap` the whole story: an empty log compacted up to its index,
    applied up to it, with its membership."""
    txn.drop(log, delete=False)
    put_compaction_point(txn, meta, snap.index, snap.term)
    put_applied(txn, meta, snap.index)
    put_conf_state(txn, meta, snap.conf_state)
