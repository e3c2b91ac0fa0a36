"""Auth in a three-member cluster of real `ward` processes (two serving processes each).

The auth tables are replicated state, so a permission change made through one member is in force
on every member as soon as it is acknowledged: a write anywhere is ordered after it in the log,
and a linearizable read anywhere waits until its member has applied it. Tokens one member issues
are accepted by all (each member publishes its JWT key through the log).
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from cluster import Cluster

from tests.e2e.auth_client import Client, authenticate
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2

pytestmark = pytest.mark.slow

DENIED = (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
OLD_REVISION = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")
ROUNDS = 3


def start(tmp_path: Path) -> Cluster:
    c = Cluster(tmp_path, workers=2)
    ic = c.initial_cluster
    for m in c.members:
        m.launch([*m.flags(ic, "new", c.token), "--bcrypt-cost", "4"], c.env_for(m))
    for m in c.members:
        m.proc.wait_ready()
    return c


def rw(key: bytes, end: bytes) -> rpc_pb2.AuthRoleGrantPermissionRequest:
    perm = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=key, range_end=end)
    return rpc_pb2.AuthRoleGrantPermissionRequest(name="ra", perm=perm)


def test_a_permission_change_on_one_member_is_enforced_by_all_once_acknowledged(
    tmp_path: Path,
) -> None:
    cluster = start(tmp_path)
    try:
        first = cluster.members[0].endpoint
        with Client(first) as c:
            for name, pw in (("root", "root-pass-1"), ("alice", "alice-pass-1")):
                c.call(c.auth.UserAdd, rpc_pb2.AuthUserAddRequest(name=name, password=pw))
            for role in ("root", "ra"):
                c.call(c.auth.RoleAdd, rpc_pb2.AuthRoleAddRequest(name=role))
            for user, role in (("root", "root"), ("alice", "ra")):
                c.call(c.auth.UserGrantRole, rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role))
            c.call(c.auth.AuthEnable, rpc_pb2.AuthEnableRequest())
        members = cluster.members
        for i in range(ROUNDS):
            via = members[i % len(members)].endpoint
            with Client(via, authenticate(via, "root", "root-pass-1")) as root:
                root.call(root.auth.RoleGrantPermission, rw(b"a/", b"a0"))
            # A token from one member works on every member.
            token = authenticate(members[(i + 1) % len(members)].endpoint, "alice", "alice-pass-1")
            for m in members:
                with Client(m.endpoint, token) as alice:
                    alice.put(b"a/k", f"round {i}".encode())
                    assert alice.get(b"a/k") == [b"a/k"]
            with Client(via, authenticate(via, "root", "root-pass-1")) as root:
                revoke = rpc_pb2.AuthRoleRevokePermissionRequest(
                    role="ra", key=b"a/", range_end=b"a0"
                )
                root.call(root.auth.RoleRevokePermission, revoke)
            # Acknowledged on one member: refused on all, at once, with any token.
            fresh = authenticate(members[(i + 2) % len(members)].endpoint, "alice", "alice-pass-1")
            for m in members:
                with Client(m.endpoint, fresh) as alice, Client(m.endpoint, token) as stale:
                    assert alice.refused(alice.kv.Put, rpc_pb2.PutRequest(key=b"a/k")) == DENIED
                    assert alice.refused(alice.kv.Range, rpc_pb2.RangeRequest(key=b"a/k")) == DENIED
                    assert stale.refused(stale.kv.Put, rpc_pb2.PutRequest(key=b"a/k")) == (
                        OLD_REVISION
                    )
    finally:
        cluster.stop()
