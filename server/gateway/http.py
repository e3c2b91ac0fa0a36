"""A small HTTP/1.1 server on asyncio streams, for the JSON gateway, metrics and health.

Ward carries no HTTP library: the gateway needs request bodies with a size limit, keep-alive
and chunked streaming responses (watch), nothing more. Every request is parsed fully before a
handler sees it, and a malformed one gets a 400 and a closed connection, never a traceback.

TLS is done here, over the plain TCP stream, with `ssl.MemoryBIO`s (`TLSStream`), not by
asyncio's (or uvloop's) SSL transport: when a handshake fails, those close the connection
without sending the alert OpenSSL wrote. Under TLS 1.3 the client has finished its side of the
handshake before the server judges its certificate, so a client refused for a missing or
untrusted certificate saw its request sent and the connection closed with no answer and no
reason. `TLSStream` sends the alert ("certificate required", "unknown ca") before closing, as
gRPC's and Go's TLS do, and each connection takes the newest context when it is accepted
(certificate rotation needs no callback in the handshake).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("ward.http")

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
# An idle keep-alive connection is closed after this long (Go's http.Server has no default;
# a bound keeps idle sockets from piling up).
IDLE_TIMEOUT_S = 120.0
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    499: "Client Closed Request",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class HTTPError(Exception):
    """A request the server refuses before any handler runs (status to send, short reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    peer: str
    # The TLS connection's ssl object (None on plaintext): handlers judge its certificate.
    tls: ssl.SSLObject | None = None
    # Set when the client has closed its side (streaming handlers stop then).
    gone: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    # A streaming body, sent chunked; `body` is ignored when set.
    stream: AsyncIterator[bytes] | None = None


Handler = Callable[[Request], Awaitable[Response]]
# The TLS context for the next connection of a listener (picks up rotated certificates).
ContextSource = Callable[[], ssl.SSLContext]

HANDSHAKE_TIMEOUT_S = 10.0
LINGER_S = 2.0  # after a refused handshake, how long the client may take to close
_TLS_READ = 65536


class TLSStream:
    """A server-side TLS connection over a plain asyncio stream pair, offering the parts of
    the StreamReader/StreamWriter interface the HTTP server uses. Reads pull from the socket
    only when the HTTP side asks for data, so a client cannot make the server buffer more than
    one TLS read beyond what it parses."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext
    ) -> None:
        self._raw_r = reader
        self._raw_w = writer
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.sslobj = ctx.wrap_bio(self._in, self._out, server_side=True)
        self._buf = bytearray()
        self._eof = False
        self._limit = MAX_HEADER_BYTES

    async def handshake(self) -> None:
        """Complete the handshake; on failure the alert is sent before the error is raised."""
        while True:
            try:
                self.sslobj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                await self._pull()
                continue
            except ssl.SSLError:
                self._flush()  # the alert: the client learns why
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._linger(), LINGER_S)
                raise
            self._flush()  # the last flight, and TLS 1.3 session tickets
            return

    async def _linger(self) -> None:
        """Send the alert and a FIN, then read what the client still sends until it closes:
        closing with its request unread would make the kernel send a reset, which can reach
        the client before it reads the alert."""
        await self._raw_w.drain()
        if self._raw_w.can_write_eof():
            self._raw_w.write_eof()
        while await self._raw_r.read(_TLS_READ):
            pass

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self._raw_w.write(data)

    async def _pull(self) -> None:
        data = await self._raw_r.read(_TLS_READ)
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()

    async def _fill(self) -> None:
        """Decrypt at least one more byte into the buffer, or mark the end of the stream."""
        while True:
            try:
                data = self.sslobj.read(_TLS_READ)
            except ssl.SSLWantReadError:
                self._flush()
                if self._in.eof:
                    self._eof = True  # the peer closed without close_notify
                    return
                await self._pull()
                continue
            except ssl.SSLZeroReturnError:
                self._eof = True
                return
            except ssl.SSLEOFError:
                self._eof = True
                return
            self._flush()  # reading may answer a key update
            if not data:
                self._eof = True
                return
            self._buf += data
            return

    # StreamReader's interface, as the HTTP server uses it.
    async def readline(self) -> bytes:
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self._buf[: i + 1])
                del self._buf[: i + 1]
                return line
            if len(self._buf) > self._limit:
                raise ValueError("line too long")
            if self._eof:
                line = bytes(self._buf)
                self._buf.clear()
                return line
            start = len(self._buf)
            await self._fill()

    async def readexactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._eof:
                partial = bytes(self._buf)
                self._buf.clear()
                raise asyncio.IncompleteReadError(partial, n)
            await self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def read(self, n: int) -> bytes:
        if not self._buf and not self._eof:
            await self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    # StreamWriter's interface.
    def write(self, data: bytes) -> None:
        self.sslobj.write(data)
        self._flush()

    async def drain(self) -> None:
        await self._raw_w.drain()

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "ssl_object":
            return self.sslobj
        return self._raw_w.get_extra_info(name, default)

    def close(self) -> None:
        with contextlib.suppress(ssl.SSLError, ValueError):
            self.sslobj.unwrap()  # close_notify; the peer's is not awaited
        with contextlib.suppress(Exception):
            self._flush()
        self._raw_w.close()

    async def wait_closed(self) -> None:
        await self._raw_w.wait_closed()


class HTTPServer:
    """Serves `handler` on listening sockets; plaintext or TLS per socket."""

    def __init__(self, handler: Handler, *, max_body_bytes: int) -> None:
        self._handler = handler
        self._max_body = max_body_bytes
        self._servers: list[asyncio.Server] = []
        self._conns: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int, tls: ContextSource | None) -> int:
        """Bind and serve, TLS with the context `tls` gives for each connection if set;
        returns the bound port (0 picks one)."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(reader, writer, tls)

        server = await asyncio.start_server(
            serve, host or None, port, limit=MAX_HEADER_BYTES, reuse_address=True
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for s in self._servers:
            s.close()
        for t in list(self._conns):
            t.cancel()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 1.0)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: ContextSource | None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        stream: Any = None
        try:
            if tls is not None:
                stream = TLSStream(reader, writer, tls())
                await asyncio.wait_for(stream.handshake(), HANDSHAKE_TIMEOUT_S)
            await self._connection(stream or reader, stream or writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError) as e:
            log.debug("HTTP connection ended: %r", e)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug must cost one connection, not the listener
            log.exception("HTTP connection failed")
        finally:
            self._conns.discard(task)
            if stream is not None:
                stream.close()
            else:
                writer.close()
            # Also when cancelled (the listener closing): the connection ends either way.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _connection(self, reader: Any, writer: Any) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        tls = writer.get_extra_info("ssl_object")
        while True:
            try:
                req = await asyncio.wait_for(self._read(reader, peer), IDLE_TIMEOUT_S)
            except HTTPError as e:
                await _send(
                    writer,
                    Response(e.status, (e.reason + "\n").encode(), "text/plain"),
                    keep_alive=False,
                )
                return
            if req is None:
                return
            req.tls = tls
            keep = req.headers.get("connection", "").lower() != "close"
            resp = await self._handler(req)
            if resp.stream is not None:
                await _stream(writer, reader, req, resp)
                return  # a streamed answer ends with the connection (as etcd's watch does)
            await _send(writer, resp, keep_alive=keep)
            if not keep:
                return

    async def _read(self, reader: asyncio.StreamReader, peer: str) -> Request | None:
        try:
            line = await reader.readline()
        except (asyncio.LimitOverrunError, ValueError):
            raise HTTPError(431, "request line too long") from None
        if not line:
            return None
        if line in (b"\r\n", b"\n"):  # tolerated between requests, as Go's server does
            line = await reader.readline()
        try:
            method, target, version = line.decode("latin-1").strip().split(" ")
        except ValueError:
            raise HTTPError(400, "malformed request line") from None
        if not version.startswith("HTTP/1."):
            raise HTTPError(400, "unsupported HTTP version")
        headers: dict[str, str] = {}
        total = len(line)
        while True:
            try:
                h = await reader.readline()
            except (asyncio.LimitOverrunError, ValueError):
                raise HTTPError(431, "header too long") from None
            total += len(h)
            if total > MAX_HEADER_BYTES or len(headers) > MAX_HEADERS:
                raise HTTPError(431, "headers too large")
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise asyncio.IncompleteReadError(b"", None)
            name, sep, value = h.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise HTTPError(400, "malformed header")
            headers[name.lower()] = value.strip()
        body = await self._body(reader, headers)
        path, _, query = target.partition("?")
        return Request(method.upper(), path, query, headers, body, peer)

    async def _body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            size = 0
            while True:
                raw = (await reader.readline()).split(b";")[0].strip()
                try:
                    n = int(raw, 16)
                except ValueError:
                    raise HTTPError(400, "malformed chunk") from None
                if n == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers: ignored
                    return b"".join(parts)
                size += n
                if size > self._max_body or n < 0:
                    raise HTTPError(413, "request body too large")
                parts.append(await reader.readexactly(n))
                await reader.readline()
        raw_len = headers.get("content-length")
        if raw_len is None:
            return b""
        try:
            n = int(raw_len)
        except ValueError:
            raise HTTPError(400, "malformed content-length") from None
        if n < 0:
            raise HTTPError(400, "malformed content-length")
        if n > self._max_body:
            raise HTTPError(413, "request body too large")
        return await reader.readexactly(n)


def _head(status: int, content_type: str, extra: tuple[tuple[str, str], ...]) -> list[str]:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Type: {content_type}"]
    lines.extend(f"{k}: {v}" for k, v in extra)
    return lines


async def _send(writer: Any, resp: Response, *, keep_alive: bool) -> None:
    lines = _head(resp.status, resp.content_type, resp.headers)
    lines.append(f"Content-Length: {len(resp.body)}")
    if not keep_alive:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + resp.body)
    await writer.drain()


async def _stream(writer: Any, reader: Any, req: Request, resp: Response) -> None:
    assert resp.stream is not None
    lines = _head(resp.status, resp.content_type, resp.headers)
    lines += ["Transfer-Encoding: chunked", "Connection: close"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def watch_eof() -> None:
        # The client sends nothing more on a streaming request; EOF means it went away.
        with contextlib.suppress(Exception):
            while await reader.read(4096):
                pass
        req.gone.set()

    eof = asyncio.create_task(watch_eof())
    try:
        async for chunk in resp.stream:
            if req.gone.is_set():
                break
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        else:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    finally:
        req.gone.set()
        eof.cancel()
        with contextlib.suppress(Exception):
            await resp.stream.aclose()  # type: ignore[attr-defined]
