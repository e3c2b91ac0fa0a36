"""The asyncio driver of the Raft node: the one write path of a member.

A request becomes a `wardpeerpb.Entry` proposed to Raft. The driver hands every pending proposal
to the node at once, then handles each `Ready` in one lmdb write transaction on a dedicated
thread: append the new log entries, store the hard state, apply the committed entries, record the
applied index, commit (fsync). Only then are the waiting requests answered and messages sent. While
one transaction commits, new requests queue up and share the next one: group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from server import errors
from server.apply import Applied, Applier, HeaderInfo
from server.errors import EtcdError
from server.raft import Config, ConfState, EntryType, Message, ProposalDropped, RawNode, Ready
from server.raft.types import StateType
from server.storage.backend import Backend
from server.storage.raftlog import RaftLog
from server.wire import field_message, field_varint
from wardpb.peerpb import peer_pb2

log = logging.getLogger("ward.driver")

# Readies up to this many entries are committed on the event loop itself.
INLINE_ENTRIES = 2

# Log entries kept behind the applied index when the log is compacted, for slow followers.
LOG_KEEP = 5000
# The log is also compacted once it holds this many bytes, keeping fewer entries.
LOG_MAX_BYTES = 256 << 20
LOG_KEEP_SHORT = 100

Listener = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class DriverOptions:
    member_id: int
    voters: tuple[int, ...]
    tick_ms: int = 100
    election_ticks: int = 10
    snapshot_count: int = 100_000
    max_request_bytes: int = 1_572_864


class Driver:
    """Owns the Raft node and the write transaction of one member."""

    def __init__(
        self, backend: Backend, applier: Applier, header: HeaderInfo, options: DriverOptions
    ) -> None:
        self._b = backend
        self._applier = applier
        self._header = header
        self._opts = options
        self.raftlog = RaftLog(backend)
        if not self.raftlog.initial_state()[1].voters:
            with backend.write() as txn:
                self.raftlog.set_conf_state(txn, ConfState(voters=options.voters))
        self._node = RawNode(
            Config(
                id=options.member_id,
                election_tick=options.election_ticks,
                heartbeat_tick=1,
                applied=self.raftlog.applied,
            ),
            self.raftlog,
        )
        self._pending: list[bytes] = []
        self._exclusive: list[tuple[Callable[[], object], asyncio.Future[object]]] = []
        self._waiters: dict[int, asyncio.Future[bytes]] = {}
        self._wake = asyncio.Event()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ward-apply")
        self._ids = itertools.count(
            ((options.member_id & 0xFFFF) << 48) | ((int(time.time() * 1000) << 8) & (1 << 48) - 1)
        )
        self._listeners: list[Listener] = []
        self._stopped = False
        self._tasks: list[asyncio.Task[None]] = []
        self.send: Callable[[list[Message]], None] = lambda msgs: None
        self.leader = 0
        self.revision = 0
        self.applied_index = self.raftlog.applied

    # ---- public ----

    async def start(self) -> None:
        with self._b.read() as txn:
            self.revision = self._applier.kv.current_revision(txn)
        self._header.raft_term = self.raftlog.initial_state()[0].term
        if self._opts.voters == (self._opts.member_id,):
            # A single voter need not wait out an election timeout to lead.
            self._node.campaign()
        self._tasks = [
            asyncio.create_task(self._run(), name="raft-driver"),
            asyncio.create_task(self._ticker(), name="raft-ticker"),
        ]
        self._wake.set()

    async def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(errors.STOPPED)
        self._writer.shutdown(wait=True)

    def add_listener(self, fn: Listener) -> None:
        """Called with the new revision after every commit that applied entries."""
        self._listeners.append(fn)

    def next_id(self) -> int:
        return next(self._ids)

    async def propose(self, field: int, request: bytes, *, header: bytes = b"") -> bytes:
        """Propose a request (its raw bytes as field `field` of Entry) and await the response.

        `header` holds extra `wardpeerpb.RequestHeader` fields (user name, auth revision).
        """
        return await self.submit(field, request, header=header)

    def submit(self, field: int, request: bytes, *, header: bytes = b"") -> asyncio.Future[bytes]:
        """`propose` without a coroutine: the future of the response (the worker link answers
        from its callback, which saves a Task per forwarded request)."""
        if self._stopped:
            raise errors.STOPPED
        rid = next(self._ids)
        data = field_message(1, field_varint(1, rid) + header) + field_message(field, request)
        # etcd measures the internal Raft request (header included), so does Ward.
        if len(data) > self._opts.max_request_bytes:
            raise errors.REQUEST_TOO_LARGE
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self._pending.append(data)
        self._wake.set()
        return fut

    async def exclusive(self, fn: Callable[[], object]) -> object:
        """Run `fn` on the event loop with the writer idle and no Ready in flight.

        Nothing else of this process touches storage while `fn` runs (defragmentation swaps the
        file under everyone).
        """
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._exclusive.append((fn, fut))
        self._wake.set()
        return await fut

    def step(self, msg: Message) -> None:
        """A message from a peer."""
        self._node.step(msg)
        self._wake.set()

    @property
    def is_leader(self) -> bool:
        return self.leader == self._opts.member_id

    @property
    def term(self) -> int:
        return self._header.raft_term

    # ---- the loop ----

    async def _ticker(self) -> None:
        interval = self._opts.tick_ms / 1000
        while not self._stopped:
            await asyncio.sleep(interval)
            self._node.tick()
            self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped:
            await self._wake.wait()
            self._wake.clear()
            while self._exclusive:
                fn, fut = self._exclusive.pop(0)
                try:
                    fut.set_result(fn())
                except Exception as e:  # handed to the caller
                    fut.set_exception(e)
            if self._pending:
                batch, self._pending = self._pending, []
                try:
                    self._node.propose_many(batch)
                except ProposalDropped:
                    self._fail_batch(batch)
            while self._node.has_ready():
                rd = self._node.ready()
                try:
                    if len(rd.committed_entries) + len(rd.entries) <= INLINE_ENTRIES:
                        # A thread hop costs more than a small commit: when load is light,
                        # commit on the loop; under load, the writer thread lets requests
                        # arrive while the fsync runs.
                        results = self._persist_apply(rd)
                    else:
                        results = await loop.run_in_executor(self._writer, self._persist_apply, rd)
                except Exception:
                    log.exception("fatal: could not persist a Raft ready; stopping")
                    raise
                if rd.messages:
                    self.send(rd.messages)
                self._node.advance(rd)
                self._observe(rd)
                self._answer(results)

    def _fail_batch(self, batch: list[bytes]) -> None:
        for data in batch:
            rid = peer_pb2.Entry.FromString(data).header.id
            fut = self._waiters.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_exception(errors.NO_LEADER)

    def _observe(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self.leader = rd.soft_state.lead
            if rd.soft_state.raft_state == StateType.LEADER:
                log.info("became leader at term %d", self._header.raft_term)
        if rd.hard_state is not None:
            self._header.raft_term = rd.hard_state.term

    def _answer(self, results: list[Applied]) -> None:
        for a in results:
            fut = self._waiters.pop(a.request_id, None)
            if fut is not None and not fut.done():
                if a.error is not None:
                    fut.set_exception(a.error)
                else:
                    fut.set_result(a.response or b"")
        if results:
            self.revision = max(self.revision, *(a.revision for a in results))
            for fn in self._listeners:
                fn(self.revision)

    def _persist_apply(self, rd: Ready) -> list[Applied]:
        """One lmdb transaction for the whole Ready; runs on the writer thread."""
        results: list[Applied] = []
        env = self._b.env
        with env.begin(write=True) as txn:
            self.raftlog.append(txn, rd.entries)
            if rd.hard_state is not None:
                self.raftlog.set_hard_state(txn, rd.hard_state)
                self._header.raft_term = rd.hard_state.term
            last = 0
            for e in rd.committed_entries:
                last = e.index
                if e.type != EntryType.NORMAL or not e.data:
                    continue
                # A child transaction per entry: an unexpected error in one request rolls back
                # that request alone, on every member alike, instead of the whole batch.
                child = env.begin(write=True, parent=txn)
                try:
                    res = self._applier.apply(child, e.data)
                except Exception:
                    child.abort()
                    log.exception("internal error applying entry %d", e.index)
                    results.append(_internal_error(e.data))
                    continue
                if res.error is not None:
                    child.abort()
                else:
                    child.commit()
                results.append(res)
            if last:
                self.raftlog.set_applied(txn, last)
                self.applied_index = last
                first = self.raftlog.first_index()
                if last - first > self._opts.snapshot_count + LOG_KEEP:
                    self.raftlog.compact(txn, last - LOG_KEEP)
                elif last - first > LOG_KEEP_SHORT and self._b.raftlog_bytes(txn) > LOG_MAX_BYTES:
                    # Large entries: bound the log by size too, so it never outgrows the map.
                    self.raftlog.compact(txn, last - LOG_KEEP_SHORT)
        return results


def _internal_error(data: bytes) -> Applied:

    from wardpb.peerpb import peer_pb2

    rid = peer_pb2.Entry.FromString(data).header.id
    return Applied(rid, None, EtcdError(grpc.StatusCode.INTERNAL, "etcdserver: internal error"), 0)
