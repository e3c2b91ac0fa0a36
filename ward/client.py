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
uses the first that connects and fails over as clientv3 does: a call that meets `Unavailable` goes
to the next ready endpoint, until its deadline, if it is safe to repeat (a read) or was never sent.
Watches (`ward.watch`) resume after a reconnect; leases keep alive with `ward.lease`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, TypeVar, overload

import grpc
from google.protobuf.message import Message

from ward.endpoints import Endpoint, TLSConfig, parse_endpoint
from ward.errors import (
    AuthNotEnabledError,
    ClientConfigError,
    DeadlineExceededError,
    EtcdError,
    InvalidAuthTokenError,
    LeaseNotFoundError,
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
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from wardpb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from wardpb.v3lockpb import v3lock_pb2, v3lock_pb2_grpc

if TYPE_CHECKING:
    from ward.lease import KeepAlive
    from ward.watch import Watcher

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


_BACKOFF_MIN_S = 0.025
_BACKOFF_MAX_S = 0.5

# Details gRPC gives a call that failed before it left the client (no connection to send it
# on): such a call is safe to repeat elsewhere even if it changes something.
_NOT_SENT = ("failed to connect to all addresses", "Connection refused", "DNS resolution failed")


def _never_sent(exc: grpc.RpcError) -> bool:
    details = exc.details() if callable(getattr(exc, "details", None)) else ""
    return any(marker in (details or "") for marker in _NOT_SENT)


def _b(value: Key) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


class _Connection:
    """One endpoint's channel and stubs."""

    def __init__(self, endpoint: Endpoint, channel: grpc.Channel) -> None:
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
        return self._call(lambda c: c.kv.Range, request, timeout, safe=True)

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
            lambda c: c.maintenance.Status, rpc_pb2.StatusRequest(), timeout, endpoint, safe=True
        )

    def hash_kv(
        self, endpoint: str | None = None, *, revision: int = 0, timeout: float | None = None
    ) -> rpc_pb2.HashKVResponse:
        """The hash of one member's keyspace history up to `revision` (0: now)."""
        request = rpc_pb2.HashKVRequest(revision=revision)
        return self._call(lambda c: c.maintenance.HashKV, request, timeout, endpoint, safe=True)

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
        return self._call(lambda c: c.maintenance.Alarm, request, timeout, safe=True)

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
        return self._call(
            lambda c: c.cluster.MemberList, rpc_pb2.MemberListRequest(), timeout, safe=True
        )

    def member_add(
        self, peer_urls: Iterable[str], *, learner: bool = False, timeout: float | None = None
    ) -> rpc_pb2.MemberAddResponse:
        """Add a member (a learner with `learner`) that will listen on `peer_urls`."""
        request = rpc_pb2.MemberAddRequest(peerURLs=list(peer_urls), isLearner=learner)
        return self._call(lambda c: c.cluster.MemberAdd, request, timeout)

    def member_remove(
        self, member_id: int, *, timeout: float | None = None
    ) -> rpc_pb2.MemberRemoveResponse:
        """Remove a member."""
        request = rpc_pb2.MemberRemoveRequest(ID=member_id)
        return self._call(lambda c: c.cluster.MemberRemove, request, timeout)

    def member_update(
        self, member_id: int, peer_urls: Iterable[str], *, timeout: float | None = None
    ) -> rpc_pb2.MemberUpdateResponse:
        """Change a member's peer URLs."""
        request = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=list(peer_urls))
        return self._call(lambda c: c.cluster.MemberUpdate, request, timeout)

    def member_promote(
        self, member_id: int, *, timeout: float | None = None
    ) -> rpc_pb2.MemberPromoteResponse:
        """Make a learner a voting member."""
        request = rpc_pb2.MemberPromoteRequest(ID=member_id)
        return self._call(lambda c: c.cluster.MemberPromote, request, timeout)

    def move_leader(
        self, target_id: int, endpoint: str | None = None, *, timeout: float | None = None
    ) -> rpc_pb2.MoveLeaderResponse:
        """Hand leadership to `target_id`; only the leader accepts this, so `endpoint` should
        name it (as etcdctl's move-leader finds it first)."""
        request = rpc_pb2.MoveLeaderRequest(targetID=target_id)
        return self._call(lambda c: c.maintenance.MoveLeader, request, timeout, endpoint)

    # -- leases --------------------------------------------------------------------------------

    def lease_grant(
        self, ttl: int, *, lease_id: int = 0, timeout: float | None = None
    ) -> rpc_pb2.LeaseGrantResponse:
        """Grant a lease of `ttl` seconds (the server picks the ID unless `lease_id` is set)."""
        request = rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id)
        return self._call(lambda c: c.lease.LeaseGrant, request, timeout)

    def lease_revoke(
        self, lease_id: int, *, timeout: float | None = None
    ) -> rpc_pb2.LeaseRevokeResponse:
        """Revoke a lease, deleting every key attached to it."""
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        return self._call(lambda c: c.lease.LeaseRevoke, request, timeout)

    def lease_time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        """A lease's granted and remaining TTL (-1 when it is gone), and its keys with `keys`."""
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        return self._call(lambda c: c.lease.LeaseTimeToLive, request, timeout, safe=True)

    def lease_leases(self, *, timeout: float | None = None) -> rpc_pb2.LeaseLeasesResponse:
        """Every live lease."""
        request = rpc_pb2.LeaseLeasesRequest()
        return self._call(lambda c: c.lease.LeaseLeases, request, timeout, safe=True)

    def lease_keep_alive_once(
        self, lease_id: int, *, timeout: float | None = None
    ) -> rpc_pb2.LeaseKeepAliveResponse:
        """Renew a lease once; raises `LeaseNotFoundError` when it is gone (TTL <= 0)."""
        request = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)

        def once(conn: _Connection) -> Callable[..., rpc_pb2.LeaseKeepAliveResponse]:
            def send(req: object, **kwargs: Any) -> rpc_pb2.LeaseKeepAliveResponse:
                stream = conn.lease.LeaseKeepAlive(iter([req]), **kwargs)
                try:
                    for resp in stream:
                        return resp  # type: ignore[no-any-return]
                finally:
                    stream.cancel()
                raise LeaseNotFoundError(LeaseNotFoundError.MESSAGE)

            return send

        resp = self._call(once, request, timeout, safe=True)
        if resp.TTL <= 0:
            raise LeaseNotFoundError(LeaseNotFoundError.MESSAGE)
        return resp

    def keep_alive(self, lease_id: int) -> KeepAlive:
        """Keep a lease alive from a background thread until the returned object is closed
        (use it as a context manager; iterate it for each renewal's answer)."""
        from ward.lease import KeepAlive

        return KeepAlive(self, lease_id)

    # -- watch ---------------------------------------------------------------------------------

    def watch(
        self,
        key: Key,
        range_end: Key | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
    ) -> Watcher:
        """Watch a key or range from `start_revision` (0: from now); iterate the result for
        `WatchResponse`s. The watch resumes after a lost connection from the revision after
        the last event delivered, so no event is lost or repeated."""
        from ward.watch import Watcher, watch_create_request

        request = watch_create_request(
            key,
            range_end,
            prefix=prefix,
            from_key=from_key,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
            no_put=no_put,
            no_delete=no_delete,
        )
        return Watcher(self, request)

    # -- lock and election ---------------------------------------------------------------------

    def lock(
        self, name: Key, lease_id: int, *, timeout: float | None = math.inf
    ) -> v3lock_pb2.LockResponse:
        """Wait for the lock `name`, held for as long as `lease_id` lives (no deadline unless
        `timeout` is given); the response's `key` unlocks it."""
        request = v3lock_pb2.LockRequest(name=_b(name), lease=lease_id)
        return self._call(lambda c: c.lock.Lock, request, timeout)

    def unlock(self, key: Key, *, timeout: float | None = None) -> v3lock_pb2.UnlockResponse:
        """Release a lock by the key `lock` returned."""
        request = v3lock_pb2.UnlockRequest(key=_b(key))
        return self._call(lambda c: c.lock.Unlock, request, timeout)

    def campaign(
        self, name: Key, value: Key, lease_id: int, *, timeout: float | None = math.inf
    ) -> v3election_pb2.CampaignResponse:
        """Wait to become leader of election `name`, proposing `value`."""
        request = v3election_pb2.CampaignRequest(name=_b(name), value=_b(value), lease=lease_id)
        return self._call(lambda c: c.election.Campaign, request, timeout)

    def proclaim(
        self,
        leader: v3election_pb2.LeaderKey,
        value: Key,
        *,
        timeout: float | None = None,
    ) -> v3election_pb2.ProclaimResponse:
        """Change the leader's value without a new election."""
        request = v3election_pb2.ProclaimRequest(leader=leader, value=_b(value))
        return self._call(lambda c: c.election.Proclaim, request, timeout)

    def election_leader(
        self, name: Key, *, timeout: float | None = None
    ) -> v3election_pb2.LeaderResponse:
        """The current leader's key-value of election `name`."""
        request = v3election_pb2.LeaderRequest(name=_b(name))
        return self._call(lambda c: c.election.Leader, request, timeout, safe=True)

    def observe(self, name: Key) -> Iterable[v3election_pb2.LeaderResponse]:
        """Each leader of election `name`, as it is elected (the current one first)."""
        conn = self._connection(None, None)
        stream = conn.election.Observe(
            v3election_pb2.LeaderRequest(name=_b(name)),
            metadata=self._metadata(None),
            wait_for_ready=True,
        )
        try:
            yield from stream
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise self._translate(exc, None) from None
        finally:
            stream.cancel()

    def resign(
        self, leader: v3election_pb2.LeaderKey, *, timeout: float | None = None
    ) -> v3election_pb2.ResignResponse:
        """Give up leadership."""
        request = v3election_pb2.ResignRequest(leader=leader)
        return self._call(lambda c: c.election.Resign, request, timeout)

    # -- auth administration -------------------------------------------------------------------

    def auth_enable(self, *, timeout: float | None = None) -> rpc_pb2.AuthEnableResponse:
        """Turn authentication on (needs a root user with the root role)."""
        return self._call(lambda c: c.auth.AuthEnable, rpc_pb2.AuthEnableRequest(), timeout)

    def auth_disable(self, *, timeout: float | None = None) -> rpc_pb2.AuthDisableResponse:
        """Turn authentication off."""
        return self._call(lambda c: c.auth.AuthDisable, rpc_pb2.AuthDisableRequest(), timeout)

    def user_add(
        self,
        name: str,
        password: str = "",
        *,
        no_password: bool = False,
        timeout: float | None = None,
    ) -> rpc_pb2.AuthUserAddResponse:
        """Create a user; `no_password` makes one that can only authenticate by certificate."""
        request = rpc_pb2.AuthUserAddRequest(name=name, password=password)
        if no_password:
            request.options.no_password = True
        return self._call(lambda c: c.auth.UserAdd, request, timeout)

    def user_get(self, name: str, *, timeout: float | None = None) -> rpc_pb2.AuthUserGetResponse:
        """A user's roles."""
        request = rpc_pb2.AuthUserGetRequest(name=name)
        return self._call(lambda c: c.auth.UserGet, request, timeout, safe=True)

    def user_list(self, *, timeout: float | None = None) -> rpc_pb2.AuthUserListResponse:
        """Every user's name."""
        request = rpc_pb2.AuthUserListRequest()
        return self._call(lambda c: c.auth.UserList, request, timeout, safe=True)

    def user_delete(
        self, name: str, *, timeout: float | None = None
    ) -> rpc_pb2.AuthUserDeleteResponse:
        """Delete a user."""
        request = rpc_pb2.AuthUserDeleteRequest(name=name)
        return self._call(lambda c: c.auth.UserDelete, request, timeout)

    def user_change_password(
        self, name: str, password: str, *, timeout: float | None = None
    ) -> rpc_pb2.AuthUserChangePasswordResponse:
        """Set a user's password."""
        request = rpc_pb2.AuthUserChangePasswordRequest(name=name, password=password)
        return self._call(lambda c: c.auth.UserChangePassword, request, timeout)

    def user_grant_role(
        self, name: str, role: str, *, timeout: float | None = None
    ) -> rpc_pb2.AuthUserGrantRoleResponse:
        """Give a user a role."""
        request = rpc_pb2.AuthUserGrantRoleRequest(user=name, role=role)
        return self._call(lambda c: c.auth.UserGrantRole, request, timeout)

    def user_revoke_role(
        self, name: str, role: str, *, timeout: float | None = None
    ) -> rpc_pb2.AuthUserRevokeRoleResponse:
        """Take a role from a user."""
        request = rpc_pb2.AuthUserRevokeRoleRequest(name=name, role=role)
        return self._call(lambda c: c.auth.UserRevokeRole, request, timeout)

    def role_add(self, name: str, *, timeout: float | None = None) -> rpc_pb2.AuthRoleAddResponse:
        """Create a role."""
        request = rpc_pb2.AuthRoleAddRequest(name=name)
        return self._call(lambda c: c.auth.RoleAdd, request, timeout)

    def role_get(self, name: str, *, timeout: float | None = None) -> rpc_pb2.AuthRoleGetResponse:
        """A role's permissions."""
        request = rpc_pb2.AuthRoleGetRequest(role=name)
        return self._call(lambda c: c.auth.RoleGet, request, timeout, safe=True)

    def role_list(self, *, timeout: float | None = None) -> rpc_pb2.AuthRoleListResponse:
        """Every role's name."""
        request = rpc_pb2.AuthRoleListRequest()
        return self._call(lambda c: c.auth.RoleList, request, timeout, safe=True)

    def role_delete(
        self, name: str, *, timeout: float | None = None
    ) -> rpc_pb2.AuthRoleDeleteResponse:
        """Delete a role."""
        request = rpc_pb2.AuthRoleDeleteRequest(role=name)
        return self._call(lambda c: c.auth.RoleDelete, request, timeout)

    def role_grant_permission(
        self,
        name: str,
        perm_type: int,
        key: Key,
        range_end: Key = b"",
        *,
        timeout: float | None = None,
    ) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        """Grant READ, WRITE or READWRITE (`auth_pb2.Permission`) on a key or range."""
        perm = auth_pb2.Permission(permType=perm_type, key=_b(key), range_end=_b(range_end))  # type: ignore[arg-type]
        request = rpc_pb2.AuthRoleGrantPermissionRequest(name=name, perm=perm)
        return self._call(lambda c: c.auth.RoleGrantPermission, request, timeout)

    def role_revoke_permission(
        self, name: str, key: Key, range_end: Key = b"", *, timeout: float | None = None
    ) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        """Revoke a role's permission on exactly this key or range."""
        request = rpc_pb2.AuthRoleRevokePermissionRequest(
            role=name, key=_b(key), range_end=_b(range_end)
        )
        return self._call(lambda c: c.auth.RoleRevokePermission, request, timeout)

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
        *,
        safe: bool = False,
    ) -> _Resp:
        deadline = self._deadline(timeout)
        # With one endpoint a call waits for it (etcdctl's behaviour); with several, a call on
        # a dead endpoint must fail fast so that it can move on to a live one.
        failover = endpoint is None and len(self._endpoints) > 1
        refreshed = False
        backoff = _BACKOFF_MIN_S
        while True:
            conn = self._connection(endpoint, deadline)
            metadata = self._metadata(deadline)
            try:
                return method(conn)(
                    request,
                    timeout=self._remaining(deadline),
                    metadata=metadata,
                    wait_for_ready=not failover,
                )
            except grpc.RpcError as exc:
                err = self._translate(exc, deadline)
                if isinstance(err, InvalidAuthTokenError) and self._user and not refreshed:
                    # Tokens expire; fetch a fresh one and try once more.
                    refreshed = True
                    with self._lock:
                        self._authenticated = False
                    continue
                if exc.code() != grpc.StatusCode.UNAVAILABLE or endpoint is not None:
                    raise err from None
                with self._lock:
                    if self._active is conn:
                        self._active = None
                if not failover or not (safe or _never_sent(exc)):
                    raise err from None
                remaining = self._remaining(deadline)
                if remaining is not None and remaining <= backoff:
                    raise err from None
                time.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

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
