"""etcd's multi-version keyspace on lmdb.

Three databases hold it (see docs/architecture.md):
- `hist`: revision → one byte (0 put, 1 tombstone) + the encoded `mvccpb.KeyValue`.
- `cur`: key → the live version's revision, create revision, version and lease (fixed 40 bytes),
  so a read at the current revision, a count or a filter never decodes a value.
- `keyrev` (dupsort): key → every revision of the key, for reads at past revisions and compaction.

Nothing of the index is kept in Python memory: memory does not grow with keys or history.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple, Protocol

import lmdb

from server import errors
from server.storage.backend import MAX_KEY_SIZE, Backend
from server.storage.revision import rev_bytes, rev_main
from server.wire import encode_kv
from wardpb.mvccpb import kv_pb2

_CUR = struct.Struct(">QQqqq")  # mod main, mod sub, create revision, version, lease
_U64 = struct.Struct(">Q")
_LEASE = struct.Struct(">q")

PUT = b"\x00"
TOMBSTONE = b"\x01"

META_REV = b"rev"
META_COMPACT = b"compact"
META_SCHEDULED_COMPACT = b"compact_scheduled"

FROM_KEY = b"\x00"


class Item(NamedTuple):
    """One version of a key, as the index knows it (value fetched separately)."""

    key: bytes
    create: int
    mod: int
    version: int
    lease: int
    rev: bytes  # encoded (main, sub): where the full KeyValue is in `hist`


class RangeResult(NamedTuple):
    items: list[Item]
    count: int
    rev: int


def _in_range(key: bytes, end: bytes) -> bool:
    return end == FROM_KEY or key < end


def check_key(key: bytes) -> None:
    if not key:
        raise errors.EMPTY_KEY
    if len(key) > MAX_KEY_SIZE:
        raise errors.KEY_TOO_LARGE


class KVStore:
    """Reads and writes of the keyspace inside caller-owned lmdb transactions."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        # Told of every change a writer makes (tenant usage and quotas, server.tenant_apply);
        # None costs nothing.
        self.observer: KVObserver | None = None

    # ---- metadata ----

    def current_revision(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(META_REV, db=self._b.meta)
        return _U64.unpack(raw)[0] if raw else 1

    def compact_revision(self, txn: lmdb.Transaction) -> int:
        """The last compaction's revision; -1 before the first, as etcd's compactMainRev."""
        raw = txn.get(META_COMPACT, db=self._b.meta)
        return _U64.unpack(raw)[0] if raw else -1

    # ---- reads ----

    def range(
        self,
        txn: lmdb.Transaction,
        key: bytes,
        end: bytes,
        *,
        rev: int = 0,
        limit: int = 0,
        current: int | None = None,
    ) -> RangeResult:
        """Keys in [key, end) at `rev` (0: current); `count` counts all of them, `limit` caps items.

        `end` empty means the single key; `end == b"\\0"` means every key from `key` on.
        """
        cur_rev = self.current_revision(txn) if current is None else current
        if rev > cur_rev:
            raise errors.FUTURE_REV
        if rev <= 0:
            rev = cur_rev
        elif rev < self.compact_revision(txn):
            raise errors.COMPACTED
        if rev == cur_rev:
            items = self.range_current(txn, key, end)
        else:
            items = self._range_past(txn, key, end, rev)
        count = len(items)
        if limit and count > limit:
            items = items[:limit]
        return RangeResult(items, count, rev)

    def range_current(self, txn: lmdb.Transaction, key: bytes, end: bytes) -> list[Item]:
        """The live keys in [key, end) (just `key` when `end` is empty), in key order."""
        cdb = self._b.cur
        unpack = _CUR.unpack
        if len(key) > MAX_KEY_SIZE:
            # No stored key is this long (lmdb's limit); start from its prefix and skip what
            # sorts before it.
            if not end:
                return []
            return [it for it in self.range_current(txn, key[:MAX_KEY_SIZE], end) if it.key >= key]
        if not end:
            raw = txn.get(key, db=cdb)
            if raw is None:
                return []
            m, _s, c, v, lease = unpack(raw)
            return [Item(key, c, m, v, lease, raw[:16])]
        out: list[Item] = []
        cur = txn.cursor(db=cdb)
        if not cur.set_range(key):
            return out
        from_key = end == FROM_KEY
        for k, raw in cur.iternext():
            if not from_key and k >= end:
                break
            m, _s, c, v, lease = unpack(raw)
            out.append(Item(k, c, m, v, lease, raw[:16]))
        return out

    def _range_past(self, txn: lmdb.Transaction, key: bytes, end: bytes, rev: int) -> list[Item]:
        out: list[Item] = []
        if len(key) > MAX_KEY_SIZE:
            if not end:
                return out
            past = self._range_past(txn, key[:MAX_KEY_SIZE], end, rev)
            return [it for it in past if it.key >= key]
        cur = txn.cursor(db=self._b.keyrev)
        bound = rev_bytes(rev + 1, 0)
        found = cur.set_key(key) if not end else cur.set_range(key)
        while found:
            k = cur.key()
            if end and not _in_range(k, end):
                break
            if not end and k != key:
                break
            # The last revision of this key at or below `rev`.
            has = cur.prev_dup() if cur.set_range_dup(k, bound) else cur.last_dup()
            if has:
                item = self._item_at(txn, k, cur.value())
                if item is not None:
                    out.append(item)
            if not end:
                break
            found = cur.next_nodup()
        return out

    def _item_at(self, txn: lmdb.Transaction, key: bytes, rev: bytes) -> Item | None:
        rec = txn.get(rev, db=self._b.hist)
        if rec is None or rec[:1] == TOMBSTONE:
            return None
        kv = kv_pb2.KeyValue.FromString(rec[1:])
        return Item(key, kv.create_revision, kv.mod_revision, kv.version, kv.lease, rev)

    def encoded(self, txn: lmdb.Transaction, item: Item, *, keys_only: bool = False) -> bytes:
        """The item's `mvccpb.KeyValue` bytes (without the value when `keys_only`)."""
        if keys_only:
            return encode_kv(item.key, item.create, item.mod, item.version, b"", item.lease)
        rec = txn.get(item.rev, db=self._b.hist)
        return rec[1:]

    def value(self, txn: lmdb.Transaction, item: Item) -> bytes:
        rec = txn.get(item.rev, db=self._b.hist)
        return kv_pb2.KeyValue.FromString(rec[1:]).value

    def get(self, txn: lmdb.Transaction, key: bytes) -> Item | None:
        if len(key) > MAX_KEY_SIZE:
            return None
        raw = txn.get(key, db=self._b.cur)
        if raw is None:
            return None
        m, _s, c, v, lease = _CUR.unpack(raw)
        return Item(key, c, m, v, lease, raw[:16])

    def events_since(
        self, txn: lmdb.Transaction, start_rev: int, end_rev: int | None = None
    ) -> Iterator[tuple[bytes, bool, bytes]]:
        """(revision, is_tombstone, KeyValue bytes) for revisions in [start_rev, end_rev]."""
        cur = txn.cursor(db=self._b.hist)
        if not cur.set_range(rev_bytes(start_rev, 0)):
            return
        for rev, rec in cur.iternext():
            if end_rev is not None and rev_main(rev) > end_rev:
                return
            yield rev, rec[:1] == TOMBSTONE, rec[1:]

    # ---- writes ----

    def writer(self, txn: lmdb.Transaction) -> KVWriter:
        return KVWriter(self, txn)

    def compact(self, txn: lmdb.Transaction, rev: int) -> None:
        """Remove every version superseded at or before `rev` (and tombstones at or before it)."""
        b = self._b
        cur = txn.cursor(db=b.keyrev)
        found = cur.first()
        while found:
            key = cur.key()
            revs = list(cur.iternext_dup(keys=False))
            old = [r for r in revs if rev_main(r) <= rev]
            if old:
                doomed = old[:-1]
                last = old[-1]
                rec = txn.get(last, db=b.hist)
                if rec is None or rec[:1] == TOMBSTONE:
                    doomed.append(last)
                for r in doomed:
                    txn.delete(key, r, db=b.keyrev)
                    txn.delete(r, db=b.hist)
            found = cur.set_range(key + b"\x00")
        txn.put(META_COMPACT, _U64.pack(rev), db=b.meta)

    def hash_kv(self, txn: lmdb.Transaction, rev: int) -> int:
        """A CRC32 of every stored version at or below `rev`: equal on members in sync."""
        h = 0
        cur = txn.cursor(db=self._b.hist)
        if not cur.first():
            return h
        for r, rec in cur.iternext():
            if rev_main(r) > rev:
                break
            h = zlib.crc32(rec, zlib.crc32(r, h))
        return h


class KVObserver(Protocol):
    """Told of each change inside the write transaction, before the writer goes on; raising
    `EtcdError` refuses the entry (its child transaction is rolled back)."""

    def put(self, txn: lmdb.Transaction, key: bytes, value: bytes, prev: Item | None) -> None: ...

    def deleted(self, txn: lmdb.Transaction, item: Item) -> None: ...


class KVWriter:
    """The changes of one write transaction: one main revision, a sub-revision per change."""

    __slots__ = ("_b", "_observer", "_store", "_txn", "base", "rev", "sub")

    def __init__(self, store: KVStore, txn: lmdb.Transaction) -> None:
        self._store = store
        self._b = store._b
        self._txn = txn
        self._observer = store.observer
        self.base = store.current_revision(txn)
        self.rev = self.base + 1
        self.sub = 0

    @property
    def changed(self) -> bool:
        return self.sub > 0

    @property
    def revision(self) -> int:
        """The revision a reader of this transaction sees."""
        return self.rev if self.sub else self.base

    def put(self, key: bytes, value: bytes, lease: int) -> Item | None:
        """Write a new version of `key`; returns the version it replaced, if any."""
        b, txn = self._b, self._txn
        raw = txn.get(key, db=b.cur)
        prev: Item | None = None
        if raw is not None:
            m, _s, c, v, old_lease = _CUR.unpack(raw)
            prev = Item(key, c, m, v, old_lease, raw[:16])
            create, version = c, v + 1
            if old_lease != lease and old_lease:
                txn.delete(_LEASE.pack(old_lease) + key, db=b.leasekeys)
        else:
            create, version = self.rev, 1
        rev = rev_bytes(self.rev, self.sub)
        self.sub += 1
        txn.put(
            rev,
            PUT + encode_kv(key, create, self.rev, version, value, lease),
            db=b.hist,
            append=True,
        )
        txn.put(key, rev + _CUR.pack(0, 0, create, version, lease)[16:], db=b.cur)
        txn.put(key, rev, db=b.keyrev, dupdata=True)
        if lease and (prev is None or prev.lease != lease):
            txn.put(_LEASE.pack(lease) + key, b"", db=b.leasekeys)
        if self._observer is not None:
            self._observer.put(txn, key, value, prev)
        return prev

    def delete_range(self, key: bytes, end: bytes) -> list[Item]:
        """Delete the live keys in the range; returns what was deleted."""
        doomed = self._store.range_current(self._txn, key, end)
        for item in doomed:
            self.delete_item(item)
        return doomed

    def delete_item(self, item: Item) -> None:
        b, txn = self._b, self._txn
        rev = rev_bytes(self.rev, self.sub)
        self.sub += 1
        txn.put(
            rev, TOMBSTONE + encode_kv(item.key, 0, self.rev, 0, b"", 0), db=b.hist, append=True
        )
        txn.delete(item.key, db=b.cur)
        txn.put(item.key, rev, db=b.keyrev, dupdata=True)
        if item.lease:
            txn.delete(_LEASE.pack(item.lease) + item.key, db=b.leasekeys)
        if self._observer is not None:
            self._observer.deleted(txn, item)

    def finish(self) -> int:
        """Record the new revision if anything changed; returns the revision after the txn."""
        if self.sub:
            self._txn.put(META_REV, _U64.pack(self.rev), db=self._b.meta)
            self.base = self.rev
            self.rev += 1
            self.sub = 0
        return self.base
