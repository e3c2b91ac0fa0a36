"""The audit log says who was refused, on a real `ward` over mutual TLS (a core and a worker):
every denial line names the user, the client certificate's CN and the client's address, the
gRPC method and check, the key range, the result and the auth revision, whichever path refused
it (a read where it is served, a write where it applies, a watch, a lock, an Auth admin call,
the JSON gateway, a bad token); Authenticate is recorded either way; no line carries a password
or a token. `ward_auth_decisions_total` on --listen-metrics-urls moves with the decisions.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import requests

from tests.e2e.tls_helpers import Certs, Credentials, start_tls_ward
from tests.e2e.ward_process import ETCDCTL, REPO, WardProcess, eventually, free_port
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from wardpb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from wardpb.v3lockpb import v3lock_pb2, v3lock_pb2_grpc

pytestmark = pytest.mark.slow

DENIED = "etcdserver: permission denied"
PASSWORDS = ("root-pass-1", "bob-pass-1", "wrong-pass-1")
CLIENT = re.compile(r"^127\.0\.0\.1:\d+$")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@dataclass
class Member:
    ward: WardProcess
    certs: Certs
    audit: Path
    http: str
    metrics: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.ward.client_port}"

    def creds(self, name: str) -> Credentials:
        return self.certs.client(self.certs.ca1, name)

    def ctl(self, name: str, *args: str, input: str | None = None) -> tuple[int, str]:
        """etcdctl presenting `name`'s certificate: (exit code, stdout + stderr)."""
        out = subprocess.run(
            [str(ETCDCTL), f"--endpoints={self.url}", *self.creds(name).flags(), *args],
            input=input,
            capture_output=True,
            text=True,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            timeout=60,
            check=False,
        )
        return out.returncode, out.stdout + out.stderr

    def post(self, name: str, path: str, body: object, token: str = "") -> requests.Response:
        c = self.creds(name)
        return requests.post(
            self.http + path,
            json=body,
            verify=str(self.certs.ca1.ca_cert_path),
            cert=(str(c.cert), str(c.key)),
            headers={"Authorization": token} if token else {},
            timeout=10,
        )

    def channel(self, name: str) -> grpc.Channel:
        """A gRPC channel presenting `name`'s certificate."""
        c = self.creds(name)
        assert c.cert is not None and c.key is not None
        creds = grpc.ssl_channel_credentials(
            self.certs.ca1.ca_cert_path.read_bytes(), c.key.read_bytes(), c.cert.read_bytes()
        )
        return grpc.secure_channel(f"localhost:{self.ward.client_port}", creds)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def scrape(self) -> str:
        return requests.get(self.metrics + "/metrics", timeout=10).text


@pytest.fixture
def member(tmp_path: Path) -> Iterator[Member]:
    certs = Certs.create(tmp_path / "certs")
    http, mon = free_port(), free_port()
    audit = tmp_path / "audit.log"
    ward = start_tls_ward(
        tmp_path / "w",
        *certs.server_flags(),
        "--bcrypt-cost",
        "4",
        "--audit-log",
        str(audit),
        "--listen-client-http-urls",
        f"https://127.0.0.1:{http}",
        "--listen-metrics-urls",
        f"http://127.0.0.1:{mon}",
        workers=2,
    )
    m = Member(ward, certs, audit, f"https://127.0.0.1:{http}", f"http://127.0.0.1:{mon}")
    try:
        # Root by its certificate's CN; alice may use a/ only; bob has no roles.
        for args in (
            ("user", "add", "root:root-pass-1"),
            ("role", "add", "root"),
            ("user", "grant-role", "root", "root"),
            ("user", "add", "alice:alice-pass-1"),
            ("user", "add", "bob:bob-pass-1"),
            ("role", "add", "ra"),
            ("role", "grant-permission", "ra", "readwrite", "a/", "--prefix"),
            ("user", "grant-role", "alice", "ra"),
            ("auth", "enable"),
        ):
            code, out = m.ctl("root", *args)
            assert code == 0, (args, out)
        yield m
    finally:
        ward.stop()


def _denials(m: Member, **match: object) -> list[dict[str, object]]:
    return [
        line
        for line in m.lines()
        if line["event"] == "denied" and all(line.get(k) == v for k, v in match.items())
    ]


def test_denial_lines_name_the_user_certificate_and_client_on_every_path(member: Member) -> None:
    m = member
    refusals = [
        # (etcdctl args as alice by her certificate, method, check, key, range end)
        (("get", "b/x"), "/etcdserverpb.KV/Range", "read", "b/x", ""),
        (("put", "b/x", "v"), "/etcdserverpb.KV/Put", "write", "b/x", ""),
        (("del", "b/", "--prefix"), "/etcdserverpb.KV/DeleteRange", "write", "b/", "b0"),
        (("watch", "b/", "--prefix"), "/etcdserverpb.Watch/Watch", "read", "b/", "b0"),
        (("user", "add", "eve:eve-pass-12"), "/etcdserverpb.Auth/UserAdd", "admin", "", ""),
        (("role", "list"), "/etcdserverpb.Auth/RoleList", "admin", "", ""),
        (("lease", "list"), "/etcdserverpb.Lease/LeaseLeases", "admin", "", ""),
        (("compaction", "1"), "/etcdserverpb.KV/Compact", "write", "\x00", "\x00"),
    ]
    for args, *_ in refusals:
        # Each etcdctl is a new connection: across the runs, the core and the worker refuse.
        for _ in range(2):
            code, out = m.ctl("alice", *args)
            assert code != 0 and DENIED in out, (args, out)
    txn = 'value("a/k") = "x"\n\nput b/t v\n\n\n'
    code, out = m.ctl("alice", "txn", "--interactive=false", input=txn)
    assert code != 0 and DENIED in out, out
    code, out = m.ctl("alice", "lock", "b-lock", "--", "true")
    assert code != 0 and DENIED in out, out

    for _args, method, action, key, end in refusals:
        lines = _denials(m, method=method, action=action)
        assert len(lines) >= 2, (method, m.lines()[-5:])
        for line in lines:
            assert (line["user"], line["cn"], line["result"]) == ("alice", "alice", DENIED)
            assert CLIENT.match(str(line["client"])), line
            assert isinstance(line["revision"], int) and line["revision"] > 0
            if key:
                assert (line["key"], line["range_end"]) == (key, end), line
    (txn_line,) = _denials(m, method="/etcdserverpb.KV/Txn", key="b/t")
    assert (txn_line["user"], txn_line["action"], txn_line["cn"]) == ("alice", "write", "alice")
    # etcdctl's lock is a txn of its own (clientv3's recipe); Ward's Lock service refuses too.
    (ctl_lock,) = _denials(m, method="/etcdserverpb.KV/Txn", action="read")
    assert ctl_lock["user"] == "alice" and str(ctl_lock["key"]).startswith("b-lock/")
    with m.channel("alice") as channel:
        lock = v3lock_pb2_grpc.LockStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            lock.Lock(v3lock_pb2.LockRequest(name=b"b-svc-lock"), timeout=10)
        assert refused.value.details() == DENIED  # type: ignore[attr-defined]
        lease = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(
            rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10
        )
        election = v3election_pb2_grpc.ElectionStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            election.Campaign(
                v3election_pb2.CampaignRequest(name=b"b-elect", lease=lease.ID, value=b"me"),
                timeout=10,
            )
        assert refused.value.details() == DENIED  # type: ignore[attr-defined]
    for method, prefix in (
        ("/v3lockpb.Lock/Lock", "b-svc-lock/"),
        ("/v3electionpb.Election/Campaign", "b-elect/"),
    ):
        found = _denials(m, method=method)
        assert found, method
        for line in found:
            assert (line["user"], line["cn"]) == ("alice", "alice"), line
            assert str(line["key"]).startswith(prefix), line
            assert CLIENT.match(str(line["client"])), line

    # A token names the user; the connection's certificate is still recorded.
    code, out = m.ctl("alice", "--user=bob:bob-pass-1", "get", "a/x")
    assert code != 0 and DENIED in out
    (bob,) = _denials(m, user="bob")
    assert (bob["cn"], bob["method"], bob["key"]) == ("alice", "/etcdserverpb.KV/Range", "a/x")
    code, out = m.ctl("alice", "--user=bob:wrong-pass-1", "get", "a/x")
    assert code != 0 and "authentication failed" in out
    logins = [line for line in m.lines() if line["event"] == "authenticate"]
    assert {(x["user"], x["result"]) for x in logins} >= {
        ("bob", "ok"),
        ("bob", "etcdserver: authentication failed, invalid user ID or password"),
    }
    for x in logins:
        assert x["method"] == "/etcdserverpb.Auth/Authenticate" and x["cn"] == "alice", x
        assert CLIENT.match(str(x["client"])), x

    # The JSON gateway refuses through the same handlers, and says so the same way.
    r = m.post("alice", "/v3/kv/range", {"key": b64("b/gw")})
    assert r.status_code == 403, r.text
    (gw,) = _denials(m, key="b/gw")
    assert (gw["user"], gw["cn"], gw["method"]) == ("alice", "alice", "/etcdserverpb.KV/Range")
    assert CLIENT.match(str(gw["client"])), gw
    # A token that is no token: refused, recorded without it.
    token = m.post("alice", "/v3/auth/authenticate", {"name": "bob", "password": "bob-pass-1"})
    real = token.json()["token"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    r = m.post("alice", "/v3/kv/range", {"key": b64("a/x")}, token=forged)
    assert r.status_code == 401, r.text
    (bad,) = _denials(m, action="identify")
    assert (bad["user"], bad["cn"]) == ("", "alice")
    assert bad["result"] == "etcdserver: invalid auth token"

    text = m.audit.read_text()
    for secret in (*PASSWORDS, "alice-pass-1", "eve-pass-12", real, forged):
        assert secret not in text
    key = m.ward.data_dir / "member" / "audit.key"
    verify = subprocess.run(
        [sys.executable, "-m", "ward.cli", "audit", "verify", str(m.audit), "--key", str(key)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert "audit log OK" in verify.stdout, verify.stdout + verify.stderr


def test_auth_changes_are_recorded_with_who_sent_them(member: Member) -> None:
    m = member
    code, out = m.ctl("root", "role", "add", "audited-role")
    assert code == 0, out
    (change,) = [
        line
        for line in m.lines()
        if line["event"] == "auth_change" and "audited-role" in str(line["change"])
    ]
    assert (change["user"], change["cn"], change["kind"]) == ("root", "root", "auth_role_add")
    assert CLIENT.match(str(change["client"])), change
    assert isinstance(change["revision"], int) and change["revision"] > 0


def test_auth_decisions_are_counted_on_metrics(member: Member) -> None:
    m = member

    def count(kind: str, result: str) -> float:
        pattern = f'ward_auth_decisions_total{{kind="{kind}",result="{result}"}} '
        for line in m.scrape().splitlines():
            if line.startswith(pattern):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = {(k, r): count(k, r) for k in ("read", "admin") for r in ("allowed", "denied")}
    assert "# TYPE ward_auth_decisions_total counter" in m.scrape()
    for _ in range(3):
        assert m.ctl("alice", "get", "b/x")[0] != 0
        assert m.ctl("alice", "get", "a/x")[0] == 0
    assert m.ctl("alice", "user", "list")[0] != 0
    assert m.ctl("root", "user", "list")[0] == 0
    # Workers push their counts every second: the member's sum catches up.
    eventually(lambda: count("read", "denied") >= before[("read", "denied")] + 3)
    eventually(lambda: count("read", "allowed") >= before[("read", "allowed")] + 3)
    eventually(lambda: count("admin", "denied") >= before[("admin", "denied")] + 1)
    eventually(lambda: count("admin", "allowed") >= before[("admin", "allowed")] + 1)
    # Labels stay few: never a user or a key.
    for line in m.scrape().splitlines():
        if line.startswith("ward_auth_decisions_total{"):
            assert "alice" not in line and "b/x" not in line
