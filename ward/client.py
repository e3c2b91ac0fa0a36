"""The synchronous client for Ward and etcd (v3 API over gRPC).

    from ward import Client, txn

    with Client("127.0.0.1:2379") as client:
        client.put("greeting", "hello")
        resp = client.get("greeting")
        print(resp.kvs[0].value)

Every method takes `timeout` (seconds; None means the client's `command_timeout`, `math.inf`
means no deadline) and returns the server's protobuf response; failures raise `EtcdError`
subclasses from `ward.errors`. Keys and values are bytes, or str encoded as UTF-8.

Calls wait for a connection until their deadline, like etcd's Go client: an unreachable server
shows up as `DeadlineExceededError` when the timeout passes. With several endpoints the client
uses the first that connects; failing over between them, retries, watches, leases and an asyncio
client come later (they fit in beside `_call`).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, TypeVar, overload

import grpc
from google.protobuf.message import Message

from ward.endpoints import Endpoint, TLSConfig, parse_endpoint
from ward.errors import (
    AuthNotEnabledError,
    ClientConfigError,
    DeadlineExceededError,
    EtcdError,
    InvalidAuthTokenError,
    NoEndpointsError,
    error_from_rpc,
)
from ward.requests import (
    Key,
    SortOrder,
    SortTarget,
    delete_request,
    put_request,
    range_request,
)
from ward.txn import CompareLike, OpLike, txn_request
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

__all__ = ["AlarmType", "Client"]

_Resp = TypeVar("_Resp")

PathLike = str | os.PathLike[str]


class AlarmType:
    """Alarm kinds (etcdserverpb.AlarmType)."""

    NONE = rpc_pb2.NONE
    NOSPACE = rpc_pb2.NOSPACE
    CORRUPT = rpc_pb2.CORRUPT


_KV_METHODS: dict[type[Message], str] = {
    rpc_pb2.RangeRequest: "Range",
    rpc_pb2.PutRequest: "Put",
    rpc_pb2.DeleteRangeRequest: "DeleteRange",
    rpc_pb2.TxnRequest: "Txn",
}


class _Connection:
    """One endpoint's channel and stubs."""

    def __init__(self, endpoint: Endpoint, channel: grpc.Channel) -> None:
        self.endpoint = endpoint
        self.channel = channel
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)


class Client:
    """A connection to a Ward or etcd cluster through one or more of its client endpoints.

    `endpoints` is a list (or comma-separated string) of `host:port`, `http://host:port`,
    `https://host:port`, `unix://path` or `unixs://path`. A bare `host:port` uses TLS when any of
    `cacert`, `cert`, `key` is given or `secure` is set, as etcdctl 3.4 does.

    `cacert`, `cert` and `key` are PEM file paths; `insecure_skip_verify` trusts whatever
    certificate the server presents (for tests only). `user`/`password` authenticate once, on
    first use (or explicitly with `authenticate()`), and every call then carries the token.
    `keepalive_time`/`keepalive_timeout` (seconds) turn on gRPC keepalive pings.
    """

    def __init__(
        self,
        endpoints: list[str] | str = "127.0.0.1:2379",
        *,
        dial_timeout: float = 5.0,
        command_timeout: float = 5.0,
        cacert: PathLike | None = None,
        cert: PathLike | None = None,
        key: PathLike | None = None,
        insecure_skip_verify: bool = False,
        user: str | None = None,
        password: str | None = None,
        secure: bool = False,
        keepalive_time: float | None = None,
        keepalive_timeout: float | None = None,
    ) -> None:
        raw = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
        raw = [e.strip() for e in raw if e.strip()]
        if not raw:
            raise NoEndpointsError("etcdclient: no available endpoints")
        self._tls = TLSConfig.load(
            cacert=cacert, cert=cert, key=key, insecure_skip_verify=insecure_skip_verify
        )
        self._tls_by_default = secure or self._tls.has_material
        self._endpoints = [parse_endpoint(e, tls_by_default=self._tls_by_default) for e in raw]
        self.dial_timeout = dial_timeout
        self.command_timeout = command_timeout
        self._user = user
        self._password = password if password is not None else ""
        self._options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", -1)]
        if keepalive_time is not None:
            self._options.append(("grpc.keepalive_time_ms", int(keepalive_time * 1000)))
            self._options.append(("grpc.keepalive_permit_without_calls", 1))
        if keepalive_timeout is not None:
            self._options.append(("grpc.keepalive_timeout_ms", int(keepalive_timeout * 1000)))
        self._lock = threading.Lock()
        self._connections: dict[str, _Connection] = {}
        self._active: _Connection | None = None
        self._token: str | None = None
        self._authenticated = user is None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """The endpoints as given."""
        return [e.raw for e in self._endpoints]

    def close(self) -> None:
        """Close every channel; the client cannot be used afterwards."""
        with self._lock:
            self._closed = True
            connections = list(self._connections.values())
            self._connections.clear()
            self._active = None
        for conn in connections:
            conn.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- KV ------------------------------------------------------------------------------------

    def get(
        self,
        key: Key,
        range_end: Key | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrder = SortOrder.NONE,
        sort_target: SortTarget = SortTarget.KEY,
        keys_only: bool = False,
        count_only: bool = False,
        serializable: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
        timeout: float | None = None,
    ) -> rpc_pb2.RangeResponse:
        """Read `key`, `[key, range_end)`, every key with prefix `key`, or every key from `key`.

        `revision` reads the store as it was then (0: now); `serializable` answers from the
        contacted member without a linearizable barrier.
        """
        request = range_request(
            key,
            range_end,
            prefix=prefix,
            from_key=from_key,
            limit=limit,
            revision=revision,
            sort_order=sort_order,
            sort_target=sort_target,
            keys_only=keys_only,
            count_only=count_only,
            serializable=serializable,
            min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision,
            min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        )
        return self._call(lambda c: c.kv.Range, request, timeout)

    @overload
    def request(
        self, request: rpc_pb2.RangeRequest, *, timeout: float | None = None
    ) -> rpc_pb2.RangeResponse: ...
    @overload
    def request(
        self, request: rpc_pb2.PutRequest, *, timeout: float | None = None
    ) -> rpc_pb2.PutResponse: ...
    @overload
    def request(
        self, request: rpc_pb2.DeleteRangeRequest, *, timeout: float | None = None
    ) -> rpc_pb2.DeleteRangeResponse: ...
    @overload
    def request(
        self, request: rpc_pb2.TxnRequest, *, timeout: float | None = None
    ) -> rpc_pb2.TxnResponse: ...

    def request(self, request: Message, *, timeout: float | None = None) -> Message:
        """Send a prepared KV request (Range, Put, DeleteRange or Txn) as it is."""
        method = _KV_METHODS.get(type(request))
        if method is None:
            raise TypeError(f"not a KV request: {type(request).__name__}")
        return self._call(lambda c: getattr(c.kv, method), request, timeout)

    def put(
        self,
        key: Key,
        value: Key = b"",
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout: float | None = None,
    ) -> rpc_pb2.PutResponse:
        """Store `value` under `key`; `ignore_value`/`ignore_lease` keep the current ones."""
        request = put_request(
            key,
            value,
            lease=lease,
            prev_kv=prev_kv,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )
        return self._call(lambda c: c.kv.Put, request, timeout)

    def delete(
        self,
        key: Key,
        range_end: Key | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> rpc_pb2.DeleteRangeResponse:
        """Delete `key` or a range (the range options are those of `get`)."""
        request = delete_request(key, range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
        return self._call(lambda c: c.kv.DeleteRange, request, timeout)

    def txn(
        self,
        compare: Iterable[CompareLike] = (),
        success: Iterable[OpLike] = (),
        failure: Iterable[OpLike] = (),
        *,
        timeout: float | None = None,
    ) -> rpc_pb2.TxnResponse:
        """Run `success` if every compare holds, else `failure`, atomically (see `ward.txn`)."""
        request = txn_request(compare, success, failure)
        return self._call(lambda c: c.kv.Txn, request, timeout)

    def compact(
        self, revision: int, *, physical: bool = False, timeout: float | None = None
    ) -> rpc_pb2.CompactionResponse:
        """Discard history before `revision`; `physical` waits until it is removed from disk."""
        request = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        return self._call(lambda c: c.kv.Compact, request, timeout)

    # -- maintenance (per member: `endpoint` picks it, None means the connected one) ------------

    def status(
        self, endpoint: str | None = None, *, timeout: float | None = None
    ) -> rpc_pb2.StatusResponse:
        """The status of one member."""
        return self._call(
            lambda c: c.maintenance.Status, rpc_pb2.StatusRequest(), timeout, endpoint
        )

    def hash_kv(
        self, endpoint: str | None = None, *, revision: int = 0, timeout: float | None = None
    ) -> rpc_pb2.HashKVResponse:
        """The hash of one member's keyspace history up to `revision` (0: now)."""
        request = rpc_pb2.HashKVRequest(revision=revision)
        return self._call(lambda c: c.maintenance.HashKV, request, timeout, endpoint)

    def defragment(
        self, endpoint: str | None = None, *, timeout: float | None = None
    ) -> rpc_pb2.DefragmentResponse:
        """Defragment one member's storage."""
        return self._call(
            lambda c: c.maintenance.Defragment, rpc_pb2.DefragmentRequest(), timeout, endpoint
        )

    def snapshot(
        self,
        out: IO[bytes],
        endpoint: str | None = None,
        *,
        timeout: float | None = math.inf,
    ) -> int:
        """Stream one member's backend snapshot into `out`; returns the bytes written.

        Unlike the other calls, there is no deadline unless `timeout` is given: a large
        database takes as long as it takes.
        """
        deadline = self._deadline(timeout)
        conn = self._connection(endpoint, deadline)
        metadata = self._metadata(deadline)
        written = 0
        try:
            stream = conn.maintenance.Snapshot(
                rpc_pb2.SnapshotRequest(),
                timeout=self._remaining(deadline),
                metadata=metadata,
                wait_for_ready=True,
            )
            for chunk in stream:
                out.write(chunk.blob)
                written += len(chunk.blob)
        except grpc.RpcError as exc:
            raise self._translate(exc, deadline) from None
        return written

    def alarm_list(self, *, timeout: float | None = None) -> rpc_pb2.AlarmResponse:
        """Every active alarm of the cluster."""
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
        return self._call(lambda c: c.maintenance.Alarm, request, timeout)

    def alarm_disarm(
        self, member_id: int = 0, alarm: int = AlarmType.NONE, *, timeout: float | None = None
    ) -> rpc_pb2.AlarmResponse:
        """Deactivate one alarm, or (with no arguments) every active alarm.

        Disarming everything lists the alarms and deactivates each, as etcd's Go client does;
        the answer then lists what was deactivated and has no header.
        """
        if member_id == 0 and alarm == AlarmType.NONE:
            deadline = self._deadline(timeout)
            disarmed = rpc_pb2.AlarmResponse()
            for active in self.alarm_list(timeout=self._remaining_or_inf(deadline)).alarms:
                resp = self.alarm_disarm(
                    active.memberID, active.alarm, timeout=self._remaining_or_inf(deadline)
                )
                disarmed.alarms.extend(resp.alarms)
            return disarmed
        request = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.DEACTIVATE,
            memberID=member_id,
            alarm=alarm,  # type: ignore[arg-type]
        )
        return self._call(lambda c: c.maintenance.Alarm, request, timeout)

    def member_list(self, *, timeout: float | None = None) -> rpc_pb2.MemberListResponse:
        """Every member of the cluster."""
        return self._call(lambda c: c.cluster.MemberList, rpc_pb2.MemberListRequest(), timeout)

    # -- auth ----------------------------------------------------------------------------------

    def authenticate(self, *, timeout: float | None = None) -> None:
        """Fetch an auth token for `user` now (otherwise done on first use), within `timeout`
        (default: the dial timeout).

        A server with authentication disabled is fine: calls then go without a token.
        """
        if self._user is None:
            return
        deadline = self._deadline(timeout if timeout is not None else self.dial_timeout)
        conn = self._connection(None, deadline)
        request = rpc_pb2.AuthenticateRequest(name=self._user, password=self._password)
        try:
            resp = conn.auth.Authenticate(
                request, timeout=self._remaining(deadline), wait_for_ready=True
            )
            token: str | None = resp.token
        except grpc.RpcError as exc:
            err = self._translate(exc, deadline)
            if not isinstance(err, AuthNotEnabledError):
                raise err from None
            token = None
        with self._lock:
            self._token = token
            self._authenticated = True

    # -- plumbing ------------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float | None:
        if timeout is None:
            timeout = self.command_timeout
        if math.isinf(timeout):
            return None
        return time.monotonic() + max(timeout, 0.0)

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        if deadline is None:
            return None
        return max(deadline - time.monotonic(), 0.0)

    @staticmethod
    def _remaining_or_inf(deadline: float | None) -> float:
        if deadline is None:
            return math.inf
        return max(deadline - time.monotonic(), 0.0)

    def _translate(self, exc: grpc.RpcError, deadline: float | None) -> EtcdError:
        passed = deadline is not None and time.monotonic() >= deadline - 0.001
        return error_from_rpc(exc, deadline_passed=passed)

    def _metadata(self, deadline: float | None) -> tuple[tuple[str, str], ...] | None:
        if not self._authenticated:
            self.authenticate(timeout=self._remaining_or_inf(deadline))
        token = self._token
        return (("token", token),) if token else None

    def _call(
        self,
        method: Callable[[_Connection], Callable[..., _Resp]],
        request: object,
        timeout: float | None,
        endpoint: str | None = None,
    ) -> _Resp:
        deadline = self._deadline(timeout)
        conn = self._connection(endpoint, deadline)
        for attempt in range(2):
            metadata = self._metadata(deadline)
            try:
                return method(conn)(
                    request,
                    timeout=self._remaining(deadline),
                    metadata=metadata,
                    wait_for_ready=True,
                )
            except grpc.RpcError as exc:
                err = self._translate(exc, deadline)
                if isinstance(err, InvalidAuthTokenError) and self._user and attempt == 0:
                    # Tokens expire; fetch a fresh one and try once more.
                    with self._lock:
                        self._authenticated = False
                    continue
                if exc.code() == grpc.StatusCode.UNAVAILABLE and endpoint is None:
                    with self._lock:
                        self._active = None
                raise err from None
        raise AssertionError("unreachable")

    def _connection(self, endpoint: str | None, deadline: float | None) -> _Connection:
        if endpoint is not None:
            return self._connection_for(self._find_endpoint(endpoint), deadline)
        if len(self._endpoints) == 1:
            return self._connection_for(self._endpoints[0], deadline)
        active = self._active
        if active is not None:
            return active
        chosen = self._first_ready(deadline)
        with self._lock:
            self._active = chosen
        return chosen

    def _find_endpoint(self, endpoint: str) -> Endpoint:
        for known in self._endpoints:
            if known.raw == endpoint:
                return known
        # Any other member (say, one found in the member list) is reached the same way.
        return parse_endpoint(endpoint, tls_by_default=self._tls_by_default)

    def _connection_for(self, endpoint: Endpoint, deadline: float | None) -> _Connection:
        with self._lock:
            if self._closed:
                raise ClientConfigError("the client is closed")
            conn = self._connections.get(endpoint.raw)
        if conn is not None:
            return conn
        channel = self._open_channel(endpoint, deadline)
        with self._lock:
            existing = self._connections.get(endpoint.raw)
            if existing is not None:
                channel.close()
                return existing
            conn = _Connection(endpoint, channel)
            self._connections[endpoint.raw] = conn
        return conn

    def _open_channel(self, endpoint: Endpoint, deadline: float | None) -> grpc.Channel:
        options = list(self._options)
        if not endpoint.tls:
            return grpc.insecure_channel(endpoint.target, options=options)
        fetch_timeout = self._remaining(deadline)
        creds, name = self._tls.credentials(
            endpoint, fetch_timeout if fetch_timeout is not None else self.dial_timeout
        )
        if name:
            options.append(("grpc.ssl_target_name_override", name))
        return grpc.secure_channel(endpoint.target, creds, options=options)

    def _first_ready(self, deadline: float | None) -> _Connection:
        """Connect to every endpoint and take the first (in list order) that is ready."""
        connections = [self._connection_for(e, deadline) for e in self._endpoints]
        ready = threading.Event()
        futures = [grpc.channel_ready_future(c.channel) for c in connections]
        for future in futures:
            future.add_done_callback(lambda _f: ready.set())
        try:
            while True:
                for conn, future in zip(connections, futures, strict=True):
                    if future.done() and not future.cancelled():
                        return conn
                remaining = self._remaining(deadline)
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceededError(DeadlineExceededError.MESSAGE)
                ready.wait(remaining)
                ready.clear()
        finally:
            for future in futures:
                future.cancel()
