"""The apply path: committed Raft entries become changes to the store, and responses.

Every member applies the same entries in the same order, so this module is deterministic: it
reads only the entry and the store. Requests are checked before anything is written (as etcd's
applier does), so an entry either applies whole or fails with nothing changed, and a batch of
entries can share one lmdb transaction.
"""

from __future__ import annotations

import collections
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import lmdb

from server import errors
from server.errors import EtcdError
from server.lessor import MAX_LEASE_TTL
from server.storage.backend import Backend
from server.storage.mvcc import FROM_KEY, Item, KVStore, KVWriter
from server.wire import (
    encode_header,
    encode_range_response,
    field_bool,
    field_message,
    field_varint,
)
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2

_LEASE = struct.Struct(">q")
_ALARM_PREFIX = b"alarm/"
_ALARM_NAMES = {rpc_pb2.NOSPACE: "NOSPACE", rpc_pb2.CORRUPT: "CORRUPT"}
# What etcd's corrupt applier refuses while a CORRUPT alarm is raised: every change to the
# keyspace or the leases (reads and read-only txns are served outside the apply path).
_REFUSED_WHEN_CORRUPT = frozenset(
    {
        "put",
        "delete_range",
        "txn",
        "compaction",
        "auto_compaction",
        "lease_grant",
        "lease_revoke",
        "lease_expire",
    }
)

log = logging.getLogger("ward.apply")

RangeRequest = rpc_pb2.RangeRequest
Compare = rpc_pb2.Compare


@dataclass(slots=True)
class HeaderInfo:
    """What every response header carries besides the revision."""

    cluster_id: int = 0
    member_id: int = 0
    raft_term: int = 0

    def header(self, revision: int) -> bytes:
        return encode_header(self.cluster_id, self.member_id, revision, self.raft_term)


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of one entry: response bytes or an error, and the revision after it."""

    request_id: int
    response: bytes | None
    error: EtcdError | None
    revision: int


class Applier:
    """Applies `wardpeerpb.Entry` messages inside a caller-owned write transaction."""

    def __init__(self, backend: Backend, kv: KVStore, header: HeaderInfo) -> None:
        self._b = backend
        self.kv = kv
        self._header = header
        self._handlers: dict[str, Callable[[lmdb.Transaction, KVWriter, object], bytes]] = {
            "put": self._put,
            "delete_range": self._delete_range,
            "txn": self._txn,
            "compaction": self._compaction,
            "auto_compaction": self._compaction,
            "alarm": self._alarm,
            "lease_grant": self._lease_grant,
            "lease_revoke": self._lease_revoke,
            "lease_expire": self._lease_expire,
        }
        # etcd's minimum lease TTL; the member sets it from its election timeout.
        self.min_lease_ttl = 1
        # Lease grants (ID, TTL) and removals (ID, 0) of the entries applied so far, for the
        # core process's lessor to take after each commit (see server/lessor.py).
        self.lease_changes: collections.deque[tuple[int, int]] = collections.deque()
        self._entry_leases: list[tuple[int, int]] = []
        self._request_id = 0
        # Checks every entry's caller before it applies (the member installs auth's, see
        # server/auth_apply.py); raises the entry's EtcdError to refuse it.
        self.guard: Callable[[lmdb.Transaction, peer_pb2.RequestHeader, str, Any], None] | None = (
            None
        )

    def register(
        self, kind: str, handler: Callable[[lmdb.Transaction, KVWriter, Any], bytes]
    ) -> None:
        """Apply entries of request kind `kind` (an `Entry` oneof field) with `handler`."""
        self._handlers[kind] = handler

    def handler(self, kind: str) -> Callable[[lmdb.Transaction, KVWriter, Any], bytes]:
        """The handler of request kind `kind` (to wrap it)."""
        return self._handlers[kind]

    def apply(self, txn: lmdb.Transaction, data: bytes) -> Applied:
        entry = peer_pb2.Entry.FromString(data)
        kind = entry.WhichOneof("request")
        # A lease granted without an ID takes one derived from the entry (see _lease_grant).
        self._request_id = entry.header.id
        self._entry_leases = []
        w = self.kv.writer(txn)
        try:
            handler = self._handlers.get(kind or "")
            if handler is None:
                raise errors.UNIMPLEMENTED
            if kind in _REFUSED_WHEN_CORRUPT and self.corrupt(txn):
                # Before the auth check, as etcd's corrupt applier wraps all the others.
                raise errors.CORRUPT
            request = getattr(entry, kind)  # type: ignore[arg-type]
            if self.guard is not None:
                self.guard(txn, entry.header, kind, request)  # type: ignore[arg-type]
            resp = handler(txn, w, request)
        except EtcdError as e:
            return Applied(entry.header.id, None, e, w.revision)
        # Only an entry that applied whole tells the lessor; a failed one is rolled back.
        self.lease_changes.extend(self._entry_leases)
        return Applied(entry.header.id, resp, None, w.revision)

    # ---- KV ----

    def _put(self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.PutRequest) -> bytes:
        self._check_space(txn)
        # A plain put checks its lease before its key, a put inside a txn the other way
        # round: both as etcd does, so the same request gets the same error.
        if r.lease and not self.lease_exists(txn, r.lease):
            raise errors.LEASE_NOT_FOUND
        self._check_put(txn, w, r)
        body = self._do_put(txn, w, r)
        rev = w.finish()
        return field_message(1, self._header.header(rev)) + body

    def _check_put(self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.PutRequest) -> None:
        if (r.ignore_value or r.ignore_lease) and self.kv.get(txn, r.key) is None:
            raise errors.KEY_NOT_FOUND
        if r.lease and not r.ignore_lease and not self.lease_exists(txn, r.lease):
            raise errors.LEASE_NOT_FOUND

    def _do_put(self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.PutRequest) -> bytes:
        """Writes the put; returns the PutResponse fields after the header."""
        value, lease = r.value, r.lease
        if r.ignore_value or r.ignore_lease:
            old = self.kv.get(txn, r.key)
            assert old is not None  # checked before any write
            if r.ignore_value:
                value = self.kv.value(txn, old)
            if r.ignore_lease:
                lease = old.lease
        prev = w.put(r.key, value, lease)
        if r.prev_kv and prev is not None:
            return field_message(2, self.kv.encoded(txn, prev))
        return b""

    def _delete_range(
        self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.DeleteRangeRequest
    ) -> bytes:
        body = self._do_delete(txn, w, r)
        rev = w.finish()
        return field_message(1, self._header.header(rev)) + body

    def _do_delete(
        self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.DeleteRangeRequest
    ) -> bytes:
        doomed = w.delete_range(r.key, r.range_end)
        # History keeps the deleted versions, so they can still be encoded after the delete.
        prevs = [self.kv.encoded(txn, it) for it in doomed] if r.prev_kv else []
        return field_varint(2, len(doomed)) + b"".join(field_message(3, p) for p in prevs)

    def _txn(self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.TxnRequest) -> bytes:
        # Every branch, nested ones included, is chosen against the state before the txn runs.
        path: list[bool] = []
        self._path(txn, r, path)
        if has_op(_branch(r, path[0]), PUT_OPS):
            self._check_space(txn)
        self._check_ops(txn, w, r, _Path(path))
        body = self._run_txn(txn, w, r, _Path(path))
        rev = w.finish()
        return field_message(1, self._header.header(rev)) + field_bool(2, path[0]) + body

    def read_txn(self, txn: lmdb.Transaction, r: rpc_pb2.TxnRequest) -> bytes:
        """A txn without writes, answered from a read transaction."""
        return self._txn(txn, self.kv.writer(txn), r)

    def _path(self, txn: lmdb.Transaction, r: rpc_pb2.TxnRequest, path: list[bool]) -> None:
        ok = all(self._compare(txn, c) for c in r.compare)
        path.append(ok)
        for op in _branch(r, ok):
            if op.WhichOneof("request") == "request_txn":
                self._path(txn, op.request_txn, path)

    def _check_ops(
        self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.TxnRequest, path: _Path
    ) -> None:
        """Every precondition of the ops that will run, at every nesting depth.

        As etcd's applyTxn: all puts first, then all ranges, so the same request gets the same
        error whatever the order of its ops.
        """
        puts: list[rpc_pb2.PutRequest] = []
        ranges: list[rpc_pb2.RangeRequest] = []
        _collect(r, path, puts, ranges)
        for put in puts:
            self._check_put(txn, w, put)
        compacted = self.kv.compact_revision(txn)
        for rr in ranges:
            if rr.revision == 0:
                continue
            if rr.revision > w.revision:
                raise errors.FUTURE_REV
            if rr.revision < compacted:
                raise errors.COMPACTED

    def _run_txn(
        self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.TxnRequest, path: _Path
    ) -> bytes:
        """The TxnResponse fields after header and `succeeded`: one ResponseOp per op."""
        parts = []
        for op in _branch(r, path.next()):
            which = op.WhichOneof("request")
            if which == "request_range":
                resp = self.range(txn, op.request_range, current=w.revision, inner=True)
                parts.append(field_message(3, field_message(1, resp)))
            elif which == "request_put":
                body = self._do_put(txn, w, op.request_put)
                resp = field_message(1, field_varint(3, w.revision)) + body
                parts.append(field_message(3, field_message(2, resp)))
            elif which == "request_delete_range":
                body = self._do_delete(txn, w, op.request_delete_range)
                resp = field_message(1, field_varint(3, w.revision)) + body
                parts.append(field_message(3, field_message(3, resp)))
            elif which == "request_txn":
                ok = path.peek()
                body = self._run_txn(txn, w, op.request_txn, path)
                resp = field_bool(2, ok) + body  # etcd leaves a nested txn's header empty
                parts.append(field_message(3, field_message(4, resp)))
            else:
                parts.append(field_message(3, b""))
        return b"".join(parts)

    def _compare(self, txn: lmdb.Transaction, c: rpc_pb2.Compare) -> bool:
        items = self.kv.range_current(txn, c.key, c.range_end)
        target = c.target
        if target not in _TARGETS:
            # etcd's compareKV leaves the result 0 for a target it does not know.
            return c.result == Compare.EQUAL
        if not items:
            if target == Compare.VALUE:
                # A missing key has no value to compare: etcd fails such a compare.
                return False
            return _cmp_int(0, _target_int(c), c.result)
        for it in items:
            if target == Compare.VALUE:
                ok = _cmp_bytes(self.kv.value(txn, it), c.value, c.result)
            else:
                ok = _cmp_int(_item_int(it, target), _target_int(c), c.result)
            if not ok:
                return False
        return True

    # ---- reads (also used outside the apply path) ----

    def range(
        self,
        txn: lmdb.Transaction,
        r: rpc_pb2.RangeRequest,
        *,
        current: int | None = None,
        inner: bool = False,
    ) -> bytes:
        """A RangeResponse for `r`, with etcd's sort, filter, limit and count semantics."""
        kv = self.kv
        filtered = bool(
            r.min_mod_revision
            or r.max_mod_revision
            or r.min_create_revision
            or r.max_create_revision
        )
        fetch_all = r.sort_order != RangeRequest.NONE or filtered
        limit = r.limit if r.limit > 0 else 0  # etcd ignores a negative limit
        cur = kv.current_revision(txn) if current is None else current
        res = kv.range(
            txn,
            r.key,
            r.range_end,
            rev=r.revision,
            current=cur,
            limit=0 if fetch_all or r.count_only or not limit else limit + 1,
        )
        items = [] if r.count_only else res.items
        if filtered:
            items = [it for it in items if _keep(it, r)]
        order = r.sort_order
        target = r.sort_target
        if target != RangeRequest.KEY and order == RangeRequest.NONE:
            order = RangeRequest.ASCEND
        if order != RangeRequest.NONE and not (
            target == RangeRequest.KEY and order == RangeRequest.ASCEND
        ):
            items = _sorted(txn, kv, items, target, order == RangeRequest.DESCEND)
        more = False
        if limit and len(items) > limit:
            items = items[:limit]
            more = True
        kvs = [] if r.count_only else [kv.encoded(txn, it, keys_only=r.keys_only) for it in items]
        # etcd answers with the current revision, whatever revision was read.
        header = field_varint(3, cur) if inner else self._header.header(cur)
        return encode_range_response(header, kvs, more=more, count=res.count)

    # ---- compaction and alarms ----

    def _compaction(
        self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.CompactionRequest
    ) -> bytes:
        current = self.kv.current_revision(txn)
        if r.revision <= self.kv.compact_revision(txn):
            raise errors.COMPACTED
        if r.revision > current:
            raise errors.FUTURE_REV
        self.kv.compact(txn, r.revision)
        return field_message(1, self._header.header(current))

    def alarms(self, txn: lmdb.Transaction) -> list[tuple[int, int]]:
        """Active alarms as (member ID, alarm type)."""
        out = []
        cur = txn.cursor(db=self._b.meta)
        if cur.set_range(_ALARM_PREFIX):
            for k, _ in cur.iternext():
                if not k.startswith(_ALARM_PREFIX):
                    break
                member, alarm = struct.unpack(">QI", k[len(_ALARM_PREFIX) :])
                out.append((member, alarm))
        return out

    def _alarm(self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.AlarmRequest) -> bytes:
        key = _ALARM_PREFIX + struct.pack(">QI", r.memberID, r.alarm)
        changed: list[tuple[int, int]] = []
        fields = {"alarm": _ALARM_NAMES.get(r.alarm, str(r.alarm)), "from": f"{r.memberID:x}"}
        if r.action == rpc_pb2.AlarmRequest.ACTIVATE and r.alarm != rpc_pb2.NONE:
            if txn.put(key, b"", db=self._b.meta, overwrite=False):
                changed.append((r.memberID, r.alarm))
                log.warning("alarm raised", extra=fields)
        elif r.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            if txn.delete(key, db=self._b.meta):
                changed.append((r.memberID, r.alarm))
                log.warning("alarm disarmed", extra=fields)
        else:
            changed = self.alarms(txn)
        body = b"".join(
            field_message(2, field_varint(1, m) + field_varint(2, a)) for m, a in changed
        )
        return field_message(1, self._header.header(self.kv.current_revision(txn))) + body

    def no_space(self, txn: lmdb.Transaction) -> bool:
        return any(a == rpc_pb2.NOSPACE for _, a in self.alarms(txn))

    def corrupt(self, txn: lmdb.Transaction) -> bool:
        """Whether a CORRUPT alarm is raised (for any member: the whole cluster stops writing)."""
        return any(a == rpc_pb2.CORRUPT for _, a in self.alarms(txn))

    def _check_space(self, txn: lmdb.Transaction) -> None:
        if self.no_space(txn):
            raise errors.NO_SPACE

    # ---- leases (deadlines live in the core's lessor; see server/lessor.py) ----

    def lease_exists(self, txn: lmdb.Transaction, lease_id: int) -> bool:
        return txn.get(_LEASE.pack(lease_id), db=self._b.lease) is not None

    def leases(self, txn: lmdb.Transaction) -> list[tuple[int, int]]:
        """Every lease as (ID, granted TTL)."""
        cur = txn.cursor(db=self._b.lease)
        return [(_LEASE.unpack(k)[0], _LEASE.unpack(v)[0]) for k, v in cur.iternext()]

    def lease_keys(self, txn: lmdb.Transaction, lease_id: int) -> list[bytes]:
        """The keys attached to a lease, in key order."""
        prefix = _LEASE.pack(lease_id)
        out: list[bytes] = []
        cur = txn.cursor(db=self._b.leasekeys)
        if cur.set_range(prefix):
            for k in cur.iternext(values=False):
                if not k.startswith(prefix):
                    break
                out.append(k[8:])
        return out

    def _lease_grant(
        self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.LeaseGrantRequest
    ) -> bytes:
        self._check_space(txn)
        # etcd's order: the TTL ceiling, then the floor, then whether the ID is taken.
        if r.TTL > MAX_LEASE_TTL:
            raise errors.LEASE_TTL_TOO_LARGE
        ttl = max(r.TTL, self.min_lease_ttl)
        lid = r.ID
        if lid == 0:
            # etcd picks the ID from its request ID generator before proposing; Ward derives it
            # from the entry's request ID, which is the same generator, so every member picks
            # the same one. Only positive IDs; a taken one moves on to the next free ID.
            lid = (self._request_id & ((1 << 63) - 1)) or 1
            while self.lease_exists(txn, lid):
                lid = lid % ((1 << 63) - 1) + 1
        elif self.lease_exists(txn, lid):
            raise errors.LEASE_EXIST
        txn.put(_LEASE.pack(lid), _LEASE.pack(ttl), db=self._b.lease)
        self._entry_leases.append((lid, ttl))
        header = self._header.header(w.revision)
        return field_message(1, header) + field_varint(2, lid) + field_varint(3, ttl)

    def _lease_revoke(
        self, txn: lmdb.Transaction, w: KVWriter, r: rpc_pb2.LeaseRevokeRequest
    ) -> bytes:
        if not self.lease_exists(txn, r.ID):
            raise errors.LEASE_NOT_FOUND
        self._revoke(txn, w, r.ID)
        return field_message(1, self._header.header(w.finish()))

    def _lease_expire(self, txn: lmdb.Transaction, w: KVWriter, r: peer_pb2.LeaseExpire) -> bytes:
        for lid in r.ids:
            # Already revoked (by a client, or by an earlier expiry proposal): nothing to do, so
            # a lease never expires twice.
            if self.lease_exists(txn, lid):
                self._revoke(txn, w, lid)
                w.finish()  # each lease's keys go in a revision of their own, as in etcd
        return b""

    def _revoke(self, txn: lmdb.Transaction, w: KVWriter, lid: int) -> None:
        """Delete the lease's keys (in key order, one revision) and then the lease."""
        for key in self.lease_keys(txn, lid):
            item = self.kv.get(txn, key)
            if item is not None and item.lease == lid:
                w.delete_item(item)  # drops the leasekeys entry too
            else:
                txn.delete(_LEASE.pack(lid) + key, db=self._b.leasekeys)
        txn.delete(_LEASE.pack(lid), db=self._b.lease)
        self._entry_leases.append((lid, 0))


class _Path:
    """The branch taken by each txn of a nested txn, in depth-first order."""

    __slots__ = ("_i", "_taken")

    def __init__(self, taken: list[bool]) -> None:
        self._taken = taken
        self._i = 0

    def peek(self) -> bool:
        return self._taken[self._i]

    def next(self) -> bool:
        self._i += 1
        return self._taken[self._i - 1]


def _branch(r: rpc_pb2.TxnRequest, ok: bool) -> list[rpc_pb2.RequestOp]:
    return list(r.success if ok else r.failure)


PUT_OPS = frozenset({"request_put"})
WRITE_OPS = frozenset({"request_put", "request_delete_range"})


def has_op(ops: Iterable[rpc_pb2.RequestOp], kinds: frozenset[str]) -> bool:
    """Whether any op of `kinds` is among `ops`, in either branch of any nested txn."""
    for op in ops:
        which = op.WhichOneof("request")
        if which in kinds:
            return True
        if which == "request_txn" and (
            has_op(op.request_txn.success, kinds) or has_op(op.request_txn.failure, kinds)
        ):
            return True
    return False


_TARGETS = frozenset(Compare.CompareTarget.values())


def _collect(
    r: rpc_pb2.TxnRequest,
    path: _Path,
    puts: list[rpc_pb2.PutRequest],
    ranges: list[rpc_pb2.RangeRequest],
) -> None:
    """The puts and ranges on the path the txn will take, nested txns included."""
    for op in _branch(r, path.next()):
        which = op.WhichOneof("request")
        if which == "request_put":
            puts.append(op.request_put)
        elif which == "request_range":
            ranges.append(op.request_range)
        elif which == "request_txn":
            _collect(op.request_txn, path, puts, ranges)


def _target_int(c: rpc_pb2.Compare) -> int:
    t = c.target
    if t == Compare.VERSION:
        return c.version
    if t == Compare.CREATE:
        return c.create_revision
    if t == Compare.MOD:
        return c.mod_revision
    return c.lease


def _item_int(it: Item, target: int) -> int:
    if target == Compare.VERSION:
        return it.version
    if target == Compare.CREATE:
        return it.create
    if target == Compare.MOD:
        return it.mod
    return it.lease


def _cmp_int(a: int, b: int, result: int) -> bool:
    if result == Compare.EQUAL:
        return a == b
    if result == Compare.NOT_EQUAL:
        return a != b
    if result == Compare.GREATER:
        return a > b
    return a < b


def _cmp_bytes(a: bytes, b: bytes, result: int) -> bool:
    if result == Compare.EQUAL:
        return a == b
    if result == Compare.NOT_EQUAL:
        return a != b
    if result == Compare.GREATER:
        return a > b
    return a < b


def _keep(it: Item, r: rpc_pb2.RangeRequest) -> bool:
    if r.max_mod_revision and it.mod > r.max_mod_revision:
        return False
    if r.min_mod_revision and it.mod < r.min_mod_revision:
        return False
    if r.max_create_revision and it.create > r.max_create_revision:
        return False
    return not (r.min_create_revision and it.create < r.min_create_revision)


def _sorted(
    txn: lmdb.Transaction, kv: KVStore, items: list[Item], target: int, desc: bool
) -> list[Item]:
    if target == RangeRequest.KEY:
        return sorted(items, key=lambda it: it.key, reverse=desc)
    if target == RangeRequest.VERSION:
        return sorted(items, key=lambda it: it.version, reverse=desc)
    if target == RangeRequest.CREATE:
        return sorted(items, key=lambda it: it.create, reverse=desc)
    if target == RangeRequest.MOD:
        return sorted(items, key=lambda it: it.mod, reverse=desc)
    values = {it.rev: kv.value(txn, it) for it in items}
    return sorted(items, key=lambda it: values[it.rev], reverse=desc)


__all__ = ["FROM_KEY", "Applied", "Applier", "HeaderInfo"]
