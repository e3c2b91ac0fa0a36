"""Every unary client method, described once for both clients.

Each function here takes a client method's arguments and returns the `Call` (or `Plan`) it
runs; `ward.Client` and `ward.aio.Client` turn each into a method of the same name, signature
and docstring, which returns the server's protobuf response (the asyncio one as a coroutine).
So the docstrings below speak of what the method does. Every method takes `timeout` (seconds;
None means the client's `command_timeout`, `math.inf` means no deadline). Keys and values are
bytes, or str encoded as UTF-8.

Methods that take `endpoint` talk to that member only (None: the connected one), as etcdctl's
per-member maintenance commands do.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable
from typing import Any

from google.protobuf.message import Message

from ward.deadline import Deadline
from ward.lease import renewed
from ward.requests import (
    Key,
    SortOrder,
    SortTarget,
    delete_request,
    put_request,
    range_request,
    to_bytes,
)
from ward.rpc import Call, Op, Plan, stub_method
from ward.txn import CompareLike, OpLike, txn_request
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2
from wardpb.v3electionpb import v3election_pb2
from wardpb.v3lockpb import v3lock_pb2

__all__ = ["UNARY", "AlarmType", "kv_request", "observe_request"]


class AlarmType:
    """Alarm kinds (etcdserverpb.AlarmType)."""

    NONE = rpc_pb2.NONE
    NOSPACE = rpc_pb2.NOSPACE
    CORRUPT = rpc_pb2.CORRUPT


_KV_METHODS: dict[type[Message], str] = {
    rpc_pb2.RangeRequest: "kv.Range",
    rpc_pb2.PutRequest: "kv.Put",
    rpc_pb2.DeleteRangeRequest: "kv.DeleteRange",
    rpc_pb2.TxnRequest: "kv.Txn",
}


def kv_request(request: Message, *, timeout: float | None = None) -> Call[Any]:
    """A prepared KV request (Range, Put, DeleteRange or Txn), sent as it is."""
    method = _KV_METHODS.get(type(request))
    if method is None:
        raise TypeError(f"not a KV request: {type(request).__name__}")
    return Call(stub_method(method), request, timeout)


def observe_request(name: Key) -> v3election_pb2.LeaderRequest:
    """The request of an Observe stream on election `name`."""
    return v3election_pb2.LeaderRequest(name=to_bytes(name))


# -- KV --------------------------------------------------------------------------------------


def get(
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
) -> Call[rpc_pb2.RangeResponse]:
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
    return Call(stub_method("kv.Range"), request, timeout, safe=True)


def put(
    key: Key,
    value: Key = b"",
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
    timeout: float | None = None,
) -> Call[rpc_pb2.PutResponse]:
    """Store `value` under `key`; `ignore_value`/`ignore_lease` keep the current ones."""
    request = put_request(
        key,
        value,
        lease=lease,
        prev_kv=prev_kv,
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )
    return Call(stub_method("kv.Put"), request, timeout)


def delete(
    key: Key,
    range_end: Key | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    prev_kv: bool = False,
    timeout: float | None = None,
) -> Call[rpc_pb2.DeleteRangeResponse]:
    """Delete `key` or a range (the range options are those of `get`)."""
    request = delete_request(key, range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
    return Call(stub_method("kv.DeleteRange"), request, timeout)


def txn(
    compare: Iterable[CompareLike] = (),
    success: Iterable[OpLike] = (),
    failure: Iterable[OpLike] = (),
    *,
    timeout: float | None = None,
) -> Call[rpc_pb2.TxnResponse]:
    """Run `success` if every compare holds, else `failure`, atomically (see `ward.txn`)."""
    return Call(stub_method("kv.Txn"), txn_request(compare, success, failure), timeout)


def compact(
    revision: int, *, physical: bool = False, timeout: float | None = None
) -> Call[rpc_pb2.CompactionResponse]:
    """Discard history before `revision`; `physical` waits until it is removed from disk."""
    request = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
    return Call(stub_method("kv.Compact"), request, timeout)


# -- maintenance -----------------------------------------------------------------------------


def status(
    endpoint: str | None = None, *, timeout: float | None = None
) -> Call[rpc_pb2.StatusResponse]:
    """The status of one member."""
    request = rpc_pb2.StatusRequest()
    return Call(stub_method("maintenance.Status"), request, timeout, endpoint, safe=True)


def hash_kv(
    endpoint: str | None = None, *, revision: int = 0, timeout: float | None = None
) -> Call[rpc_pb2.HashKVResponse]:
    """The hash of one member's keyspace history up to `revision` (0: now)."""
    request = rpc_pb2.HashKVRequest(revision=revision)
    return Call(stub_method("maintenance.HashKV"), request, timeout, endpoint, safe=True)


def defragment(
    endpoint: str | None = None, *, timeout: float | None = None
) -> Call[rpc_pb2.DefragmentResponse]:
    """Defragment one member's storage."""
    request = rpc_pb2.DefragmentRequest()
    return Call(stub_method("maintenance.Defragment"), request, timeout, endpoint)


def alarm_list(*, timeout: float | None = None) -> Call[rpc_pb2.AlarmResponse]:
    """Every active alarm of the cluster."""
    request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
    return Call(stub_method("maintenance.Alarm"), request, timeout, safe=True)


def alarm_disarm(
    member_id: int = 0, alarm: int = AlarmType.NONE, *, timeout: float | None = None
) -> Op[rpc_pb2.AlarmResponse]:
    """Deactivate one alarm, or (with no arguments) every active alarm.

    Disarming everything lists the alarms and deactivates each, as etcd's Go client does;
    the answer then lists what was deactivated and has no header.
    """
    if member_id == 0 and alarm == AlarmType.NONE:
        return Plan(timeout, _disarm_all)
    request = rpc_pb2.AlarmRequest(
        action=rpc_pb2.AlarmRequest.DEACTIVATE,
        memberID=member_id,
        alarm=alarm,  # type: ignore[arg-type]
    )
    return Call(stub_method("maintenance.Alarm"), request, timeout)


def _disarm_all(deadline: Deadline) -> Generator[Call[Any], Any, rpc_pb2.AlarmResponse]:
    disarmed = rpc_pb2.AlarmResponse()
    active = yield alarm_list(timeout=deadline.remaining_or_inf())
    for one in active.alarms:
        one_call = alarm_disarm(one.memberID, one.alarm, timeout=deadline.remaining_or_inf())
        assert isinstance(one_call, Call)
        resp = yield one_call
        disarmed.alarms.extend(resp.alarms)
    return disarmed


def move_leader(
    target_id: int, endpoint: str | None = None, *, timeout: float | None = None
) -> Call[rpc_pb2.MoveLeaderResponse]:
    """Hand leadership to `target_id`; only the leader accepts this, so `endpoint` should
    name it (as etcdctl's move-leader finds it first)."""
    request = rpc_pb2.MoveLeaderRequest(targetID=target_id)
    return Call(stub_method("maintenance.MoveLeader"), request, timeout, endpoint)


# -- cluster ---------------------------------------------------------------------------------


def member_list(*, timeout: float | None = None) -> Call[rpc_pb2.MemberListResponse]:
    """Every member of the cluster."""
    request = rpc_pb2.MemberListRequest()
    return Call(stub_method("cluster.MemberList"), request, timeout, safe=True)


def member_add(
    peer_urls: Iterable[str], *, learner: bool = False, timeout: float | None = None
) -> Call[rpc_pb2.MemberAddResponse]:
    """Add a member (a learner with `learner`) that will listen on `peer_urls`."""
    request = rpc_pb2.MemberAddRequest(peerURLs=list(peer_urls), isLearner=learner)
    return Call(stub_method("cluster.MemberAdd"), request, timeout)


def member_remove(
    member_id: int, *, timeout: float | None = None
) -> Call[rpc_pb2.MemberRemoveResponse]:
    """Remove a member."""
    request = rpc_pb2.MemberRemoveRequest(ID=member_id)
    return Call(stub_method("cluster.MemberRemove"), request, timeout)


def member_update(
    member_id: int, peer_urls: Iterable[str], *, timeout: float | None = None
) -> Call[rpc_pb2.MemberUpdateResponse]:
    """Change a member's peer URLs."""
    request = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=list(peer_urls))
    return Call(stub_method("cluster.MemberUpdate"), request, timeout)


def member_promote(
    member_id: int, *, timeout: float | None = None
) -> Call[rpc_pb2.MemberPromoteResponse]:
    """Make a learner a voting member."""
    request = rpc_pb2.MemberPromoteRequest(ID=member_id)
    return Call(stub_method("cluster.MemberPromote"), request, timeout)


# -- leases ----------------------------------------------------------------------------------


def lease_grant(
    ttl: int, *, lease_id: int = 0, timeout: float | None = None
) -> Call[rpc_pb2.LeaseGrantResponse]:
    """Grant a lease of `ttl` seconds (the server picks the ID unless `lease_id` is set)."""
    request = rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id)
    return Call(stub_method("lease.LeaseGrant"), request, timeout)


def lease_revoke(
    lease_id: int, *, timeout: float | None = None
) -> Call[rpc_pb2.LeaseRevokeResponse]:
    """Revoke a lease, deleting every key attached to it."""
    request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
    return Call(stub_method("lease.LeaseRevoke"), request, timeout)


def lease_time_to_live(
    lease_id: int, *, keys: bool = False, timeout: float | None = None
) -> Call[rpc_pb2.LeaseTimeToLiveResponse]:
    """A lease's granted and remaining TTL (-1 when it is gone), and its keys with `keys`."""
    request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
    return Call(stub_method("lease.LeaseTimeToLive"), request, timeout, safe=True)


def lease_leases(*, timeout: float | None = None) -> Call[rpc_pb2.LeaseLeasesResponse]:
    """Every live lease."""
    request = rpc_pb2.LeaseLeasesRequest()
    return Call(stub_method("lease.LeaseLeases"), request, timeout, safe=True)


def lease_keep_alive_once(
    lease_id: int, *, timeout: float | None = None
) -> Call[rpc_pb2.LeaseKeepAliveResponse]:
    """Renew a lease once; raises `LeaseNotFoundError` when it is gone (TTL <= 0)."""
    request = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
    return Call(
        stub_method("lease.LeaseKeepAlive"),
        request,
        timeout,
        safe=True,
        streamed=True,
        finish=renewed,
    )


# -- lock and election -----------------------------------------------------------------------


def lock(
    name: Key, lease_id: int, *, timeout: float | None = math.inf
) -> Call[v3lock_pb2.LockResponse]:
    """Wait for the lock `name`, held for as long as `lease_id` lives (no deadline unless
    `timeout` is given); the response's `key` unlocks it."""
    request = v3lock_pb2.LockRequest(name=to_bytes(name), lease=lease_id)
    return Call(stub_method("lock.Lock"), request, timeout)


def unlock(key: Key, *, timeout: float | None = None) -> Call[v3lock_pb2.UnlockResponse]:
    """Release a lock by the key `lock` returned."""
    request = v3lock_pb2.UnlockRequest(key=to_bytes(key))
    return Call(stub_method("lock.Unlock"), request, timeout)


def campaign(
    name: Key, value: Key, lease_id: int, *, timeout: float | None = math.inf
) -> Call[v3election_pb2.CampaignResponse]:
    """Wait to become leader of election `name`, proposing `value`."""
    request = v3election_pb2.CampaignRequest(
        name=to_bytes(name), value=to_bytes(value), lease=lease_id
    )
    return Call(stub_method("election.Campaign"), request, timeout)


def proclaim(
    leader: v3election_pb2.LeaderKey, value: Key, *, timeout: float | None = None
) -> Call[v3election_pb2.ProclaimResponse]:
    """Change the leader's value without a new election."""
    request = v3election_pb2.ProclaimRequest(leader=leader, value=to_bytes(value))
    return Call(stub_method("election.Proclaim"), request, timeout)


def election_leader(
    name: Key, *, timeout: float | None = None
) -> Call[v3election_pb2.LeaderResponse]:
    """The current leader's key-value of election `name`."""
    return Call(stub_method("election.Leader"), observe_request(name), timeout, safe=True)


def resign(
    leader: v3election_pb2.LeaderKey, *, timeout: float | None = None
) -> Call[v3election_pb2.ResignResponse]:
    """Give up leadership."""
    request = v3election_pb2.ResignRequest(leader=leader)
    return Call(stub_method("election.Resign"), request, timeout)


# -- auth administration ---------------------------------------------------------------------


def auth_enable(*, timeout: float | None = None) -> Call[rpc_pb2.AuthEnableResponse]:
    """Turn authentication on (needs a root user with the root role)."""
    return Call(stub_method("auth.AuthEnable"), rpc_pb2.AuthEnableRequest(), timeout)


def auth_disable(*, timeout: float | None = None) -> Call[rpc_pb2.AuthDisableResponse]:
    """Turn authentication off."""
    return Call(stub_method("auth.AuthDisable"), rpc_pb2.AuthDisableRequest(), timeout)


def user_add(
    name: str, password: str = "", *, no_password: bool = False, timeout: float | None = None
) -> Call[rpc_pb2.AuthUserAddResponse]:
    """Create a user; `no_password` makes one that can only authenticate by certificate."""
    request = rpc_pb2.AuthUserAddRequest(name=name, password=password)
    if no_password:
        request.options.no_password = True
    return Call(stub_method("auth.UserAdd"), request, timeout)


def user_get(name: str, *, timeout: float | None = None) -> Call[rpc_pb2.AuthUserGetResponse]:
    """A user's roles."""
    request = rpc_pb2.AuthUserGetRequest(name=name)
    return Call(stub_method("auth.UserGet"), request, timeout, safe=True)


def user_list(*, timeout: float | None = None) -> Call[rpc_pb2.AuthUserListResponse]:
    """Every user's name."""
    request = rpc_pb2.AuthUserListRequest()
    return Call(stub_method("auth.UserList"), request, timeout, safe=True)


def user_delete(name: str, *, timeout: float | None = None) -> Call[rpc_pb2.AuthUserDeleteResponse]:
    """Delete a user."""
    request = rpc_pb2.AuthUserDeleteRequest(name=name)
    return Call(stub_method("auth.UserDelete"), request, timeout)


def user_change_password(
    name: str, password: str, *, timeout: float | None = None
) -> Call[rpc_pb2.AuthUserChangePasswordResponse]:
    """Set a user's password."""
    request = rpc_pb2.AuthUserChangePasswordRequest(name=name, password=password)
    return Call(stub_method("auth.UserChangePassword"), request, timeout)


def user_grant_role(
    name: str, role: str, *, timeout: float | None = None
) -> Call[rpc_pb2.AuthUserGrantRoleResponse]:
    """Give a user a role."""
    request = rpc_pb2.AuthUserGrantRoleRequest(user=name, role=role)
    return Call(stub_method("auth.UserGrantRole"), request, timeout)


def user_revoke_role(
    name: str, role: str, *, timeout: float | None = None
) -> Call[rpc_pb2.AuthUserRevokeRoleResponse]:
    """Take a role from a user."""
    request = rpc_pb2.AuthUserRevokeRoleRequest(name=name, role=role)
    return Call(stub_method("auth.UserRevokeRole"), request, timeout)


def role_add(name: str, *, timeout: float | None = None) -> Call[rpc_pb2.AuthRoleAddResponse]:
    """Create a role."""
    request = rpc_pb2.AuthRoleAddRequest(name=name)
    return Call(stub_method("auth.RoleAdd"), request, timeout)


def role_get(name: str, *, timeout: float | None = None) -> Call[rpc_pb2.AuthRoleGetResponse]:
    """A role's permissions."""
    request = rpc_pb2.AuthRoleGetRequest(role=name)
    return Call(stub_method("auth.RoleGet"), request, timeout, safe=True)


def role_list(*, timeout: float | None = None) -> Call[rpc_pb2.AuthRoleListResponse]:
    """Every role's name."""
    request = rpc_pb2.AuthRoleListRequest()
    return Call(stub_method("auth.RoleList"), request, timeout, safe=True)


def role_delete(name: str, *, timeout: float | None = None) -> Call[rpc_pb2.AuthRoleDeleteResponse]:
    """Delete a role."""
    request = rpc_pb2.AuthRoleDeleteRequest(role=name)
    return Call(stub_method("auth.RoleDelete"), request, timeout)


def role_grant_permission(
    name: str, perm_type: int, key: Key, range_end: Key = b"", *, timeout: float | None = None
) -> Call[rpc_pb2.AuthRoleGrantPermissionResponse]:
    """Grant READ, WRITE or READWRITE (`auth_pb2.Permission`) on a key or range."""
    perm = auth_pb2.Permission(
        permType=perm_type,  # type: ignore[arg-type]
        key=to_bytes(key),
        range_end=to_bytes(range_end),
    )
    request = rpc_pb2.AuthRoleGrantPermissionRequest(name=name, perm=perm)
    return Call(stub_method("auth.RoleGrantPermission"), request, timeout)


def role_revoke_permission(
    name: str, key: Key, range_end: Key = b"", *, timeout: float | None = None
) -> Call[rpc_pb2.AuthRoleRevokePermissionResponse]:
    """Revoke a role's permission on exactly this key or range."""
    request = rpc_pb2.AuthRoleRevokePermissionRequest(
        role=name, key=to_bytes(key), range_end=to_bytes(range_end)
    )
    return Call(stub_method("auth.RoleRevokePermission"), request, timeout)


# Every method both clients make of the functions above (a test checks that each has it).
UNARY = (
    get, put, delete, txn, compact,
    status, hash_kv, defragment, alarm_list, alarm_disarm, move_leader,
    member_list, member_add, member_remove, member_update, member_promote,
    lease_grant, lease_revoke, lease_time_to_live, lease_leases, lease_keep_alive_once,
    lock, unlock, campaign, proclaim, election_leader, resign,
    auth_enable, auth_disable,
    user_add, user_get, user_list, user_delete, user_change_password, user_grant_role,
    user_revoke_role,
    role_add, role_get, role_list, role_delete, role_grant_permission, role_revoke_permission,
)  # fmt: skip
