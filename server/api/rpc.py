"""The thin gRPC layer: raw request bytes in, raw response bytes out, one error mapping.

Handlers take the serialized request and return the serialized response, so a worker process can
forward a request to the core process without decoding it, and hot paths build responses from
stored bytes. Every `EtcdError` becomes a gRPC status here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from time import perf_counter

import grpc
from google.protobuf.message import DecodeError

from server.errors import EtcdError, grpc_too_large
from server.metrics import RPC, grpc_code_name
from server.slowlog import SLOW
from server.tls.guard import before_refusing_a_stream, cert_common_name
from wardpb.etcdserverpb import rpc_pb2
from wardpb.policypb import policy_pb2
from wardpb.v3electionpb import v3election_pb2
from wardpb.v3lockpb import v3lock_pb2

log = logging.getLogger("ward.rpc")


class CallInfo:
    """What a handler may know about the caller (filled by the RPC layer, never by clients).

    Read from the gRPC context only when a handler asks: most calls never need the peer
    address or the TLS identity, and reading them costs on every call.
    """

    __slots__ = ("_common_name", "_context", "_peer", "_token", "identity", "method", "trusted")

    def __init__(
        self,
        *,
        peer: str = "",
        token: str = "",
        common_name: str = "",
        context: grpc.aio.ServicerContext | None = None,
        trusted: bool = False,
        method: str = "",
    ) -> None:
        self._context = context
        # The gRPC method path ("/etcdserverpb.KV/Put"), for the audit log's "what".
        self.method = method
        # A call another member forwarded after checking its caller itself (leader-only calls):
        # it carries no caller of its own, and auth checks pass it.
        self.trusted = trusted
        self._peer: str | None = peer if context is None else None
        self._token: str | None = token if context is None else None
        self._common_name: str | None = common_name if context is None else None
        # Who the caller is, once resolved for this one unary call (server.tenancy sets it, so
        # the handler does not verify the token twice); None: not resolved. Never set on a
        # stream, whose checks must see each message's moment (token expiry, auth revision).
        self.identity: tuple[object] | None = None

    @property
    def peer(self) -> str:
        if self._peer is None:
            self._peer = self._context.peer() or ""  # type: ignore[union-attr]
        return self._peer

    @property
    def token(self) -> str:
        if self._token is None:
            token = ""
            for k, v in self._context.invocation_metadata() or ():  # type: ignore[union-attr]
                if k in ("token", "authorization"):
                    token = v if isinstance(v, str) else v.decode()
            self._token = token
        return self._token

    @property
    def common_name(self) -> str:
        """The caller's verified client-certificate CN when it names the caller, else ""
        (see ``server.tls.cert_common_name``)."""
        if self._common_name is None:
            self._common_name = cert_common_name(self._context) or ""
        return self._common_name


Unary = Callable[[bytes, CallInfo], Awaitable[bytes]]
# The listener's per-RPC transport checks (server.tls.CertGuard.check): the refusal, or None.
Guard = Callable[[grpc.aio.ServicerContext], EtcdError | None]
ServerStream = Callable[[bytes, CallInfo], AsyncIterator[bytes]]
BidiStream = Callable[[AsyncIterator[bytes], CallInfo], AsyncIterator[bytes]]

SERVICES = {
    "etcdserverpb.KV": rpc_pb2.DESCRIPTOR.services_by_name["KV"],
    "etcdserverpb.Watch": rpc_pb2.DESCRIPTOR.services_by_name["Watch"],
    "etcdserverpb.Lease": rpc_pb2.DESCRIPTOR.services_by_name["Lease"],
    "etcdserverpb.Cluster": rpc_pb2.DESCRIPTOR.services_by_name["Cluster"],
    "etcdserverpb.Maintenance": rpc_pb2.DESCRIPTOR.services_by_name["Maintenance"],
    "etcdserverpb.Auth": rpc_pb2.DESCRIPTOR.services_by_name["Auth"],
    "v3lockpb.Lock": v3lock_pb2.DESCRIPTOR.services_by_name["Lock"],
    "v3electionpb.Election": v3election_pb2.DESCRIPTOR.services_by_name["Election"],
    # Ward's own (tenants and policies); not part of etcd's API.
    "wardpolicypb.Policy": policy_pb2.DESCRIPTOR.services_by_name["Policy"],
}


# The call the current task serves. The audit log (server.access) records who was refused
# from deep inside permission checks that are not otherwise handed the call; every call runs in a
# task of its own (gRPC's, the worker link's, the gateway's), so the variable is the call's alone.
# Set once per call (one ContextVar.set); read only when a request is refused.
CURRENT_CALL: ContextVar[CallInfo | None] = ContextVar("ward_current_call", default=None)


def serving(call: CallInfo) -> CallInfo:
    """Make `call` the current task's call (see `CURRENT_CALL`); returns it."""
    CURRENT_CALL.set(call)
    return call


def call_info(context: grpc.aio.ServicerContext, method: str = "") -> CallInfo:
    return serving(CallInfo(context=context, method=method))


async def _abort(context: grpc.aio.ServicerContext, e: EtcdError) -> None:
    await context.abort(e.code, e.message)


def decode_error(e: DecodeError) -> EtcdError:
    """What grpc-go answers (under etcd) for bytes that are not the request message."""
    return EtcdError(grpc.StatusCode.INTERNAL, f"grpc: error unmarshalling request: {e}")


def _unary(
    fn: Unary, limit: int, guard: Guard | None, name: tuple[str, str]
) -> grpc.RpcMethodHandler:
    svc, method = name
    path = f"/{svc}/{method}"

    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if guard is not None and (refused := guard(context)) is not None:
            await _abort(context, refused)
        # grpc_server_handled_total: two dict updates per call, nothing else.
        RPC.start("unary", svc, method)
        # Slow-request log (server.slowlog): two clock reads per call; the rest only when slow.
        started = perf_counter()
        try:
            if len(request) > limit:
                raise grpc_too_large(len(request), limit)
            out = await fn(request, call_info(context, path))
            RPC.done("unary", svc, method, "OK")
            if (took := perf_counter() - started) > SLOW.threshold:
                SLOW.served(svc, method, request, out, "", took, context.peer() or "")
            return out
        except EtcdError as e:
            RPC.done("unary", svc, method, grpc_code_name(e.code))
            if (took := perf_counter() - started) > SLOW.threshold:
                SLOW.served(svc, method, request, None, e.message, took, context.peer() or "")
            await _abort(context, e)
        except DecodeError as e:
            RPC.done("unary", svc, method, "Internal")
            await _abort(context, decode_error(e))
        raise AssertionError("unreachable")

    return grpc.unary_unary_rpc_method_handler(handle)


def _server_stream(
    fn: ServerStream, limit: int, guard: Guard | None, path: str = ""
) -> grpc.RpcMethodHandler:
    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        if guard is not None and (refused := guard(context)) is not None:
            await _abort(context, refused)
        try:
            if len(request) > limit:
                raise grpc_too_large(len(request), limit)
            async for chunk in fn(request, call_info(context, path)):
                yield chunk
        except EtcdError as e:
            await _abort(context, e)
        except DecodeError as e:
            await _abort(context, decode_error(e))

    return grpc.unary_stream_rpc_method_handler(handle)


def _bidi(fn: BidiStream, guard: Guard | None, path: str = "") -> grpc.RpcMethodHandler:
    async def handle(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        if guard is not None and (refused := guard(context)) is not None:
            await before_refusing_a_stream(requests)
            await _abort(context, refused)
        try:
            async for chunk in fn(requests, call_info(context, path)):
                yield chunk
        except EtcdError as e:
            await _abort(context, e)
        except DecodeError as e:
            await _abort(context, decode_error(e))

    return grpc.stream_stream_rpc_method_handler(handle)


def _unimplemented(service: str, method: str, streaming_in: bool, streaming_out: bool):
    msg = f"unknown method {method} for service {service}"

    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, msg)
        raise AssertionError("unreachable")

    async def stream(request, context):  # type: ignore[no-untyped-def]
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, msg)
        yield b""  # pragma: no cover

    if streaming_in and streaming_out:
        return grpc.stream_stream_rpc_method_handler(stream)
    if streaming_out:
        return grpc.unary_stream_rpc_method_handler(stream)
    if streaming_in:
        return grpc.stream_unary_rpc_method_handler(stream)
    return grpc.unary_unary_rpc_method_handler(unary)


def generic_handlers(
    impls: dict[str, dict[str, Unary | ServerStream | BidiStream]],
    *,
    max_message_bytes: int,
    guard: Guard | None = None,
) -> list[grpc.GenericRpcHandler]:
    """One generic handler per service of etcd's API; methods not in `impls` are Unimplemented.

    `max_message_bytes` is etcd's gRPC receive limit (--max-request-bytes plus overhead);
    `guard` runs before every implemented method, unary and streaming (TLS checks).
    """
    out = []
    for full, desc in SERVICES.items():
        given = impls.get(full, {})
        table: dict[str, grpc.RpcMethodHandler] = {}
        for m in desc.methods:
            fn = given.get(m.name)
            cs, ss = m.client_streaming, m.server_streaming
            if fn is None:
                table[m.name] = _unimplemented(full, m.name, cs, ss)
            elif cs and ss:
                table[m.name] = _bidi(fn, guard, f"/{full}/{m.name}")  # type: ignore[arg-type]
            elif ss:
                table[m.name] = _server_stream(  # type: ignore[arg-type]
                    fn,  # type: ignore[arg-type]
                    max_message_bytes,
                    guard,
                    f"/{full}/{m.name}",
                )
            else:
                table[m.name] = _unary(
                    fn,  # type: ignore[arg-type]
                    max_message_bytes,
                    guard,
                    (full, m.name),
                )
        out.append(grpc.method_handlers_generic_handler(full, table))
    return out
