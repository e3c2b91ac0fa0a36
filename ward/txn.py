"""A small builder for transactions: compares and the operations they guard.

    from ward import txn

    client.txn(
        compare=[txn.value("config").eq("v1"), txn.version("lock").eq(0)],
        success=[txn.put("config", "v2", prev_kv=True), txn.get("config")],
        failure=[txn.get("config")],
    )

Compares start from what is compared (`value`, `version`, `create_revision`, `mod_revision`,
`lease`) and end with the comparison (`eq`, `ne`, `lt`, `gt`, or `compare(op, operand)` with
etcdctl's "=", "!=", "<", ">"). Operations are `get`, `put`, `delete` and `txn` (a nested
transaction). Everything here is an immutable value; `to_pb()` gives the protobuf message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ward.requests import (
    Key,
    SortOrder,
    SortTarget,
    delete_request,
    put_request,
    range_request,
    to_bytes,
)
from wardpb.etcdserverpb import rpc_pb2

__all__ = [
    "Cmp",
    "CmpSubject",
    "Op",
    "create_revision",
    "delete",
    "get",
    "lease",
    "mod_revision",
    "put",
    "txn",
    "txn_request",
    "value",
    "version",
]

_RESULTS: dict[str, int] = {
    "=": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    "<": rpc_pb2.Compare.LESS,
    ">": rpc_pb2.Compare.GREATER,
}

# Which member of Compare.target_union holds the operand, per target.
_UNION_FIELD: dict[int, str] = {
    rpc_pb2.Compare.VERSION: "version",
    rpc_pb2.Compare.CREATE: "create_revision",
    rpc_pb2.Compare.MOD: "mod_revision",
    rpc_pb2.Compare.VALUE: "value",
    rpc_pb2.Compare.LEASE: "lease",
}


@dataclass(frozen=True, slots=True)
class Cmp:
    """One compare of a transaction: `target` of `key` (or of every key up to `range_end`)
    compared by `result` against `operand`."""

    key: bytes
    target: int
    result: int
    operand: int | bytes
    range_end: bytes = b""

    def to_pb(self) -> rpc_pb2.Compare:
        """The protobuf Compare."""
        msg = rpc_pb2.Compare(
            key=self.key,
            target=self.target,  # type: ignore[arg-type]
            result=self.result,  # type: ignore[arg-type]
            range_end=self.range_end,
        )
        # Assigned even when zero: etcd reads the operand from the oneof member, so it must be set.
        setattr(msg, _UNION_FIELD[self.target], self.operand)
        return msg


@dataclass(frozen=True, slots=True)
class CmpSubject:
    """What a compare looks at; finish it with `eq`, `ne`, `lt`, `gt` or `compare`."""

    key: bytes
    target: int
    range_end: bytes = b""

    def compare(self, op: str, operand: int | Key) -> Cmp:
        """Compare with etcdctl's operator spelling: "=", "!=", "<" or ">"."""
        try:
            result = _RESULTS[op]
        except KeyError:
            raise ValueError(f"unknown compare operator {op!r}") from None
        if self.target == rpc_pb2.Compare.VALUE:
            if isinstance(operand, int):
                raise TypeError("a value compare takes bytes or str")
            checked: int | bytes = to_bytes(operand)
        else:
            if not isinstance(operand, int) or isinstance(operand, bool):
                raise TypeError("version, revision and lease compares take an int")
            checked = operand
        return Cmp(self.key, self.target, result, checked, self.range_end)

    def eq(self, operand: int | Key) -> Cmp:
        """Holds when the target equals `operand`."""
        return self.compare("=", operand)

    def ne(self, operand: int | Key) -> Cmp:
        """Holds when the target differs from `operand`."""
        return self.compare("!=", operand)

    def lt(self, operand: int | Key) -> Cmp:
        """Holds when the target is less than `operand`."""
        return self.compare("<", operand)

    def gt(self, operand: int | Key) -> Cmp:
        """Holds when the target is greater than `operand`."""
        return self.compare(">", operand)


def _subject(target: int, key: Key, range_end: Key | None) -> CmpSubject:
    return CmpSubject(to_bytes(key), target, to_bytes(range_end) if range_end is not None else b"")


def value(key: Key, range_end: Key | None = None) -> CmpSubject:
    """Compare the value of `key` (or of every key in `[key, range_end)`)."""
    return _subject(rpc_pb2.Compare.VALUE, key, range_end)


def version(key: Key, range_end: Key | None = None) -> CmpSubject:
    """Compare the version of `key`; version 0 means the key does not exist."""
    return _subject(rpc_pb2.Compare.VERSION, key, range_end)


def create_revision(key: Key, range_end: Key | None = None) -> CmpSubject:
    """Compare the revision at which `key` was created."""
    return _subject(rpc_pb2.Compare.CREATE, key, range_end)


def mod_revision(key: Key, range_end: Key | None = None) -> CmpSubject:
    """Compare the revision at which `key` was last modified."""
    return _subject(rpc_pb2.Compare.MOD, key, range_end)


def lease(key: Key, range_end: Key | None = None) -> CmpSubject:
    """Compare the lease `key` is attached to (0 for none)."""
    return _subject(rpc_pb2.Compare.LEASE, key, range_end)


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a transaction branch."""

    request: rpc_pb2.RequestOp

    def to_pb(self) -> rpc_pb2.RequestOp:
        """The protobuf RequestOp (a copy: the op itself stays unchanged)."""
        copy = rpc_pb2.RequestOp()
        copy.CopyFrom(self.request)
        return copy


def get(
    key: Key,
    range_end: Key | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    limit: int = 0,
    revision: int = 0,
    sort_order: SortOrder = SortOrder.NONE,
    sort_target: SortTarget = SortTarget.KEY,
    keys_only: bool = False,
    count_only: bool = False,
    serializable: bool = False,
    min_mod_revision: int = 0,
    max_mod_revision: int = 0,
    min_create_revision: int = 0,
    max_create_revision: int = 0,
) -> Op:
    """A range read; the options are those of `Client.get`."""
    req = range_request(
        key,
        range_end,
        prefix=prefix,
        from_key=from_key,
        limit=limit,
        revision=revision,
        sort_order=sort_order,
        sort_target=sort_target,
        keys_only=keys_only,
        count_only=count_only,
        serializable=serializable,
        min_mod_revision=min_mod_revision,
        max_mod_revision=max_mod_revision,
        min_create_revision=min_create_revision,
        max_create_revision=max_create_revision,
    )
    return Op(rpc_pb2.RequestOp(request_range=req))


def put(
    key: Key,
    value: Key = b"",
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> Op:
    """A put; the options are those of `Client.put`."""
    req = put_request(
        key,
        value,
        lease=lease,
        prev_kv=prev_kv,
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )
    return Op(rpc_pb2.RequestOp(request_put=req))


def delete(
    key: Key,
    range_end: Key | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    prev_kv: bool = False,
) -> Op:
    """A delete; the options are those of `Client.delete`."""
    req = delete_request(key, range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
    return Op(rpc_pb2.RequestOp(request_delete_range=req))


CompareLike = Cmp | rpc_pb2.Compare
OpLike = Op | rpc_pb2.RequestOp


def txn_request(
    compare: Iterable[CompareLike] = (),
    success: Iterable[OpLike] = (),
    failure: Iterable[OpLike] = (),
) -> rpc_pb2.TxnRequest:
    """The TxnRequest for these compares and branches (protobuf messages are accepted as is)."""
    return rpc_pb2.TxnRequest(
        compare=[c.to_pb() if isinstance(c, Cmp) else c for c in compare],
        success=[o.to_pb() if isinstance(o, Op) else o for o in success],
        failure=[o.to_pb() if isinstance(o, Op) else o for o in failure],
    )


def txn(
    compare: Iterable[CompareLike] = (),
    success: Iterable[OpLike] = (),
    failure: Iterable[OpLike] = (),
) -> Op:
    """A nested transaction, run as one operation of the enclosing transaction's branch."""
    return Op(rpc_pb2.RequestOp(request_txn=txn_request(compare, success, failure)))
