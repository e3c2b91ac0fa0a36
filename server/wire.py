"""Protobuf wire encoding for the hot paths.

The MVCC store keeps each version as encoded `mvccpb.KeyValue` bytes, and responses are built by
concatenating already-encoded fields: a Range answer is the header plus the stored KeyValue bytes,
without building a Python message object per key. Field numbers are etcd's (rpc.proto, kv.proto);
tests decode these bytes with the generated classes to keep them honest.
"""

from __future__ import annotations


def varint(n: int) -> bytes:
    """Encode a protobuf varint; negative int64 values take ten bytes as in protobuf."""
    if n < 0x80:
        if n >= 0:
            return bytes((n,))
        n += 1 << 64
    elif n < 0x4000:  # tags, lengths and most counts: two bytes, without the loop
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_varint(num: int, n: int) -> bytes:
    """A varint field, omitted when zero (proto3)."""
    if not n:
        return b""
    return varint(num << 3) + varint(n)


def field_bytes(num: int, data: bytes) -> bytes:
    """A length-delimited field, omitted when empty (proto3)."""
    if not data:
        return b""
    return varint((num << 3) | 2) + varint(len(data)) + data


def field_message(num: int, data: bytes) -> bytes:
    """An embedded message field; present even when the message is empty."""
    return varint((num << 3) | 2) + varint(len(data)) + data


def field_bool(num: int, value: bool) -> bytes:
    return varint(num << 3) + b"\x01" if value else b""


def encode_kv(key: bytes, create: int, mod: int, version: int, value: bytes, lease: int) -> bytes:
    """An `mvccpb.KeyValue`."""
    return b"".join(
        (
            field_bytes(1, key),
            field_varint(2, create),
            field_varint(3, mod),
            field_varint(4, version),
            field_bytes(5, value),
            field_varint(6, lease),
        )
    )


def encode_header(cluster_id: int, member_id: int, revision: int, raft_term: int) -> bytes:
    """An `etcdserverpb.ResponseHeader`."""
    return (
        field_varint(1, cluster_id)
        + field_varint(2, member_id)
        + field_varint(3, revision)
        + field_varint(4, raft_term)
    )


def encode_range_response(header: bytes, kvs: list[bytes], *, more: bool, count: int) -> bytes:
    """An `etcdserverpb.RangeResponse` from encoded KeyValues."""
    parts = [field_message(1, header)]
    parts.extend(field_message(2, kv) for kv in kvs)
    parts.append(field_bool(3, more))
    parts.append(field_varint(4, count))
    return b"".join(parts)
