"""etcdctl 3.4's printers, one per --write-out format: simple, fields, json, protobuf, table.

Each prints a response exactly as etcdctl does. Whatever a format cannot show ends the command
with etcdctl's exit code 4 ("table not supported as output format"), after the request ran, as
in etcdctl.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ward.cli.exits import EXIT_BAD_FEATURE, CliExit
from ward.cli.gofmt import humanize_bytes, json_string, quote_bytes
from ward.cli.table import render_table
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2

__all__ = ["EpHashKV", "EpHealth", "EpStatus", "Printer", "go_json", "new_printer"]


@dataclass(frozen=True)
class EpStatus:
    """One endpoint's status, as `endpoint status` collects it."""

    endpoint: str
    resp: rpc_pb2.StatusResponse


@dataclass(frozen=True)
class EpHealth:
    """One endpoint's health check result."""

    endpoint: str
    health: bool
    took: str
    error: str = ""


@dataclass(frozen=True)
class EpHashKV:
    """One endpoint's keyspace hash."""

    endpoint: str
    resp: rpc_pb2.HashKVResponse


# Fields etcd 3.4 does not know. Its etcdctl drops them when decoding, so they never show in
# its json or protobuf output; ours drops them too, to print the same for the same server.
_NEWER_FIELDS: dict[str, set[str]] = {
    "etcdserverpb.StatusResponse": {"storageVersion", "dbSizeQuota", "downgradeInfo"},
    "etcdserverpb.HashKVResponse": {"hash_revision"},
}


def _as_etcd34(msg: Message) -> Message:
    copy = type(msg)()
    copy.CopyFrom(msg)
    copy.DiscardUnknownFields()
    _clear_newer(copy)
    return copy


def _clear_newer(msg: Message) -> None:
    for name in _NEWER_FIELDS.get(msg.DESCRIPTOR.full_name, ()):
        msg.ClearField(name)
    for fd, value in msg.ListFields():
        if fd.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if fd.is_repeated:
            for item in value:
                _clear_newer(item)
        else:
            _clear_newer(value)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _json_scalar(fd: FieldDescriptor, value: object) -> str:
    if fd.type == FieldDescriptor.TYPE_BYTES:
        assert isinstance(value, bytes)
        return '"' + base64.b64encode(value).decode() + '"'
    if fd.type == FieldDescriptor.TYPE_STRING:
        assert isinstance(value, str)
        return json_string(value.encode("utf-8", "surrogateescape"))
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        assert isinstance(value, Message)
        return go_json(value)
    return str(int(value))  # type: ignore[call-overload]


def _json_value(fd: FieldDescriptor, value: object) -> str:
    if fd.is_repeated:
        return "[" + ",".join(_json_scalar(fd, v) for v in value) + "]"  # type: ignore[attr-defined]
    return _json_scalar(fd, value)


def go_json(msg: Message) -> str:
    """A message as Go's encoding/json encodes etcd's gogo-generated structs: fields in
    declaration order under their proto names, zero values omitted, bytes in base64, a oneof as
    {"Oneof": {"MemberName": ...}}."""
    parts: list[str] = []
    done_oneofs: set[str] = set()
    for fd in msg.DESCRIPTOR.fields:
        oneof = fd.containing_oneof
        if oneof is not None:
            if oneof.name in done_oneofs:
                continue
            done_oneofs.add(oneof.name)
            member = msg.WhichOneof(oneof.name)
            if member is None:
                parts.append(f'"{_camel(oneof.name)}":null')
                continue
            member_fd = msg.DESCRIPTOR.fields_by_name[member]
            inner = _json_value(member_fd, getattr(msg, member))
            parts.append(f'"{_camel(oneof.name)}":{{"{_camel(member)}":{inner}}}')
            continue
        value = getattr(msg, fd.name)
        if fd.is_repeated:
            if not len(value):
                continue
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            if not msg.HasField(fd.name):
                continue
        elif not value:
            continue
        parts.append(f'"{fd.name}":{_json_value(fd, value)}')
    return "{" + ",".join(parts) + "}"


def _status_row(st: EpStatus) -> list[str]:
    r = st.resp
    return [
        st.endpoint,
        f"{r.header.member_id:x}",
        r.version,
        humanize_bytes(r.dbSize),
        _go_bool(r.leader == r.header.member_id),
        _go_bool(r.isLearner),
        str(r.raftTerm),
        str(r.raftIndex),
        str(r.raftAppliedIndex),
        ", ".join(r.errors),
    ]


_STATUS_HEADER = [
    "endpoint",
    "ID",
    "version",
    "db size",
    "is leader",
    "is learner",
    "raft term",
    "raft index",
    "raft applied index",
    "errors",
]


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


def _alarm_text(member: rpc_pb2.AlarmMember) -> str:
    # "%+v" of an AlarmMember: gogo's compact text format, zero fields left out.
    text = ""
    if member.memberID:
        text += f"memberID:{member.memberID} "
    if member.alarm:
        text += f"alarm:{rpc_pb2.AlarmType.Name(member.alarm)} "
    return text


class Printer:
    """Prints responses in one output format; the base refuses everything."""

    format_name = ""

    def __init__(self, out: IO[bytes], err: IO[bytes], *, hex_mode: bool = False) -> None:
        self.out = out
        self.err = err
        self.hex_mode = hex_mode
        self.value_only = False

    def _unsupported(self) -> CliExit:
        return CliExit(EXIT_BAD_FEATURE, f"{self.format_name} not supported as output format")

    def _line(self, text: str | bytes = b"") -> None:
        data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
        self.out.write(data + b"\n")

    def get(self, resp: rpc_pb2.RangeResponse) -> None:
        """Print a range response."""
        raise self._unsupported()

    def put(self, resp: rpc_pb2.PutResponse) -> None:
        """Print a put response."""
        raise self._unsupported()

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> None:
        """Print a delete response."""
        raise self._unsupported()

    def txn(self, resp: rpc_pb2.TxnResponse) -> None:
        """Print a txn response."""
        raise self._unsupported()

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> None:
        """Print an alarm list or disarm response."""
        raise self._unsupported()

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> None:
        """Print `endpoint status` results."""
        raise self._unsupported()

    def endpoint_health(self, healths: Sequence[EpHealth]) -> None:
        """Print `endpoint health` results."""
        raise self._unsupported()

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> None:
        """Print `endpoint hashkv` results."""
        raise self._unsupported()


class SimplePrinter(Printer):
    """The default format: keys and values on their own lines."""

    format_name = "simple"

    def _kv(self, kv: kv_pb2.KeyValue) -> None:
        key, value = kv.key, kv.value
        if self.hex_mode:
            key = "".join(f"\\x{b:02x}" for b in key).encode()
            value = "".join(f"\\x{b:02x}" for b in value).encode()
        if not self.value_only:
            self._line(key)
        self._line(value)

    def get(self, resp: rpc_pb2.RangeResponse) -> None:
        for kv in resp.kvs:
            self._kv(kv)

    def put(self, resp: rpc_pb2.PutResponse) -> None:
        self._line("OK")
        if resp.HasField("prev_kv"):
            self._kv(resp.prev_kv)

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> None:
        self._line(str(resp.deleted))
        for kv in resp.prev_kvs:
            self._kv(kv)

    def txn(self, resp: rpc_pb2.TxnResponse) -> None:
        self._line("SUCCESS" if resp.succeeded else "FAILURE")
        for op in resp.responses:
            self._line()
            kind = op.WhichOneof("response")
            if kind == "response_delete_range":
                self.delete(op.response_delete_range)
            elif kind == "response_put":
                self.put(op.response_put)
            elif kind == "response_range":
                self.get(op.response_range)
            else:
                self._line(
                    "unexpected response " + text_format.MessageToString(op, as_one_line=True)
                )

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> None:
        for member in resp.alarms:
            self._line(_alarm_text(member))

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> None:
        for st in statuses:
            self._line(", ".join(_status_row(st)))

    def endpoint_health(self, healths: Sequence[EpHealth]) -> None:
        # etcdctl 3.4 reports health on stderr, healthy or not.
        for h in healths:
            if not h.error:
                line = f"{h.endpoint} is healthy: successfully committed proposal: took = {h.took}"
            else:
                line = f"{h.endpoint} is unhealthy: failed to commit proposal: {h.error}"
            self.err.write(line.encode("utf-8", "surrogateescape") + b"\n")

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> None:
        for h in hashes:
            self._line(f"{h.endpoint}, {h.resp.hash}")


class FieldsPrinter(Printer):
    """`"Field" : value` lines, for scripts."""

    format_name = "fields"

    def _hdr(self, header: rpc_pb2.ResponseHeader) -> None:
        self._line(f'"ClusterID" : {header.cluster_id}')
        self._line(f'"MemberID" : {header.member_id}')
        self._line(f'"Revision" : {header.revision}')
        self._line(f'"RaftTerm" : {header.raft_term}')

    def _kv(self, prefix: str, kv: kv_pb2.KeyValue) -> None:
        self._line(f'"{prefix}Key" : {quote_bytes(kv.key)}')
        self._line(f'"{prefix}CreateRevision" : {kv.create_revision}')
        self._line(f'"{prefix}ModRevision" : {kv.mod_revision}')
        self._line(f'"{prefix}Version" : {kv.version}')
        self._line(f'"{prefix}Value" : {quote_bytes(kv.value)}')
        self._line(f'"{prefix}Lease" : {kv.lease}')

    def get(self, resp: rpc_pb2.RangeResponse) -> None:
        self._hdr(resp.header)
        for kv in resp.kvs:
            self._kv("", kv)
        self._line(f'"More" : {_go_bool(resp.more)}')
        self._line(f'"Count" : {resp.count}')

    def put(self, resp: rpc_pb2.PutResponse) -> None:
        self._hdr(resp.header)
        if resp.HasField("prev_kv"):
            self._kv("Prev", resp.prev_kv)

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> None:
        self._hdr(resp.header)
        self._line(f'"Deleted" : {resp.deleted}')
        for kv in resp.prev_kvs:
            self._kv("Prev", kv)

    def txn(self, resp: rpc_pb2.TxnResponse) -> None:
        self._hdr(resp.header)
        self._line(f'"Succeeded" : {_go_bool(resp.succeeded)}')
        for op in resp.responses:
            kind = op.WhichOneof("response")
            if kind == "response_delete_range":
                self.delete(op.response_delete_range)
            elif kind == "response_put":
                self.put(op.response_put)
            elif kind == "response_range":
                self.get(op.response_range)
            else:
                text = text_format.MessageToString(op, as_one_line=True)
                self._line(f'"Unknown" : {quote_bytes(text.encode())}')

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> None:
        # etcd sends alarm responses without a header, which etcdctl 3.4 dereferences and
        # crashes on; print the header only when there is one.
        if resp.HasField("header"):
            self._hdr(resp.header)
        for member in resp.alarms:
            self._line(f'"MemberID" : {member.memberID}')
            self._line(f'"AlarmType" : {rpc_pb2.AlarmType.Name(member.alarm)}')
            self._line()

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> None:
        for st in statuses:
            r = st.resp
            self._hdr(r.header)
            self._line(f'"Version" : {quote_bytes(r.version.encode())}')
            self._line(f'"DBSize" : {r.dbSize}')
            self._line(f'"Leader" : {r.leader}')
            self._line(f'"IsLearner" : {_go_bool(r.isLearner)}')
            self._line(f'"RaftIndex" : {r.raftIndex}')
            self._line(f'"RaftTerm" : {r.raftTerm}')
            self._line(f'"RaftAppliedIndex" : {r.raftAppliedIndex}')
            self._line(f'"Errors" : [{" ".join(r.errors)}]')
            self._line(f'"Endpoint" : {quote_bytes(st.endpoint.encode())}')
            self._line()

    def endpoint_health(self, healths: Sequence[EpHealth]) -> None:
        for h in healths:
            self._line(f'"Endpoint" : {quote_bytes(h.endpoint.encode())}')
            self._line(f'"Health" : {_go_bool(h.health)}')
            self._line(f'"Took" : {h.took}')
            self._line(f'"Error" : {h.error}')
            self._line()

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> None:
        for h in hashes:
            self._hdr(h.resp.header)
            self._line(f'"Endpoint" : {quote_bytes(h.endpoint.encode())}')
            self._line(f'"Hash" : {h.resp.hash}')
            self._line()


class _WholeMessagePrinter(Printer):
    """A printer that writes every response whole, each format with its own `_msg`."""

    def _msg(self, msg: Message) -> None:
        raise NotImplementedError

    def get(self, resp: rpc_pb2.RangeResponse) -> None:
        self._msg(resp)

    def put(self, resp: rpc_pb2.PutResponse) -> None:
        self._msg(resp)

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> None:
        self._msg(resp)

    def txn(self, resp: rpc_pb2.TxnResponse) -> None:
        self._msg(resp)

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> None:
        self._msg(resp)


class JSONPrinter(_WholeMessagePrinter):
    """One JSON document per response, as Go's encoding/json writes etcd's structs."""

    format_name = "json"

    def _msg(self, msg: Message) -> None:
        self._line(go_json(_as_etcd34(msg)))

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> None:
        items = [
            f'{{"Endpoint":{json_string(s.endpoint.encode())},"Status":{go_json(_as_etcd34(s.resp))}}}'
            for s in statuses
        ]
        self._line("[" + ",".join(items) + "]")

    def endpoint_health(self, healths: Sequence[EpHealth]) -> None:
        items = []
        for h in healths:
            item = (
                f'{{"endpoint":{json_string(h.endpoint.encode())},'
                f'"health":{_go_bool(h.health)},"took":{json_string(h.took.encode())}'
            )
            if h.error:
                item += f',"error":{json_string(h.error.encode())}'
            items.append(item + "}")
        self._line("[" + ",".join(items) + "]")

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> None:
        items = [
            f'{{"Endpoint":{json_string(h.endpoint.encode())},"HashKV":{go_json(_as_etcd34(h.resp))}}}'
            for h in hashes
        ]
        self._line("[" + ",".join(items) + "]")


class ProtobufPrinter(_WholeMessagePrinter):
    """The response's protobuf encoding, raw."""

    format_name = "protobuf"

    def _msg(self, msg: Message) -> None:
        self.out.write(_as_etcd34(msg).SerializeToString())


class TablePrinter(Printer):
    """ASCII tables, for the endpoint commands only."""

    format_name = "table"

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> None:
        self.out.write(render_table(_STATUS_HEADER, [_status_row(s) for s in statuses]).encode())

    def endpoint_health(self, healths: Sequence[EpHealth]) -> None:
        rows = [[h.endpoint, _go_bool(h.health), h.took, h.error] for h in healths]
        self.out.write(render_table(["endpoint", "health", "took", "error"], rows).encode())

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> None:
        rows = [[h.endpoint, str(h.resp.hash)] for h in hashes]
        self.out.write(render_table(["endpoint", "hash"], rows).encode())


_PRINTERS: dict[str, type[Printer]] = {
    "simple": SimplePrinter,
    "fields": FieldsPrinter,
    "json": JSONPrinter,
    "protobuf": ProtobufPrinter,
    "table": TablePrinter,
}


def new_printer(name: str, hex_mode: bool, out: IO[bytes], err: IO[bytes]) -> Printer | None:
    """The printer for a --write-out value, or None if etcdctl has no such format."""
    cls = _PRINTERS.get(name)
    return cls(out, err, hex_mode=hex_mode) if cls is not None else None
