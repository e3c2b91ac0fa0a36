"""Transparent namespacing for tenant users, in every serving process.

`namespaced` wraps the handlers of the services that carry keys (KV, Watch, Lease, Lock,
Election). For a caller that belongs to a tenant (`auth.tenants`), every key and range end of
the request is mapped into the tenant's prefix before the real handler sees it, and every key
of the response is stripped of it; for anyone else the request passes untouched, so clusters
without tenants behave exactly as before. The mapping cannot leave the tenant whatever a client
sends (see `auth.tenants.Namespace`), and `server.access.Checker` refuses a tenant user any key
outside its tenant where requests are checked and where entries apply, so a path this layer
missed fails closed.

Requests are validated as the client sent them first, so an empty key is refused as etcd
refuses it, not turned into the tenant's prefix.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from auth.tenants import Namespace, Tenant
from server.access import Access
from server.api.rpc import CallInfo
from server.api.validate import check_delete, check_put, check_range
from server.errors import EtcdError
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2
from wardpb.v3electionpb import v3election_pb2 as epb
from wardpb.v3lockpb import v3lock_pb2 as lpb

UnaryFn = Callable[[bytes, CallInfo], Awaitable[bytes]]
StreamFn = Callable[[Any, CallInfo], AsyncIterator[bytes]]

# The services whose handlers carry keys; each method's mapping is below.
SERVICES = (
    "etcdserverpb.KV",
    "etcdserverpb.Watch",
    "etcdserverpb.Lease",
    "v3lockpb.Lock",
    "v3electionpb.Election",
)
# What a worker answers itself (the rest it forwards to the core, which maps it there).
WORKER_NAMESPACED = (
    "etcdserverpb.KV",
    "etcdserverpb.Watch",
    "v3lockpb.Lock",
    "v3electionpb.Election",
)


# --- requests in ---


def map_range(ns: Namespace, r: rpc_pb2.RangeRequest) -> None:
    r.key, r.range_end = ns.key(r.key), ns.range_end(r.range_end)


def map_put(ns: Namespace, r: rpc_pb2.PutRequest) -> None:
    r.key = ns.key(r.key)


def map_delete(ns: Namespace, r: rpc_pb2.DeleteRangeRequest) -> None:
    r.key, r.range_end = ns.key(r.key), ns.range_end(r.range_end)


def map_txn(ns: Namespace, r: rpc_pb2.TxnRequest) -> None:
    """Every compare and every op of both branches, at every nesting depth."""
    for c in r.compare:
        c.key, c.range_end = ns.key(c.key), ns.range_end(c.range_end)
    for op in (*r.success, *r.failure):
        which = op.WhichOneof("request")
        if which == "request_range":
            map_range(ns, op.request_range)
        elif which == "request_put":
            map_put(ns, op.request_put)
        elif which == "request_delete_range":
            map_delete(ns, op.request_delete_range)
        elif which == "request_txn":
            map_txn(ns, op.request_txn)


def validate_txn(r: rpc_pb2.TxnRequest) -> None:
    """etcd's per-op validation, as sent (ops count and duplicates do not change by mapping)."""
    for op in (*r.success, *r.failure):
        which = op.WhichOneof("request")
        if which == "request_range":
            check_range(op.request_range)
        elif which == "request_put":
            check_put(op.request_put)
        elif which == "request_delete_range":
            check_delete(op.request_delete_range)
        elif which == "request_txn":
            validate_txn(op.request_txn)


# --- responses out ---


def strip_kv(ns: Namespace, kv: kv_pb2.KeyValue) -> None:
    kv.key = ns.strip(kv.key)


def strip_range(ns: Namespace, resp: rpc_pb2.RangeResponse) -> None:
    for kv in resp.kvs:
        strip_kv(ns, kv)


def strip_put(ns: Namespace, resp: rpc_pb2.PutResponse) -> None:
    if resp.HasField("prev_kv"):
        strip_kv(ns, resp.prev_kv)


def strip_delete(ns: Namespace, resp: rpc_pb2.DeleteRangeResponse) -> None:
    for kv in resp.prev_kvs:
        strip_kv(ns, kv)


def strip_txn(ns: Namespace, resp: rpc_pb2.TxnResponse) -> None:
    for op in resp.responses:
        which = op.WhichOneof("response")
        if which == "response_range":
            strip_range(ns, op.response_range)
        elif which == "response_put":
            strip_put(ns, op.response_put)
        elif which == "response_delete_range":
            strip_delete(ns, op.response_delete_range)
        elif which == "response_txn":
            strip_txn(ns, op.response_txn)


def strip_watch(ns: Namespace, resp: rpc_pb2.WatchResponse) -> None:
    for ev in resp.events:
        strip_kv(ns, ev.kv)
        if ev.HasField("prev_kv"):
            strip_kv(ns, ev.prev_kv)


# --- requests per second ---

TENANT_RPS_QUOTA = EtcdError(
    grpc.StatusCode.RESOURCE_EXHAUSTED, "ward: tenant quota exceeded: too many requests"
)


class RateLimits:
    """Each tenant's requests per second in this serving process: a token bucket per tenant
    (rate and burst `quota_rps`), so a busy tenant is refused without slowing the others."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def admit(self, tenant: Tenant) -> None:
        rate = tenant.quota_rps
        if not rate:
            return
        now = self._clock()
        tokens, last = self._buckets.get(tenant.name, (float(rate), now))
        tokens = min(float(rate), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[tenant.name] = (tokens, now)
            raise TENANT_RPS_QUOTA
        self._buckets[tenant.name] = (tokens - 1.0, now)


# --- the wrapping ---


class _Unary:
    """A unary handler that maps the request and strips the response for tenant callers."""

    __slots__ = ("_access", "_fn", "_into", "_limits", "_out", "_req", "_resp")

    def __init__(
        self,
        access: Access,
        fn: UnaryFn,
        req: Any,
        resp: Any,
        into: Callable[[Namespace, Any], None],
        out: Callable[[Namespace, Any], None] | None,
        limits: RateLimits,
    ) -> None:
        self._access = access
        self._limits = limits
        self._fn = fn
        self._req = req
        self._resp = resp
        self._into = into
        self._out = out

    @staticmethod
    def _keyed(r: Any) -> bool:
        """Whether the response can carry keys: a put or delete only with `prev_kv`."""
        if isinstance(r, (rpc_pb2.PutRequest, rpc_pb2.DeleteRangeRequest)):
            return bool(r.prev_kv)
        return True

    async def __call__(self, request: bytes, call: CallInfo) -> bytes:
        if call.trusted:
            # Forwarded by another member, which mapped it already.
            return await self._fn(request, call)
        _info, tenant = await self._access.caller_tenant(call, remember=True)
        if tenant is None:
            return await self._fn(request, call)
        self._limits.admit(tenant)
        ns = tenant.namespace
        r = self._req.FromString(request)
        self._into(ns, r)
        raw = await self._fn(r.SerializeToString(), call)
        if self._out is None or not self._keyed(r):
            return raw
        resp = self._resp.FromString(raw)
        self._out(ns, resp)
        return bytes(resp.SerializeToString())


def _checked(check: Callable[[Any], None], mapping: Callable[[Namespace, Any], None]):  # type: ignore[no-untyped-def]
    def into(ns: Namespace, r: Any) -> None:
        check(r)
        mapping(ns, r)

    return into


def _map_txn_checked(ns: Namespace, r: rpc_pb2.TxnRequest) -> None:
    validate_txn(r)
    map_txn(ns, r)


def _strip_ttl(ns: Namespace, resp: rpc_pb2.LeaseTimeToLiveResponse) -> None:
    # Only the tenant's keys: a lease may carry keys of others (root attached them).
    kept = [ns.strip(k) for k in resp.keys if ns.owns(k)]
    del resp.keys[:]
    resp.keys.extend(kept)


def _no_map(ns: Namespace, r: Any) -> None:
    return None


def _map_lock(ns: Namespace, r: lpb.LockRequest) -> None:
    r.name = ns.key(r.name)


def _strip_lock(ns: Namespace, resp: lpb.LockResponse) -> None:
    resp.key = ns.strip(resp.key)


def _map_unlock(ns: Namespace, r: lpb.UnlockRequest) -> None:
    r.key = ns.key(r.key)


def _map_leader_key(ns: Namespace, k: epb.LeaderKey) -> None:
    k.name, k.key = ns.key(k.name), ns.key(k.key)


def _strip_leader_key(ns: Namespace, k: epb.LeaderKey) -> None:
    if k.name:
        k.name = ns.strip(k.name)
    if k.key:
        k.key = ns.strip(k.key)


def _map_campaign(ns: Namespace, r: epb.CampaignRequest) -> None:
    r.name = ns.key(r.name)


def _strip_campaign(ns: Namespace, resp: epb.CampaignResponse) -> None:
    if resp.HasField("leader"):
        _strip_leader_key(ns, resp.leader)


def _map_proclaim(ns: Namespace, r: epb.ProclaimRequest) -> None:
    if r.HasField("leader"):
        _map_leader_key(ns, r.leader)


def _map_resign(ns: Namespace, r: epb.ResignRequest) -> None:
    if r.HasField("leader"):
        _map_leader_key(ns, r.leader)


def _map_leader(ns: Namespace, r: epb.LeaderRequest) -> None:
    r.name = ns.key(r.name)


def _strip_leader(ns: Namespace, resp: epb.LeaderResponse) -> None:
    if resp.HasField("kv"):
        strip_kv(ns, resp.kv)


_UNARY: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {
    ("etcdserverpb.KV", "Range"): (
        rpc_pb2.RangeRequest,
        rpc_pb2.RangeResponse,
        _checked(check_range, map_range),
        strip_range,
    ),
    ("etcdserverpb.KV", "Put"): (
        rpc_pb2.PutRequest,
        rpc_pb2.PutResponse,
        _checked(check_put, map_put),
        strip_put,
    ),
    ("etcdserverpb.KV", "DeleteRange"): (
        rpc_pb2.DeleteRangeRequest,
        rpc_pb2.DeleteRangeResponse,
        _checked(check_delete, map_delete),
        strip_delete,
    ),
    ("etcdserverpb.KV", "Txn"): (
        rpc_pb2.TxnRequest,
        rpc_pb2.TxnResponse,
        _map_txn_checked,
        strip_txn,
    ),
    ("etcdserverpb.Lease", "LeaseTimeToLive"): (
        rpc_pb2.LeaseTimeToLiveRequest,
        rpc_pb2.LeaseTimeToLiveResponse,
        _no_map,
        _strip_ttl,
    ),
    ("v3lockpb.Lock", "Lock"): (lpb.LockRequest, lpb.LockResponse, _map_lock, _strip_lock),
    ("v3lockpb.Lock", "Unlock"): (lpb.UnlockRequest, lpb.UnlockResponse, _map_unlock, None),
    ("v3electionpb.Election", "Campaign"): (
        epb.CampaignRequest,
        epb.CampaignResponse,
        _map_campaign,
        _strip_campaign,
    ),
    ("v3electionpb.Election", "Proclaim"): (
        epb.ProclaimRequest,
        epb.ProclaimResponse,
        _map_proclaim,
        None,
    ),
    ("v3electionpb.Election", "Leader"): (
        epb.LeaderRequest,
        epb.LeaderResponse,
        _map_leader,
        _strip_leader,
    ),
    ("v3electionpb.Election", "Resign"): (epb.ResignRequest, epb.ResignResponse, _map_resign, None),
}


def _watch(access: Access, fn: StreamFn) -> StreamFn:
    async def watch(requests: AsyncIterator[bytes], call: CallInfo) -> AsyncIterator[bytes]:
        _info, tenant = await access.caller_tenant(call)
        if tenant is None:
            async for chunk in fn(requests, call):
                yield chunk
            return
        ns = tenant.namespace

        async def mapped() -> AsyncIterator[bytes]:
            async for raw in requests:
                r = rpc_pb2.WatchRequest.FromString(raw)
                if r.HasField("create_request"):
                    c = r.create_request
                    c.key, c.range_end = ns.key(c.key), ns.range_end(c.range_end)
                    raw = r.SerializeToString()
                yield raw

        async for chunk in fn(mapped(), call):
            resp = rpc_pb2.WatchResponse.FromString(chunk)
            if resp.events:
                strip_watch(ns, resp)
                chunk = resp.SerializeToString()
            yield chunk

    return watch


def _observe(access: Access, fn: StreamFn) -> StreamFn:
    async def observe(request: bytes, call: CallInfo) -> AsyncIterator[bytes]:
        _info, tenant = await access.caller_tenant(call)
        if tenant is None:
            async for chunk in fn(request, call):
                yield chunk
            return
        ns = tenant.namespace
        r = epb.LeaderRequest.FromString(request)
        _map_leader(ns, r)
        async for chunk in fn(r.SerializeToString(), call):
            resp = epb.LeaderResponse.FromString(chunk)
            _strip_leader(ns, resp)
            yield resp.SerializeToString()

    return observe


def namespaced(
    impls: dict[str, dict[str, object]], access: Access, *, services: tuple[str, ...] = SERVICES
) -> dict[str, dict[str, object]]:
    """`impls` with the key-carrying handlers of `services` wrapped (see the module docstring).

    A process wraps only what it answers itself: a call it forwards to the core is mapped there.
    """
    out = {svc: dict(methods) for svc, methods in impls.items()}
    limits = RateLimits()
    for svc in services:
        methods = out.get(svc)
        if not methods:
            continue
        for name, fn in list(methods.items()):
            spec = _UNARY.get((svc, name))
            if spec is not None:
                methods[name] = _Unary(access, fn, *spec, limits)  # type: ignore[arg-type]
            elif (svc, name) == ("etcdserverpb.Watch", "Watch"):
                methods[name] = _watch(access, fn)  # type: ignore[arg-type]
            elif (svc, name) == ("v3electionpb.Election", "Observe"):
                methods[name] = _observe(access, fn)  # type: ignore[arg-type]
    return out
