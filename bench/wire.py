"""Pre-serialized etcd request bytes, so the load generator spends no time in protobuf per call.

Every key the bench sends has the same length, so a request is serialized once with a placeholder
key and later requests are ``head + key + tail``: the length prefixes around the key never change.
Fields appended after the template (a lease ID) are legal because protobuf parses fields in any
order.
"""

from __future__ import annotations

from wardpb.etcdserverpb import rpc_pb2

KEY_SIZE = 8
MAX_KEY_SPACE = 10**KEY_SIZE

# Full method names, as the generated stubs spell them.
KV_RANGE = "/etcdserverpb.KV/Range"
KV_PUT = "/etcdserverpb.KV/Put"
KV_TXN = "/etcdserverpb.KV/Txn"
LEASE_GRANT = "/etcdserverpb.Lease/LeaseGrant"
WATCH = "/etcdserverpb.Watch/Watch"
AUTHENTICATE = "/etcdserverpb.Auth/Authenticate"

# Bytes no bench key contains (keys are ASCII); a template's key is a prefix of them.
_PLACEHOLDER = bytes(range(0xFF, 0xDF, -1))


def key_bytes(index: int, prefix: bytes = b"") -> bytes:
    """Key number ``index``: ``prefix`` then ``KEY_SIZE`` bytes of zero-padded decimal."""
    return prefix + b"%08d" % index


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (or a negative int64 as two's complement)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


class KeyedTemplate:
    """A serialized message with a fixed-size key slot; ``render(key)`` fills the slot."""

    __slots__ = ("_head", "_key_size", "_tail")

    def __init__(self, serialized_with_placeholder: bytes, key_size: int = KEY_SIZE) -> None:
        placeholder = _PLACEHOLDER[:key_size]
        if serialized_with_placeholder.count(placeholder) != 1:
            raise ValueError("template must contain the key placeholder exactly once")
        self._head, self._tail = serialized_with_placeholder.split(placeholder)
        self._key_size = key_size

    def render(self, key: bytes) -> bytes:
        """The request for ``key``, which must be exactly as long as the placeholder."""
        if len(key) != self._key_size:
            raise ValueError(f"key must be {self._key_size} bytes, got {len(key)}")
        return self._head + key + self._tail


def _placeholder(key_size: int) -> bytes:
    if not 1 <= key_size <= len(_PLACEHOLDER):
        raise ValueError(f"key size must be 1..{len(_PLACEHOLDER)}")
    return _PLACEHOLDER[:key_size]


def put_template(value: bytes, key_size: int = KEY_SIZE) -> KeyedTemplate:
    """``PutRequest{key, value}``."""
    msg = rpc_pb2.PutRequest(key=_placeholder(key_size), value=value)
    return KeyedTemplate(msg.SerializeToString(), key_size)


def range_template(*, serializable: bool, key_size: int = KEY_SIZE) -> KeyedTemplate:
    """``RangeRequest`` for one key, linearizable unless ``serializable``."""
    msg = rpc_pb2.RangeRequest(key=_placeholder(key_size), serializable=serializable)
    return KeyedTemplate(msg.SerializeToString(), key_size)


def txn_put_template(value: bytes, key_size: int = KEY_SIZE) -> KeyedTemplate:
    """``TxnRequest`` with no compares and one Put in ``success``."""
    put = rpc_pb2.PutRequest(key=_placeholder(key_size), value=value)
    msg = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=put)])
    return KeyedTemplate(msg.SerializeToString(), key_size)


def with_lease(put_request: bytes, lease_id: int) -> bytes:
    """A serialized ``PutRequest`` with its ``lease`` field (3, varint) set."""
    return put_request + b"\x18" + varint(lease_id)


def lease_grant(ttl: int) -> bytes:
    """``LeaseGrantRequest{TTL}``; the server picks the ID."""
    return rpc_pb2.LeaseGrantRequest(TTL=ttl).SerializeToString()


def lease_id(lease_grant_response: bytes) -> int:
    """The ID in a serialized ``LeaseGrantResponse``."""
    return rpc_pb2.LeaseGrantResponse.FromString(lease_grant_response).ID


def header_revision(put_response: bytes) -> int:
    """``header.revision`` of a serialized ``PutResponse``."""
    return rpc_pb2.PutResponse.FromString(put_response).header.revision


def multi_put_txn(template: KeyedTemplate, keys: list[bytes]) -> bytes:
    """``TxnRequest`` with one Put per key in ``success`` (built by concatenating RequestOps)."""
    # TxnRequest.success is field 2; RequestOp.request_put is field 2.
    return b"".join(length_delimited(2, length_delimited(2, template.render(k))) for k in keys)


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key with this prefix"."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


def watch_create(prefix: bytes) -> bytes:
    """``WatchRequest{create_request{key: prefix, range_end: prefix_end(prefix)}}``."""
    create = rpc_pb2.WatchCreateRequest(key=prefix, range_end=prefix_end(prefix))
    return rpc_pb2.WatchRequest(create_request=create).SerializeToString()


def authenticate(name: str, password: str) -> bytes:
    """``AuthenticateRequest``."""
    return rpc_pb2.AuthenticateRequest(name=name, password=password).SerializeToString()
