"""The link between worker processes and the core process: framed messages on a Unix socket.

A worker forwards what it cannot do alone: proposals (raw request bytes, to be wrapped in an
Entry by the core's driver) and unary calls the core answers with its own handlers. The core
pushes facts workers need (the Raft term, the newest revision) as frames with request id 0.

Frame: u32 length of the rest, u32 request id, u8 kind, payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError

from server.api.rpc import CallInfo, decode_error, serving
from server.errors import CODE_BY_VALUE, EtcdError
from server.watch_quota import WatcherCounts

log = logging.getLogger("ward.ipc")

_FRAME = struct.Struct(">IIB")
_U16 = struct.Struct(">H")

# worker -> core
PROPOSE = 1  # payload: u8 entry field, u16 header length, header, request
CALL = 2  # payload: u16 method length, method, u16 peer, u16 token, u16 cn, request
# core -> worker
OK = 10
ERROR = 11  # payload: u16 grpc code, utf-8 message
PUSH_TERM = 20  # payload: u64 term
PUSH_REV = 21  # payload: u64 revision
PUSH_PAUSE = 22  # payload: u64 sequence; close the environment, then answer PAUSED
PUSH_RESUME = 23  # payload: u64 sequence; reopen the environment
PUSH_READ_MODE = 24  # payload: u64 1 when linearizable reads need a read index, else 0
# worker -> core
PAUSED = 3  # payload: u64 sequence of the PUSH_PAUSE this answers
SERVING = 4  # the worker's listeners are up
READ_INDEX = 5  # answered once the core applied everything committed when it arrived
COUNTERS = 6  # request id 0, unanswered; payload: the worker's RPC counters (server.metrics)
# payload: u8 1 reserve / 0 release, u32 quota (reserve) or count (release), tenant name; a
# reserve is answered (b"\x01": admitted), a release (request id 0) is not (server.watch_quota)
WATCHERS = 7
# request id 0, unanswered; payload: the worker's auth decisions (server.auth_metrics)
AUTH_DECISIONS = 8

_U64 = struct.Struct(">Q")
_WATCHERS = struct.Struct(">BI")


def frame(rid: int, kind: int, payload: bytes) -> bytes:
    return _FRAME.pack(len(payload) + 5, rid, kind) + payload


def _strs(*parts: bytes) -> bytes:
    return b"".join(_U16.pack(len(p)) + p for p in parts)


def _read_strs(buf: bytes, n: int) -> tuple[list[bytes], int]:
    out = []
    off = 0
    for _ in range(n):
        (ln,) = _U16.unpack_from(buf, off)
        off += 2
        out.append(buf[off : off + ln])
        off += ln
    return out, off


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    head = await reader.readexactly(4)
    (ln,) = struct.unpack(">I", head)
    rest = await reader.readexactly(ln)
    rid, kind = struct.unpack_from(">IB", rest)
    return rid, kind, rest[5:]


class FrameWriter:
    """Frames written during one turn of the event loop leave in one write.

    Under load, requests and their answers come in bursts (every commit answers a batch), and a
    write per frame would cost a system call here and a wakeup at the other end for each; this
    costs one of each per burst. Frames keep their order.
    """

    __slots__ = ("_parts", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._parts:
            asyncio.get_running_loop().call_soon(self._flush)
        self._parts.append(data)

    def _flush(self) -> None:
        parts, self._parts = self._parts, []
        if not self.writer.is_closing():
            self.writer.write(parts[0] if len(parts) == 1 else b"".join(parts))


class CoreLink:
    """The worker's end: proposals and calls to the core, pushes from it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._r = reader
        self._w = FrameWriter(writer)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self.on_push: Callable[[int, bytes], None] = lambda kind, payload: None
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, path: str) -> CoreLink:
        reader, writer = await asyncio.open_unix_connection(path)
        return cls(reader, writer)

    async def run(self) -> None:
        """Read replies and pushes until the core goes away."""
        try:
            while True:
                rid, kind, payload = await read_frame(self._r)
                if rid == 0:
                    self.on_push(kind, payload)
                    continue
                fut = self._waiting.pop(rid, None)
                if fut is None or fut.done():
                    continue
                if kind == OK:
                    fut.set_result(payload)
                else:
                    (code,) = _U16.unpack_from(payload)
                    fut.set_exception(EtcdError(CODE_BY_VALUE[code], payload[2:].decode()))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(
                        EtcdError(grpc.StatusCode.UNAVAILABLE, "etcdserver: server stopped")
                    )

    async def _request(self, kind: int, payload: bytes) -> bytes:
        if self.closed.is_set():
            raise EtcdError(grpc.StatusCode.UNAVAILABLE, "etcdserver: server stopped")
        rid = next(self._ids) & 0xFFFFFFFF or 1
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self._w.write(frame(rid, kind, payload))
        return await fut

    async def propose(self, field: int, request: bytes, *, header: bytes = b"") -> bytes:
        return await self._request(PROPOSE, bytes((field,)) + _strs(header) + request)

    async def serving(self) -> None:
        await self._request(SERVING, b"")

    async def read_index(self) -> None:
        await self._request(READ_INDEX, b"")

    async def paused(self, seq: int) -> None:
        await self._request(PAUSED, _U64.pack(seq))

    def notify(self, kind: int, payload: bytes) -> None:
        """A frame the core does not answer (request id 0)."""
        if not self.closed.is_set():
            self._w.write(frame(0, kind, payload))

    async def reserve_watcher(self, tenant: str, quota: int) -> bool:
        """Ask the core to count one more watcher of `tenant` (see server.watch_quota)."""
        answer = await self._request(WATCHERS, _WATCHERS.pack(1, quota) + tenant.encode())
        return answer == b"\x01"

    def release_watchers(self, tenant: str, n: int) -> None:
        self.notify(WATCHERS, _WATCHERS.pack(0, n) + tenant.encode())

    async def call(self, method: str, request: bytes, info: CallInfo) -> bytes:
        head = _strs(
            method.encode(), info.peer.encode(), info.token.encode(), info.common_name.encode()
        )
        return await self._request(CALL, head + request)


Submit = Callable[..., "asyncio.Future[bytes]"]
Handlers = dict[str, Callable[[bytes, CallInfo], Awaitable[bytes]]]


_INTERNAL = EtcdError(grpc.StatusCode.INTERNAL, "etcdserver: internal error")


def _error_frame(rid: int, e: EtcdError) -> bytes:
    return frame(rid, ERROR, _U16.pack(e.code.value[0]) + e.message.encode())


class WorkerHub:
    """The core's end: serves every worker's link, pushes to all of them."""

    def __init__(
        self, submit: Submit, handlers: Handlers, *, watchers: WatcherCounts | None = None
    ) -> None:
        self._submit = submit
        self._handlers = handlers
        # The member's read barrier (None to await when no read index is needed).
        self.read_index: Callable[[], Awaitable[None] | None] = lambda: None
        # Each live link's writer, and the frame writer that batches what goes out on it.
        self._out: dict[asyncio.StreamWriter, FrameWriter] = {}
        self._serving: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.base_events.Server | None = None
        self._pause_seq = 0
        self._paused: set[asyncio.StreamWriter] = set()
        self._all_paused = asyncio.Event()
        # Each link's last COUNTERS push, kept after the link ends (totals never go back).
        self.counters: dict[int, bytes] = {}
        # Each link's last AUTH_DECISIONS push, kept the same way.
        self.decisions: dict[int, bytes] = {}
        # The member's open watchers per tenant; each link's reservations end with it.
        self.watchers = watchers if watchers is not None else WatcherCounts()
        self._links = itertools.count(1)

    async def start(self, path: str) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=path)

    async def stop(self) -> None:
        """Close every link; each worker leaves as soon as it sees its link end."""
        if self._server is not None:
            self._server.close()
        writers = list(self._out)
        for w in writers:
            w.close()
        for w in writers:
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()

    async def wait_connected(self, n: int, timeout: float) -> bool:
        """Wait until `n` workers serve; False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self._serving) < n:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def push(self, kind: int, value: int) -> None:
        data = frame(0, kind, _U64.pack(value))
        for out in self._out.values():
            out.write(data)

    async def pause_all(self, timeout: float) -> None:
        """Have every worker close its environment; returns once all have answered."""
        self._pause_seq += 1
        self._paused = set()
        self._all_paused.clear()
        if not self._out:
            return
        self.push(PUSH_PAUSE, self._pause_seq)
        await asyncio.wait_for(self._all_paused.wait(), timeout)

    def resume_all(self) -> None:
        self.push(PUSH_RESUME, self._pause_seq)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out = self._out[writer] = FrameWriter(writer)
        link = next(self._links)
        try:
            while True:
                rid, kind, payload = await read_frame(reader)
                if kind == PROPOSE:
                    self._propose_frame(out, rid, payload)
                    continue
                if kind == COUNTERS:
                    self.counters[link] = payload
                    continue
                if kind == AUTH_DECISIONS:
                    self.decisions[link] = payload
                    continue
                if kind == WATCHERS:
                    # Answered here, in order with the link's releases (no task, no await).
                    op, n = _WATCHERS.unpack_from(payload)
                    tenant = payload[_WATCHERS.size :].decode()
                    if op:
                        ok = self.watchers.reserve(writer, tenant, n)
                        out.write(frame(rid, OK, b"\x01" if ok else b""))
                    else:
                        self.watchers.release(writer, tenant, n)
                    continue
                task = asyncio.create_task(self._handle(out, rid, kind, payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._out.pop(writer, None)
            self._serving.discard(writer)
            self.watchers.drop(writer)
            writer.close()

    def _propose_frame(self, out: FrameWriter, rid: int, payload: bytes) -> None:
        """A forwarded proposal, answered from its future's callback: no Task per request."""
        field = payload[0]
        (header,), off = _read_strs(payload[1:], 1)
        try:
            fut = self._submit(field, payload[1 + off :], header=header)
        except EtcdError as e:
            out.write(_error_frame(rid, e))
            return

        def reply(f: asyncio.Future[bytes]) -> None:
            if out.writer.is_closing() or f.cancelled():
                return
            e = f.exception()
            if e is None:
                out.write(frame(rid, OK, f.result()))
            elif isinstance(e, EtcdError):
                out.write(_error_frame(rid, e))
            else:
                log.error("internal error in a forwarded proposal", exc_info=e)
                out.write(_error_frame(rid, _INTERNAL))

        fut.add_done_callback(reply)

    async def _handle(self, out: FrameWriter, rid: int, kind: int, payload: bytes) -> None:
        writer = out.writer
        try:
            if kind == SERVING:
                self._serving.add(writer)
                resp = b""
            elif kind == PAUSED:
                if _U64.unpack(payload)[0] == self._pause_seq:
                    self._paused.add(writer)
                    if self._out.keys() <= self._paused:
                        self._all_paused.set()
                resp = b""
            elif kind == READ_INDEX:
                wait = self.read_index()
                if wait is not None:
                    await wait
                resp = b""
            elif kind == CALL:
                (method, peer, token, cn), off = _read_strs(payload, 4)
                handler = self._handlers.get(method.decode())
                if handler is None:
                    raise EtcdError(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {method!r}")
                info = serving(
                    CallInfo(
                        peer=peer.decode(),
                        token=token.decode(),
                        common_name=cn.decode(),
                        method=method.decode(),
                    )
                )
                resp = await handler(payload[off:], info)
            else:
                raise EtcdError(grpc.StatusCode.INTERNAL, f"unknown frame kind {kind}")
            answer = frame(rid, OK, resp)
        except (EtcdError, DecodeError) as e:
            err = decode_error(e) if isinstance(e, DecodeError) else e
            answer = frame(rid, ERROR, _U16.pack(err.code.value[0]) + err.message.encode())
        except Exception:
            log.exception("internal error serving a worker request")
            internal = grpc.StatusCode.INTERNAL.value[0]
            answer = frame(rid, ERROR, _U16.pack(internal) + b"etcdserver: internal error")
        out.write(answer)  # dropped if the link is closing by then
