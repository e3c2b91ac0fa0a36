"""Slow-request log lines: a warning per request slower than the expected duration.

The expected duration is `--experimental-warning-apply-duration` (etcd's, default 100 ms).

As etcd 3.4, with its message and fields ("apply request took too long": took, expected-duration,
prefix, request, response, error), so that what operators grep for and alert on carries over:

- every applied entry whose apply took longer, on every member (prefix ""), from the driver;
- every Range and read-only Txn whose serving took longer (prefixes "read-only range " and
  "read-only txn "), in the process that served it, linearizable wait included, as etcd times
  them.

Ward adds one line etcd 3.4 has no counterpart for: any other unary call that took longer as a
whole ("request took too long": Raft replication, fsync, password hashing included), logged by
the process that received it; Lock and Campaign, which wait by design, are left out. etcd
times Authenticate and user changes through their Raft entries; Ward checks passwords and hashes
them before proposing, so only this line sees them.

The request summary is etcd's compact text form, redacted: a put's value (and any bytes that are
not a key or range) is shown as its size, and any field whose name says password, token or
secret is shown as ``[redacted]``, never its content (etcd 3.4 printed Authenticate's token).

The cost on the request path is two clock reads and a comparison; decoding and formatting happen
only for a request already known to be slow.
"""

from __future__ import annotations

import logging
from typing import Any

from google.protobuf import descriptor_pool, message_factory, text_encoding
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2

log = logging.getLogger("ward.slow")

DEFAULT_THRESHOLD_S = 0.1  # etcd's DefaultWarningApplyDuration
# A summary is cut past this many characters (a txn of 128 puts would fill a screen).
MAX_SUMMARY_CHARS = 4096
REDACTED = "[redacted]"
# Bytes fields shown as they are: keys and ranges (everything else is shown as its size).
_SHOWN_BYTES = frozenset({"key", "range_end", "prefix", "name"})
# A string field whose name contains one of these is never shown.
_SECRET_WORDS = ("password", "token", "secret")

_APPLY_MSG = "apply request took too long"
_REQUEST_MSG = "request took too long"
# Calls that wait by design (for the lock, for leadership): their duration says nothing about
# the member. The writes they make are timed where they apply.
_WAITING_CALLS = frozenset({("v3lockpb.Lock", "Lock"), ("v3electionpb.Election", "Campaign")})


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String`` spells it ("132.622µs", "1.5s", "1m2s"),
    the form etcd's zap logger writes durations in."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_decimal(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_decimal(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return f"{sign}{out}{_decimal(rest, 1_000_000_000)}s"


def _decimal(n: int, unit: int) -> str:
    whole, frac = divmod(n, unit)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(w in lowered for w in _SECRET_WORDS)


def summarize(msg: Message) -> str:
    """``msg`` in compact text form (set fields only), redacted as the module docstring says."""
    text = _render(msg)
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[:MAX_SUMMARY_CHARS] + "...(truncated)"
    return text


def _render(msg: Message) -> str:
    parts: list[str] = []
    for fd, value in msg.ListFields():
        for v in value if fd.is_repeated else (value,):
            parts.append(_field(fd, v))
    return " ".join(parts)


def _field(fd: FieldDescriptor, v: Any) -> str:
    name, t = fd.name, fd.type
    if _secret(name):
        return f"{name}:{REDACTED}"
    if t == FieldDescriptor.TYPE_MESSAGE:
        return f"{name}:<{_render(v)}>"
    if t == FieldDescriptor.TYPE_BYTES:
        if name in _SHOWN_BYTES:
            return f'{name}:"{text_encoding.CEscape(v, as_utf8=False)}"'
        return f"{name}_size:{len(v)}"
    if t == FieldDescriptor.TYPE_STRING:
        return f'{name}:"{text_encoding.CEscape(v.encode(), as_utf8=True)}"'
    if t == FieldDescriptor.TYPE_ENUM:
        value = fd.enum_type.values_by_number.get(v)
        return f"{name}:{value.name if value is not None else v}"
    if t == FieldDescriptor.TYPE_BOOL:
        return f"{name}:{'true' if v else 'false'}"
    return f"{name}:{v}"


def entry_summary(data: bytes) -> tuple[str, str]:
    """The kind (Entry oneof name) and redacted summary of a `wardpeerpb.Entry`."""
    try:
        entry = peer_pb2.Entry.FromString(data)
    except DecodeError:
        return "", ""
    return entry.WhichOneof("request") or "", summarize(entry)


def _method_types(service: str, method: str) -> tuple[type[Message], type[Message]] | None:
    try:
        desc = descriptor_pool.Default().FindServiceByName(service).methods_by_name[method]
    except KeyError:
        return None
    get = message_factory.GetMessageClass
    return get(desc.input_type), get(desc.output_type)


def _txn_read_only(r: rpc_pb2.TxnRequest) -> bool:
    """etcd's isTxnReadonly: every op of both branches is a range (a nested txn is not)."""
    return all(op.HasField("request_range") for op in (*r.success, *r.failure))


class SlowLog:
    """The threshold of this process and the lines it writes (one instance: `SLOW`)."""

    __slots__ = ("threshold",)

    def __init__(self, threshold: float = DEFAULT_THRESHOLD_S) -> None:
        # Seconds; the request path compares against it directly.
        self.threshold = threshold

    def configure(self, threshold: float) -> None:
        """Set from `--experimental-warning-apply-duration` in every serving process."""
        self.threshold = threshold

    def applied(self, data: bytes, response: bytes | None, error: str, took: float) -> None:
        """An entry whose apply took `took` seconds (the caller checked it is over)."""
        kind, request = entry_summary(data)
        self._warn(
            _APPLY_MSG,
            took,
            prefix="",
            method=kind,
            request=request,
            response="" if response is None else f"size:{len(response)}",
            error=error,
        )

    def served(
        self,
        service: str,
        method: str,
        request: bytes,
        response: bytes | None,
        error: str,
        took: float,
        remote: str,
    ) -> None:
        """A unary call that took `took` seconds as a whole (the caller checked it is over)."""
        if (service, method) in _WAITING_CALLS:
            return
        types = _method_types(service, method)
        req: Message | None = None
        if types is not None:
            try:
                req = types[0].FromString(request)
            except DecodeError:
                req = None
        msg, prefix, resp = _REQUEST_MSG, "", ""
        if response is not None:
            resp = f"size:{len(response)}"
        if service == "etcdserverpb.KV" and method == "Range":
            msg, prefix = _APPLY_MSG, "read-only range "
            if response is not None:
                r = rpc_pb2.RangeResponse.FromString(response)
                resp = f"range_response_count:{len(r.kvs)} size:{len(response)}"
        elif (
            service == "etcdserverpb.KV"
            and method == "Txn"
            and isinstance(req, rpc_pb2.TxnRequest)
            and _txn_read_only(req)
        ):
            msg, prefix = _APPLY_MSG, "read-only txn "
            if response is not None:
                t = rpc_pb2.TxnResponse.FromString(response)
                counts = " ".join(
                    f"range_response_count:{len(op.response_range.kvs)}" for op in t.responses
                )
                resp = f"responses:<{counts}> size:{len(response)}"
        self._warn(
            msg,
            took,
            prefix=prefix,
            method=f"/{service}/{method}",
            request="" if req is None else summarize(req),
            response=resp,
            error=error,
            remote=remote,
        )

    def _warn(self, msg: str, took: float, **fields: str) -> None:
        extra: dict[str, str] = {
            "took": go_duration(took),
            "expected-duration": go_duration(self.threshold),
        }
        for k, v in fields.items():
            if v or k in ("prefix", "request", "response"):  # etcd's fields are always there
                extra[k] = v
        log.warning(msg, extra=extra)


# This process's slow-request log; the RPC layer and the driver read `SLOW.threshold`.
SLOW = SlowLog()
