"""Request checks done before proposing, with etcd's errors (etcd's v3rpc/key.go)."""

from __future__ import annotations

import grpc

from server import errors
from server.errors import EtcdError
from server.storage.mvcc import check_key
from wardpb.etcdserverpb import rpc_pb2

INVALID_SORT = EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: invalid sort option")

_SORT_ORDERS = frozenset(rpc_pb2.RangeRequest.SortOrder.values())
_SORT_TARGETS = frozenset(rpc_pb2.RangeRequest.SortTarget.values())


def check_range(r: rpc_pb2.RangeRequest) -> None:
    if not r.key:
        raise errors.EMPTY_KEY
    if r.sort_order not in _SORT_ORDERS or r.sort_target not in _SORT_TARGETS:
        raise INVALID_SORT


def check_put(r: rpc_pb2.PutRequest) -> None:
    check_key(r.key)
    if r.ignore_value and r.value:
        raise errors.VALUE_PROVIDED
    if r.ignore_lease and r.lease:
        raise errors.LEASE_PROVIDED


def check_delete(r: rpc_pb2.DeleteRangeRequest) -> None:
    if not r.key:
        raise errors.EMPTY_KEY


def check_txn(r: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    """Limits, keys, and no key written twice on any path through the txn."""
    _check_txn_ops(r, max_txn_ops)
    _intervals(r.success)
    _intervals(r.failure)


def _check_txn_ops(r: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    if (
        len(r.compare) > max_txn_ops
        or len(r.success) > max_txn_ops
        or (len(r.failure) > max_txn_ops)
    ):
        raise errors.TOO_MANY_OPS
    for c in r.compare:
        if not c.key:
            raise errors.EMPTY_KEY
    for ops in (r.success, r.failure):
        for op in ops:
            which = op.WhichOneof("request")
            if which == "request_range":
                check_range(op.request_range)
            elif which == "request_put":
                check_put(op.request_put)
            elif which == "request_delete_range":
                check_delete(op.request_delete_range)
            elif which == "request_txn":
                # etcd counts the parent's ops against a nested txn's allowance.
                _check_txn_ops(op.request_txn, max_txn_ops - len(ops))
            else:
                raise errors.KEY_NOT_FOUND  # an empty op: etcd's checkRequestOp says so


class _Deletes:
    """Delete intervals of a txn level, compared as etcd's string intervals are."""

    def __init__(self) -> None:
        self.ivs: list[tuple[bytes, bytes | None]] = []

    def add(self, key: bytes, end: bytes) -> None:
        self.ivs.append((key, end or None))

    def hits(self, k: bytes) -> bool:
        for start, end in self.ivs:
            if end is None:
                if k == start:
                    return True
            elif start <= k < end:
                return True
        return False


def _intervals(ops) -> tuple[set[bytes], _Deletes]:  # type: ignore[no-untyped-def]
    """etcd's checkIntervals: puts and deletes of one branch, nested txns included."""
    dels = _Deletes()
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            dels.add(d.key, d.range_end)
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        then_puts, then_dels = _intervals(op.request_txn.success)
        else_puts, else_dels = _intervals(op.request_txn.failure)
        for k in then_puts:
            if k in puts or dels.hits(k):
                raise errors.DUPLICATE_KEY
            puts.add(k)
        for k in else_puts:
            # then and else exclude each other: the same key in both is fine.
            if (k in puts and k not in then_puts) or dels.hits(k):
                raise errors.DUPLICATE_KEY
            puts.add(k)
        dels.ivs.extend(then_dels.ivs)
        dels.ivs.extend(else_dels.ivs)
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        k = op.request_put.key
        if k in puts or dels.hits(k):
            raise errors.DUPLICATE_KEY
        puts.add(k)
    return puts, dels
