"""A worker process: serves the client port beside the core process (`SO_REUSEPORT`).

Reads are answered from the shared lmdb environment (opened read-only; lmdb readers are
multi-process); proposals and the calls that need the core's state go over the Unix-socket link.
A worker lives only as long as its link: when the core process dies, the worker exits at once
rather than serve reads nobody will ever update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
from dataclasses import dataclass

import grpc
import uvloop

from server import logs, metrics
from server.api.election import ElectionService
from server.api.kv import KVService
from server.api.lease import INTERNAL_SERVICE, KEEPALIVE_ONCE, keep_alive_stream
from server.api.lock import LockService
from server.api.maintenance import MaintenanceService, RaftInfo
from server.api.rpc import CallInfo, generic_handlers
from server.api.watch import WatchService
from server.apply import Applier, HeaderInfo
from server.auth_metrics import DECISIONS
from server.authsetup import TOKEN_INFO_METHOD, WorkerAuth, worker_access
from server.denials import AuditedProposer
from server.ipc import (
    AUTH_DECISIONS,
    COUNTERS,
    PUSH_PAUSE,
    PUSH_READ_MODE,
    PUSH_RESUME,
    PUSH_REV,
    PUSH_TERM,
    CoreLink,
)
from server.slowlog import SLOW
from server.state import ServerState
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore
from server.tenancy import WORKER_NAMESPACED, namespaced
from server.tls import ClientListeners, ListenerTLS
from server.watch import RevisionClock
from server.watch_quota import LinkQuota

log = logging.getLogger("ward.worker")


@dataclass(frozen=True, slots=True)
class WorkerArgs:
    index: int
    db_path: str
    map_size: int
    ipc_path: str
    addresses: tuple[str, ...]
    grpc_options: tuple[tuple[str, int], ...]
    member_id: int
    cluster_id: int
    term: int
    max_txn_ops: int
    max_request_bytes: int
    max_message_bytes: int
    quota_bytes: int
    forwarded: tuple[str, ...]  # "/service/method" paths answered by the core
    log_level: str = "info"
    log_outputs: tuple[str, ...] = ("stderr",)
    watch_progress_interval: float = 600.0
    # Slow-request log threshold (server.slowlog), in seconds.
    warning_apply_s: float = 0.1
    # Whether linearizable reads must ask the core for a read index (see PUSH_READ_MODE).
    read_index: bool = True
    # The client listeners' TLS, as the core serves it, and which addresses serve TLS.
    client_tls: ListenerTLS | None = None
    secure_addresses: tuple[str, ...] = ()
    # How to check tokens (the core's settings without its signing key); always set.
    auth: WorkerAuth | None = None


def main(args: WorkerArgs) -> None:
    # A signal to the whole process group is for the core to act on: the worker leaves when
    # the core closes its link, after the core has stopped taking requests.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.setup(level=args.log_level, outputs=list(args.log_outputs))
    SLOW.configure(args.warning_apply_s)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(args))  # as the core process: see server/main.py
    # The link is gone: leave without running interpreter teardown that could block.
    os._exit(0)


async def _serve(args: WorkerArgs) -> None:
    link = await CoreLink.connect(args.ipc_path)
    backend = Backend(args.db_path, BackendOptions(map_size=args.map_size, readonly=True))
    header = HeaderInfo(cluster_id=args.cluster_id, member_id=args.member_id, raft_term=args.term)
    kv = KVStore(backend)
    with backend.read() as txn:
        clock = RevisionClock(kv.current_revision(txn))
    gate = asyncio.Event()
    gate.set()
    tasks: set[asyncio.Task[None]] = set()
    read_mode = {"needed": args.read_index}
    if args.auth is None:
        raise RuntimeError("a worker needs the member's auth settings")
    reader = Applier(backend, kv, header)

    async def token_info(token: str) -> bytes:
        path = f"/{INTERNAL_SERVICE}/{TOKEN_INFO_METHOD}"
        return await link.call(path, token.encode(), CallInfo())

    access = worker_access(backend, reader, args.auth, call_core=token_info)

    def on_push(kind: int, payload: bytes) -> None:
        (value,) = struct.unpack(">Q", payload)
        if kind == PUSH_TERM:
            header.raft_term = value
        elif kind == PUSH_REV:
            clock.advance(value)
        elif kind == PUSH_PAUSE:
            # Handlers read storage synchronously, so none is inside a read right now.
            gate.clear()
            backend.close()
            task = asyncio.create_task(link.paused(value))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif kind == PUSH_READ_MODE:
            read_mode["needed"] = bool(value)
        elif kind == PUSH_RESUME and not gate.is_set():
            backend.reopen()
            # The file may have been replaced (a snapshot installed): nothing cached stands.
            access.reload()
            gate.set()

    link.on_push = on_push
    link_task = asyncio.create_task(link.run())  # referenced until the process exits
    state = ServerState(
        backend=backend,
        kv=kv,
        reader=reader,
        header=header,
        # Writes refused where they apply are audited here, where the client is known.
        proposer=AuditedProposer(link, access, backend),
        member_id=args.member_id,
        cluster_id=args.cluster_id,
        max_txn_ops=args.max_txn_ops,
        max_request_bytes=args.max_request_bytes,
        quota_bytes=args.quota_bytes,
        open_gate=gate,
        read_index=lambda: link.read_index() if read_mode["needed"] else None,
        access=access,
    )
    impls: dict[str, dict[str, object]] = {}
    for path in args.forwarded:
        _, service, method = path.split("/")
        impls.setdefault(service, {})[method] = _forward(link, path)
    impls["etcdserverpb.KV"] = dict(KVService(state).methods())
    impls["etcdserverpb.Watch"] = WatchService(
        state,
        clock,
        progress_interval=args.watch_progress_interval,
        # Tenants' watchers are counted for the whole member, by the core.
        quota=LinkQuota(link),
    ).methods()
    # Only the core has the lessor: each keep-alive of a stream is one call to it.
    impls.setdefault("etcdserverpb.Lease", {})["LeaseKeepAlive"] = keep_alive_stream(
        _forward(link, KEEPALIVE_ONCE)
    )
    impls["v3lockpb.Lock"] = dict(LockService(state, clock).methods())
    impls["v3electionpb.Election"] = ElectionService(state, clock).methods()
    maint = MaintenanceService(state, RaftInfo)
    impls.setdefault("etcdserverpb.Maintenance", {})["Snapshot"] = maint.snapshot
    # Tenant users' keys are mapped into their tenant; forwarded calls are mapped by the core.
    impls = namespaced(impls, access, services=WORKER_NAMESPACED)
    # Same credentials, same reloads and same per-RPC checks as the core's listeners.
    listeners = ClientListeners(args.client_tls, args.secure_addresses)
    server = grpc.aio.server(options=list(args.grpc_options))
    handlers = generic_handlers(
        impls,  # type: ignore[arg-type]
        max_message_bytes=args.max_message_bytes,
        guard=listeners.guard.check if listeners.guard is not None else None,
    )
    server.add_generic_rpc_handlers(handlers)
    for addr in args.addresses:
        listeners.bind(server, addr)
    await server.start()
    await link.serving()
    log.debug("worker serving", extra={"worker": args.index, "pid": os.getpid()})
    counters = asyncio.create_task(_push_counters(link))
    await link.closed.wait()
    counters.cancel()
    del link_task
    # The core is gone or going: nothing this worker holds is worth a graceful stop, and a
    # worker must never outlive its core (it would serve reads nobody updates).
    os._exit(0)


async def _push_counters(link: CoreLink) -> None:
    """This worker's RPC counters and auth decisions to the core, which serves /metrics for
    the member."""
    sent = decided = 0
    while True:
        await asyncio.sleep(metrics.COUNTER_PUSH_S)
        total = metrics.RPC.total()
        if total != sent:
            sent = total
            link.notify(COUNTERS, metrics.RPC.encode())
        if DECISIONS.total() != decided:
            decided = DECISIONS.total()
            link.notify(AUTH_DECISIONS, DECISIONS.encode())


def _forward(link: CoreLink, path: str):  # type: ignore[no-untyped-def]
    async def call(request: bytes, info: CallInfo) -> bytes:
        return await link.call(path, request, info)

    return call
