"""A client's endpoints, its channel to each, and which one calls go to.

Both clients keep the same state here; they differ only in the channel type they open (gRPC's
blocking channels or `grpc.aio` ones) and in how they wait for one to become ready. A client
with one endpoint always uses it. With several, calls use the first endpoint that connected
(the active one) until it fails, when `forget` makes the next call race them all again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import grpc

from ward.endpoints import Endpoint, TLSConfig, parse_endpoint
from ward.errors import ClientConfigError
from wardpb.etcdserverpb import rpc_pb2_grpc
from wardpb.v3electionpb import v3election_pb2_grpc
from wardpb.v3lockpb import v3lock_pb2_grpc

__all__ = ["ChannelRecipe", "Channels", "Stubs"]


class Stubs:
    """One endpoint's channel (blocking or asyncio) and the service stubs on it.

    The generated stubs take either kind of channel; on an asyncio channel their methods
    return awaitables and async iterators.
    """

    def __init__(self, endpoint: Endpoint, channel: Any) -> None:
        self.endpoint = endpoint
        self.channel = channel
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
        self.lock = v3lock_pb2_grpc.LockStub(channel)
        self.election = v3election_pb2_grpc.ElectionStub(channel)


@dataclass(frozen=True, slots=True)
class ChannelRecipe:
    """What opening a channel takes: the target, TLS credentials (None: plaintext), options."""

    target: str
    credentials: grpc.ChannelCredentials | None
    options: list[tuple[str, Any]]


class Channels:
    """The endpoints, one channel per endpoint once used, and the active one."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        tls: TLSConfig,
        *,
        tls_by_default: bool,
        options: list[tuple[str, Any]],
    ) -> None:
        self.endpoints = endpoints
        self._tls = tls
        self._tls_by_default = tls_by_default
        self._options = options
        # Watch and keep-alive threads share the sync client's state with the caller's threads.
        self._lock = threading.Lock()
        self._open: dict[str, Stubs] = {}
        self._active: Stubs | None = None
        self._closed = False

    @property
    def single(self) -> bool:
        """Whether there is one endpoint only (calls then wait for it rather than fail over)."""
        return len(self.endpoints) == 1

    @property
    def active(self) -> Stubs | None:
        """The connection calls use now (None: none chosen yet, or the last one failed)."""
        return self._active

    def route(self, endpoint: str | None) -> Stubs | Endpoint | None:
        """Where a call goes: the active connection, the endpoint to connect to, or None when
        the client must connect to every endpoint and take the first ready (`activate` it)."""
        if endpoint is not None:
            return self._find(endpoint)
        if self.single:
            return self.endpoints[0]
        return self._active

    def _find(self, endpoint: str) -> Endpoint:
        for known in self.endpoints:
            if known.raw == endpoint:
                return known
        # Any other member (say, one found in the member list) is reached the same way.
        return parse_endpoint(endpoint, tls_by_default=self._tls_by_default)

    def cached(self, endpoint: Endpoint) -> Stubs | None:
        """The open connection to `endpoint`, if any; raises once the client is closed."""
        with self._lock:
            if self._closed:
                raise ClientConfigError("the client is closed")
            return self._open.get(endpoint.raw)

    def needs_io(self, endpoint: Endpoint) -> bool:
        """Whether preparing the channel to `endpoint` blocks on the network (fetching the
        certificate to trust when verification is skipped)."""
        return endpoint.tls and self._tls.skip_verify

    def recipe(self, endpoint: Endpoint, fetch_timeout: float) -> ChannelRecipe:
        """How to open the channel to `endpoint` (may block up to `fetch_timeout`, see
        `needs_io`)."""
        options = list(self._options)
        if not endpoint.tls:
            return ChannelRecipe(endpoint.target, None, options)
        creds, name = self._tls.credentials(endpoint, fetch_timeout)
        if name:
            options.append(("grpc.ssl_target_name_override", name))
        return ChannelRecipe(endpoint.target, creds, options)

    def adopt(self, endpoint: Endpoint, channel: Any) -> Stubs:
        """Keep a new channel to `endpoint`; if another was opened meanwhile, that one is
        returned. Either way, unless the result holds `channel`, the caller closes it."""
        with self._lock:
            if self._closed:
                raise ClientConfigError("the client is closed")
            existing = self._open.get(endpoint.raw)
            if existing is not None:
                return existing
            conn = Stubs(endpoint, channel)
            self._open[endpoint.raw] = conn
            return conn

    def activate(self, conn: Stubs) -> Stubs:
        """Make `conn` the connection calls use."""
        with self._lock:
            self._active = conn
        return conn

    def forget(self, conn: Stubs | None) -> None:
        """`conn` failed: the next call chooses again (unless another was chosen already)."""
        with self._lock:
            if conn is None or self._active is conn:
                self._active = None

    def close(self) -> list[Stubs]:
        """Refuse new connections; returns the open ones, for the client to close."""
        with self._lock:
            self._closed = True
            connections = list(self._open.values())
            self._open.clear()
            self._active = None
        return connections
