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
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import grpc
import lmdb

from server import errors
from server.apply import Applied, Applier, HeaderInfo
from server.errors import EtcdError
from server.membership import Membership, encode_change
from server.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    InvalidConfChange,
    LeaderTransferInProgress,
    Message,
    MessageRejected,
    MessageType,
    ProposalDropped,
    RawNode,
    Ready,
    SnapshotChunk,
    SnapshotMetadata,
    StateType,
    Status,
)
from server.raft.rawnode import check_forwarded_proposal
from server.slowlog import SLOW
from server.storage.backend import Backend
from server.storage.raftlog import RaftLog
from server.wire import field_message, field_varint
from wardpb.etcdserverpb import rpc_pb2
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


class SnapshotStager(Protocol):
    def stage_chunk(self, chunk: SnapshotChunk) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverOptions:
    member_id: int
    voters: tuple[int, ...]
    tick_ms: int = 100
    election_ticks: int = 10
    snapshot_count: int = 100_000
    max_request_bytes: int = 1_572_864
    learners: tuple[int, ...] = ()
    # Where snapshot images are built and received (None: beside the database).
    snap_dir: str | None = None
    # etcd's request timeout: 5 s plus twice the election timeout.
    request_timeout_s: float = 7.0
    # How long a busy member lets the next Ready gather work (see Driver._run).
    batch_wait_s: float = 0.002


class Driver:
    """Owns the Raft node and the write transaction of one member."""

    def __init__(
        self,
        backend: Backend,
        applier: Applier,
        header: HeaderInfo,
        options: DriverOptions,
        membership: Membership,
    ) -> None:
        self._b = backend
        self._applier = applier
        self._header = header
        self._opts = options
        self.membership = membership
        self.raftlog = RaftLog(backend, options.snap_dir)
        if not self.raftlog.initial_state()[1].voters:
            with backend.write() as txn:
                self.raftlog.set_conf_state(
                    txn, ConfState(voters=options.voters, learners=options.learners)
                )
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
        self._pending_ids: list[int] = []
        self._held_since: float | None = None  # since when proposals wait for a leader
        # Entries of proposals followers forwarded to this member as leader, not yet proposed.
        self._forwarded: list[bytes] = []
        # Proposals handed to a leader (this member, or the one they were forwarded to) and not
        # yet applied here: when leadership moves elsewhere, their outcome is unknown.
        self._sent_to: dict[int, int] = {}
        self._pending_conf: list[tuple[ConfChange, int]] = []
        self._pending_reads: list[asyncio.Future[None]] = []
        # Read requests handed to Raft, by context, and those answered but not yet applied.
        self._reads: dict[bytes, list[asyncio.Future[None]]] = {}
        self._read_ready: list[tuple[int, list[asyncio.Future[None]]]] = []
        self._exclusive: list[tuple[Callable[[], object], asyncio.Future[object]]] = []
        self._waiters: dict[int, asyncio.Future[bytes]] = {}
        # For /metrics: proposals refused or timed out (etcd_server_proposals_failed_total),
        # and a hook given the seconds of each fsync'd commit, on the writer thread.
        self.proposals_failed = 0
        self.on_commit: Callable[[float], None] | None = None
        # (deadline, request id) in submission order: the ticker fails what waited too long.
        self._deadlines: deque[tuple[float, int]] = deque()
        self._wake = asyncio.Event()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ward-apply")
        self._ids = itertools.count(
            ((options.member_id & 0xFFFF) << 48) | ((int(time.time() * 1000) << 8) & (1 << 48) - 1)
        )
        self._listeners: list[Listener] = []
        self._stopped = False
        self._tasks: list[asyncio.Task[None]] = []
        self.send: Callable[[list[Message]], None] = lambda msgs: None
        # Called (on the loop) after a membership change applied; with True when it removed us.
        self.on_conf_change: Callable[[bool], None] = lambda removed: None
        self.leader = 0
        self._leading = False  # the Raft state of the last Ready: leader or not
        self.revision = 0
        self.applied_index = self.raftlog.applied
        self._leader_changed = asyncio.Event()
        # Snapshot staging (server/storage/snapshot.py) and installation, set by the member.
        self.snapshots: SnapshotStager | None = self.raftlog
        self.install_snapshot: Callable[[SnapshotMetadata], Awaitable[None]] | None = None

    # ---- public ----

    async def start(self) -> None:
        with self._b.read() as txn:
            self.revision = self._applier.kv.current_revision(txn)
        self._header.raft_term = self.raftlog.initial_state()[0].term
        if self.conf_state.voters == (self._opts.member_id,):
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
        for futs in (self._pending_reads, *self._reads.values(), *(f for _, f in self._read_ready)):
            for f in futs:
                if not f.done():
                    f.set_exception(errors.STOPPED)
        self._writer.shutdown(wait=True)
        self.raftlog.close()

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
        fut = self._wait_for(rid)
        self._pending.append(data)
        self._pending_ids.append(rid)
        self._wake.set()
        return fut

    def submit_conf_change(
        self, cc_type: ConfChangeType, member: rpc_pb2.Member
    ) -> Awaitable[bytes]:
        """Propose a membership change (leader only: the Cluster service forwards to it)."""
        if self._stopped:
            raise errors.STOPPED
        if not self.is_leader:
            raise errors.NOT_LEADER
        rid = next(self._ids)
        cc = ConfChange(type=cc_type, node_id=member.ID, context=encode_change(rid, member))
        fut = self._wait_for(rid)
        self._pending_conf.append((cc, rid))
        self._wake.set()
        return fut

    def read_index(self) -> Awaitable[None]:
        """Resolves once this member has applied everything committed when it was called: a
        linearizable read may then be served from the local store. Batched: one Raft read
        request (one heartbeat round on the leader) serves every read queued meanwhile."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._stopped:
            fut.set_exception(errors.STOPPED)
            return fut
        self._pending_reads.append(fut)
        self._wake.set()
        loop = asyncio.get_running_loop()
        loop.call_later(self._opts.request_timeout_s, _expire, fut)
        return fut

    @property
    def needs_read_index(self) -> bool:
        """A sole voting member that leads has applied every acknowledged write already."""
        return not (self.is_leader and len(self.conf_state.voters) == 1)

    async def transfer_leader(self, transferee: int) -> None:
        """Hand leadership to `transferee` and wait until it leads (etcd's MoveLeader)."""
        if not self.is_leader:
            raise errors.NOT_LEADER
        try:
            self._node.transfer_leader(transferee)
        except ProposalDropped:
            raise errors.BAD_LEADER_TRANSFEREE from None
        self._wake.set()
        deadline = time.monotonic() + self._opts.request_timeout_s
        while self.leader != transferee:
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.TIMEOUT_LEADER_TRANSFER
            self._leader_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leader_changed.wait(), min(left, 0.1))

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
        """A message from a peer (the transport calls this on the event loop)."""
        if self._stopped:
            return
        try:
            if msg.type == MessageType.PROP and self.is_leader:
                check_forwarded_proposal(msg)
                # Proposals forwarded by followers join this member's own in the next batch:
                # one append (and one replication message per follower) for all that arrived
                # meanwhile, instead of one per forwarded message.
                self._forwarded.extend([e.data for e in msg.entries])
                self._wake.set()
                return
            self._node.step(msg)
        except (MessageRejected, ProposalDropped) as e:
            log.debug("dropped %s from %x: %s", msg.type.name, msg.from_, e)
            return
        self._wake.set()

    def report_unreachable(self, member: int) -> None:
        self._node.report_unreachable(member)
        self._wake.set()

    def status(self) -> Status:
        return self._node.status()

    @property
    def conf_state(self) -> ConfState:
        return self.raftlog.initial_state()[1]

    @property
    def is_leader(self) -> bool:
        return self.leader == self._opts.member_id

    @property
    def member_id(self) -> int:
        return self._opts.member_id

    @property
    def request_timeout_s(self) -> float:
        return self._opts.request_timeout_s

    @property
    def term(self) -> int:
        return self._header.raft_term

    # ---- the loop ----

    def _wait_for(self, rid: int) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self._deadlines.append((time.monotonic() + self._opts.request_timeout_s, rid))
        return fut

    async def _ticker(self) -> None:
        interval = self._opts.tick_ms / 1000
        while not self._stopped:
            await asyncio.sleep(interval)
            self._node.tick()
            self._expire_waiters()
            self._wake.set()

    def _expire_waiters(self) -> None:
        now = time.monotonic()
        dl = self._deadlines
        while dl and dl[0][0] <= now:
            _, rid = dl.popleft()
            self._sent_to.pop(rid, None)
            fut = self._waiters.pop(rid, None)
            if fut is not None and not fut.done():
                # The entry may still commit later (a lost leader, a partition): as in etcd,
                # the client learns the outcome is unknown, not that it failed.
                fut.set_exception(errors.TIMEOUT)
                self.proposals_failed += 1

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
            self._step_inputs()
            back_to_back = False
            while self._node.has_ready():
                if back_to_back:
                    if self._opts.batch_wait_s and len(self.conf_state.voters) > 1:
                        # More work came in while the last Ready was being written: the member
                        # is busy. Letting the next Ready gather a little longer makes every
                        # batch (one append, one fsync, one message per peer) serve more
                        # requests, which is what a busy cluster's throughput is bound by. (A
                        # sole voter sends no messages; its write alone is batching enough.)
                        await asyncio.sleep(self._opts.batch_wait_s)
                    # What arrived while the last Ready was being written goes into this one:
                    # the leader's appends then carry the new entries and the commit index
                    # together, so a follower gets (and writes, and answers) one message per
                    # round, not two.
                    self._step_inputs()
                back_to_back = True
                rd = self._node.ready()
                if rd.snapshot_chunks and self.snapshots is not None:
                    for chunk in rd.snapshot_chunks:
                        self.snapshots.stage_chunk(chunk)
                if rd.snapshot is not None:
                    await self._install_snapshot(rd)
                if rd.soft_state is not None:
                    self._leading = rd.soft_state.raft_state == StateType.LEADER
                # A leader sends before it writes, so that followers write at the same time
                # (Raft thesis 10.2.1; etcd does the same). Safe because nothing that reveals a
                # commit leaves before the entries are durable here: answers wait for the apply,
                # which follows this write, and the commit index travels in later Readies'
                # messages. A follower's answers (acknowledgements, votes) must wait for the write.
                early = self._leading
                if early and rd.messages:
                    self.send(rd.messages)
                try:
                    if len(rd.committed_entries) + len(rd.entries) <= INLINE_ENTRIES:
                        # A thread hop costs more than a small commit: when load is light,
                        # commit on the loop; under load, the writer thread lets requests
                        # arrive while the fsync runs.
                        results, changes = self._persist_apply(rd)
                    else:
                        results, changes = await loop.run_in_executor(
                            self._writer, self._persist_apply, rd
                        )
                except Exception:
                    log.exception("fatal: could not persist a Raft ready; stopping")
                    raise
                if rd.messages and not early:
                    self.send(rd.messages)
                self._node.advance(rd)
                self._observe(rd)
                removed = False
                for cc in changes:
                    self._node.apply_conf_change(cc)
                    removed |= (
                        cc.type == ConfChangeType.REMOVE_NODE and cc.node_id == self._opts.member_id
                    )
                if changes:
                    self.on_conf_change(removed)
                self._answer(results)
                self._serve_reads(rd)

    def _step_inputs(self) -> None:
        """Hand queued proposals, membership changes and read requests to the node."""
        if self._pending or self._forwarded:
            batch, self._pending = self._pending, []
            ids, self._pending_ids = self._pending_ids, []
            # Followers' forwarded proposals share the append with this member's own.
            forwarded, self._forwarded = self._forwarded, []
            me = self._opts.member_id
            try:
                self._node.propose_many(batch + forwarded if forwarded else batch)
                self._sent_to.update(dict.fromkeys(ids, me))
            except ProposalDropped as e:
                if forwarded:
                    # As Raft drops a proposal that reaches a member no longer leading; the
                    # follower fails its requests once it learns of the new leader.
                    log.debug("dropped %d forwarded proposals: %s", len(forwarded), e)
                lead = self.leader
                if not batch:
                    pass  # only forwarded proposals, dropped above
                elif (
                    lead
                    and lead != self._opts.member_id
                    and not isinstance(e, LeaderTransferInProgress)
                ):
                    # A follower forwards its clients' writes to the leader, as etcd's do; the
                    # request is answered here once the entry is applied here.
                    entries = tuple(Entry(0, 0, data=d) for d in batch)
                    self._sent_to.update(dict.fromkeys(ids, lead))
                    self.send(
                        [
                            Message(
                                type=MessageType.PROP,
                                to=lead,
                                from_=self._opts.member_id,
                                entries=entries,
                            )
                        ]
                    )
                else:
                    self._hold_leaderless(batch, ids)
        if not self._pending:
            self._held_since = None
        while self._pending_conf:
            cc, rid = self._pending_conf.pop(0)
            try:
                self._node.propose_conf_change(cc)
            except (ProposalDropped, InvalidConfChange) as e:
                fut = self._waiters.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_exception(errors.NOT_LEADER if not self.is_leader else _conf_refused(e))
        if self._pending_reads:
            ctx = next(self._ids).to_bytes(8, "big")
            try:
                self._node.read_index(ctx)
            except ProposalDropped:
                # No leader to ask: retried on the next tick until the reads time out.
                self._pending_reads = [f for f in self._pending_reads if not f.done()]
            else:
                self._reads[ctx], self._pending_reads = self._pending_reads, []

    def _hold_leaderless(self, batch: list[bytes], ids: list[int]) -> None:
        """No leader: hold the proposals for an election timeout (one is likely under way),
        then refuse them with "no leader". Refused, they were handed to no leader, so the
        client knows they never apply; held longer, they could apply long after it gave up."""
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        if now - self._held_since < self._opts.election_ticks * self._opts.tick_ms / 1000:
            self._pending[:0] = batch
            self._pending_ids[:0] = ids
            return
        self._held_since = None
        for rid in ids:
            fut = self._waiters.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_exception(errors.NO_LEADER)
                self.proposals_failed += 1

    def _serve_reads(self, rd: Ready) -> None:
        for rs in rd.read_states:
            futs = self._reads.pop(rs.request_ctx, None)
            if futs:
                self._read_ready.append((rs.index, futs))
        if not self._read_ready:
            return
        keep = []
        for index, futs in self._read_ready:
            if index <= self.applied_index:
                for f in futs:
                    if not f.done():
                        f.set_result(None)
            else:
                keep.append((index, futs))
        self._read_ready = keep

    async def _install_snapshot(self, rd: Ready) -> None:
        assert rd.snapshot is not None
        if self.install_snapshot is None:
            raise RuntimeError("received a snapshot but no installer is configured")
        await self.install_snapshot(rd.snapshot.metadata)
        self.applied_index = self.raftlog.applied
        with self._b.read() as txn:
            self.revision = self._applier.kv.current_revision(txn)
        for fn in self._listeners:
            fn(self.revision)

    def _observe(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            if rd.soft_state.lead != self.leader:
                previous, self.leader = self.leader, rd.soft_state.lead
                self._leader_changed.set()
                self._fail_orphans(previous)
                if self.leader:
                    log.info("raft leader is %x at term %d", self.leader, self._header.raft_term)
                else:
                    log.info("raft leader lost at term %d", self._header.raft_term)
            if rd.soft_state.raft_state == StateType.LEADER:
                log.info("became leader at term %d", self._header.raft_term)

    def _fail_orphans(self, previous: int) -> None:
        """Leadership moved: proposals sent to another leader may never commit. Tell their
        clients now (etcd's "possibly due to previous leader failure") rather than after the
        request timeout; they may still apply, as with any timeout."""
        lead = self.leader
        if previous:
            # Read requests the old leader was to confirm: etcd answers "leader changed". (Not
            # when none was known: the node may have handed the reads to the new one already.)
            for futs in self._reads.values():
                for f in futs:
                    if not f.done():
                        f.set_exception(errors.LEADER_CHANGED)
            self._reads.clear()
        orphans = [rid for rid, to in self._sent_to.items() if to != lead]
        for rid in orphans:
            del self._sent_to[rid]
            fut = self._waiters.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_exception(errors.TIMEOUT_DUE_TO_LEADER_FAIL)
                self.proposals_failed += 1

    def _answer(self, results: list[Applied]) -> None:
        sent = self._sent_to
        for a in results:
            sent.pop(a.request_id, None)
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

    def _persist_apply(self, rd: Ready) -> tuple[list[Applied], list[ConfChange]]:
        """One lmdb transaction for the whole Ready; runs on the writer thread."""
        results: list[Applied] = []
        changes: list[ConfChange] = []
        if not (rd.entries or rd.hard_state or rd.committed_entries):
            return results, changes  # messages only (heartbeats): nothing to make durable
        env = self._b.env
        with env.begin(write=True) as txn:
            self.raftlog.append(txn, rd.entries)
            if rd.hard_state is not None:
                self.raftlog.set_hard_state(txn, rd.hard_state)
                self._header.raft_term = rd.hard_state.term
            last = 0
            for e in rd.committed_entries:
                last = e.index
                if e.type == EntryType.CONF_CHANGE:
                    self._apply_conf_change(txn, e, results, changes)
                    continue
                if not e.data:
                    continue
                # A child transaction per entry: an unexpected error in one request rolls back
                # that request alone, on every member alike, instead of the whole batch.
                child = env.begin(write=True, parent=txn)
                started = time.perf_counter()
                try:
                    res = self._applier.apply(child, e.data)
                except Exception:
                    child.abort()
                    log.exception("internal error applying entry %d", e.index)
                    results.append(_internal_error(e.data))
                    continue
                if (took := time.perf_counter() - started) > SLOW.threshold:
                    err = res.error.message if res.error is not None else ""
                    SLOW.applied(e.data, res.response, err, took)
                if res.error is not None:
                    child.abort()
                else:
                    child.commit()
                results.append(res)
            if last:
                self.raftlog.set_applied(txn, last)
                self.applied_index = last
                first = self.raftlog.first_index()
                # etcd keeps 5000 entries for slow followers whatever --snapshot-count says;
                # Ward keeps fewer when the operator asked for a shorter log.
                keep = min(LOG_KEEP, max(self._opts.snapshot_count, LOG_KEEP_SHORT))
                if last - first > self._opts.snapshot_count + keep:
                    self.raftlog.compact(txn, last - keep)
                elif last - first > LOG_KEEP_SHORT and self._b.raftlog_bytes(txn) > LOG_MAX_BYTES:
                    # Large entries: bound the log by size too, so it never outgrows the map.
                    self.raftlog.compact(txn, last - LOG_KEEP_SHORT)
            committing = time.monotonic()  # leaving the block commits (and fsyncs)
        if self.on_commit is not None:
            self.on_commit(time.monotonic() - committing)
        return results, changes

    def _apply_conf_change(
        self, txn: lmdb.Transaction, e: Entry, results: list[Applied], changes: list[ConfChange]
    ) -> None:
        try:
            cc = ConfChange.decode(e.data)
        except InvalidConfChange:
            log.error("skipping malformed membership change at index %d", e.index)
            return
        cs = self.membership.apply_change(txn, cc, self.raftlog.initial_state()[1])
        self.raftlog.set_conf_state(txn, cs)
        changes.append(cc)
        if cc.context:
            rid = peer_pb2.MemberChange.FromString(cc.context).request_id
            results.append(Applied(rid, b"", None, self.revision))


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(errors.TIMEOUT)


def _conf_refused(e: Exception) -> EtcdError:
    """A membership change the Raft core refused (another one is still in flight)."""
    log.info("membership change refused: %s", e)
    return errors.UNHEALTHY


def _internal_error(data: bytes) -> Applied:
    rid = peer_pb2.Entry.FromString(data).header.id
    return Applied(rid, None, EtcdError(grpc.StatusCode.INTERNAL, "etcdserver: internal error"), 0)
