"""Assembles a member: data directory, storage, Raft driver, servicers, gRPC listeners, workers."""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass, field

import grpc

from server.api.cluster import ClusterService
from server.api.kv import KVService
from server.api.maintenance import MaintenanceService, RaftInfo
from server.api.rpc import generic_handlers
from server.apply import Applier, HeaderInfo
from server.datadir import DataDir
from server.driver import Driver, DriverOptions
from server.membership import cluster_id, member_id
from server.state import MemberInfo, ServerState
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore

log = logging.getLogger("ward.server")

_U64 = struct.Struct(">Q")
# Headroom above the quota so that lmdb never runs out of map before the quota alarm fires.
MAP_HEADROOM = 1 << 30
# gRPC's receive limit sits above --max-request-bytes as etcd's does, so that a request a little
# over the limit gets etcd's "request is too large" rather than a transport error.
GRPC_OVERHEAD_BYTES = 512 * 1024


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


class Member:
    """One running member in this (core) process."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.datadir = DataDir(options.data_dir)
        self.ports: list[int] = []
        self._grpc: grpc.aio.Server | None = None
        self.driver: Driver | None = None
        self.backend: Backend | None = None
        self.state: ServerState | None = None
        self.workers: object | None = None

    async def start(self) -> None:
        o = self.options
        self.datadir.open()
        self.backend = Backend(
            self.datadir.db_path,
            BackendOptions(map_size=o.quota_bytes + MAP_HEADROOM, sync=o.fsync),
        )
        ids = {name: member_id(list(urls), o.initial_cluster_token)
               for name, urls in o.initial_cluster.items()}
        mid, cid = self._identity(ids)
        header = HeaderInfo(cluster_id=cid, member_id=mid)
        kv = KVStore(self.backend)
        applier = Applier(self.backend, kv, header)
        self.driver = Driver(
            self.backend,
            applier,
            header,
            DriverOptions(
                member_id=mid,
                voters=tuple(sorted(ids.values())),
                tick_ms=o.heartbeat_ms,
                election_ticks=max(2, o.election_ms // o.heartbeat_ms),
                snapshot_count=o.snapshot_count,
                max_request_bytes=o.max_request_bytes,
            ),
        )
        await self.driver.start()
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
        self._grpc = build_grpc_server(self.state, self.raft_info, o)
        for addr in o.listen_client:
            self.ports.append(self._grpc.add_insecure_port(addr))
        await self._grpc.start()
        log.info("ready to serve client requests", extra={"addresses": list(o.listen_client)})

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
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
        if self.driver is not None:
            await self.driver.stop()
        if self.backend is not None:
            self.backend.close()
        self.datadir.close()


def grpc_options(o: ServerOptions) -> list[tuple[str, int]]:
    opts = [
        ("grpc.max_receive_message_length", o.max_request_bytes + GRPC_OVERHEAD_BYTES),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.so_reuseport", 1),
    ]
    if o.max_concurrent_streams:
        opts.append(("grpc.max_concurrent_streams", o.max_concurrent_streams))
    return opts


def build_grpc_server(
    state: ServerState, raft_info: object, o: ServerOptions, *, defragment: object = None
) -> grpc.aio.Server:
    server = grpc.aio.server(options=grpc_options(o))
    impls = {
        "etcdserverpb.KV": KVService(state).methods(),
        "etcdserverpb.Maintenance": MaintenanceService(
            state, raft_info, defragment  # type: ignore[arg-type]
        ).methods(),
        "etcdserverpb.Cluster": ClusterService(state).methods(),
    }
    server.add_generic_rpc_handlers(generic_handlers(impls))  # type: ignore[arg-type]
    return server


async def run_forever(member: Member, stop: asyncio.Event) -> None:
    await member.start()
    try:
        await stop.wait()
    finally:
        await member.stop()
