"""Network partitions between real `ward` processes, without test hooks in Ward.

gRPC's C core tunnels every client channel through the HTTP CONNECT proxy named by the
``grpc_proxy`` environment variable (else ``https_proxy``, else ``http_proxy``), loopback targets
included, unless ``no_grpc_proxy`` (else ``no_proxy``) lists the host. So each member gets a
listening port of its own here and is started with ``grpc_proxy`` pointing at it
(:meth:`FaultProxy.env`): every connection the member opens (peer streams, peer calls) arrives
at its port, and the CONNECT line names the destination, which the proxy maps back to a member
by the ports it registered. A partition is then a set of blocked (source, destination) pairs.

Two ways to fail a blocked pair:

- ``"drop"``: a blackhole. Tunnels stop relaying (bytes already read are held, the sockets are
  no longer read, so the kernel's buffers fill up as they would behind a dead link) and new
  CONNECTs get no answer. Only timeouts (gRPC keepalive, dial timeouts) notice. On
  :meth:`FaultProxy.heal` everything held moves on, as packets would after a link comes back.
- ``"reset"``: tunnels are closed at once (RST) and new CONNECTs are refused with 503.

Only gRPC clients honour the variable: this works for Ward members, not for etcd's (Go's HTTP
client never proxies loopback addresses).

Usage, with the members' ports known before they start::

    with FaultProxy() as proxy:
        for m in members:
            proxy.add_member(m.name, [m.peer_port, m.client_port])
            start the member with env=proxy.env(m.name)
        proxy.isolate("m1")           # m1 can neither reach nor be reached by anyone
        proxy.heal()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal, Self, TypeVar

Mode = Literal["drop", "reset"]
T = TypeVar("T")

HEADER_LIMIT = 16 * 1024
RELAY_CHUNK = 64 * 1024
CALL_TIMEOUT_S = 10.0


class _Tunnel:
    """One CONNECT from member ``src`` to ``dst`` (None: not a member), pending or relaying."""

    def __init__(self, src: str, dst: str | None, client: asyncio.StreamWriter) -> None:
        self.src = src
        self.dst = dst
        self.open = asyncio.Event()  # cleared while the pair is blackholed
        self.open.set()
        self.writers = [client]
        self.closed = False

    def reset(self) -> None:
        """Close both sides with a TCP RST rather than an orderly FIN."""
        self.closed = True
        self.open.set()  # wake relays held at the gate, so that they see `closed`
        for w in self.writers:
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()


class FaultProxy:
    """An HTTP CONNECT proxy with one listening port per member and partition rules.

    It runs its own event loop in a daemon thread; every method is called from the test's
    thread and returns once the change is in effect (existing tunnels already paused or
    closed).
    """

    def __init__(self, *, mode: Mode = "drop", host: str = "127.0.0.1") -> None:
        self.mode: Mode = mode
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._started = False
        self._servers: dict[str, asyncio.Server] = {}
        self._egress: dict[str, int] = {}
        self._member_by_port: dict[int, str] = {}
        self._rules: dict[tuple[str, str], Mode] = {}
        self._tunnels: set[_Tunnel] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self._connects: Counter[tuple[str, str | None]] = Counter()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Close every listener and tunnel, and end the proxy's thread."""
        if not self._started:
            return

        async def close() -> None:
            for server in self._servers.values():
                server.close()
            for t in list(self._tunnels):
                t.reset()
            for w in list(self._clients):  # those still sending their CONNECT
                w.transport.abort()
            # Every connection's task ends on its aborted sockets (cancelling them instead
            # makes asyncio's stream server log an error for each).
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=CALL_TIMEOUT_S)
            for server in self._servers.values():
                await server.wait_closed()

        self._run(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_S)
        self._loop.close()
        self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- members ------------------------------------------------------------------------------

    def add_member(self, name: str, ports: Iterable[int] = ()) -> int:
        """Give member ``name`` its own proxy port (returned); ``ports`` are those it listens on.

        Connections to any of ``ports`` count as connections to ``name``; connections to
        anything else are relayed and never blocked.
        """
        self.start()
        if name in self._servers:
            raise ValueError(f"member {name!r} already added")

        async def listen() -> int:
            server = await asyncio.start_server(
                lambda r, w: self._serve(name, r, w), self.host, 0, limit=HEADER_LIMIT
            )
            self._servers[name] = server
            return int(server.sockets[0].getsockname()[1])

        port = self._run(listen())
        self._egress[name] = port
        self._call(lambda: self._member_by_port.update(dict.fromkeys(ports, name)))
        return port

    def proxy_url(self, name: str) -> str:
        return f"http://{self.host}:{self._egress[name]}"

    def env(self, name: str) -> dict[str, str]:
        """The environment that routes member ``name``'s gRPC connections through its port.

        ``no_grpc_proxy`` is set empty because gRPC prefers it to ``no_proxy``, which a
        developer's or CI's environment often sets to loopback addresses.
        """
        return {"grpc_proxy": self.proxy_url(name), "no_grpc_proxy": ""}

    # -- rules --------------------------------------------------------------------------------

    def block(self, a: str, b: str, *, mode: Mode | None = None) -> None:
        """Cut ``a`` and ``b`` apart, both directions."""
        self._set_rules([(a, b), (b, a)], mode or self.mode)

    def isolate(self, x: str, *, mode: Mode | None = None) -> None:
        """Cut ``x`` from every other member, both directions."""
        pairs = [p for o in self._egress if o != x for p in ((x, o), (o, x))]
        self._set_rules(pairs, mode or self.mode)

    def heal(self) -> None:
        """Lift every rule; blackholed tunnels and held CONNECTs move on."""

        def clear() -> None:
            self._rules.clear()
            self._apply()

        self._call(clear)

    def connects(self, a: str, b: str) -> int:
        """How many CONNECTs member ``a`` made to member ``b`` so far (refused ones included)."""
        return self._call(lambda: self._connects[(a, b)])

    def tunnels(self, a: str, b: str) -> int:
        """How many tunnels from ``a`` to ``b`` are open now (held ones included)."""
        return self._call(
            lambda: sum(t.src == a and t.dst == b and not t.closed for t in self._tunnels)
        )

    def _set_rules(self, pairs: list[tuple[str, str]], mode: Mode) -> None:
        if mode not in ("drop", "reset"):
            raise ValueError(f"unknown mode {mode!r}")

        def add() -> None:
            self._rules.update(dict.fromkeys(pairs, mode))
            self._apply()

        self._call(add)

    def _apply(self) -> None:
        for t in list(self._tunnels):
            mode = self._rule(t)
            if mode is None:
                t.open.set()
            elif mode == "drop":
                t.open.clear()
            else:
                t.reset()

    def _rule(self, t: _Tunnel) -> Mode | None:
        return None if t.dst is None else self._rules.get((t.src, t.dst))

    # -- the proxy ----------------------------------------------------------------------------

    async def _serve(
        self, src: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        tunnel: _Tunnel | None = None
        self._clients.add(writer)
        try:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
                host, port_text = target.rsplit(":", 1)
                port = int(port_text)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                return
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            dst = self._member_by_port.get(port)
            self._connects[(src, dst)] += 1
            tunnel = _Tunnel(src, dst, writer)
            self._tunnels.add(tunnel)
            mode = self._rule(tunnel)
            if mode == "reset":
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                return
            if mode == "drop":
                tunnel.open.clear()
            await tunnel.open.wait()  # a held CONNECT waits for the heal, unanswered
            if tunnel.closed:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    host.strip("[]"), port, limit=RELAY_CHUNK
                )
            except OSError:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            tunnel.writers.append(up_writer)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(
                self._relay(tunnel, reader, up_writer), self._relay(tunnel, up_reader, writer)
            )
        except (ConnectionError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            if tunnel is not None:
                self._tunnels.discard(tunnel)
                for w in tunnel.writers:
                    w.close()
            else:
                writer.close()

    @staticmethod
    async def _relay(
        tunnel: _Tunnel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while not tunnel.closed:
                data = await reader.read(RELAY_CHUNK)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                # Blackholed: hold this chunk and stop reading until the heal.
                await tunnel.open.wait()
                if tunnel.closed:
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            tunnel.reset()  # one side failed: the other must learn of it too

    # -- running on the proxy's loop ----------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=CALL_TIMEOUT_S)

    def _call(self, fn: Callable[[], T]) -> T:
        async def call() -> T:
            return fn()

        return self._run(call())
