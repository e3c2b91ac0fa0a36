"""Building etcd's KV requests from keyword options, the way etcd's Go client builds them.

Pure functions with no I/O, shared by the synchronous client, the txn builder and (later) the
asyncio client, so every path sends byte-identical requests for the same options.
"""

from __future__ import annotations

import enum

from wardpb.etcdserverpb import rpc_pb2

__all__ = [
    "Key",
    "SortOrder",
    "SortTarget",
    "delete_request",
    "key_range",
    "prefix_range_end",
    "put_request",
    "range_request",
    "to_bytes",
]

# Keys and values: bytes as they are, str encoded as UTF-8.
Key = bytes | str


class SortOrder(enum.IntEnum):
    """Order of a range's results (RangeRequest.SortOrder)."""

    NONE = rpc_pb2.RangeRequest.NONE
    ASCEND = rpc_pb2.RangeRequest.ASCEND
    DESCEND = rpc_pb2.RangeRequest.DESCEND


class SortTarget(enum.IntEnum):
    """Field a range is sorted by (RangeRequest.SortTarget)."""

    KEY = rpc_pb2.RangeRequest.KEY
    VERSION = rpc_pb2.RangeRequest.VERSION
    CREATE = rpc_pb2.RangeRequest.CREATE
    MOD = rpc_pb2.RangeRequest.MOD
    VALUE = rpc_pb2.RangeRequest.VALUE


def to_bytes(data: Key) -> bytes:
    """Keys and values travel as bytes; text is encoded as UTF-8."""
    return data.encode() if isinstance(data, str) else bytes(data)


def prefix_range_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with `prefix`.

    The last byte below 0xff is incremented and the rest dropped; a prefix of only 0xff bytes (or
    none) has no upper bound, which etcd spells "\\x00".
    """
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def _key_range(
    key: Key, range_end: Key | None, prefix: bool, from_key: bool
) -> tuple[bytes, bytes]:
    if sum((range_end is not None, prefix, from_key)) > 1:
        raise ValueError("give at most one of range_end, prefix and from_key")
    k = to_bytes(key)
    if prefix:
        # An empty prefix means every key: etcd's "\x00" to "\x00".
        return (k, prefix_range_end(k)) if k else (b"\x00", b"\x00")
    if from_key:
        return (k or b"\x00", b"\x00")
    return k, (to_bytes(range_end) if range_end is not None else b"")


def key_range(
    key: Key, range_end: Key | None = None, *, prefix: bool = False, from_key: bool = False
) -> tuple[bytes, bytes]:
    """`(key, range_end)` for a key, a range, a prefix or every key from `key`."""
    return _key_range(key, range_end, prefix, from_key)


def range_request(
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
) -> rpc_pb2.RangeRequest:
    """A RangeRequest for `key`, or a range of keys.

    The range is `[key, range_end)`, or every key starting with `key` (`prefix`), or every key
    from `key` on (`from_key`); at most one of the three may be given.
    """
    k, end = _key_range(key, range_end, prefix, from_key)
    if sort_target == SortTarget.KEY and sort_order == SortOrder.ASCEND:
        # Results already come in ascending key order; asking for it explicitly would make the
        # server fetch the whole range before applying the limit (etcd's client drops it too).
        sort_order = SortOrder.NONE
    return rpc_pb2.RangeRequest(
        key=k,
        range_end=end,
        limit=limit,
        revision=revision,
        sort_order=int(sort_order),  # type: ignore[arg-type]
        sort_target=int(sort_target),  # type: ignore[arg-type]
        serializable=serializable,
        keys_only=keys_only,
        count_only=count_only,
        min_mod_revision=min_mod_revision,
        max_mod_revision=max_mod_revision,
        min_create_revision=min_create_revision,
        max_create_revision=max_create_revision,
    )


def put_request(
    key: Key,
    value: Key = b"",
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> rpc_pb2.PutRequest:
    """A PutRequest storing `value` under `key` (optionally attached to `lease`)."""
    return rpc_pb2.PutRequest(
        key=to_bytes(key),
        value=to_bytes(value),
        lease=lease,
        prev_kv=prev_kv,
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )


def delete_request(
    key: Key,
    range_end: Key | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    prev_kv: bool = False,
) -> rpc_pb2.DeleteRangeRequest:
    """A DeleteRangeRequest; the range options are those of `range_request`."""
    k, end = _key_range(key, range_end, prefix, from_key)
    return rpc_pb2.DeleteRangeRequest(key=k, range_end=end, prev_kv=prev_kv)
