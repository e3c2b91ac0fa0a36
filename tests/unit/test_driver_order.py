"""The driver's order of sending and writing, on a real lmdb environment: a leader sends its
appends before its own write (followers write meanwhile), a follower answers only after it.

The peers are played by the test: it answers the driver's messages itself, so every message the
driver sends, and every commit it makes, is recorded in the order it happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from server.apply import Applier, HeaderInfo
from server.driver import Driver, DriverOptions
from server.membership import Membership
from server.raft import Entry, Message, MessageType
from server.state import ENTRY_PUT
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore
from wardpb.etcdserverpb import rpc_pb2

ME, PEER_A, PEER_B = 1, 2, 3


class Recorder:
    """The driver's peers: records sends and commits, grants every vote and takes every append
    (when this member leads)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.events: list[str] = []
        self._lock = threading.Lock()
        self.sent: list[Message] = []
        driver.send = self.send
        driver.on_commit = self.committed

    def committed(self, _seconds: float) -> None:
        with self._lock:  # on the driver's writer thread for larger Readies
            self.events.append("write")

    def send(self, msgs: list[Message]) -> None:
        with self._lock:
            self.events.extend(f"send {m.type.name}" for m in msgs)
        self.sent.extend(msgs)
        loop = asyncio.get_running_loop()
        for m in msgs:
            if m.type in (MessageType.PRE_VOTE, MessageType.VOTE):
                kind = (
                    MessageType.PRE_VOTE_RESP
                    if m.type == MessageType.PRE_VOTE
                    else MessageType.VOTE_RESP
                )
                reply = Message(type=kind, to=ME, from_=m.to, term=m.term)
                loop.call_soon(self.driver.step, reply)
            elif m.type == MessageType.APP:  # a follower with an empty log that took it all
                last = m.entries[-1].index if m.entries else m.index
                ack = Message(type=MessageType.APP_RESP, to=ME, from_=m.to, term=m.term, index=last)
                loop.call_soon(self.driver.step, ack)


@contextlib.asynccontextmanager
async def _member(path: Path) -> AsyncIterator[Recorder]:
    """A running driver of member ME of a three-voter cluster, with its peers recording."""
    backend = Backend(path, BackendOptions(map_size=64 << 20))
    header = HeaderInfo(cluster_id=7, member_id=ME)
    applier = Applier(backend, KVStore(backend), header)
    driver = Driver(
        backend,
        applier,
        header,
        DriverOptions(member_id=ME, voters=(ME, PEER_A, PEER_B), tick_ms=10, election_ticks=5),
        Membership(backend, ME, 7),
    )
    peers = Recorder(driver)
    await driver.start()
    try:
        yield peers
    finally:
        await driver.stop()


async def _until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.005)


def _put(driver: Driver, n: int) -> list[asyncio.Future[bytes]]:
    return [
        driver.submit(ENTRY_PUT, rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v").SerializeToString())
        for i in range(n)
    ]


def test_a_leader_sends_its_appends_before_its_own_write(tmp_path: Path) -> None:
    asyncio.run(_leader_sends_first(tmp_path))


async def _leader_sends_first(tmp_path: Path) -> None:
    async with _member(tmp_path / "db") as peers:
        driver = peers.driver
        # Applied: the followers acknowledged the leader's first entry, so they take appends.
        await _until(lambda: driver.is_leader and driver.applied_index >= 1)
        peers.events.clear()
        peers.sent.clear()
        _put(driver, 5)
        await _until(lambda: "write" in peers.events)
        appends = [i for i, e in enumerate(peers.events) if e == "send APP"]
        assert appends, peers.events
        # Both followers got the new entries before this member's write finished.
        assert appends[1] < peers.events.index("write"), peers.events
        sent = [m for m in peers.sent if m.type == MessageType.APP and m.entries]
        assert {m.to for m in sent} == {PEER_A, PEER_B}
        assert all(len(m.entries) == 5 for m in sent)


def test_a_follower_acknowledges_only_after_its_write(tmp_path: Path) -> None:
    asyncio.run(_follower_writes_first(tmp_path))


async def _follower_writes_first(tmp_path: Path) -> None:
    async with _member(tmp_path / "db") as peers:
        # PEER_A leads term 5 and appends three entries after an empty log.
        entries = tuple(Entry(term=5, index=i, data=b"") for i in (1, 2, 3))
        peers.driver.step(
            Message(
                type=MessageType.APP,
                to=ME,
                from_=PEER_A,
                term=5,
                log_term=0,
                index=0,
                entries=entries,
                commit=0,
            )
        )
        await _until(lambda: "send APP_RESP" in peers.events)
        assert peers.events.index("write") < peers.events.index("send APP_RESP"), peers.events
        ack = next(m for m in peers.sent if m.type == MessageType.APP_RESP)
        assert (ack.to, ack.index, ack.reject) == (PEER_A, 3, False)
