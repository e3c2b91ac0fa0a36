"""The fault-injecting proxy partitions real gRPC traffic: clients routed by `grpc_proxy` (or the
equivalent channel argument) reach their peers through it, and its rules cut pairs apart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from faultproxy import FaultProxy

from server.peer.transport import PeerTransport
from server.raft.types import Message, MessageType

ECHO = "/test.Echo/Echo"


class EchoMember:
    """A gRPC server answering `ECHO` with its name and the request: a stand-in for a member."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        handler = grpc.unary_unary_rpc_method_handler(lambda req, ctx: name.encode() + b":" + req)
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Echo", {"Echo": handler}),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with FaultProxy() as p:
        yield p


@pytest.fixture
def members(proxy: FaultProxy) -> Iterator[dict[str, EchoMember]]:
    out = {name: EchoMember(name) for name in ("a", "b", "c")}
    for m in out.values():
        proxy.add_member(m.name, [m.port])
    yield out
    for m in out.values():
        m.server.stop(grace=None)


def channel(proxy: FaultProxy, src: str, dst: EchoMember) -> grpc.Channel:
    """A client of member `src`, as its process would open one with `grpc_proxy` set."""
    return grpc.insecure_channel(
        f"127.0.0.1:{dst.port}",
        options=[
            ("grpc.http_proxy", proxy.proxy_url(src)),
            # A fresh connection per channel (not one shared with an earlier channel), and
            # quick reconnects once healed.
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 200),
        ],
    )


def echo(ch: grpc.Channel, timeout: float = 2.0, wait_for_ready: bool = False) -> bytes:
    return ch.unary_unary(ECHO)(b"ping", timeout=timeout, wait_for_ready=wait_for_ready)


def fails(ch: grpc.Channel, timeout: float = 0.5) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as exc:
        echo(ch, timeout)
    return exc.value.code()


def test_the_grpc_proxy_variable_routes_a_loopback_channel_through_the_members_port(
    proxy: FaultProxy, members: dict[str, EchoMember]
) -> None:
    script = (
        "import sys, grpc\n"
        "ch = grpc.insecure_channel(sys.argv[1])\n"
        f"print(ch.unary_unary({ECHO!r})(b'ping', timeout=10).decode())\n"
    )
    # no_proxy naming loopback (as CI environments often do) must not bypass the proxy.
    env = {**os.environ, "no_proxy": "127.0.0.1,localhost", **proxy.env("a")}
    out = subprocess.run(
        [sys.executable, "-c", script, f"127.0.0.1:{members['b'].port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == "b:ping"
    assert proxy.connects("a", "b") == 1


def test_drop_blackholes_open_and_new_connections_until_healed(
    proxy: FaultProxy, members: dict[str, EchoMember]
) -> None:
    b = members["b"]
    old = channel(proxy, "a", b)
    assert echo(old) == b"b:ping"
    proxy.block("a", "b", mode="drop")
    assert fails(old) == grpc.StatusCode.DEADLINE_EXCEEDED
    new = channel(proxy, "a", b)
    assert fails(new) == grpc.StatusCode.DEADLINE_EXCEEDED  # its CONNECT hangs unanswered
    assert proxy.tunnels("a", "b") == 2
    proxy.heal()
    assert echo(old, timeout=5) == b"b:ping"  # the same connection carries on
    assert echo(new, timeout=5) == b"b:ping"
    assert proxy.connects("a", "b") == 2


def test_reset_closes_open_connections_and_refuses_new_ones_until_healed(
    proxy: FaultProxy, members: dict[str, EchoMember]
) -> None:
    b = members["b"]
    old = channel(proxy, "a", b)
    assert echo(old) == b"b:ping"
    proxy.block("a", "b", mode="reset")
    assert proxy.tunnels("a", "b") == 0
    assert fails(old) == grpc.StatusCode.UNAVAILABLE
    assert fails(channel(proxy, "a", b)) == grpc.StatusCode.UNAVAILABLE  # 503 to the CONNECT
    proxy.heal()
    assert echo(old, timeout=5, wait_for_ready=True) == b"b:ping"


@pytest.mark.parametrize("mode", ["drop", "reset"])
def test_block_cuts_both_directions_of_one_pair_only(
    proxy: FaultProxy, members: dict[str, EchoMember], mode: str
) -> None:
    proxy.block("a", "b", mode=mode)  # type: ignore[arg-type]
    expected = {("a", "b"): False, ("b", "a"): False, ("a", "c"): True, ("c", "b"): True}
    for (src, dst), reachable in expected.items():
        ch = channel(proxy, src, members[dst])
        if reachable:
            assert echo(ch) == f"{dst}:ping".encode()
        else:
            assert fails(ch, timeout=0.3) != grpc.StatusCode.OK


def test_isolate_cuts_a_member_from_every_other(
    proxy: FaultProxy, members: dict[str, EchoMember]
) -> None:
    proxy.isolate("a", mode="reset")
    for src, dst in [("a", "b"), ("a", "c"), ("b", "a"), ("c", "a")]:
        assert fails(channel(proxy, src, members[dst])) == grpc.StatusCode.UNAVAILABLE
    assert echo(channel(proxy, "b", members["c"])) == b"c:ping"
    assert echo(channel(proxy, "c", members["b"])) == b"b:ping"
    proxy.heal()
    assert echo(channel(proxy, "a", members["b"])) == b"b:ping"


def test_the_peer_transport_notices_a_blackhole_and_recovers_after_the_heal(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two transports in this process; the sender's channels pick `grpc_proxy` up when made."""
    received: list[Message] = []
    unreachable: list[int] = []

    def transport(member_id: int) -> PeerTransport:
        return PeerTransport(
            member_id=member_id,
            cluster_id=1,
            on_message=received.append,
            on_unreachable=unreachable.append,
            is_removed=lambda _: False,
            on_removed=lambda: None,
            calls={},
        )

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        a, b = transport(1), transport(2)
        (b_port,) = await b.start(["127.0.0.1:0"])
        proxy.add_member("a")
        proxy.add_member("b", [b_port])
        for k, v in proxy.env("a").items():
            monkeypatch.setenv(k, v)
        try:
            a.set_peers({2: (f"http://127.0.0.1:{b_port}",)})

            async def heartbeats_until(pred: object, timeout: float) -> None:
                deadline = loop.time() + timeout
                while not pred():  # type: ignore[operator]
                    assert loop.time() < deadline, "timed out"
                    a.send([Message(MessageType.HEARTBEAT, to=2, from_=1, term=1)])
                    await asyncio.sleep(0.05)

            await heartbeats_until(lambda: received, 10)
            assert proxy.connects("a", "b") == 1
            # Blackholed, the stream is only noticed dead by keepalive (1 s pings, 2 s timeout).
            await asyncio.to_thread(proxy.block, "a", "b", mode="drop")
            unreachable.clear()
            await heartbeats_until(lambda: unreachable, 10)
            received.clear()
            await asyncio.to_thread(proxy.heal)
            await heartbeats_until(lambda: received, 10)
        finally:
            # Stopped even when an assertion failed: gRPC channels left open past this
            # event loop would wedge later tests' gRPC calls in this process.
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
