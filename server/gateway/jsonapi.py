"""etcd's JSON gateway (grpc-gateway v1 under etcd 3.4): `/v3/...` paths onto the servicers.

A request is decoded from JSON into the protobuf request (proto3 JSON: base64 bytes, 64-bit
integers as strings or numbers, enums by name or number, original or camelCase field names),
handed as bytes to the same handler gRPC calls, and its answer encoded back as etcd's gateway
encodes it: original field names, 64-bit integers as strings, default values left out. Errors
are grpc-gateway's JSON bodies with its HTTP status for each gRPC code.
"""

from __future__ import annotations

import asyncio
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import DecodeError, Message

from server.api.rpc import SERVICES, CallInfo, decode_error, serving
from server.errors import EtcdError, grpc_too_large

# grpc-gateway v1's runtime.HTTPStatusFromCode (the version etcd 3.4 vendors).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 408,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# etcd 3.4's `google.api.http` annotations (api/etcdserverpb/rpc.proto, v3lock, v3election).
_PATHS: dict[str, tuple[str, ...]] = {
    "etcdserverpb.KV/Range": ("/v3/kv/range",),
    "etcdserverpb.KV/Put": ("/v3/kv/put",),
    "etcdserverpb.KV/DeleteRange": ("/v3/kv/deleterange",),
    "etcdserverpb.KV/Txn": ("/v3/kv/txn",),
    "etcdserverpb.KV/Compact": ("/v3/kv/compaction",),
    "etcdserverpb.Watch/Watch": ("/v3/watch",),
    "etcdserverpb.Lease/LeaseGrant": ("/v3/lease/grant",),
    "etcdserverpb.Lease/LeaseRevoke": ("/v3/lease/revoke", "/v3/kv/lease/revoke"),
    "etcdserverpb.Lease/LeaseKeepAlive": ("/v3/lease/keepalive",),
    "etcdserverpb.Lease/LeaseTimeToLive": ("/v3/lease/timetolive", "/v3/kv/lease/timetolive"),
    "etcdserverpb.Lease/LeaseLeases": ("/v3/lease/leases", "/v3/kv/lease/leases"),
    "etcdserverpb.Cluster/MemberAdd": ("/v3/cluster/member/add",),
    "etcdserverpb.Cluster/MemberRemove": ("/v3/cluster/member/remove",),
    "etcdserverpb.Cluster/MemberUpdate": ("/v3/cluster/member/update",),
    "etcdserverpb.Cluster/MemberList": ("/v3/cluster/member/list",),
    "etcdserverpb.Cluster/MemberPromote": ("/v3/cluster/member/promote",),
    "etcdserverpb.Maintenance/Alarm": ("/v3/maintenance/alarm",),
    "etcdserverpb.Maintenance/Status": ("/v3/maintenance/status",),
    "etcdserverpb.Maintenance/Defragment": ("/v3/maintenance/defragment",),
    # etcd 3.4 annotates Hash and HashKV with the same path; its gateway answers with Hash.
    "etcdserverpb.Maintenance/Hash": ("/v3/maintenance/hash",),
    "etcdserverpb.Maintenance/Snapshot": ("/v3/maintenance/snapshot",),
    "etcdserverpb.Maintenance/MoveLeader": ("/v3/maintenance/transfer-leadership",),
    "etcdserverpb.Auth/AuthEnable": ("/v3/auth/enable",),
    "etcdserverpb.Auth/AuthDisable": ("/v3/auth/disable",),
    "etcdserverpb.Auth/Authenticate": ("/v3/auth/authenticate",),
    "etcdserverpb.Auth/UserAdd": ("/v3/auth/user/add",),
    "etcdserverpb.Auth/UserGet": ("/v3/auth/user/get",),
    "etcdserverpb.Auth/UserList": ("/v3/auth/user/list",),
    "etcdserverpb.Auth/UserDelete": ("/v3/auth/user/delete",),
    "etcdserverpb.Auth/UserChangePassword": ("/v3/auth/user/changepw",),
    "etcdserverpb.Auth/UserGrantRole": ("/v3/auth/user/grant",),
    "etcdserverpb.Auth/UserRevokeRole": ("/v3/auth/user/revoke",),
    "etcdserverpb.Auth/RoleAdd": ("/v3/auth/role/add",),
    "etcdserverpb.Auth/RoleGet": ("/v3/auth/role/get",),
    "etcdserverpb.Auth/RoleList": ("/v3/auth/role/list",),
    "etcdserverpb.Auth/RoleDelete": ("/v3/auth/role/delete",),
    "etcdserverpb.Auth/RoleGrantPermission": ("/v3/auth/role/grant",),
    "etcdserverpb.Auth/RoleRevokePermission": ("/v3/auth/role/revoke",),
    "v3lockpb.Lock/Lock": ("/v3/lock/lock",),
    "v3lockpb.Lock/Unlock": ("/v3/lock/unlock",),
    "v3electionpb.Election/Campaign": ("/v3/election/campaign",),
    "v3electionpb.Election/Proclaim": ("/v3/election/proclaim",),
    "v3electionpb.Election/Leader": ("/v3/election/leader",),
    "v3electionpb.Election/Observe": ("/v3/election/observe",),
    "v3electionpb.Election/Resign": ("/v3/election/resign",),
}
# etcd 3.4 also serves the API under its pre-3.4 prefix.
_ALIASES = ("/v3beta/",)


@dataclass(frozen=True, slots=True)
class Route:
    service: str
    method: str
    request: type[Message]
    response: type[Message]
    client_streaming: bool
    server_streaming: bool


def _routes() -> dict[str, Route]:
    out: dict[str, Route] = {}
    for full, paths in _PATHS.items():
        service, method = full.split("/")
        m = SERVICES[service].methods_by_name[method]
        route = Route(
            service,
            method,
            message_factory.GetMessageClass(m.input_type),
            message_factory.GetMessageClass(m.output_type),
            m.client_streaming,
            m.server_streaming,
        )
        for p in paths:
            out[p] = route
            for alias in _ALIASES:
                out[alias + p.removeprefix("/v3/")] = route
    return out


ROUTES = _routes()
# The services a route may name, each method's handler: raw request in, raw response out.
Impls = Mapping[str, Mapping[str, Callable[..., Any]]]


def error_body(code: grpc.StatusCode, message: str) -> bytes:
    """grpc-gateway v1's error body, in the order etcd 3.4 writes its fields."""
    return json.dumps(
        {"error": message, "message": message, "code": code.value[0]}, separators=(",", ":")
    ).encode()


def stream_error(code: grpc.StatusCode, message: str) -> bytes:
    """grpc-gateway v1's error line inside a streamed answer."""
    status = HTTP_STATUS.get(code, 500)
    from server.gateway.http import REASONS

    err = {
        "grpc_code": code.value[0],
        "http_code": status,
        "message": message,
        "http_status": REASONS.get(status, ""),
    }
    return json.dumps({"error": err}, separators=(",", ":")).encode() + b"\n"


def to_json(msg: Message) -> bytes:
    value = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


_GO_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "bool"}
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _check_base64(value: object, desc: Any) -> None:
    """Go's encoding/json decodes bytes with strict standard base64 (padding required);
    protobuf's Python parser is lenient and would turn "!!" into an empty key."""
    if not isinstance(value, dict):
        return
    for name, v in value.items():
        f = desc.fields_by_name.get(name) or next(
            (x for x in desc.fields if x.json_name == name), None
        )
        if f is None or v is None:
            continue
        items = v if isinstance(v, list) else [v]
        if f.type == f.TYPE_BYTES:
            for item in items:
                if isinstance(item, str):
                    _strict_b64(item)
        elif f.type == f.TYPE_MESSAGE and f.message_type.GetOptions().map_entry is False:
            for item in items:
                _check_base64(item, f.message_type)


def _strict_b64(text: str) -> None:
    raw = text.encode("utf-8", "replace")
    bad = next((i for i, c in enumerate(raw) if c not in _B64 and c not in b"\r\n"), None)
    if bad is None:
        try:
            binascii.a2b_base64(raw.replace(b"\r", b"").replace(b"\n", b""), strict_mode=True)
            return
        except binascii.Error:
            bad = max(0, len(raw) - 1)
    raise EtcdError(grpc.StatusCode.INVALID_ARGUMENT, f"illegal base64 data at input byte {bad}")


def parse_messages(body: bytes, cls: type[Message], *, many: bool) -> list[Message]:
    """The request message(s) in a body: one JSON object, or for a client stream a sequence
    of them (grpc-gateway reads a bidi body with a streaming JSON decoder). An empty body is
    the empty request, as in grpc-gateway. Raises EtcdError(InvalidArgument) for anything else.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EtcdError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid UTF-8: {e.reason}") from None
    decoder = json.JSONDecoder()
    out: list[Message] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as e:
            raise EtcdError(grpc.StatusCode.INVALID_ARGUMENT, _json_error(e)) from None
        out.append(_message(value, cls))
        if not many:
            # grpc-gateway decodes one value and ignores what follows it.
            break
    return out or [cls()]


def _json_error(e: Exception) -> str:
    """Go's encoding/json wording: truncated input is "unexpected EOF"."""
    if isinstance(e, json.JSONDecodeError):
        rest = e.doc[e.pos :].strip()
        if not rest or e.msg.startswith("Unterminated") or e.pos >= len(e.doc.rstrip()):
            return "unexpected EOF"
        return f"invalid character {rest[0]!r} looking for beginning of value"
    return "exceeded max depth"


def _message(value: object, cls: type[Message]) -> Message:
    msg = cls()
    if value is None:
        return msg  # JSON null decodes to the empty message in jsonpb
    if not isinstance(value, dict):
        raise EtcdError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"json: cannot unmarshal {_GO_TYPES.get(type(value), 'value')} into Go value of "
            "type map[string]json.RawMessage",
        )
    _check_base64(value, cls.DESCRIPTOR)
    # etcd's gateway ignores fields it does not know (older and newer clients mix).
    try:
        json_format.ParseDict(value, msg, ignore_unknown_fields=True)
    except (
        json_format.ParseError,
        binascii.Error,
        ValueError,
        TypeError,
        RecursionError,
        AttributeError,
    ) as e:
        raise EtcdError(grpc.StatusCode.INVALID_ARGUMENT, str(e) or type(e).__name__) from None
    return msg


class JSONGateway:
    """Answers one gateway request with the servicers of this process."""

    def __init__(self, impls: Impls, *, max_request_bytes: int) -> None:
        self._impls = impls
        self._limit = max_request_bytes

    def route(self, path: str) -> Route | None:
        return ROUTES.get(path)

    async def unary(self, route: Route, body: bytes, info: CallInfo) -> tuple[int, bytes]:
        """(HTTP status, JSON body) of a unary call."""
        self._serving(route, info)
        try:
            fn = self._handler(route)
            (req,) = parse_messages(body, route.request, many=False)
            raw = req.SerializeToString()
            if len(raw) > self._limit:
                raise grpc_too_large(len(raw), self._limit)
            out = await fn(raw, info)
            return 200, to_json(route.response.FromString(out))
        except EtcdError as e:
            return HTTP_STATUS.get(e.code, 500), error_body(e.code, e.message)
        except DecodeError as e:
            err = decode_error(e)
            return HTTP_STATUS[err.code], error_body(err.code, err.message)

    def stream(
        self, route: Route, body: bytes, info: CallInfo, gone: asyncio.Event
    ) -> tuple[int, bytes, AsyncIterator[bytes] | None]:
        """A streaming call: (status, error body, None) when the request is refused at once,
        else (200, b"", the answer lines `{"result":...}`)."""
        self._serving(route, info)
        try:
            fn = self._handler(route)
            msgs = parse_messages(body, route.request, many=route.client_streaming)
            raws = [m.SerializeToString() for m in msgs]
            for raw in raws:
                if len(raw) > self._limit:
                    raise grpc_too_large(len(raw), self._limit)
        except EtcdError as e:
            return HTTP_STATUS.get(e.code, 500), error_body(e.code, e.message), None
        # etcd's watch stream outlives the end of the request body (its receive loop ends,
        # the watches go on) until the client leaves; a keep-alive stream ends with its input.
        hold = route.method == "Watch"

        async def requests() -> AsyncIterator[bytes]:
            for raw in raws:
                yield raw
            if hold:
                await gone.wait()

        async def lines() -> AsyncIterator[bytes]:
            try:
                it = fn(requests(), info) if route.client_streaming else fn(raws[0], info)
                async for chunk in it:
                    msg = route.response.FromString(chunk)
                    yield b'{"result":' + to_json(msg) + b"}\n"
            except EtcdError as e:
                yield stream_error(e.code, e.message)
            except DecodeError as e:
                err = decode_error(e)
                yield stream_error(err.code, err.message)

        return 200, b"", lines()

    @staticmethod
    def _serving(route: Route, info: CallInfo) -> None:
        """Name the call as gRPC would, and make it the task's (the audit log reads both)."""
        info.method = f"/{route.service}/{route.method}"
        serving(info)

    def _handler(self, route: Route) -> Callable[..., Any]:
        fn = self._impls.get(route.service, {}).get(route.method)
        if fn is None:
            raise EtcdError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"unknown method {route.method} for service {route.service}",
            )
        return fn


Unary = Callable[[bytes, CallInfo], Awaitable[bytes]]
