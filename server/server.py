"""Assembles a member: data directory, storage, Raft driver, servicers, gRPC listeners, workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from server import errors
from server.access import Access
from server.api.auth import AuthService
from server.api.cluster import ClusterService
from server.api.election import ElectionService
from server.api.kv import KVService
from server.api.lease import INTERNAL_SERVICE, KEEPALIVE_ONCE, LeaseService
from server.api.lock import LockService
from server.api.maintenance import MaintenanceService, RaftInfo
from server.api.policy import PolicyService
from server.api.rpc import CallInfo, generic_handlers
from server.api.watch import WatchService
from server.apply import Applier, HeaderInfo
from server.auth_apply import AuthApplier
from server.authsetup import TOKEN_INFO_METHOD, AuthOptions, WorkerAuth, core_access, publish_key
from server.autocompact import AutoCompactor, for_driver
from server.corruption import HASHKV_CALL, CorruptionChecker
from server.datadir import DataDir
from server.denials import AuditedProposer
from server.driver import Driver, DriverOptions
from server.gateway import serve_http
from server.gateway.service import HTTPListeners
from server.ipc import PUSH_READ_MODE, PUSH_REV, PUSH_TERM, WorkerHub
from server.lessor import LeaseExpirer, Lessor, min_lease_ttl
from server.membership import Membership, cluster_id, member_id
from server.metrics import LeaderWatch
from server.peer.transport import PeerCallError, PeerTransport
from server.raft import SnapshotMetadata
from server.slowlog import SLOW
from server.state import ENTRY_ALARM, ENTRY_LEASE_EXPIRE, ENTRY_MEMBER_ATTR, ServerState
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore
from server.storage.snapshot import K_CLUSTER_ID, K_MEMBER_ID
from server.tenancy import namespaced
from server.tls import ClientListeners, ListenerTLS, prepare
from server.tls.guard import CertGuardInterceptor
from server.tls.peer import PeerTLS
from server.watch import RevisionClock
from server.watch_quota import LocalQuota, WatcherCounts
from server.worker import WorkerArgs
from server.worker import main as worker_main
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2

log = logging.getLogger("ward.server")

_U64 = struct.Struct(">Q")
# Headroom above the quota so that lmdb never runs out of map before the quota alarm fires.
MAP_HEADROOM = 1 << 30
# gRPC's receive limit sits above --max-request-bytes as etcd's does, so that a request a little
# over the limit gets etcd's "request is too large" rather than a transport error.
GRPC_OVERHEAD_BYTES = 512 * 1024
WORKER_START_TIMEOUT_S = 30.0
JOIN_ATTEMPTS = 30
# Peer calls: the cluster's member list, for a member joining it.
MEMBERS_CALL = "members"
# Unary calls only the leader can answer; followers forward them over the peer transport.
LEADER_CALLS = (
    "/etcdserverpb.Cluster/MemberAdd",
    "/etcdserverpb.Cluster/MemberRemove",
    "/etcdserverpb.Cluster/MemberUpdate",
    "/etcdserverpb.Cluster/MemberPromote",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    KEEPALIVE_ONCE,
)
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
    # Which of listen_client serve TLS, and how (server.tls; None: all plaintext).
    listen_client_tls: tuple[str, ...] = ()
    client_tls: ListenerTLS | None = None
    advertise_client_urls: tuple[str, ...] = ("http://localhost:2379",)
    initial_cluster: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"default": ("http://localhost:2380",)}
    )
    initial_cluster_token: str = "etcd-cluster"
    initial_cluster_state: str = "new"
    listen_peer: tuple[str, ...] = ("localhost:2380",)
    strict_reconfig: bool = True
    # TLS of the peer listener and of connections to peers (None: http:// peer URLs).
    peer_tls: PeerTLS | None = None
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
    auth: AuthOptions = field(default_factory=AuthOptions)
    # HTTP listeners (server.gateway): the JSON gateway, metrics and health on the first,
    # metrics and health only on the second; those in listen_http_tls serve TLS (client_tls).
    listen_client_http: tuple[str, ...] = ()
    listen_metrics: tuple[str, ...] = ()
    listen_http_tls: tuple[str, ...] = ()
    # Auto compaction (server.autocompact): seconds of history (periodic) or revisions kept.
    auto_compaction_period: float = 0.0
    auto_compaction_revisions: int = 0
    # Slow-request log threshold (server.slowlog), in seconds.
    warning_apply_s: float = 0.1
    # Corruption checks (server.corruption): at start, and every corrupt_check_s (0: never).
    initial_corrupt_check: bool = False
    corrupt_check_s: float = 0.0


class Member:
    """One running member in this (core) process."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.datadir = DataDir(options.data_dir)
        self.ports: list[int] = []
        self.secure_bound: list[str] = []  # bound client addresses serving TLS
        self.listeners: ClientListeners | None = None
        self._grpc: grpc.aio.Server | None = None
        self.driver: Driver | None = None
        self.lessor: Lessor | None = None
        self._expirer: LeaseExpirer | None = None
        self._autocompact: AutoCompactor | None = None
        self.backend: Backend | None = None
        self.state: ServerState | None = None
        self.hub: WorkerHub | None = None
        # Each tenant's open watchers in this member, every serving process's (watch_quota).
        self.watchers = WatcherCounts()
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._worker_args: list[WorkerArgs] = []
        self._housekeeping: asyncio.Task[None] | None = None
        self._stopping = False
        self.transport: PeerTransport | None = None
        self.membership: Membership | None = None
        self.peer_ports: list[int] = []
        # Set when this member must stop on its own (it was removed from the cluster).
        self.done = asyncio.Event()
        self._removal_seen = False
        self._peer_handlers: dict[str, Callable[[bytes], Awaitable[bytes]]] = {}
        self._worker_auth: WorkerAuth | None = None
        self._access: Access | None = None
        # Password hashing and checking (argon2 releases the GIL: one thread per core).
        self._hashing = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="ward-auth")
        self._http: HTTPListeners | None = None
        self.http_ports: list[int] = []
        self.leader_watch: LeaderWatch | None = None
        # Whether the data directory held this member's state before this start (etcd's
        # "member initialized": only then is there anything to compare with the peers).
        self.initialized = False
        self.corruption: CorruptionChecker | None = None

    async def start(self) -> None:
        o = self.options
        SLOW.configure(o.warning_apply_s)
        self.datadir.open()
        if o.client_tls is not None:
            prepare(o.client_tls)  # Ward's own CA and certificates, made once in the data dir
        # Loaded before anything else starts: unusable certificates stop the start here.
        listeners = self.listeners = ClientListeners(o.client_tls, o.listen_client_tls)
        listeners.start_renewal()  # Ward's own certificates are renewed while it runs
        self.backend = Backend(
            self.datadir.db_path,
            BackendOptions(map_size=o.quota_bytes + MAP_HEADROOM, sync=o.fsync),
        )
        ids = {
            name: member_id(list(urls), o.initial_cluster_token)
            for name, urls in o.initial_cluster.items()
        }
        mid, cid, initial = await self._identity(ids)
        self.membership = Membership(self.backend, mid, cid)
        self.membership.bootstrap(initial)
        header = HeaderInfo(cluster_id=cid, member_id=mid)
        kv = KVStore(self.backend)
        applier = self._applier = Applier(self.backend, kv, header)
        election_ticks = max(2, o.election_ms // o.heartbeat_ms)
        applier.min_lease_ttl = min_lease_ttl(election_ticks, o.heartbeat_ms)
        # In place before the driver starts: auth checks every entry applied, replayed ones too.
        access, self._worker_auth = core_access(
            self.backend, applier, o.auth, key_dir=self.datadir.path / "member"
        )
        AuthApplier(access, kv, header).install(applier)
        self._access = access
        self.driver = Driver(
            self.backend,
            applier,
            header,
            DriverOptions(
                member_id=mid,
                voters=tuple(sorted(m.ID for m in initial if not m.isLearner)),
                learners=tuple(sorted(m.ID for m in initial if m.isLearner)),
                tick_ms=o.heartbeat_ms,
                election_ticks=election_ticks,
                snapshot_count=o.snapshot_count,
                max_request_bytes=o.max_request_bytes,
                # etcd's request timeout: 5 s plus twice the election timeout.
                request_timeout_s=5.0 + 2 * o.election_ms / 1000,
            ),
            self.membership,
        )
        applier.register("member_attr", self.membership.apply_attributes)
        self.lessor = self._start_lessor(applier, election_ticks * o.heartbeat_ms / 1000)
        self.driver.install_snapshot = self._install_snapshot
        await self._start_peer()
        await self._check_corruption(kv, initial=o.initial_corrupt_check and self.initialized)
        await self.driver.start()
        assert self._expirer is not None
        self._expirer.start()
        p, r = o.auto_compaction_period, o.auto_compaction_revisions
        self._autocompact = for_driver(self.driver, p, r)
        if self._autocompact is not None:
            self._autocompact.start()
        if o.corrupt_check_s > 0:
            self._start_corruption_checks(o.corrupt_check_s)
        self.state = ServerState(
            backend=self.backend,
            kv=kv,
            reader=applier,
            header=header,
            # Writes refused where they apply are audited here, where the client is known.
            proposer=AuditedProposer(self.driver, access, self.backend),
            member_id=mid,
            cluster_id=cid,
            max_txn_ops=o.max_txn_ops,
            max_request_bytes=o.max_request_bytes,
            quota_bytes=o.quota_bytes,
            access=access,
        )
        driver = self.driver
        self.state.read_index = lambda: driver.read_index() if driver.needs_read_index else None
        self.clock = RevisionClock(self.driver.revision)
        self.driver.add_listener(self.clock.advance)
        impls = core_impls(self.state, self.raft_info, self.defragment, self.move_leader)
        impls["etcdserverpb.Cluster"] = ClusterService(
            self.state,
            self.membership,
            self.driver,
            self.forward_to_leader,
            self._active_since,
            strict_reconfig=o.strict_reconfig,
        ).methods()
        impls["etcdserverpb.Watch"] = WatchService(
            self.state,
            self.clock,
            progress_interval=o.watch_progress_interval,
            quota=LocalQuota(self.watchers),
        ).methods()
        leases = LeaseService(
            self.state, self.lessor, self._expirer, self.clock, forward=self.forward_to_leader
        )
        impls["etcdserverpb.Lease"] = leases.methods()
        impls[INTERNAL_SERVICE] = dict(leases.internal_methods())
        impls[INTERNAL_SERVICE][TOKEN_INFO_METHOD] = access.token_info
        impls["etcdserverpb.Auth"] = AuthService(self.state, access, self._hashing).methods()
        impls["v3lockpb.Lock"] = dict(LockService(self.state, self.clock).methods())
        impls["v3electionpb.Election"] = ElectionService(self.state, self.clock).methods()
        impls["wardpolicypb.Policy"] = dict(PolicyService(self.state, access).methods())
        # Tenant users' keys are mapped into their tenant (a no-op for everyone else).
        impls = namespaced(impls, access)
        self._grpc = grpc.aio.server(options=grpc_options(o))
        guard = listeners.guard
        handlers = generic_handlers(
            impls,  # type: ignore[arg-type]
            max_message_bytes=o.max_request_bytes + GRPC_OVERHEAD_BYTES,
            guard=guard.check if guard is not None else None,
        )
        self._grpc.add_generic_rpc_handlers(handlers)
        bound = []
        for addr in o.listen_client:
            port = listeners.bind(self._grpc, addr)
            self.ports.append(port)
            bound.append(f"{addr.rsplit(':', 1)[0]}:{port}")
            if listeners.is_secure(addr):
                self.secure_bound.append(bound[-1])
        await self._grpc.start()
        if o.workers > 1:
            await self._start_workers(impls, tuple(bound))
        assert self.transport is not None
        # Filled in place: the transport looks handlers up per call.
        self._peer_handlers.update(self._peer_calls(impls))
        # Before publishing: /health must answer (unhealthy) while there is no quorum.
        self._http = await serve_http(self, impls)
        self.http_ports = self._http.ports if self._http is not None else []
        self._housekeeping = asyncio.create_task(self._housekeep())
        # Like etcd, a member announces readiness once it has published its name and client
        # URLs through Raft: a quorum is up and it has caught up with the cluster.
        await self._publish_attributes()
        # Other members accept this member's tokens once its key is in the replicated tables.
        await publish_key(access, self.driver.propose, self.done)
        for addr in bound:
            listeners.log_serving(addr, secure=addr in self.secure_bound)
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
        self.hub = WorkerHub(self.driver.submit, unary, watchers=self.watchers)  # type: ignore[arg-type]
        self.hub.read_index = self.state.read_index
        sock = self.datadir.ipc_path
        sock.unlink(missing_ok=True)
        await self.hub.start(str(sock))
        last = {"term": -1}

        last["read"] = -1
        driver = self.driver

        def push(rev: int) -> None:
            term = self.state.header.raft_term  # type: ignore[union-attr]
            if term != last["term"]:
                last["term"] = term
                self.hub.push(PUSH_TERM, term)
            needed = int(driver.needs_read_index)
            if needed != last["read"]:
                last["read"] = needed
                self.hub.push(PUSH_READ_MODE, needed)
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
                term=self.state.header.raft_term,
                max_txn_ops=o.max_txn_ops,
                max_request_bytes=o.max_request_bytes,
                max_message_bytes=o.max_request_bytes + GRPC_OVERHEAD_BYTES,
                quota_bytes=o.quota_bytes,
                forwarded=tuple(unary),
                log_level=o.log_level,
                log_outputs=o.log_outputs,
                watch_progress_interval=o.watch_progress_interval,
                warning_apply_s=o.warning_apply_s,
                client_tls=o.client_tls,
                secure_addresses=tuple(self.secure_bound),
                auth=self._worker_auth,
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

    async def _identity(self, ids: dict[str, int]) -> tuple[int, int, list[rpc_pb2.Member]]:
        """This member's ID, the cluster ID and the initial members: stored on first start,
        read back after. A member joining an existing cluster asks its peers for them."""
        assert self.backend is not None
        o = self.options
        if o.name not in ids:
            raise ValueError(f"--initial-cluster has no member named {o.name!r}")
        with self.backend.read() as txn:
            raw_m = txn.get(K_MEMBER_ID, db=self.backend.meta)
            raw_c = txn.get(K_CLUSTER_ID, db=self.backend.meta)
        if raw_m and raw_c:
            self.initialized = True
            return _U64.unpack(raw_m)[0], _U64.unpack(raw_c)[0], []
        if o.initial_cluster_state == "existing":
            mid, cid, members = await self._join()
        else:
            mid, cid = ids[o.name], cluster_id(list(ids.values()))
            members = [
                rpc_pb2.Member(ID=ids[name], name=name, peerURLs=urls)
                for name, urls in o.initial_cluster.items()
            ]
        with self.backend.write() as txn:
            txn.put(K_MEMBER_ID, _U64.pack(mid), db=self.backend.meta)
            txn.put(K_CLUSTER_ID, _U64.pack(cid), db=self.backend.meta)
        return mid, cid, members

    async def _join(self) -> tuple[int, int, list[rpc_pb2.Member]]:
        """`--initial-cluster-state existing`: learn the cluster from a member that runs."""
        o = self.options
        mine = set(o.initial_cluster[o.name])
        urls = [u for name, us in o.initial_cluster.items() if name != o.name for u in us]
        last: Exception | None = None
        for _ in range(JOIN_ATTEMPTS):
            for url in urls:
                try:
                    raw = await fetch_members(url, timeout=2.0, tls=o.peer_tls)
                except Exception as e:  # try the next peer
                    last = e
                    continue
                resp = rpc_pb2.MemberListResponse.FromString(raw)
                me = [m for m in resp.members if set(m.peerURLs) == mine]
                if not me:
                    raise ValueError(
                        f"member {o.name} ({', '.join(sorted(mine))}) is not in the cluster's "
                        "member list; add it first (etcdctl member add)"
                    )
                return me[0].ID, resp.header.cluster_id, list(resp.members)
            await asyncio.sleep(1.0)
        raise ValueError(f"could not fetch the cluster's members from {urls}: {last}")

    async def _start_peer(self) -> None:
        """The peer listener and transport; Raft messages flow once the driver starts."""
        assert self.driver is not None and self.membership is not None
        o = self.options
        driver, membership = self.driver, self.membership
        tls = o.peer_tls
        if tls is not None:
            tls.prepare()  # Ward's own peer certificate, made once in the data directory
        self.transport = PeerTransport(
            server_credentials=None if tls is None else tls.server_credentials(),
            channel_credentials=None if tls is None else tls.channel_credentials(),
            # CRL and allowed CN/host names, checked on every peer RPC as on client listeners.
            interceptors=() if tls is None else (CertGuardInterceptor(tls.guard()),),
            member_id=membership.member_id,
            cluster_id=membership.cluster_id,
            on_message=driver.step,
            on_unreachable=driver.report_unreachable,
            is_removed=membership.is_removed,
            on_removed=self._removed,
            calls=self._peer_handlers,
        )
        self.peer_ports = await self.transport.start(list(o.listen_peer))
        self.transport.set_peers(membership.peers())
        driver.send = self.transport.send

        def conf_changed(removed: bool) -> None:
            assert self.transport is not None
            self.transport.set_peers(membership.peers())
            if removed:
                # As etcd's stopWithDelay: ten ticks for the answer to the removal (and any other
                # in flight) to reach the member that asked, which may have forwarded it here.
                self._removed(delay=10 * o.heartbeat_ms / 1000)

        driver.on_conf_change = conf_changed

    async def _check_corruption(self, kv: KVStore, *, initial: bool) -> None:
        """Answer peers' hash requests from now on; with `initial`, compare this member's data
        with theirs before it joins Raft (raises CorruptionError on a mismatch)."""
        assert self.driver is not None and self.membership is not None
        assert self.backend is not None and self.transport is not None
        checker = self.corruption = CorruptionChecker(
            self.backend,
            kv,
            member_id=self.membership.member_id,
            cluster_id=self.membership.cluster_id,
            peers=self.membership.peers,
            call=self.transport.call,
            timeout=self.driver.request_timeout_s,
        )
        self._peer_handlers[HASHKV_CALL] = checker.serve_hashkv
        if initial:
            await checker.initial_check()

    def _start_corruption_checks(self, interval: float) -> None:
        assert self.driver is not None and self.corruption is not None
        driver = self.driver

        def read_index() -> Awaitable[None] | None:
            return driver.read_index() if driver.needs_read_index else None

        async def raise_alarm(member: int) -> object:
            alarm = rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=member, alarm=rpc_pb2.CORRUPT
            )
            return await driver.propose(ENTRY_ALARM, alarm.SerializeToString())

        self.corruption.start_periodic(
            interval,
            is_leader=lambda: driver.is_leader,
            read_index=read_index,
            raise_alarm=raise_alarm,
        )

    def _active_since(self, mid: int) -> float | None:
        return None if self.transport is None else self.transport.active_since(mid)

    def _removed(self, delay: float = 0.0) -> None:
        if self._removal_seen:
            return
        self._removal_seen = True
        log.warning("the member has been permanently removed from the cluster; stopping")
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self.done.set)
        else:
            self.done.set()

    def _peer_calls(
        self, impls: dict[str, dict[str, object]]
    ) -> dict[str, Callable[[bytes], Awaitable[bytes]]]:
        """What peers may ask of this member: the member list (for joining members) and the
        leader-only calls a follower forwards."""
        assert self.state is not None
        calls: dict[str, Callable[[bytes], Awaitable[bytes]]] = {}
        for path in LEADER_CALLS:
            _, svc, name = path.split("/")
            fn = impls[svc][name]

            def bind(fn=fn):  # type: ignore[no-untyped-def]
                async def call(raw: bytes) -> bytes:
                    # The forwarding member checked its caller; the peer link is the cluster's own.
                    return await fn(raw, CallInfo(trusted=True))  # type: ignore[operator,no-any-return]

                return call

            calls[path] = bind()
        members = impls["etcdserverpb.Cluster"]["MemberList"]

        async def member_list(raw: bytes) -> bytes:
            return await members(b"", CallInfo(trusted=True))  # type: ignore[operator,no-any-return]

        calls[MEMBERS_CALL] = member_list
        return calls

    async def forward_to_leader(self, method: str, request: bytes) -> bytes:
        """Run a leader-only unary call on the leader (a follower's clients may call anyone)."""
        assert self.driver is not None and self.transport is not None
        lead = self.driver.leader
        if not lead or self.driver.is_leader:
            raise errors.NO_LEADER
        try:
            return await self.transport.call(
                lead, method, request, timeout=self.driver.request_timeout_s
            )
        except PeerCallError as e:
            log.info("forwarding %s to the leader %x failed: %s", method, lead, e)
            if e.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise errors.TIMEOUT from None
            raise errors.NO_LEADER from None

    async def move_leader(self, target: int) -> None:
        assert self.driver is not None and self.membership is not None
        if not self.driver.is_leader:
            raise errors.NOT_LEADER
        m = self.membership.get(target)
        if m is None or m.isLearner:
            raise errors.BAD_LEADER_TRANSFEREE
        await self.driver.transfer_leader(target)

    async def _hand_over_leadership(self) -> None:
        """A leader that stops on purpose first hands leadership to the most up-to-date voter,
        as etcd does: the cluster then goes on without waiting out an election timeout."""
        d = self.driver
        if d is None or not d.is_leader or self.done.is_set():
            return
        st = d.status()
        voters = [v for v in d.conf_state.voters if v != d.member_id]
        ready = [(st.progress[v].match, v) for v in voters if v in st.progress]
        if not ready:
            return
        target = max(ready)[1]
        try:
            await asyncio.wait_for(d.transfer_leader(target), self.options.election_ms / 1000)
            log.info("leadership handed to %x before stopping", target)
        except Exception as e:  # stopping anyway; the others elect a leader themselves
            log.info("could not hand over leadership before stopping: %s", e)

    async def _publish_attributes(self) -> None:
        """Propose this member's name and client URLs until they are applied (etcd's publish)."""
        assert self.driver is not None and self.membership is not None
        o = self.options
        me = rpc_pb2.Member(
            ID=self.membership.member_id, name=o.name, clientURLs=o.advertise_client_urls
        )
        cur = self.membership.get(me.ID)
        if cur is not None and cur.name == me.name and list(cur.clientURLs) == list(
            me.clientURLs
        ):
            return
        while not self.done.is_set():
            try:
                await self.driver.propose(ENTRY_MEMBER_ATTR, me.SerializeToString())
                return
            except errors.EtcdError as e:
                log.info("could not publish member attributes yet: %s", e.message)
                await asyncio.sleep(0.2)

    async def _install_snapshot(self, metadata: SnapshotMetadata) -> None:
        """Replace the store by the snapshot image the leader sent (the driver calls this with
        no Ready in flight); workers close the environment around the swap."""
        assert self.driver is not None and self.backend is not None and self.lessor is not None
        log.info("installing snapshot at index %d term %d", metadata.index, metadata.term)
        async with self._workers_paused():
            self.driver.raftlog.install(metadata)
        applier = self._applier
        applier.lease_changes.clear()
        with self.backend.read() as txn:
            self.lessor.reset(applier.leases(txn))
        if self._access is not None:
            # New tables under the caches (SECURITY 9); workers reload on resuming.
            self._access.reload()
        if self.transport is not None and self.membership is not None:
            self.transport.set_peers(self.membership.peers())

    @contextlib.asynccontextmanager
    async def _workers_paused(self) -> AsyncIterator[None]:
        """Worker processes close the environment while the block swaps the database file."""
        if self.hub is not None:
            await self.hub.pause_all(timeout=10.0)
        try:
            yield
        finally:
            if self.hub is not None:
                self.hub.resume_all()

    async def defragment(self) -> None:
        """Compact the database file; workers close and reopen it around the swap."""
        assert self.driver is not None and self.backend is not None
        async with self._workers_paused():
            await self.driver.exclusive(self.backend.defragment)
        log.info("defragmented", extra={"db_size": self.backend.size()})

    def raft_info(self) -> RaftInfo:
        info = RaftInfo()
        d = self.driver
        if d is not None:
            info.leader = d.leader
            info.term = d.term
            info.raft_index = d.raftlog.last_index()
            info.applied_index = d.applied_index
            info.is_learner = d.member_id in d.conf_state.learners
        return info

    async def stop(self) -> None:
        self._stopping = True
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        await self._hand_over_leadership()
        if self._expirer is not None:
            await self._expirer.stop()
        if self._autocompact is not None:
            await self._autocompact.stop()
        if self.corruption is not None:
            await self.corruption.stop()
        if self.hub is not None:
            await self.hub.stop()
        loop = asyncio.get_running_loop()
        for proc in self._procs:
            # Joined off the loop: the loop must stay free to finish closing the links.
            await loop.run_in_executor(None, proc.join, 2)
            if proc.is_alive():
                proc.kill()
        if self._http is not None:
            await self._http.close()
        if self.leader_watch is not None:
            self.leader_watch.stop()
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
        if self.driver is not None:
            await self.driver.stop()
        if self.transport is not None:
            await self.transport.stop()
        self._hashing.shutdown(wait=False, cancel_futures=True)
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
    state: ServerState, raft_info: object, defragment: object, move_leader: object = None
) -> dict[str, dict[str, object]]:
    """The core process's implementation of each service it answers."""
    return {
        "etcdserverpb.KV": dict(KVService(state).methods()),
        "etcdserverpb.Maintenance": MaintenanceService(
            state,
            raft_info,
            defragment,  # type: ignore[arg-type]
            move_leader,  # type: ignore[arg-type]
        ).methods(),
    }


def _spawn(args: WorkerArgs) -> multiprocessing.process.BaseProcess:
    proc = multiprocessing.get_context("spawn").Process(
        target=worker_main, args=(args,), name=f"ward-worker-{args.index}", daemon=True
    )
    proc.start()
    return proc


async def fetch_members(url: str, timeout: float, tls: PeerTLS | None = None) -> bytes:
    """The member list of the cluster a peer URL belongs to (for a joining member, which knows
    neither its own ID nor the cluster's yet: both 0 on this one call). With peer TLS the call
    presents this member's peer certificate, as its Raft traffic will."""
    if tls is not None:
        tls.prepare()
    probe = PeerTransport(
        channel_credentials=None if tls is None else tls.channel_credentials(),
        member_id=0,
        cluster_id=0,
        on_message=lambda m: None,
        on_unreachable=lambda m: None,
        is_removed=lambda m: False,
        on_removed=lambda: None,
        calls={},
    )
    return await probe.call_url(url, MEMBERS_CALL, b"", timeout=timeout)
