"""Tenants' pure parts: the namespace mapping, policies (parse, plan, export) and the audit
chain, without processes."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.model import FROM_KEY, Permission, PermissionType, Role, User
from auth.policy import AuthState, Policy, PolicyError, export, parse, plan
from auth.tenants import Namespace, Tenant, prefix_end
from server.audit import AuditError, AuditLog, verify
from server.errors import EtcdError
from server.tenancy import RateLimits

P = b"/tenants/acme/"
KEYS = st.binary(max_size=6) | st.sampled_from([b"", b"\x00", b"\xff", b"\xff\xff", b"a/"])


@given(KEYS, KEYS | st.just(FROM_KEY))
def test_every_mapped_range_stays_inside_the_tenant(key: bytes, end: bytes) -> None:
    ns = Namespace(P)
    assert ns.contains(ns.key(key), ns.range_end(end))


@given(KEYS)
def test_a_prefix_range_maps_to_the_prefix_range_inside_the_tenant(key: bytes) -> None:
    ns = Namespace(P)
    end = prefix_end(key)
    mapped_end = ns.range_end(end)
    if end == FROM_KEY:
        assert mapped_end == ns.end
    else:
        assert mapped_end == prefix_end(P + key)
    assert ns.strip_end(mapped_end) == end


def test_ranges_reaching_outside_are_not_contained() -> None:
    ns = Namespace(P)
    assert not ns.contains(b"/tenants/acme", b"")
    assert not ns.contains(P + b"a", FROM_KEY)
    assert not ns.contains(P, b"/tenants/acmf")
    assert not ns.contains(b"/tenants/", P + b"z")
    assert ns.contains(P, b"/tenants/acme0")


def test_a_tenant_prefix_needs_an_end() -> None:
    with pytest.raises(ValueError):
        Tenant("t", b"\xff\xff")
    with pytest.raises(ValueError):
        Tenant("t", b"")


POLICY = {
    "tenants": [{"name": "acme", "prefix": "/t/acme/", "quota": {"keys": 5}, "admins": ["adm"]}],
    "roles": [
        {
            "name": "rw",
            "tenant": "acme",
            "permissions": [{"type": "readwrite", "key": "", "prefix": True}],
        },
        {"name": "app", "permissions": [{"type": "read", "key": "/app/", "prefix": True}]},
    ],
    "users": [
        {"name": "adm", "tenant": "acme", "roles": ["rw"]},
        {"name": "svc", "roles": ["app"], "cert_only": True},
    ],
}


def test_a_policy_plans_creates_then_nothing_and_exports_back() -> None:
    policy = parse(POLICY, "p.yaml")
    assert Policy.from_json(policy.to_json()).to_json() == policy.to_json()
    state = AuthState()
    changes = plan(state, policy)
    assert [c.op for c in changes] == ["put_tenant", "put_role", "put_role", "put_user", "put_user"]
    for c in changes:
        if c.op == "put_tenant":
            state.tenants[c.name] = c.value  # type: ignore[assignment]
        elif c.op == "put_role":
            state.roles[c.name] = c.value  # type: ignore[assignment]
            if c.tenant:
                state.role_tenants[c.name] = c.tenant
        elif c.op == "put_user":
            state.users[c.name] = c.value  # type: ignore[assignment]
            if c.tenant:
                state.user_tenants[c.name] = c.tenant
    # Tenant roles are stored in absolute keys.
    assert state.roles["rw"].permissions == (
        Permission(PermissionType.READWRITE, b"/t/acme/", b"/t/acme0"),
    )
    assert plan(state, policy) == []
    assert plan(state, export(state)) == []
    assert export(state).to_json() == policy.to_json()


def test_a_plan_keeps_passwords_and_prunes_only_when_asked() -> None:
    policy = parse(POLICY)
    state = AuthState(
        users={"svc": User("svc", "hash", ("app",)), "old": User("old", "h2")},
        roles={"app": Role("app"), "gone": Role("gone")},
    )
    changes = plan(state, policy)
    svc = next(c for c in changes if c.name == "svc")
    assert isinstance(svc.value, User) and svc.value.password_hash is None  # cert_only
    assert not [c for c in changes if c.op.startswith("delete")]
    pruned = plan(state, policy, prune=True)
    assert {(c.op, c.name) for c in pruned if c.op.startswith("delete")} == {
        ("delete_role", "gone"),
        ("delete_user", "old"),
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"roles": [{"name": "r", "bogus": 1}]}, "unknown field 'bogus'"),
        (
            {
                "roles": [
                    {"name": "r", "permissions": [{"type": "read", "key": "b", "range_end": "a"}]}
                ]
            },
            "inverted range",
        ),
        (
            {
                "roles": [
                    {
                        "name": "r",
                        "permissions": [
                            {"type": "read", "key": "a", "prefix": True},
                            {"type": "read", "key": "a/b"},
                        ],
                    }
                ]
            },
            "overlapping ranges",
        ),
        ({"users": [{"name": "u", "roles": ["nope"]}]}, "unknown role 'nope'"),
        ({"users": [{"name": "u", "password": "x"}]}, "never holds a password"),
        ({"users": [{"name": "root"}]}, "root user is outside policies"),
        (
            {"tenants": [{"name": "a", "prefix": "/a/"}, {"name": "b", "prefix": "/a/b/"}]},
            "overlapping prefixes",
        ),
        ({"tenants": [{"name": "a", "prefix": "/a/", "admins": ["x"]}]}, "is not a user"),
    ],
)
def test_policy_check_reports_each_problem(change: dict[str, object], problem: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse(change, "f.toml")
    assert problem in str(e.value)
    assert "f.toml" in str(e.value)


def _log(tmp_path: Path, lines: int, **kw: int) -> tuple[AuditLog, bytes]:
    key = b"k" * 32
    log = AuditLog(tmp_path / "audit.log", key, **kw)
    for i in range(lines):
        log.record("denied", user=f"u{i}", key=b"\xffk", result="etcdserver: permission denied")
    return log, key


def test_the_audit_chain_detects_edits_deletions_and_reordering(tmp_path: Path) -> None:
    log, key = _log(tmp_path, 5)
    assert verify([log.path], key) == 5
    lines = log.path.read_text().splitlines(keepends=True)
    for bad in (
        [*lines[:2], lines[2].replace('"u2"', '"u9"'), *lines[3:]],
        [*lines[:2], *lines[3:]],
        [*lines[:2], lines[3], lines[2], *lines[4:]],
        lines[1:],
        [*lines[:-1], lines[-1].replace("denied", "allowed")],
    ):
        log.path.write_text("".join(bad))
        with pytest.raises(AuditError):
            verify([log.path], key)
    log.path.write_text("".join(lines))
    with pytest.raises(AuditError):
        verify([log.path], b"x" * 32)


def test_the_audit_chain_goes_on_across_rotation(tmp_path: Path) -> None:
    log, key = _log(tmp_path, 12, max_size=600)
    rotated = sorted(tmp_path.glob("audit.log.*"), key=lambda p: -int(p.suffix[1:]))
    assert rotated
    assert verify([*rotated, log.path], key) == 12
    with pytest.raises(AuditError):
        verify([log.path], key)
    assert verify([log.path], key, continued=True) >= 1


def test_a_tenant_over_its_request_rate_is_refused_and_others_are_not() -> None:
    now = [0.0]
    limits = RateLimits(clock=lambda: now[0])
    busy, other = Tenant("busy", b"/b/", quota_rps=3), Tenant("other", b"/o/", quota_rps=3)
    for _ in range(3):
        limits.admit(busy)
    with pytest.raises(EtcdError) as e:
        limits.admit(busy)
    assert e.value.message == "ward: tenant quota exceeded: too many requests"
    limits.admit(other)
    now[0] += 0.5  # 1.5 tokens back
    limits.admit(busy)
    limits.admit(Tenant("free", b"/f/"))  # no quota: never refused


def _append_many(path: str, n: int) -> None:
    log = AuditLog(Path(path), b"k" * 32, max_size=4000)
    for i in range(n):
        log.record("denied", user=f"p{os.getpid()}-{i}")


def test_serving_processes_append_to_one_chain_across_rotations(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), 60)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rotated = sorted(tmp_path.glob("audit.log.*"), key=lambda p: -int(p.suffix[1:]))
    files = [*rotated, path]
    if len(rotated) < 10:  # nothing rotated away yet (10 are kept): the whole chain is here
        assert verify(files, b"k" * 32) == 180
    else:
        assert verify(files, b"k" * 32, continued=True) > 0


def test_a_rotation_overtaken_by_other_processes_appends_to_the_current_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race the test above hits under load, made deterministic: one appender rotates, and
    # before it locks the file it made, others fill that file and rotate it away too.
    key = b"k" * 32
    path = tmp_path / "audit.log"
    slow, others = AuditLog(path, key, max_size=1000), AuditLog(path, key, max_size=1000)
    lines = 0
    while not path.exists() or path.stat().st_size < 1000:
        others.record("denied", user="other")
        lines += 1
    flock, calls = fcntl.flock, 0

    def overtaken(fd: int, operation: int) -> None:
        nonlocal calls, lines
        calls += 1
        if calls == 2:  # `slow` has renamed the full file away and made a new one
            while not path.with_name("audit.log.2").exists():
                others.record("denied", user="other")
                lines += 1
        flock(fd, operation)

    monkeypatch.setattr("server.audit.fcntl.flock", overtaken)
    slow.record("denied", user="slow")
    monkeypatch.undo()
    rotated = sorted(tmp_path.glob("audit.log.*"), key=lambda p: -int(p.suffix[1:]))
    assert verify([*rotated, path], key) == lines + 1
    assert b'"user":"slow"' in path.read_bytes()
