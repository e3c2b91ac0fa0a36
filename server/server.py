"""Assembles a member: data directory, storage, Raft driver, servicers, gRPC listeners, workers."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import struct
from dataclasses import dataclass, field

import grpc

from server.api.cluster import ClusterService
from server.api.election import ElectionService
from server.api.kv import KVService
from server.api.lease import INTERNAL_SERVICE, LeaseService
from server.api.lock import LockService
from server.api.maintenance import MaintenanceService, RaftInfo
from server.api.rpc import generic_handlers
from server.api.watch import WatchService
from server.apply import Applier, HeaderInfo
from server.datadir import DataDir
from server.driver import Driver, DriverOptions
from server.ipc import PUSH_REV, PUSH_TERM, WorkerHub
from server.lessor import LeaseExpirer, Lessor, min_lease_ttl
from server.membership import cluster_id, member_id
from server.state import ENTRY_LEASE_EXPIRE, MemberInfo, ServerState
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore
from server.watch import RevisionClock
from server.worker import WorkerArgs
from server.worker import main as worker_main
from wardpb.peerpb import peer_pb2

log = logging.getLogger("ward.server")

_U64 = struct.Struct(">Q")
# Headroom above the quota so that lmdb never runs out of map before the quota alarm fires.
MAP_HEADROOM = 1 << 30
# gRPC's receive limit sits above --max-request-bytes as etcd's does, so that a request a little
# over the limit gets etcd's "request is too large" rather than a transport error.
GRPC_OVERHEAD_BYTES = 512 * 1024
WORKER_START_TIMEOUT_S = 30.0
# Services worker processes serve themselves; the core answers the rest of their unary calls.
# (Lock and Election run their recipes where the call is, so that a client's cancellation
# reaches them; streaming calls cannot be forwarded over the link at all.)
WORKER_LOCAL = ("etcdserverpb.KV", "etcdserverpb.Watch", "v3lockpb.Lock", "v3electionpb.Election")
STREAMING = ("Snapshot", "LeaseKeepAlive")


@dataclass(frozen=True, slots=True)
class ServerOptions:
    name: str = "default"
    data_dir: str = "default.ward"
    listen_client: tuple[str, ...] = ("localhost:2379",)
    advertise_client_urls: tuple[str, ...] = ("http://localhost:2379",)
    initial_cluster: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"default": ("http://localhost:2380",)}
    )
    initial_cluster_token: str = "etcd-cluster"
    heartbeat_ms: int = 100
    election_ms: int = 1000
    snapshot_count: int = 100_000
    quota_bytes: int = 2 << 30
    max_request_bytes: int = 1_572_864
    max_txn_ops: int = 128
    workers: int = 1
    fsync: bool = True
    max_concurrent_streams: int = 0
    log_level: str = "info"
    log_outputs: tuple[str, ...] = ("stderr",)
    watch_progress_interval: float = 600.0


class Member:
    """One running member in this (core) process."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.datadir = DataDir(options.data_dir)
        self.ports: list[int] = []
        self._grpc: grpc.aio.Server | None = None
        self.driver: Driver | None = None
        self.lessor: Lessor | None = None
        self._expirer: LeaseExpirer | None = None
        self.backend: Backend | None = None
        self.state: ServerState | None = None
        self.hub: WorkerHub | None = None
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._worker_args: list[WorkerArgs] = []
        self._housekeeping: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        o = self.options
        self.datadir.open()
        self.backend = Backend(
            self.datadir.db_path,
            BackendOptions(map_size=o.quota_bytes + MAP_HEADROOM, sync=o.fsync),
        )
        ids = {
            name: member_id(list(urls), o.initial_cluster_token)
            for name, urls in o.initial_cluster.items()
        }
        mid, cid = self._identity(ids)
        header = HeaderInfo(cluster_id=cid, member_id=mid)
        kv = KVStore(self.backend)
        applier = Applier(self.backend, kv, header)
        election_ticks = max(2, o.election_ms // o.heartbeat_ms)
        applier.min_lease_ttl = min_lease_ttl(election_ticks, o.heartbeat_ms)
        self.driver = Driver(
            self.backend,
            applier,
            header,
            DriverOptions(
                member_id=mid,
                voters=tuple(sorted(ids.values())),
                tick_ms=o.heartbeat_ms,
                election_ticks=election_ticks,
                snapshot_count=o.snapshot_count,
                max_request_bytes=o.max_request_bytes,
            ),
        )
        self.lessor = self._start_lessor(applier, election_ticks * o.heartbeat_ms / 1000)
        await self.driver.start()
        assert self._expirer is not None
        self._expirer.start()
        members = [
            MemberInfo(
                id=ids[name],
                name=name,
                peer_urls=urls,
                client_urls=o.advertise_client_urls if name == o.name else (),
            )
            for name, urls in o.initial_cluster.items()
        ]
        self.state = ServerState(
            backend=self.backend,
            kv=kv,
            reader=applier,
            header=header,
            proposer=self.driver,
            member_id=mid,
            cluster_id=cid,
            members=members,
            max_txn_ops=o.max_txn_ops,
            max_request_bytes=o.max_request_bytes,
            quota_bytes=o.quota_bytes,
        )
        self.clock = RevisionClock(self.driver.revision)
        self.driver.add_listener(self.clock.advance)
        impls = core_impls(self.state, self.raft_info, self.defragment)
        impls["etcdserverpb.Watch"] = WatchService(
            self.state, self.clock, progress_interval=o.watch_progress_interval
        ).methods()
        leases = LeaseService(self.state, self.lessor, self._expirer, self.clock)
        impls["etcdserverpb.Lease"] = leases.methods()
        impls[INTERNAL_SERVICE] = dict(leases.internal_methods())
        impls["v3lockpb.Lock"] = dict(LockService(self.state, self.clock).methods())
        impls["v3electionpb.Election"] = ElectionService(self.state, self.clock).methods()
        self._grpc = grpc.aio.server(options=grpc_options(o))
        handlers = generic_handlers(
            impls,  # type: ignore[arg-type]
            max_message_bytes=o.max_request_bytes + GRPC_OVERHEAD_BYTES,
        )
        self._grpc.add_generic_rpc_handlers(handlers)
        bound = []
        for addr in o.listen_client:
            port = self._grpc.add_insecure_port(addr)
            self.ports.append(port)
            bound.append(f"{addr.rsplit(':', 1)[0]}:{port}")
        await self._grpc.start()
        if o.workers > 1:
            await self._start_workers(impls, tuple(bound))
        self._housekeeping = asyncio.create_task(self._housekeep())
        for addr in bound:
            log.warning(
                f"serving insecure client requests on {addr}, this is strongly discouraged!"
            )
        log.info("ready to serve client requests", extra={"addresses": bound})

    async def _start_workers(self, impls: dict[str, dict[str, object]], bound: tuple[str, ...]):
        assert self.state is not None and self.driver is not None
        o = self.options
        unary = {
            f"/{svc}/{name}": fn
            for svc, methods in impls.items()
            for name, fn in methods.items()
            if svc not in WORKER_LOCAL and name not in STREAMING
        }
        self.hub = WorkerHub(self.driver.submit, unary)  # type: ignore[arg-type]
        sock = self.datadir.ipc_path
        sock.unlink(missing_ok=True)
        await self.hub.start(str(sock))
        last = {"term": -1}

        def push(rev: int) -> None:
            term = self.state.header.raft_term  # type: ignore[union-attr]
            if term != last["term"]:
                last["term"] = term
                self.hub.push(PUSH_TERM, term)
            self.hub.push(PUSH_REV, rev)

        self.driver.add_listener(push)
        args = [
            WorkerArgs(
                index=i,
                db_path=str(self.datadir.db_path),
                map_size=o.quota_bytes + MAP_HEADROOM,
                ipc_path=str(sock),
                addresses=bound,
                grpc_options=tuple(grpc_options(o)),
                member_id=self.state.member_id,
                cluster_id=self.state.cluster_id,
                members=tuple(self.state.members),
                term=self.state.header.raft_term,
                max_txn_ops=o.max_txn_ops,
                max_request_bytes=o.max_request_bytes,
                max_message_bytes=o.max_request_bytes + GRPC_OVERHEAD_BYTES,
                quota_bytes=o.quota_bytes,
                forwarded=tuple(unary),
                log_level=o.log_level,
                log_outputs=o.log_outputs,
                watch_progress_interval=o.watch_progress_interval,
            )
            for i in range(1, o.workers)
        ]
        self._worker_args = args
        self._procs = [_spawn(a) for a in args]
        # "ready" must mean every serving process is up: scripts start using the port then.
        if not await self.hub.wait_connected(len(args), timeout=WORKER_START_TIMEOUT_S):
            log.warning("not every worker linked up in time; serving with those that did")

    def _start_lessor(self, applier: Applier, extend: float) -> Lessor:
        """The lessor: loaded from storage, then fed by the apply path after every commit."""
        assert self.backend is not None and self.driver is not None
        driver = self.driver
        lessor = Lessor(min_ttl=applier.min_lease_ttl, extend=extend)
        with self.backend.read() as txn:
            lessor.recover(applier.leases(txn))

        def take_changes(rev: int) -> None:
            changes = applier.lease_changes
            while changes:
                lessor.apply((changes.popleft(),))

        driver.add_listener(take_changes)

        async def revoke(ids: list[int]) -> object:
            entry = peer_pb2.LeaseExpire(ids=ids).SerializeToString()
            return await driver.propose(ENTRY_LEASE_EXPIRE, entry)

        self._expirer = LeaseExpirer(lessor, is_leader=lambda: driver.is_leader, revoke=revoke)
        return lessor

    async def _housekeep(self) -> None:
        """Restart dead workers; clear lmdb reader slots left by killed processes."""
        while True:
            await asyncio.sleep(1.0)
            if self.backend is not None:
                self.backend.env.reader_check()
            for i, proc in enumerate(self._procs):
                if not proc.is_alive() and not self._stopping:
                    log.warning("worker %d exited with %s; restarting", i + 1, proc.exitcode)
                    self._procs[i] = _spawn(self._worker_args[i])

    def _identity(self, ids: dict[str, int]) -> tuple[int, int]:
        """This member's ID and the cluster ID: stored on first start, read back after."""
        assert self.backend is not None
        o = self.options
        if o.name not in ids:
            raise ValueError(f"--initial-cluster has no member named {o.name!r}")
        with self.backend.write() as txn:
            raw_m = txn.get(b"member_id", db=self.backend.meta)
            raw_c = txn.get(b"cluster_id", db=self.backend.meta)
            if raw_m and raw_c:
                return _U64.unpack(raw_m)[0], _U64.unpack(raw_c)[0]
            mid, cid = ids[o.name], cluster_id(list(ids.values()))
            txn.put(b"member_id", _U64.pack(mid), db=self.backend.meta)
            txn.put(b"cluster_id", _U64.pack(cid), db=self.backend.meta)
        return mid, cid

    async def defragment(self) -> None:
        """Compact the database file; workers close and reopen it around the swap."""
        assert self.driver is not None and self.backend is not None
        if self.hub is not None:
            await self.hub.pause_all(timeout=10.0)
        try:
            await self.driver.exclusive(self.backend.defragment)
        finally:
            if self.hub is not None:
                self.hub.resume_all()
        log.info("defragmented", extra={"db_size": self.backend.size()})

    def raft_info(self) -> RaftInfo:
        info = RaftInfo()
        d = self.driver
        if d is not None:
            info.leader = d.leader
            info.term = d.term
            info.raft_index = d.raftlog.last_index()
            info.applied_index = d.applied_index
        return info

    async def stop(self) -> None:
        self._stopping = True
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._expirer is not None:
            await self._expirer.stop()
        if self.hub is not None:
            await self.hub.stop()
        loop = asyncio.get_running_loop()
        for proc in self._procs:
            # Joined off the loop: the loop must stay free to finish closing the links.
            await loop.run_in_executor(None, proc.join, 2)
            if proc.is_alive():
                proc.kill()
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
        if self.driver is not None:
            await self.driver.stop()
        if self.backend is not None:
            self.backend.close()
        self.datadir.close()


def grpc_options(o: ServerOptions) -> list[tuple[str, int]]:
    opts = [
        # The transport takes more than the limit so that the RPC layer can refuse with
        # grpc-go's wording (etcd's clients see that); far larger messages stop at the core.
        ("grpc.max_receive_message_length", 4 * (o.max_request_bytes + GRPC_OVERHEAD_BYTES)),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.so_reuseport", 1),
    ]
    # etcd's default is 2^32-1 ("unlimited"); gRPC's C core takes a signed 32-bit value.
    if 0 < o.max_concurrent_streams < 2**31:
        opts.append(("grpc.max_concurrent_streams", o.max_concurrent_streams))
    return opts


def core_impls(
    state: ServerState, raft_info: object, defragment: object
) -> dict[str, dict[str, object]]:
    """The core process's implementation of each service it answers."""
    return {
        "etcdserverpb.KV": dict(KVService(state).methods()),
        "etcdserverpb.Maintenance": MaintenanceService(
            state,
            raft_info,
            defragment,  # type: ignore[arg-type]
        ).methods(),
        "etcdserverpb.Cluster": ClusterService(state).methods(),
    }


def _spawn(args: WorkerArgs) -> multiprocessing.process.BaseProcess:
    proc = multiprocessing.get_context("spawn").Process(
        target=worker_main, args=(args,), name=f"ward-worker-{args.index}", daemon=True
    )
    proc.start()
    return proc


async def run_forever(member: Member, stop: asyncio.Event) -> None:
    await member.start()
    try:
        await stop.wait()
    finally:
        await member.stop()
