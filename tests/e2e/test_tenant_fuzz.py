"""Fuzzing a tenant user: random keys, range ends (from-key "\\0", prefix ends, arbitrary bytes)
and nested txns, sent as a tenant user to a real `ward` (two serving processes), never reach a
key outside the tenant: canary keys just around the tenant's prefix and in another tenant stay
exactly as they were, and no answer carries their values.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth.tenants import prefix_end
from tests.e2e.auth_client import Client, authenticate
from tests.e2e.ward_process import REPO, WardProcess, start_ward
from wardpb.etcdserverpb import rpc_pb2
from wardpb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from wardpb.v3lockpb import v3lock_pb2

pytestmark = pytest.mark.slow

PREFIX = b"/tenants/acme/"
CANARY = b"CANARY"
# Keys right around the tenant's prefix (as bytes order them), in another tenant, and at the
# ends of the keyspace.
OUTSIDE = (
    b"\x00",
    b"/tenants/acme",
    b"/tenants/acme.",
    b"/tenants/acme0",
    b"/tenants/acmd/",
    b"/tenants/acmf",
    b"/tenants/globex/config",
    b"a",
    b"\xff\xff",
)
POLICY = """
tenants:
  - {name: acme, prefix: /tenants/acme/}
  - {name: globex, prefix: /tenants/globex/}
roles:
  - name: acme-rw
    tenant: acme
    permissions: [{type: readwrite, key: "", prefix: true}]
users:
  - {name: acme-app, tenant: acme, roles: [acme-rw]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WardProcess, str, str]]:
    d = tmp_path_factory.mktemp("fuzz")
    w = start_ward(d, "--bcrypt-cost", "4")
    try:
        with Client(w.endpoint) as c:
            c.call(c.auth.UserAdd, rpc_pb2.AuthUserAddRequest(name="root", password="root-pass-1"))
            c.call(c.auth.RoleAdd, rpc_pb2.AuthRoleAddRequest(name="root"))
            c.call(c.auth.UserGrantRole, rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
            c.call(c.auth.AuthEnable, rpc_pb2.AuthEnableRequest())
        policy = d / "policy.yaml"
        policy.write_text(POLICY)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ward.cli",
                "--endpoints",
                w.endpoint,
                "--user=root:root-pass-1",
                "policy",
                "apply",
                str(policy),
            ],
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        root = authenticate(w.endpoint, "root", "root-pass-1")
        with Client(w.endpoint, root) as c:
            c.call(
                c.auth.UserChangePassword,
                rpc_pb2.AuthUserChangePasswordRequest(name="acme-app", password="acme-pass-1"),
            )
        # A new token: the password change moved the auth revision.
        root = authenticate(w.endpoint, "root", "root-pass-1")
        with Client(w.endpoint, root) as c:
            for key in OUTSIDE:
                c.put(key, CANARY)
        yield (
            w,
            authenticate(w.endpoint, "root", "root-pass-1"),
            authenticate(w.endpoint, "acme-app", "acme-pass-1"),
        )
    finally:
        w.stop()


KEY = st.one_of(
    st.binary(max_size=5),
    st.sampled_from([b"\x00", b"\xff", b"\xff\xff", b"config", b"a/", b"/tenants/acme0"]),
)


@st.composite
def key_range(draw: st.DrawFn) -> tuple[bytes, bytes]:
    key = draw(KEY)
    end = draw(
        st.one_of(
            st.just(b""),
            st.just(b"\x00"),
            st.just(prefix_end(key) if key else b"\x00"),
            KEY,
        )
    )
    return key, end


@st.composite
def range_req(draw: st.DrawFn) -> rpc_pb2.RangeRequest:
    key, end = draw(key_range())
    return rpc_pb2.RangeRequest(key=key or b"k", range_end=end)


@st.composite
def put_req(draw: st.DrawFn) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=draw(KEY) or b"k", value=b"fuzz", prev_kv=draw(st.booleans()))


@st.composite
def delete_req(draw: st.DrawFn) -> rpc_pb2.DeleteRangeRequest:
    key, end = draw(key_range())
    return rpc_pb2.DeleteRangeRequest(key=key or b"k", range_end=end, prev_kv=draw(st.booleans()))


def ops(depth: int) -> st.SearchStrategy[rpc_pb2.RequestOp]:
    leaves = st.one_of(
        range_req().map(lambda r: rpc_pb2.RequestOp(request_range=r)),
        put_req().map(lambda r: rpc_pb2.RequestOp(request_put=r)),
        delete_req().map(lambda r: rpc_pb2.RequestOp(request_delete_range=r)),
    )
    if depth == 0:
        return leaves
    return st.one_of(leaves, txn_req(depth - 1).map(lambda t: rpc_pb2.RequestOp(request_txn=t)))


@st.composite
def compare(draw: st.DrawFn) -> rpc_pb2.Compare:
    key, end = draw(key_range())
    return rpc_pb2.Compare(
        key=key or b"k",
        range_end=end,
        target=rpc_pb2.Compare.VERSION,
        result=draw(st.sampled_from([rpc_pb2.Compare.EQUAL, rpc_pb2.Compare.GREATER])),
        version=draw(st.integers(0, 2)),
    )


def txn_req(depth: int) -> st.SearchStrategy[rpc_pb2.TxnRequest]:
    return st.builds(
        rpc_pb2.TxnRequest,
        compare=st.lists(compare(), max_size=2),
        success=st.lists(ops(depth), max_size=3),
        failure=st.lists(ops(depth), max_size=3),
    )


REQUESTS = st.one_of(
    range_req().map(lambda r: ("Range", r)),
    put_req().map(lambda r: ("Put", r)),
    delete_req().map(lambda r: ("DeleteRange", r)),
    txn_req(2).map(lambda r: ("Txn", r)),
)


def outside(root: Client) -> dict[bytes, tuple[bytes, int]]:
    """Every key outside the tenant's prefix, with its value and mod revision (as root)."""
    resp = root.call(root.kv.Range, rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00"))
    return {
        kv.key: (kv.value, kv.mod_revision)
        for kv in resp.kvs  # type: ignore[attr-defined]
        if not kv.key.startswith(PREFIX)
    }


def values(resp: object) -> list[bytes]:
    """Every value and key in a response, at any depth."""
    out: list[bytes] = []

    def walk(value: object) -> None:
        if isinstance(value, Message):
            for _field, inner in value.ListFields():
                walk(inner)
        elif isinstance(value, bytes):
            out.append(value)
        elif not isinstance(value, (str, int, float)):
            for item in value:  # type: ignore[attr-defined]
                walk(item)

    walk(resp)
    return out


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=REQUESTS)
def test_a_tenant_user_never_reaches_a_key_outside_its_tenant(
    server: tuple[WardProcess, str, str], request: tuple[str, object]
) -> None:
    w, root_token, tenant_token = server
    with Client(w.endpoint, root_token) as root, Client(w.endpoint, tenant_token) as tenant:
        before = outside(root)
        method, req = request
        try:
            resp = tenant.call(getattr(tenant.kv, method), req)
        except grpc.RpcError as e:
            # Refusals (validation, duplicate keys in a txn) are fine; leaking is not.
            assert e.code() != grpc.StatusCode.UNKNOWN, e.details()  # type: ignore[attr-defined]
            assert CANARY not in (e.details() or "").encode()  # type: ignore[attr-defined]
        else:
            assert CANARY not in values(resp)
            for v in values(resp):
                assert not v.startswith(PREFIX), v  # keys come back stripped
        assert outside(root) == before


def test_a_tenant_watch_on_every_key_sees_only_its_tenant(
    server: tuple[WardProcess, str, str], tmp_path: Path
) -> None:
    w, root_token, tenant_token = server
    with Client(w.endpoint, root_token) as root, Client(w.endpoint, tenant_token) as tenant:
        stream = tenant.watch()
        try:
            created = stream.create(b"\x00", b"\x00")
            assert created.created and not created.canceled
            root.put(b"/tenants/globex/config", CANARY)
            root.put(b"/tenants/acme0", CANARY)
            tenant.put(b"mine", b"v")
            event = stream.next()
            assert [(e.kv.key, e.kv.value) for e in event.events] == [(b"mine", b"v")]
        finally:
            stream.close()


def test_leases_locks_and_elections_of_a_tenant_user_live_inside_its_tenant(
    server: tuple[WardProcess, str, str],
) -> None:
    w, root_token, tenant_token = server
    with Client(w.endpoint, root_token) as root, Client(w.endpoint, tenant_token) as tenant:
        lease = tenant.call(tenant.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=60)).ID
        tenant.put(b"leased", b"v", lease=lease)
        ttl = tenant.call(
            tenant.lease.LeaseTimeToLive, rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True)
        )
        assert list(ttl.keys) == [b"leased"]
        election = v3election_pb2_grpc.ElectionStub(tenant.channel)
        won = tenant.call(
            election.Campaign, v3election_pb2.CampaignRequest(name=b"e1", lease=lease, value=b"me")
        )
        assert won.leader.name == b"e1" and won.leader.key.startswith(b"e1/")
        leader = tenant.call(election.Leader, v3election_pb2.LeaderRequest(name=b"e1"))
        assert (leader.kv.key, leader.kv.value) == (won.leader.key, b"me")
        held = tenant.call(tenant.lock.Lock, v3lock_pb2.LockRequest(name=b"l1", lease=lease))
        assert held.key.startswith(b"l1/")
        # Root sees all of it under the tenant's prefix.
        keys = root.get(PREFIX, prefix_end(PREFIX))
        assert {PREFIX + b"leased", PREFIX + won.leader.key, PREFIX + held.key} <= set(keys)
        tenant.call(tenant.lock.Unlock, v3lock_pb2.UnlockRequest(key=held.key))
        tenant.call(election.Resign, v3election_pb2.ResignRequest(leader=won.leader))
        assert PREFIX + held.key not in root.get(PREFIX, prefix_end(PREFIX))
        tenant.call(tenant.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=lease))
