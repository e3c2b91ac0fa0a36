"""The peer transport over real gRPC on loopback: delivery, batching, failures, refusals, calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc
import pytest

from server import errors
from server.errors import EtcdError
from server.peer.codec import encode_batch
from server.peer.transport import (
    CLUSTER_ID_MISMATCH,
    MEMBER_REMOVED,
    RAFT_METHOD,
    PeerCallError,
    PeerTransport,
)
from server.raft.types import (
    ConfState,
    Message,
    MessageType,
    SnapshotChunk,
    SnapshotMetadata,
)
from tests.e2e.ward_process import free_port

CLUSTER = 0xC1
TEST_TIMEOUT_S = 30.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, TEST_TIMEOUT_S))


async def eventually(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Node:
    """A transport with recording callbacks, as a driver would hold it."""

    def __init__(
        self,
        member_id: int,
        *,
        cluster_id: int = CLUSTER,
        removed: frozenset[int] = frozenset(),
        calls: dict[str, Callable[[bytes], Awaitable[bytes]]] | None = None,
        max_batch_bytes: int | None = None,
    ) -> None:
        self.id = member_id
        self.received: list[Message] = []
        self.unreachable: list[int] = []
        self.removed_signals = 0
        self.port = 0
        extra = {} if max_batch_bytes is None else {"max_batch_bytes": max_batch_bytes}
        self.t = PeerTransport(
            member_id=member_id,
            cluster_id=cluster_id,
            on_message=self.received.append,
            on_unreachable=self.unreachable.append,
            is_removed=lambda m: m in removed,
            on_removed=self._removed,
            calls=calls or {},
            channel_credentials=None,
            server_credentials=None,
            **extra,  # type: ignore[arg-type]
        )

    def _removed(self) -> None:
        self.removed_signals += 1

    async def start(self, port: int = 0) -> Node:
        (self.port,) = await self.t.start([f"127.0.0.1:{port}"])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, *others: Node) -> None:
        self.t.set_peers({o.id: (o.url,) for o in others})


def hb(frm: int, to: int, index: int = 0, context: bytes = b"") -> Message:
    """A message whose `index` numbers it (the transport does not look inside)."""
    return Message(MessageType.HEARTBEAT, to=to, from_=frm, term=1, index=index, context=context)


async def raw_stream(port: int, batches: list[bytes]) -> tuple[grpc.StatusCode, str]:
    """Write `batches` on a Raft stream of our own; return the receiver's final status."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.stream_unary(RAFT_METHOD)()
        try:
            for b in batches:
                await call.write(b)
            await call.done_writing()
            await call
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass
        return await call.code(), await call.details() or ""


# -- delivery ----------------------------------------------------------------------------------


def test_messages_arrive_in_order_in_both_directions() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2).start()
        a.connect(b)
        b.connect(a)
        for i in range(0, 200, 10):
            a.t.send([hb(1, 2, j) for j in range(i, i + 10)])
            b.t.send([hb(2, 1, i)])
            await asyncio.sleep(0)
        await eventually(lambda: len(b.received) == 200 and len(a.received) == 20)
        assert [m.index for m in b.received] == list(range(200))
        assert [m.index for m in a.received] == list(range(0, 200, 10))
        assert all(m.from_ == 1 and m.to == 2 for m in b.received)
        assert not a.unreachable and not b.unreachable
        await a.t.stop()
        await b.t.stop()

    run(scenario())


def test_messages_queued_together_travel_as_one_batch() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2).start()
        a.connect(b)
        a.t.send([hb(1, 2)])
        await eventually(lambda: len(b.received) == 1)
        a.t.send([hb(1, 2, i) for i in range(1, 501)])
        await eventually(lambda: len(b.received) == 501)
        assert b.t.stats()[1].received_batches == 2
        assert a.t.stats()[2].sent_batches == 2
        assert a.t.stats()[2].sent_messages == 501
        await a.t.stop()
        await b.t.stop()

    run(scenario())


def test_batches_stop_growing_at_the_byte_limit() -> None:
    async def scenario() -> None:
        a, b = await Node(1, max_batch_bytes=4000).start(), await Node(2).start()
        a.connect(b)
        a.t.send([hb(1, 2, i, context=bytes(1000)) for i in range(20)])
        await eventually(lambda: len(b.received) == 20)
        assert [m.index for m in b.received] == list(range(20))
        assert b.t.stats()[1].received_batches >= 5
        await a.t.stop()
        await b.t.stop()

    run(scenario())


def test_one_mebibyte_snapshot_chunks_arrive_whole() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2).start()
        a.connect(b)
        meta = SnapshotMetadata(ConfState(voters=(1, 2)), index=100, term=3)
        msgs = [
            Message(
                MessageType.SNAP,
                to=2,
                from_=1,
                term=3,
                chunk=SnapshotChunk(meta, offset=i << 20, data=bytes([i]) * (1 << 20), done=i == 5),
            )
            for i in range(6)
        ]
        a.t.send(msgs)
        await eventually(lambda: len(b.received) == 6)
        assert b.received == msgs
        await a.t.stop()
        await b.t.stop()

    run(scenario())


def test_an_unencodable_message_is_dropped_and_the_rest_still_flow() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2).start()
        a.connect(b)
        a.t.send([Message(MessageType.APP, to=2, from_=1, term=-1)])  # must not raise
        await asyncio.sleep(0.1)
        a.t.send([hb(1, 2, 7)])
        await eventually(lambda: len(b.received) == 1)
        assert b.received[0].index == 7
        assert a.t.stats()[2].dropped_messages == 1
        await a.t.stop()
        await b.t.stop()

    run(scenario())


# -- failures ----------------------------------------------------------------------------------


def test_a_peer_nobody_serves_is_reported_unreachable() -> None:
    async def scenario() -> None:
        a = await Node(1).start()
        a.t.set_peers({9: (f"http://127.0.0.1:{free_port()}",)})
        a.t.send([hb(1, 9)])
        await eventually(lambda: 9 in a.unreachable, timeout=5)
        # While it stays down, every send is dropped and reported at once.
        a.unreachable.clear()
        a.t.send([hb(1, 9)])
        await eventually(lambda: a.unreachable == [9], timeout=1)
        assert a.t.stats()[9].dropped_messages >= 1
        await a.t.stop()

    run(scenario())


def test_a_message_to_an_unknown_member_is_dropped_and_reported() -> None:
    async def scenario() -> None:
        a = await Node(1).start()
        a.t.send([hb(1, 5), hb(1, 5), hb(1, 1)])  # to self: ignored
        await eventually(lambda: a.unreachable == [5], timeout=1)
        await a.t.stop()

    run(scenario())


def test_the_sender_reconnects_when_the_receiver_restarts() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2).start()
        a.connect(b)
        a.t.send([hb(1, 2, 1)])
        await eventually(lambda: len(b.received) == 1)
        port = b.port
        await b.t.stop()
        # The driver keeps sending (heartbeats): the broken stream is noticed and reported.
        for _ in range(300):
            a.t.send([hb(1, 2, 2)])
            await asyncio.sleep(0.01)
            if 2 in a.unreachable:
                break
        assert 2 in a.unreachable
        b2 = await Node(2).start(port)
        for _ in range(500):
            a.t.send([hb(1, 2, 3)])
            await asyncio.sleep(0.01)
            if b2.received:
                break
        assert b2.received and b2.received[0].index == 3
        await a.t.stop()
        await b2.t.stop()

    run(scenario())


def test_set_peers_disconnects_a_removed_peer() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2).start()
        a.connect(b)
        a.t.send([hb(1, 2)])
        await eventually(lambda: len(b.received) == 1)
        a.t.set_peers({})
        a.t.send([hb(1, 2)])
        await eventually(lambda: a.unreachable == [2], timeout=1)
        await asyncio.sleep(0.1)
        assert len(b.received) == 1
        await a.t.stop()
        await b.t.stop()

    run(scenario())


# -- refusals ----------------------------------------------------------------------------------


def test_a_batch_from_another_cluster_is_refused() -> None:
    async def scenario() -> None:
        a, b = await Node(1, cluster_id=0xAA).start(), await Node(2, cluster_id=0xBB).start()
        code, details = await raw_stream(b.port, [encode_batch(0xAA, 1, 2, [hb(1, 2)])])
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert details.startswith(CLUSTER_ID_MISMATCH)
        # Through the transport: nothing is delivered, the sender counts the peer unreachable.
        a.connect(b)
        a.t.send([hb(1, 2)])
        await eventually(lambda: 2 in a.unreachable, timeout=5)
        assert not b.received and a.removed_signals == 0
        await a.t.stop()
        await b.t.stop()

    run(scenario())


def test_a_batch_for_another_member_is_refused() -> None:
    async def scenario() -> None:
        b = await Node(2).start()
        code, details = await raw_stream(b.port, [encode_batch(CLUSTER, 1, 3, [hb(1, 3)])])
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "member ID mismatch" in details
        assert not b.received
        await b.t.stop()

    run(scenario())


def test_a_removed_member_is_refused_and_told_to_stop() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2, removed=frozenset({1})).start()
        code, details = await raw_stream(b.port, [encode_batch(CLUSTER, 1, 2, [hb(1, 2)])])
        assert (code, details) == (grpc.StatusCode.PERMISSION_DENIED, MEMBER_REMOVED)
        a.connect(b)
        a.t.send([hb(1, 2)])
        await eventually(lambda: a.removed_signals == 1, timeout=5)
        await asyncio.sleep(1.5)  # reconnects are refused again, but signalled only once
        assert a.removed_signals == 1 and not b.received
        await a.t.stop()
        await b.t.stop()

    run(scenario())


def test_a_malformed_batch_ends_its_stream_and_the_receiver_keeps_serving() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2).start()
        good = encode_batch(CLUSTER, 1, 2, [hb(1, 2, 1)])
        code, _ = await raw_stream(b.port, [good, b"\x22\x05ab"])
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert [m.index for m in b.received] == [1]  # what came before stays delivered
        a.connect(b)
        a.t.send([hb(1, 2, 2)])
        await eventually(lambda: len(b.received) == 2)
        await a.t.stop()
        await b.t.stop()

    run(scenario())


# -- calls -------------------------------------------------------------------------------------


async def _members(request: bytes) -> bytes:
    return b"members of " + request


async def _lease_not_found(request: bytes) -> bytes:
    raise errors.LEASE_NOT_FOUND


async def _crash(request: bytes) -> bytes:
    raise RuntimeError("boom")


CALLS = {
    "members": _members,
    "/etcdserverpb.Lease/LeaseTimeToLive": _lease_not_found,
    "crash": _crash,
}


def test_a_call_returns_the_handlers_response() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2, calls=CALLS).start()
        a.connect(b)
        assert await a.t.call(2, "members", b"ward", timeout=5) == b"members of ward"
        # A joining member knows neither the cluster nor the member ID behind the URL.
        joiner = await Node(3, cluster_id=0).start()
        assert await joiner.t.call_url(b.url, "members", b"x", timeout=5) == b"members of x"
        await joiner.t.stop()
        await a.t.stop()
        await b.t.stop()

    run(scenario())


def test_a_handlers_etcd_error_reaches_the_caller_unchanged() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2, calls=CALLS).start()
        a.connect(b)
        with pytest.raises(EtcdError) as exc:
            await a.t.call(2, "/etcdserverpb.Lease/LeaseTimeToLive", b"", timeout=5)
        assert exc.value.code == errors.LEASE_NOT_FOUND.code
        assert exc.value.message == errors.LEASE_NOT_FOUND.message
        with pytest.raises(PeerCallError) as failed:
            await a.t.call(2, "crash", b"", timeout=5)
        assert failed.value.code == grpc.StatusCode.UNKNOWN
        await a.t.stop()
        await b.t.stop()

    run(scenario())


def test_call_failures_are_peer_call_errors() -> None:
    async def scenario() -> None:
        a, b = await Node(1).start(), await Node(2, calls=CALLS).start()
        other = await Node(3, cluster_id=0xBAD).start()
        a.connect(b)
        cases: list[tuple[Awaitable[bytes], grpc.StatusCode]] = [
            (a.t.call(2, "nope", b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED),
            (a.t.call(7, "members", b"", timeout=5), grpc.StatusCode.NOT_FOUND),
            (other.t.call_url(b.url, "members", b"", 5), grpc.StatusCode.FAILED_PRECONDITION),
            (
                a.t.call_url(f"http://127.0.0.1:{free_port()}", "members", b"", timeout=0.3),
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ),
            (a.t.call_url("ftp://x:1", "members", b"", 1), grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for call, code in cases:
            with pytest.raises(PeerCallError) as exc:
                await call
            assert exc.value.code == code, exc.value
        for n in (a, b, other):
            await n.t.stop()

    run(scenario())


def test_a_call_from_a_removed_member_is_refused_and_signalled() -> None:
    async def scenario() -> None:
        a = await Node(1).start()
        b = await Node(2, calls=CALLS, removed=frozenset({1})).start()
        a.connect(b)
        with pytest.raises(PeerCallError) as exc:
            await a.t.call(2, "members", b"", timeout=5)
        assert (exc.value.code, exc.value.details) == (
            grpc.StatusCode.PERMISSION_DENIED,
            MEMBER_REMOVED,
        )
        await eventually(lambda: a.removed_signals == 1, timeout=2)
        await a.t.stop()
        await b.t.stop()

    run(scenario())
