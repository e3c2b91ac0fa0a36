"""Who the audit log names, what is counted as an auth decision, and tenant names where auth
changes apply, on a real lmdb member applying entries as the driver does (no processes).

A request's checks find their call through `server.api.rpc.CURRENT_CALL` (set by the RPC layer);
the apply path, which runs on every member without the client, counts but writes no line; the
member that received a write refused where it applied writes it (`server.denials`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from auth.model import TokenInfo
from auth.policy import parse
from server.access import request_header
from server.api.rpc import CallInfo, serving
from server.audit import AuditLog
from server.auth_metrics import DECISIONS, AuthDecisions
from server.denials import AuditedProposer
from server.errors import EtcdError
from server.metrics import Registry
from server.state import ENTRY_AUTH_ROLE_ADD, ENTRY_AUTH_USER_ADD, ENTRY_AUTH_USER_DELETE, ENTRY_PUT
from server.wire import field_message, field_varint
from tests.unit.test_auth_apply import ALICE_PW, Member, put
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2

ENTRY_POLICY_APPLY = peer_pb2.Entry.DESCRIPTOR.fields_by_name["policy_apply"].number
CALL = CallInfo(peer="ipv4:10.1.2.3:4567", common_name="alice-cn", method="/etcdserverpb.KV/Put")


@pytest.fixture
def member(tmp_path: Path) -> Iterator[Member]:
    m = Member(tmp_path)
    m.access.audit = AuditLog(tmp_path / "audit.log", b"k" * 32)
    m.enable_with_alice()
    yield m
    m.close()


def lines(m: Member, event: str) -> list[dict[str, object]]:
    path = Path(str(m.access.audit.path))  # type: ignore[union-attr]
    out = [json.loads(x) for x in path.read_text().splitlines()]
    return [x for x in out if x["event"] == event]


def counts() -> dict[tuple[str, str], int]:
    return dict(DECISIONS.counts)


def delta(before: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    now = counts()
    return {k: n - before.get(k, 0) for k, n in now.items() if n != before.get(k, 0)}


def test_a_refused_read_names_the_caller_its_certificate_and_address(member: Member) -> None:
    async def check() -> None:
        serving(CallInfo(peer=CALL.peer, common_name="alice-cn", method="/etcdserverpb.KV/Range"))
        with (
            member.backend.read() as txn,
            member.access.checker(txn, TokenInfo("alice", member.revision())) as chk,
        ):
            chk.read(b"a")
            with pytest.raises(EtcdError):
                chk.read(b"b", b"c")
            assert not chk.can_read(b"z")  # a probe: no decision, no line

    before = counts()
    asyncio.run(check())
    assert delta(before) == {("read", "allowed"): 1, ("read", "denied"): 1}
    (line,) = lines(member, "denied")
    assert {k: line[k] for k in ("user", "cn", "client", "method", "action", "key")} == {
        "user": "alice",
        "cn": "alice-cn",
        "client": "10.1.2.3:4567",
        "method": "/etcdserverpb.KV/Range",
        "action": "read",
        "key": "b",
    }
    assert line["range_end"] == "c" and line["result"] == "etcdserver: permission denied"
    assert line["revision"] == member.revision()


def test_where_writes_apply_refusals_are_counted_and_the_receiver_writes_the_line(
    member: Member,
) -> None:
    before = counts()
    with pytest.raises(EtcdError):
        member.as_alice(ENTRY_PUT, put(b"b"))
    assert delta(before) == {("write", "denied"): 1}
    assert lines(member, "denied") == []  # every member applies it; none knows the client

    class Applying:
        """The write path of the member that received the request: the real apply."""

        async def propose(self, field: int, request: bytes, *, header: bytes = b"") -> bytes:
            entry = peer_pb2.Entry.FromString(field_message(field, request))
            return member.apply(field, getattr(entry, entry.WhichOneof("request")), **who)

    who = {"user": "alice", "revision": member.revision()}
    proposer = AuditedProposer(Applying(), member.access, member.backend)
    header = request_header(TokenInfo("alice", member.revision()))

    async def send() -> None:
        serving(CALL)
        with pytest.raises(EtcdError):
            await proposer.propose(ENTRY_PUT, put(b"b/1").SerializeToString(), header=header)
        await proposer.propose(ENTRY_PUT, put(b"a").SerializeToString(), header=header)

    before = counts()
    asyncio.run(send())
    # Counted once, where it applied; the receiver's second look only writes the line.
    assert delta(before) == {("write", "denied"): 1, ("write", "allowed"): 1}
    (line,) = lines(member, "denied")
    assert (line["user"], line["cn"], line["client"]) == ("alice", "alice-cn", "10.1.2.3:4567")
    assert (line["method"], line["action"], line["key"]) == ("/etcdserverpb.KV/Put", "write", "b/1")


def test_auth_changes_are_written_by_every_member_with_who_sent_them(member: Member) -> None:
    header = request_header(
        TokenInfo("root", member.revision()),
        CallInfo(peer="ipv6:[::1]:9999", common_name="root-cn"),
    )
    data = field_message(1, field_varint(1, 7) + header) + field_message(
        ENTRY_AUTH_ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name="audited").SerializeToString()
    )
    with member.backend.write() as txn:
        assert member.applier.apply(txn, data).error is None
    (line,) = [x for x in lines(member, "auth_change") if "audited" in str(x["change"])]
    assert (line["user"], line["cn"], line["client"]) == ("root", "root-cn", "[::1]:9999")
    assert (line["kind"], line["revision"]) == ("auth_role_add", member.revision())
    assert ALICE_PW not in Path(str(member.access.audit.path)).read_text()  # type: ignore[union-attr]


def test_a_tenant_admins_names_resolve_in_its_tenant_where_changes_apply(member: Member) -> None:
    policy = parse(
        {
            "tenants": [{"name": "acme", "prefix": "/acme/", "admins": ["acme-admin"]}],
            "users": [{"name": "acme-admin", "tenant": "acme"}],
        }
    )
    member.as_root(ENTRY_POLICY_APPLY, peer_pb2.PolicyApply(document=policy.to_json()))
    admin = {"user": "acme-admin", "revision": member.revision()}

    def add(name: str, **who: object) -> None:
        cmd = member.access.store.propose_user_add(name, "some-pass-123")
        entry = peer_pb2.AuthUserAdd(name=cmd.name, password_hash=cmd.password_hash or "")
        member.apply(ENTRY_AUTH_USER_ADD, entry, **who)  # type: ignore[arg-type]

    # "alice" exists outside acme: acme's admin gets its own, named in acme's namespace.
    add("alice", **admin)
    assert member.access.db.user_tenant("alice@acme") == "acme"
    assert member.access.db.user_tenant("alice") is None
    # A global name (root, and alice before acme had its own) is answered as a missing one.
    for name in ("root", "nobody"):
        with pytest.raises(EtcdError) as e:
            member.apply(ENTRY_AUTH_USER_DELETE, rpc_pb2.AuthUserDeleteRequest(name=name), **admin)  # type: ignore[arg-type]
        assert e.value.message == "etcdserver: user name not found"
    # Its "alice" is its own: deleting it leaves the cluster's alice alone.
    member.apply(ENTRY_AUTH_USER_DELETE, rpc_pb2.AuthUserDeleteRequest(name="alice"), **admin)  # type: ignore[arg-type]
    assert member.access.db.get_user("alice@acme") is None
    assert member.access.db.get_user("alice") is not None
    assert member.access.db.get_user("root") is not None
    # Root cannot take a name of acme's namespace.
    with pytest.raises(EtcdError) as e:
        add("intruder@acme", user="root", revision=member.revision())
    assert "reserved for tenant 'acme'" in e.value.message


def test_decisions_render_summed_over_serving_processes() -> None:
    mine, worker = AuthDecisions(), AuthDecisions()
    mine.count("read", "allowed")
    worker.count("read", "allowed")
    worker.count("write", "denied")
    pushed = AuthDecisions.decode(worker.encode())
    assert AuthDecisions.decode(b"not json").counts == {}
    reg = Registry()
    mine.register(reg, lambda: [pushed])
    text = reg.render().decode()
    assert 'ward_auth_decisions_total{kind="read",result="allowed"} 2' in text
    assert 'ward_auth_decisions_total{kind="write",result="denied"} 1' in text
    assert "# TYPE ward_auth_decisions_total counter" in text
