"""Auth on the apply path, on a real lmdb environment: the tables, and every entry's check.

Entries are applied as the driver applies them (one child transaction each), with the user and
auth revision a receiving member would put in their header.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from auth.model import TokenInfo
from server.access import request_header
from server.apply import Applier, HeaderInfo
from server.auth_apply import AuthApplier
from server.authsetup import AuthOptions, core_access
from server.errors import EtcdError
from server.state import (
    ENTRY_ALARM,
    ENTRY_AUTH_ENABLE,
    ENTRY_AUTH_ROLE_ADD,
    ENTRY_AUTH_ROLE_GRANT_PERMISSION,
    ENTRY_AUTH_ROLE_REVOKE_PERMISSION,
    ENTRY_AUTH_USER_ADD,
    ENTRY_AUTH_USER_CHANGE_PASSWORD,
    ENTRY_AUTH_USER_GRANT_ROLE,
    ENTRY_COMPACTION,
    ENTRY_DELETE_RANGE,
    ENTRY_LEASE_GRANT,
    ENTRY_LEASE_REVOKE,
    ENTRY_PUT,
    ENTRY_TXN,
)
from server.storage.authdb import LmdbAuthBackend
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore
from server.wire import field_message, field_varint
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2

DENIED = (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
OLD_REVISION = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")
USER_EMPTY = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty")
ROOT_PW = "root-password-1"
ALICE_PW = "alice-password-1"
READ, WRITE, READWRITE = 0, 1, 2


class Member:
    """One member's storage, applier and auth, applying entries as the driver does."""

    def __init__(self, path: Path) -> None:
        self.backend = Backend(path / "db", BackendOptions(map_size=64 << 20, sync=False))
        self.kv = KVStore(self.backend)
        self.header = HeaderInfo(cluster_id=1, member_id=2)
        self.applier = Applier(self.backend, self.kv, self.header)
        self.access, _ = core_access(
            self.backend, self.applier, AuthOptions(bcrypt_cost=4), key_dir=path
        )
        AuthApplier(self.access, self.kv, self.header).install(self.applier)
        self.next_id = 100
        self.log: list[bytes] = []

    def apply(self, field: int, msg: object, *, user: str = "", revision: int = 0) -> bytes:
        self.next_id += 1
        info = TokenInfo(user, revision) if user else None
        data = field_message(
            1, field_varint(1, self.next_id) + request_header(info)
        ) + field_message(field, msg.SerializeToString())  # type: ignore[attr-defined]
        self.log.append(data)
        with self.backend.write() as txn:
            child = self.backend.env.begin(write=True, parent=txn)
            res = self.applier.apply(child, data)
            if res.error is not None:
                child.abort()
                raise res.error
            child.commit()
        return res.response or b""

    def as_root(self, field: int, msg: object) -> bytes:
        return self.apply(field, msg, user="root", revision=self.revision())

    def revision(self) -> int:
        return self.access.state()[1]

    def add_user(self, name: str, password: str, **who: object) -> None:
        cmd = self.access.store.propose_user_add(name, password)
        entry = peer_pb2.AuthUserAdd(name=cmd.name, password_hash=cmd.password_hash or "")
        self.apply(ENTRY_AUTH_USER_ADD, entry, **who)  # type: ignore[arg-type]

    def grant(self, role: str, perm: int, key: bytes, end: bytes = b"") -> None:
        req = rpc_pb2.AuthRoleGrantPermissionRequest(
            name=role, perm=auth_pb2.Permission(permType=perm, key=key, range_end=end)
        )
        self.as_root(ENTRY_AUTH_ROLE_GRANT_PERMISSION, req)

    def enable_with_alice(self) -> None:
        """root (root role), alice (role `r`: readwrite on `a`), auth on."""
        self.add_user("root", ROOT_PW)
        self.apply(
            ENTRY_AUTH_USER_GRANT_ROLE, rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root")
        )
        self.add_user("alice", ALICE_PW)
        self.apply(ENTRY_AUTH_ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name="r"))
        self.apply(
            ENTRY_AUTH_USER_GRANT_ROLE, rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="r")
        )
        self.apply(ENTRY_AUTH_ENABLE, rpc_pb2.AuthEnableRequest())
        self.grant("r", READWRITE, b"a")

    def as_alice(self, field: int, msg: object) -> bytes:
        return self.apply(field, msg, user="alice", revision=self.revision())

    def close(self) -> None:
        self.backend.close()


@pytest.fixture
def member(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = Member(tmp_path)
    yield m
    m.close()


def refused(excinfo: pytest.ExceptionInfo[EtcdError]) -> tuple[grpc.StatusCode, str]:
    return excinfo.value.code, excinfo.value.message


def put(key: bytes, **kw: object) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=key, value=b"v", **kw)  # type: ignore[arg-type]


def op_put(key: bytes, **kw: object) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=put(key, **kw))


# --- the tables ---


def test_auth_tables_live_in_lmdb_and_every_change_bumps_the_revision(tmp_path: Path) -> None:
    m = Member(tmp_path)
    m.enable_with_alice()
    users = [u.name for u in m.access.db.list_users()]
    assert users == ["alice", "root"]
    # Two users, a role, two role grants and a permission; enabling is no change (as etcd).
    assert m.access.state() == (True, 6)
    m.close()
    # A new process (a restart) reads the same rules from the file, with nothing cached.
    db = LmdbAuthBackend(Backend(tmp_path / "db", BackendOptions(map_size=64 << 20)))
    assert db.get_user("alice").roles == ("r",)  # type: ignore[union-attr]
    assert db.get_role("r").permissions[0].key == b"a"  # type: ignore[union-attr]
    assert db.state() == (True, 6)


def test_auth_tables_are_written_only_inside_an_apply_transaction(member: Member) -> None:
    from auth.model import User

    with pytest.raises(RuntimeError):
        member.access.db.put_user(User("mallory"))


# --- admin rules at apply ---


def test_auth_changes_need_an_admin_at_apply(member: Member) -> None:
    member.enable_with_alice()
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_AUTH_ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name="x"))
    assert refused(e) == DENIED
    with pytest.raises(EtcdError) as e:
        member.apply(ENTRY_AUTH_ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name="x"))
    assert refused(e) == USER_EMPTY
    member.as_root(ENTRY_AUTH_ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name="x"))


def test_a_user_may_change_their_own_password_but_not_anothers(member: Member) -> None:
    member.enable_with_alice()
    new = member.access.store.propose_user_change_password("alice", "alice-new-pass")
    entry = peer_pb2.AuthUserChangePassword(name="alice", password_hash=new.password_hash)
    member.as_alice(ENTRY_AUTH_USER_CHANGE_PASSWORD, entry)
    member.access.store.authenticate("alice", "alice-new-pass")
    other = peer_pb2.AuthUserChangePassword(name="root", password_hash=new.password_hash)
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_AUTH_USER_CHANGE_PASSWORD, other)
    assert refused(e) == DENIED


# --- key permissions at apply ---


def test_put_needs_write_permission(member: Member) -> None:
    member.enable_with_alice()
    member.as_alice(ENTRY_PUT, put(b"a"))
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_PUT, put(b"b"))
    assert refused(e) == DENIED
    with pytest.raises(EtcdError) as e:
        member.apply(ENTRY_PUT, put(b"a"))
    assert refused(e) == USER_EMPTY


def test_security10_a_write_checked_at_an_old_auth_revision_is_refused(member: Member) -> None:
    member.enable_with_alice()
    before = member.revision()
    member.as_root(ENTRY_AUTH_ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name="unrelated"))
    with pytest.raises(EtcdError) as e:
        member.apply(ENTRY_PUT, put(b"a"), user="alice", revision=before)
    assert refused(e) == OLD_REVISION


def test_a_revoked_permission_is_enforced_from_the_entry_that_revoked_it(member: Member) -> None:
    member.enable_with_alice()
    member.as_alice(ENTRY_PUT, put(b"a"))
    member.as_root(
        ENTRY_AUTH_ROLE_REVOKE_PERMISSION,
        rpc_pb2.AuthRoleRevokePermissionRequest(role="r", key=b"a"),
    )
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_PUT, put(b"a"))
    assert refused(e) == DENIED


def test_security1_every_op_of_a_nested_txn_is_checked_in_both_branches(member: Member) -> None:
    member.enable_with_alice()
    inner = rpc_pb2.TxnRequest(failure=[op_put(b"secret")])  # never runs: no compare fails
    outer = rpc_pb2.TxnRequest(
        success=[op_put(b"a"), rpc_pb2.RequestOp(request_txn=inner)],
    )
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_TXN, outer)
    assert refused(e) == DENIED
    deeper = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(
                request_txn=rpc_pb2.TxnRequest(
                    success=[
                        rpc_pb2.RequestOp(
                            request_txn=rpc_pb2.TxnRequest(success=[op_put(b"secret")])
                        )
                    ]
                )
            )
        ]
    )
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_TXN, deeper)
    assert refused(e) == DENIED
    compare_secret = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"secret", target=rpc_pb2.Compare.VERSION, version=0)],
        success=[op_put(b"a")],
    )
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_TXN, compare_secret)
    assert refused(e) == DENIED
    member.as_alice(ENTRY_TXN, rpc_pb2.TxnRequest(success=[op_put(b"a")]))


def test_security2_prev_kv_in_a_txn_needs_read_permission(member: Member) -> None:
    member.enable_with_alice()
    member.as_root(ENTRY_AUTH_ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name="w"))
    member.as_root(
        ENTRY_AUTH_USER_GRANT_ROLE, rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="w")
    )
    member.grant("w", WRITE, b"wo")
    member.as_alice(ENTRY_TXN, rpc_pb2.TxnRequest(success=[op_put(b"wo")]))
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_TXN, rpc_pb2.TxnRequest(success=[op_put(b"wo", prev_kv=True)]))
    assert refused(e) == DENIED
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_PUT, put(b"wo", prev_kv=True))
    assert refused(e) == DENIED


def test_security2_attaching_a_lease_in_a_txn_needs_write_on_its_keys(member: Member) -> None:
    member.enable_with_alice()
    lease = rpc_pb2.LeaseGrantResponse.FromString(
        member.as_root(ENTRY_LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=60))
    ).ID
    member.as_root(ENTRY_PUT, put(b"secret", lease=lease))
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_TXN, rpc_pb2.TxnRequest(success=[op_put(b"a", lease=lease)]))
    assert refused(e) == DENIED
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_PUT, put(b"a", lease=lease))
    assert refused(e) == DENIED


def test_security6_lease_revoke_needs_write_on_every_attached_key(member: Member) -> None:
    member.enable_with_alice()
    lease = rpc_pb2.LeaseGrantResponse.FromString(
        member.as_alice(ENTRY_LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=60))
    ).ID
    member.as_alice(ENTRY_PUT, put(b"a", lease=lease))
    member.as_root(ENTRY_PUT, put(b"secret", lease=lease))
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_LEASE_REVOKE, rpc_pb2.LeaseRevokeRequest(ID=lease))
    assert refused(e) == DENIED
    with pytest.raises(EtcdError) as e:
        member.apply(ENTRY_LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=60))
    assert refused(e) == USER_EMPTY
    member.as_root(ENTRY_LEASE_REVOKE, rpc_pb2.LeaseRevokeRequest(ID=lease))


def test_compaction_needs_write_on_every_key(member: Member) -> None:
    member.enable_with_alice()
    member.as_alice(ENTRY_PUT, put(b"a"))
    with pytest.raises(EtcdError) as e:
        member.as_alice(ENTRY_COMPACTION, rpc_pb2.CompactionRequest(revision=1))
    assert refused(e) == DENIED
    member.as_root(ENTRY_COMPACTION, rpc_pb2.CompactionRequest(revision=1))


def test_security7_checks_hold_while_the_space_alarm_is_raised(member: Member) -> None:
    member.enable_with_alice()
    member.as_root(ENTRY_PUT, put(b"secret"))
    alarm = rpc_pb2.AlarmRequest(
        action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=2, alarm=rpc_pb2.NOSPACE
    )
    member.apply(ENTRY_ALARM, alarm)
    for field, req in (
        (ENTRY_DELETE_RANGE, rpc_pb2.DeleteRangeRequest(key=b"secret")),
        (ENTRY_AUTH_ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name="x")),
    ):
        with pytest.raises(EtcdError) as e:
            member.as_alice(field, req)
        assert refused(e) == DENIED


def test_security11_the_log_carries_the_hash_never_the_password(member: Member) -> None:
    member.enable_with_alice()
    log = b"".join(member.log)
    for password in (ROOT_PW, ALICE_PW):
        assert password.encode() not in log
    assert b"$argon2id$" in log
    member.close()
    data = (Path(member.backend.path) / "data.mdb").read_bytes()
    assert ROOT_PW.encode() not in data and ALICE_PW.encode() not in data


def test_security9_a_cache_never_outlives_the_revision_it_was_built_at(member: Member) -> None:
    member.enable_with_alice()
    # A second Access over the same tables (a worker's: its own caches, lmdb's shared file):
    # its cache fills, then the core applies a revocation; its next check sees it.
    worker, _ = core_access(
        member.backend,
        Applier(member.backend, member.kv, member.header),
        AuthOptions(bcrypt_cost=4),
        key_dir=member.backend.path.parent,
    )

    def worker_may_read() -> bool:
        info = TokenInfo("alice", worker.state()[1])
        with member.backend.read() as txn, worker.checker(txn, info) as chk:
            return chk.can_read(b"a")

    assert worker_may_read()
    member.as_root(
        ENTRY_AUTH_ROLE_REVOKE_PERMISSION,
        rpc_pb2.AuthRoleRevokePermissionRequest(role="r", key=b"a"),
    )
    assert not worker_may_read()
