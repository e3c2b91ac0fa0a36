"""Auth enforced by a real `ward` on every path, one test per way etcd's auth went wrong
(shared/SECURITY.md, items named in the test names), and what Ward does beyond etcd.

One Ward (two serving processes) for the module, with auth on and these users:

- root (`root` role);
- alice (role `ra`): read and write under `a/`, read of the single key `r/one`, write only
  under `w/`;
- bob (role `rb`): read and write under `b/`.

Checks that a worker and the core must both make are run over several fresh connections, which
the kernel spreads over both processes (SO_REUSEPORT). Tests that change rules use users and
roles of their own; every test logs in afresh, since any auth change makes older tokens stale.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.e2e.auth_client import Client, authenticate, status_of
from tests.e2e.ward_process import WardProcess, etcdctl, start_ward
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2
from wardpb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from wardpb.v3lockpb import v3lock_pb2

DENIED = (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
USER_EMPTY = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty")
OLD_REVISION = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")
INVALID_TOKEN = (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
AUTH_FAILED = (
    grpc.StatusCode.INVALID_ARGUMENT,
    "etcdserver: authentication failed, invalid user ID or password",
)
WATCH_DENIED = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
# Fresh connections per check: enough that both serving processes answer some of them.
SPREAD = 8

PASSWORDS = {"root": "root-pass-1", "alice": "alice-pass-1", "bob": "bob-pass-1"}
READ, WRITE, READWRITE = 0, 1, 2


@dataclass
class Member:
    process: WardProcess

    @property
    def endpoint(self) -> str:
        return self.process.endpoint

    def token(self, user: str, password: str | None = None) -> str:
        return authenticate(self.endpoint, user, password or PASSWORDS[user])

    def client(self, user: str | None = None) -> Client:
        return Client(self.endpoint, self.token(user) if user else "")

    def root(self) -> Client:
        return self.client("root")


def grant(c: Client, role: str, perm: int, key: bytes, end: bytes = b"") -> None:
    c.call(
        c.auth.RoleGrantPermission,
        rpc_pb2.AuthRoleGrantPermissionRequest(
            name=role, perm=auth_pb2.Permission(permType=perm, key=key, range_end=end)
        ),
    )


def add_user(c: Client, name: str, password: str, *roles: str) -> None:
    c.call(c.auth.UserAdd, rpc_pb2.AuthUserAddRequest(name=name, password=password))
    for role in roles:
        c.call(c.auth.UserGrantRole, rpc_pb2.AuthUserGrantRoleRequest(user=name, role=role))


def add_role(c: Client, name: str) -> None:
    c.call(c.auth.RoleAdd, rpc_pb2.AuthRoleAddRequest(name=name))


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Member]:
    tmp: Path = tmp_path_factory.mktemp("auth-security")
    # Debug logging: no secret may appear at any level (SECURITY 12).
    process = start_ward(tmp, "--bcrypt-cost", "4", "--log-level", "debug")
    try:
        with Client(process.endpoint) as c:
            add_user(c, "root", PASSWORDS["root"])
            add_role(c, "root")
            c.call(c.auth.UserGrantRole, rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
            add_role(c, "ra")
            grant(c, "ra", READWRITE, b"a/", b"a0")
            grant(c, "ra", READ, b"r/one")
            grant(c, "ra", WRITE, b"w/", b"w0")
            add_user(c, "alice", PASSWORDS["alice"], "ra")
            add_role(c, "rb")
            grant(c, "rb", READWRITE, b"b/", b"b0")
            add_user(c, "bob", PASSWORDS["bob"], "rb")
            c.call(c.kv.Put, rpc_pb2.PutRequest(key=b"secret", value=b"s3cr3t"))
            c.call(c.kv.Put, rpc_pb2.PutRequest(key=b"r/one", value=b"1"))
            c.call(c.kv.Put, rpc_pb2.PutRequest(key=b"r/two", value=b"2"))
            c.call(c.auth.AuthEnable, rpc_pb2.AuthEnableRequest())
        yield Member(process)
    finally:
        process.stop()


# --- identity ---


def test_no_token_is_user_name_is_empty_and_a_bad_token_is_unauthenticated(
    member: Member,
) -> None:
    for _ in range(SPREAD):
        with Client(member.endpoint) as anon, Client(member.endpoint, "not-a-token") as forged:
            assert anon.refused(anon.kv.Range, rpc_pb2.RangeRequest(key=b"a/x")) == USER_EMPTY
            assert anon.refused(anon.kv.Put, rpc_pb2.PutRequest(key=b"a/x")) == USER_EMPTY
            assert forged.refused(forged.kv.Range, rpc_pb2.RangeRequest(key=b"a/x")) == (
                INVALID_TOKEN
            )


def test_a_token_issued_by_the_core_is_accepted_by_every_serving_process(member: Member) -> None:
    token = member.token("alice")
    for i in range(SPREAD):
        with Client(member.endpoint, token) as c:
            c.put(b"a/spread", str(i).encode())
            assert c.get(b"a/spread") == [b"a/spread"]


def test_tokens_are_jwts_naming_the_user_and_auth_revision(member: Member) -> None:
    token = member.token("alice")
    header, claims = (
        json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        for part in token.split(".")[:2]
    )
    assert header["alg"] == "ES256" and header["kid"]
    assert claims["username"] == "alice"
    with member.root() as root:
        status = root.call(root.auth.AuthStatus, rpc_pb2.AuthStatusRequest())
    assert claims["revision"] == status.authRevision  # type: ignore[attr-defined]
    assert status.enabled  # type: ignore[attr-defined]


def test_security13_tokens_are_not_predictable(member: Member) -> None:
    tokens = {member.token("alice") for _ in range(5)}
    assert len(tokens) == 5


# --- KV, at every path ---


def test_range_put_delete_follow_the_grants(member: Member) -> None:
    for _ in range(SPREAD):
        with member.client("alice") as c:
            c.put(b"a/k")
            assert c.get(b"a/", b"a0") == [b"a/k"] or b"a/k" in c.get(b"a/", b"a0")
            assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"secret")) == DENIED
            assert c.refused(c.kv.Put, rpc_pb2.PutRequest(key=b"secret")) == DENIED
            assert c.refused(c.kv.Put, rpc_pb2.PutRequest(key=b"r/one")) == DENIED
            assert c.refused(c.kv.DeleteRange, rpc_pb2.DeleteRangeRequest(key=b"b/x")) == DENIED
            c.call(c.kv.DeleteRange, rpc_pb2.DeleteRangeRequest(key=b"a/k"))


def test_security3_range_ends_must_match_the_grant_exactly(member: Member) -> None:
    with member.client("alice") as c:
        # A grant on the single key r/one does not cover a range or from-key read from it.
        assert c.get(b"r/one") == [b"r/one"]
        assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"r/one", range_end=b"\0")) == (
            DENIED
        )
        assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"r/one", range_end=b"r/onf")) == (
            DENIED
        )
        # The prefix grant [a/, a0): its own prefix end is covered, one past it is not.
        c.get(b"a/", b"a0")
        assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"a/", range_end=b"a0\0")) == DENIED
        assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"a", range_end=b"a0")) == DENIED
        assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"a/", range_end=b"\0")) == DENIED


def test_security1_every_op_of_a_nested_txn_is_checked(member: Member) -> None:
    secret_read = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"secret"))
    own_read = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a/x"))
    nested_read = rpc_pb2.TxnRequest(
        success=[own_read, rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=[secret_read]))]
    )
    secret_put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"secret", value=b"x"))
    deep_put = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(
                request_txn=rpc_pb2.TxnRequest(
                    failure=[
                        rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=[secret_put]))
                    ]
                )
            )
        ]
    )
    for _ in range(SPREAD):
        with member.client("alice") as c:
            # Read-only: answered by the process that received it.
            assert c.refused(c.kv.Txn, nested_read) == DENIED
            # With a write: checked where it applies.
            assert c.refused(c.kv.Txn, deep_put) == DENIED
    with member.root() as root:
        assert root.get(b"secret") == [b"secret"]
        value = root.call(root.kv.Range, rpc_pb2.RangeRequest(key=b"secret")).kvs[0].value  # type: ignore[attr-defined]
        assert value == b"s3cr3t"


def test_security2_prev_kv_needs_read_and_attaching_a_lease_needs_write_on_its_keys(
    member: Member,
) -> None:
    with member.client("alice") as c:
        c.put(b"w/only")
        assert c.refused(c.kv.Put, rpc_pb2.PutRequest(key=b"w/only", prev_kv=True)) == DENIED
        in_txn = rpc_pb2.TxnRequest(
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"w/only", prev_kv=True))]
        )
        assert c.refused(c.kv.Txn, in_txn) == DENIED
        deleting = rpc_pb2.DeleteRangeRequest(key=b"w/only", prev_kv=True)
        assert c.refused(c.kv.DeleteRange, deleting) == DENIED
    with member.root() as root:
        lease = root.call(root.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=60)).ID  # type: ignore[attr-defined]
        root.put(b"secret/leased", lease=lease)
    with member.client("alice") as c:
        assert c.refused(c.kv.Put, rpc_pb2.PutRequest(key=b"a/l", lease=lease)) == DENIED
        attach = rpc_pb2.TxnRequest(
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/l", lease=lease))]
        )
        assert c.refused(c.kv.Txn, attach) == DENIED


def test_compaction_needs_write_on_every_key(member: Member) -> None:
    with member.client("alice") as c:
        assert c.refused(c.kv.Compact, rpc_pb2.CompactionRequest(revision=1)) == DENIED
    with member.root() as root:
        root.call(root.kv.Compact, rpc_pb2.CompactionRequest(revision=1))


def test_security8_the_same_request_bytes_get_each_callers_answer(member: Member) -> None:
    request = rpc_pb2.RangeRequest(key=b"a/shared")
    alice_md = (("token", member.token("alice")),)
    bob_md = (("token", member.token("bob")),)
    with member.root() as root:
        root.put(b"a/shared", b"alice's")
        # One connection, the same bytes, alternating callers: nothing answered for one caller
        # is served to the other.
        for _ in range(3):
            got = root.kv.Range(request, metadata=alice_md, timeout=10)
            assert got.kvs[0].value == b"alice's"
            with pytest.raises(grpc.RpcError) as e:
                root.kv.Range(request, metadata=bob_md, timeout=10)
            assert status_of(e.value) == DENIED


# --- stale permissions ---


def test_security10_a_token_older_than_an_auth_change_is_refused(member: Member) -> None:
    token = member.token("alice")
    with member.root() as root:
        add_role(root, f"unrelated-{time.monotonic_ns()}")
    for _ in range(SPREAD):
        with Client(member.endpoint, token) as c:
            assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"a/x")) == OLD_REVISION
            assert c.refused(c.kv.Put, rpc_pb2.PutRequest(key=b"a/x")) == OLD_REVISION
    with member.client("alice") as c:
        c.get(b"a/x")


def test_a_revoked_permission_is_enforced_by_every_process_once_acknowledged(
    member: Member,
) -> None:
    with member.root() as root:
        add_role(root, "rc")
        grant(root, "rc", READWRITE, b"c/", b"c0")
        add_user(root, "carol", "carol-pass-1", "rc")
    with Client(member.endpoint, member.token("carol", "carol-pass-1")) as c:
        c.put(b"c/x")
    with member.root() as root:
        root.call(
            root.auth.RoleRevokePermission,
            rpc_pb2.AuthRoleRevokePermissionRequest(role="rc", key=b"c/", range_end=b"c0"),
        )
    # Acknowledged: every process refuses from now on, even with a token issued afterwards.
    token = member.token("carol", "carol-pass-1")
    for _ in range(SPREAD):
        with Client(member.endpoint, token) as c:
            assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"c/x")) == DENIED
            assert c.refused(c.kv.Put, rpc_pb2.PutRequest(key=b"c/x")) == DENIED


# --- watch ---


def test_security4_a_denied_watch_does_not_stop_the_stream(member: Member) -> None:
    for _ in range(SPREAD // 2):
        with member.client("alice") as c:
            stream = c.watch()
            ok = stream.create(b"a/w")
            assert ok.created and not ok.canceled
            denied = stream.create(b"secret", watch_id=42)
            assert (denied.watch_id, denied.created, denied.canceled) == (-1, True, True)
            assert denied.cancel_reason == WATCH_DENIED
            # The stream still serves its other watch, and still takes new ones.
            c.put(b"a/w", b"after")
            event = stream.next()
            assert event.watch_id == ok.watch_id and event.events[0].kv.value == b"after"
            again = stream.create(b"a/w2")
            assert again.created and not again.canceled
            stream.close()


def test_security3_a_from_key_watch_needs_a_from_key_grant(member: Member) -> None:
    with member.client("alice") as c:
        stream = c.watch()
        single = stream.create(b"r/one")
        assert not single.canceled
        from_key = stream.create(b"r/one", b"\0")
        assert from_key.canceled and from_key.cancel_reason == WATCH_DENIED
        ranged = stream.create(b"a/", b"a0\0")
        assert ranged.canceled
        everything = stream.create(b"", b"\0")
        assert everything.canceled
        stream.close()


def test_a_watch_whose_permission_is_revoked_is_canceled(member: Member) -> None:
    with member.root() as root:
        add_role(root, "rd")
        grant(root, "rd", READWRITE, b"d/", b"d0")
        add_user(root, "dave", "dave-pass-1", "rd")
    with Client(member.endpoint, member.token("dave", "dave-pass-1")) as c:
        stream = c.watch()
        created = stream.create(b"d/", b"d0")
        c.put(b"d/1", b"before")
        assert stream.next().events[0].kv.value == b"before"
        with member.root() as root:
            root.call(
                root.auth.UserRevokeRole,
                rpc_pb2.AuthUserRevokeRoleRequest(name="dave", role="rd"),
            )
        with member.root() as root:  # a token of the new auth revision
            root.put(b"d/2", b"after the revocation")
        canceled = stream.next()
        assert (canceled.watch_id, canceled.canceled) == (created.watch_id, True)
        assert canceled.cancel_reason == WATCH_DENIED
        assert not canceled.events
        stream.close()


# --- leases ---


def test_security5_lease_time_to_live_lists_only_keys_the_caller_may_read(member: Member) -> None:
    with member.client("alice") as c:
        lease = c.call(c.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=60)).ID  # type: ignore[attr-defined]
        c.put(b"a/ttl", lease=lease)
    with member.root() as root:
        # Root attaches a key alice cannot read (attaching needs write on a/ttl: root has it).
        root.put(b"secret/ttl", lease=lease)
        ttl = root.call(
            root.lease.LeaseTimeToLive, rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True)
        )
        assert sorted(ttl.keys) == [b"a/ttl", b"secret/ttl"]  # type: ignore[attr-defined]
    with member.client("alice") as c:
        ttl = c.call(c.lease.LeaseTimeToLive, rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True))
        assert list(ttl.keys) == [b"a/ttl"]  # type: ignore[attr-defined]
        # SECURITY 6: revoking would delete secret/ttl, which alice may not write.
        assert c.refused(c.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=lease)) == DENIED
    with member.root() as root:
        root.call(root.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=lease))


def test_security6_lease_calls_need_a_user_and_keep_alive_checks_the_token(
    member: Member,
) -> None:
    with member.client("alice") as c:
        lease = c.call(c.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=60)).ID  # type: ignore[attr-defined]
        responses = list(
            c.lease.LeaseKeepAlive(
                iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease)]), metadata=c.metadata, timeout=10
            )
        )
        assert responses[0].TTL > 0
        # Every lease of every user: admins only.
        assert c.refused(c.lease.LeaseLeases, rpc_pb2.LeaseLeasesRequest()) == DENIED
    for _ in range(SPREAD // 2):
        with Client(member.endpoint) as anon, Client(member.endpoint, "forged") as forged:
            assert anon.refused(anon.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=60)) == (
                USER_EMPTY
            )
            assert anon.refused(anon.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=lease)) == (
                USER_EMPTY
            )
            ttl = rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True)
            assert anon.refused(anon.lease.LeaseTimeToLive, ttl) == USER_EMPTY
            assert anon.refused(anon.lease.LeaseLeases, rpc_pb2.LeaseLeasesRequest()) == USER_EMPTY
            for who, expected in ((anon, USER_EMPTY), (forged, INVALID_TOKEN)):
                stream = who.lease.LeaseKeepAlive(
                    iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease)]),
                    metadata=who.metadata,
                    timeout=10,
                )
                with pytest.raises(grpc.RpcError) as e:
                    list(stream)
                assert status_of(e.value) == expected
    with member.root() as root:
        leases = root.call(root.lease.LeaseLeases, rpc_pb2.LeaseLeasesRequest())
        assert lease in [s.ID for s in leases.leases]  # type: ignore[attr-defined]


# --- maintenance and cluster ---


def test_security6_member_list_and_alarms_need_a_user_maintenance_needs_root(
    member: Member,
) -> None:
    """The decision per call: Status open (health checks), MemberList and alarm listing for any
    known user (clients refresh endpoints with them), the rest for root; etcd's Maintenance
    answers its own auth errors unmapped (status Unknown, Go's text)."""
    unknown = grpc.StatusCode.UNKNOWN
    alarm_get = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
    disarm = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE)
    for _ in range(SPREAD // 2):
        with Client(member.endpoint) as anon, member.client("alice") as alice:
            anon.call(anon.maintenance.Status, rpc_pb2.StatusRequest())
            assert anon.refused(anon.cluster.MemberList, rpc_pb2.MemberListRequest()) == (
                USER_EMPTY
            )
            alice.call(alice.cluster.MemberList, rpc_pb2.MemberListRequest())
            assert anon.refused(anon.maintenance.Alarm, alarm_get) == (
                unknown,
                "auth: user name is empty",
            )
            alice.call(alice.maintenance.Alarm, alarm_get)
            for method, req in (
                (alice.maintenance.Alarm, disarm),
                (alice.maintenance.Hash, rpc_pb2.HashRequest()),
                (alice.maintenance.HashKV, rpc_pb2.HashKVRequest()),
                (alice.maintenance.Defragment, rpc_pb2.DefragmentRequest()),
                (alice.maintenance.MoveLeader, rpc_pb2.MoveLeaderRequest(targetID=1)),
            ):
                assert alice.refused(method, req) == (unknown, "auth: permission denied")
            snapshot = alice.maintenance.Snapshot(
                rpc_pb2.SnapshotRequest(), metadata=alice.metadata, timeout=10
            )
            with pytest.raises(grpc.RpcError) as e:
                list(snapshot)
            assert status_of(e.value) == (unknown, "auth: permission denied")
            member_add = rpc_pb2.MemberAddRequest(peerURLs=["http://127.0.0.1:1"])
            assert alice.refused(alice.cluster.MemberAdd, member_add) == DENIED
    with member.root() as root:
        root.call(root.maintenance.Hash, rpc_pb2.HashRequest())


def test_security7_checks_hold_while_the_space_alarm_is_raised(member: Member) -> None:
    with member.root() as root:
        status = root.call(root.maintenance.Status, rpc_pb2.StatusRequest())
        nospace = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE,
            memberID=status.header.member_id,  # type: ignore[attr-defined]
            alarm=rpc_pb2.NOSPACE,
        )
        root.call(root.maintenance.Alarm, nospace)
    try:
        for _ in range(SPREAD // 2):
            with member.client("alice") as c:
                assert c.refused(c.kv.DeleteRange, rpc_pb2.DeleteRangeRequest(key=b"secret")) == (
                    DENIED
                )
                assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"secret")) == DENIED
                assert c.refused(c.auth.AuthDisable, rpc_pb2.AuthDisableRequest()) == DENIED
                assert c.refused(c.auth.RoleAdd, rpc_pb2.AuthRoleAddRequest(name="x")) == DENIED
    finally:
        with member.root() as root:
            nospace.action = rpc_pb2.AlarmRequest.DEACTIVATE
            root.call(root.maintenance.Alarm, nospace)


# --- lock and election run as the caller ---


def test_lock_and_election_run_as_their_caller(member: Member) -> None:
    with member.client("alice") as c:
        lease = c.call(c.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=60)).ID  # type: ignore[attr-defined]
        got = c.call(c.lock.Lock, v3lock_pb2.LockRequest(name=b"a/lock", lease=lease))
        assert got.key.startswith(b"a/lock/")  # type: ignore[attr-defined]
        refused = c.refused(c.lock.Lock, v3lock_pb2.LockRequest(name=b"secret-lock", lease=lease))
        assert refused[1] == "etcdserver: permission denied"
        c.call(c.lock.Unlock, v3lock_pb2.UnlockRequest(key=got.key))  # type: ignore[attr-defined]
        election = v3election_pb2_grpc.ElectionStub(c.channel)
        campaign = v3election_pb2.CampaignRequest(name=b"a/election", lease=lease, value=b"me")
        won = c.call(election.Campaign, campaign)
        assert won.leader.key.startswith(b"a/election/")  # type: ignore[attr-defined]
        leader = c.call(election.Leader, v3election_pb2.LeaderRequest(name=b"a/election"))
        assert leader.kv.value == b"me"  # type: ignore[attr-defined]
        foreign = v3election_pb2.CampaignRequest(name=b"secret-election", lease=lease, value=b"x")
        assert c.refused(election.Campaign, foreign)[1] == "etcdserver: permission denied"
        observe = v3election_pb2.LeaderRequest(name=b"secret-election")
        assert c.refused(election.Leader, observe)[1] == "etcdserver: permission denied"


# --- secrets ---


def test_security14_short_passwords_are_refused(member: Member) -> None:
    too_short = (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ward: password is too short (minimum 8 characters)",
    )
    with member.root() as root:
        req = rpc_pb2.AuthUserAddRequest(name="shorty", password="1234567")
        assert root.refused(root.auth.UserAdd, req) == too_short
        change = rpc_pb2.AuthUserChangePasswordRequest(name="alice", password="short")
        assert root.refused(root.auth.UserChangePassword, change) == too_short
        hashed = rpc_pb2.AuthUserAddRequest(name="hashed", hashedPassword="$2a$10$abcdefghij")
        assert root.refused(root.auth.UserAdd, hashed)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_a_user_may_change_their_own_password_but_not_anothers(member: Member) -> None:
    with member.root() as root:
        add_role(root, "re")
        add_user(root, "erin", "erin-pass-1", "re")
    with Client(member.endpoint, member.token("erin", "erin-pass-1")) as erin:
        erin.call(
            erin.auth.UserChangePassword,
            rpc_pb2.AuthUserChangePasswordRequest(name="erin", password="erin-pass-2"),
        )
        other = rpc_pb2.AuthUserChangePasswordRequest(name="bob", password="bob-pass-9")
        assert erin.refused(erin.auth.UserChangePassword, other) == DENIED
    member.token("erin", "erin-pass-2")
    with pytest.raises(grpc.RpcError) as e:
        member.token("erin", "erin-pass-1")
    assert status_of(e.value) == AUTH_FAILED


def test_failed_logins_are_rate_limited_per_user_without_blocking_others(member: Member) -> None:
    with member.root() as root:
        add_user(root, "victim", "victim-pass-1")
    refusals = []
    for _ in range(8):
        with pytest.raises(grpc.RpcError) as e:
            member.token("victim", "guess-guess")
        refusals.append(status_of(e.value))
    assert refusals[0] == AUTH_FAILED
    assert refusals[-1] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests")
    # Even the right password waits out the limit...
    with pytest.raises(grpc.RpcError) as e:
        member.token("victim", "victim-pass-1")
    assert status_of(e.value)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    # ...while other users (from the same address) log in as usual.
    member.token("bob")


def test_security11_12_no_password_or_token_in_the_log_or_the_database(member: Member) -> None:
    tokens = [member.token(user) for user in PASSWORDS]
    with member.client("alice") as c:
        c.put(b"a/logged")
    etcdctl(member.endpoint, f"--user=alice:{PASSWORDS['alice']}", "get", "a/logged")
    etcdctl(member.endpoint, "--user=alice:wrong-password-1", "get", "a/logged")
    secrets = [*PASSWORDS.values(), "wrong-password-1", "erin-pass-2", "victim-pass-1", *tokens]
    log = member.process.log_text()
    assert "authentication failed" in log  # the failure is logged, without what was tried
    for secret in secrets:
        assert secret not in log
    for path in member.process.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, path
