"""Tenants, declarative policies and the audit log in a three-member cluster of real `ward`
processes (two serving processes each), driven by the real etcdctl 3.4 logged in as tenant users
and by `wardctl policy` / `wardctl audit`.

The example policy `policies/multi-tenant.yaml` is what every test applies: tenants `acme`,
`globex` (key quota 3) and `initech`, each with its users and roles. Policy users have no
password; root sets them with `etcdctl user passwd`.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, Member

from tests.e2e.ward_process import ETCDCTL, ETCDCTL_TIMEOUT_S, REPO

pytestmark = pytest.mark.slow

POLICY = REPO / "policies" / "multi-tenant.yaml"
ROOT = "--user=root:root-pass-1"
DENIED = "etcdserver: permission denied"


def password(user: str) -> str:
    return f"{user}-pass-1"


def login(user: str) -> str:
    return f"--user={user}:{password(user)}"


def ctl(
    m: Member, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real etcdctl against one member."""
    out = subprocess.run(
        [str(ETCDCTL), "--endpoints", m.endpoint, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=ETCDCTL_TIMEOUT_S,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    if check and out.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed: {out.stderr}")
    return out


def wardctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "ward.cli", *args],
        capture_output=True,
        text=True,
        timeout=ETCDCTL_TIMEOUT_S,
        cwd=REPO,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"wardctl {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out


def refused(out: subprocess.CompletedProcess[str], message: str = DENIED) -> None:
    assert out.returncode != 0, out.stdout
    # etcdctl prints errors it does not know as "rpc error: code = ... desc = <message>".
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    assert errors and message in errors[-1], out.stderr


def audit_log(m: Member) -> Path:
    return m.data_dir.parent / "audit.log"


def audit_key(m: Member) -> Path:
    return m.data_dir / "member" / "audit.key"


def keys_of(out: subprocess.CompletedProcess[str]) -> list[str]:
    """The keys of `etcdctl get -w json` output (base64-decoded)."""
    doc = json.loads(out.stdout)
    return [base64.b64decode(kv["key"]).decode() for kv in doc.get("kvs", [])]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, workers=2)
    ic = c.initial_cluster
    for m in c.members:
        flags = [*m.flags(ic, "new", c.token), "--bcrypt-cost", "4"]
        m.launch([*flags, "--audit-log", str(audit_log(m))], c.env_for(m))
    try:
        for m in c.members:
            m.proc.wait_ready()
        first = c.members[0]
        ctl(first, "user", "add", "root:root-pass-1")
        ctl(first, "role", "add", "root")
        ctl(first, "user", "grant-role", "root", "root")
        ctl(first, "auth", "enable")
        wardctl("--endpoints", first.endpoint, ROOT, "policy", "apply", str(POLICY))
        for user in ("acme-admin", "acme-app", "globex-app", "globex-admin", "initech-app"):
            ctl(first, ROOT, "user", "passwd", user, "--interactive=false", stdin=password(user))
        yield c
    finally:
        c.stop()


def test_a_tenant_admin_manages_its_tenant_and_is_refused_everywhere_else(
    cluster: Cluster,
) -> None:
    m0, m1, m2 = cluster.members
    admin = login("acme-admin")
    # Users and roles of its own tenant, through any member; grants are relative to the tenant.
    ctl(m0, admin, "user", "add", "acme-dev:acme-dev-pass-1")
    ctl(m1, admin, "role", "add", "acme-dev-role")
    ctl(m2, admin, "role", "grant-permission", "acme-dev-role", "readwrite", "--prefix", "dev/")
    ctl(m0, admin, "user", "grant-role", "acme-dev", "acme-dev-role")
    assert ctl(m1, admin, "user", "list").stdout.split() == ["acme-admin", "acme-app", "acme-dev"]
    assert ctl(m2, admin, "role", "list").stdout.split() == ["acme-dev-role", "acme-rw"]
    assert "[dev/, dev0)" in ctl(m0, admin, "role", "get", "acme-dev-role").stdout
    # A user a tenant admin adds is named in its tenant's namespace: it logs in as name@tenant.
    dev = "--user=acme-dev@acme:acme-dev-pass-1"
    ctl(m1, dev, "put", "dev/a", "1")
    refused(ctl(m2, dev, "put", "other", "1", check=False))
    # The key landed inside the tenant, where root sees it under the prefix.
    assert ctl(m0, ROOT, "get", "/tenants/acme/dev/a", "--print-value-only").stdout == "1\n"

    # Anything of another tenant, of no tenant, or cluster-wide: out of reach, on every member.
    # It cannot even name them: they answer as names that do not exist (names are relative to
    # the tenant; test_tenant_admin_names.py compares them with missing ones word for word).
    no_user, no_role = "etcdserver: user name not found", "etcdserver: role name not found"
    for m in (m0, m1, m2):
        refused(ctl(m, admin, "user", "delete", "globex-app", check=False), no_user)
        refused(
            ctl(m, admin, "user", "grant-role", "globex-app", "acme-dev-role", check=False), no_user
        )
        refused(ctl(m, admin, "user", "grant-role", "acme-dev", "globex-rw", check=False), no_role)
        refused(
            ctl(m, admin, "role", "grant-permission", "globex-rw", "read", "x", check=False),
            no_role,
        )
        refused(ctl(m, admin, "role", "delete", "globex-rw", check=False), no_role)
        refused(ctl(m, admin, "role", "get", "globex-rw", check=False), no_role)
        refused(ctl(m, admin, "user", "get", "globex-app", check=False), no_user)
        refused(ctl(m, admin, "user", "delete", "root", check=False), no_user)
        refused(ctl(m, admin, "auth", "disable", check=False))
        refused(ctl(m, admin, "user", "grant-role", "acme-dev", "root", check=False), no_role)
        refused(ctl(m, admin, "compaction", "1", check=False))
    # A tenant admin is no cluster admin, even for the keys of its own tenant's prefix as root
    # names them: it cannot leave the tenant at all.
    assert keys_of(ctl(m0, admin, "get", "", "--prefix", "-w", "json")) == ["dev/a"]
    assert "globex-app" in ctl(m1, ROOT, "user", "list").stdout


def test_two_tenants_write_the_same_key_names_without_seeing_each_other(cluster: Cluster) -> None:
    m0, m1, m2 = cluster.members
    acme, globex = login("acme-app"), login("globex-app")
    ctl(m0, acme, "put", "config", "acme-value")
    ctl(m1, globex, "put", "config", "globex-value")
    ctl(m2, acme, "put", "shared/x", "a")
    ctl(m0, globex, "put", "shared/x", "g")
    for m in (m0, m1, m2):
        assert ctl(m, acme, "get", "config", "--print-value-only").stdout == "acme-value\n"
        assert ctl(m, globex, "get", "config", "--print-value-only").stdout == "globex-value\n"
        assert keys_of(ctl(m, acme, "get", "", "--prefix", "-w", "json")) == ["config", "shared/x"]
        assert keys_of(ctl(m, globex, "get", "", "--from-key", "-w", "json")) == [
            "config",
            "shared/x",
        ]
    # A txn compares and writes inside the tenant only.
    txn = 'value("config") = "acme-value"\n\nput shared/y yes\nget config\n\nput shared/y no\n\n'
    out = ctl(m1, acme, "txn", "--interactive=false", stdin=txn)
    assert out.stdout.startswith("SUCCESS")
    assert "acme-value" in out.stdout and "globex-value" not in out.stdout
    # Deleting everything one tenant sees leaves the other's keys alone.
    ctl(m2, globex, "del", "", "--prefix")
    assert keys_of(ctl(m0, globex, "get", "", "--prefix", "-w", "json")) == []
    assert keys_of(ctl(m0, acme, "get", "", "--prefix", "-w", "json")) == [
        "config",
        "shared/x",
        "shared/y",
    ]
    assert keys_of(ctl(m1, ROOT, "get", "/tenants/", "--prefix", "-w", "json")) == [
        "/tenants/acme/config",
        "/tenants/acme/shared/x",
        "/tenants/acme/shared/y",
    ]
    # A lock taken by a tenant user is named inside its tenant, and handed back stripped.
    out = ctl(m0, acme, "lock", "mylock", "--", "sh", "-c", "echo $ETCD_LOCK_KEY")
    assert out.stdout.startswith("mylock/"), out.stdout


def test_a_tenant_over_its_key_quota_is_refused_while_another_writes_on(cluster: Cluster) -> None:
    m0, m1, m2 = cluster.members
    globex, acme = login("globex-app"), login("acme-app")
    for i, m in enumerate((m0, m1, m2)):
        ctl(m, globex, "put", f"k{i}", "v")
    for m in (m0, m1, m2):
        refused(
            ctl(m, globex, "put", "one-more", "v", check=False),
            "ward: tenant quota exceeded: too many keys",
        )
        ctl(m, acme, "put", f"from-{m.name}", "v")
        # Rewriting a key it has is no new key: still allowed.
        ctl(m, globex, "put", "k0", "again")
    # Deleting one makes room for one.
    ctl(m1, globex, "del", "k1")
    ctl(m2, globex, "put", "one-more", "v")
    refused(
        ctl(m0, globex, "put", "two-more", "v", check=False),
        "ward: tenant quota exceeded: too many keys",
    )
    # Leases: two at once for globex; revoking one makes room; acme is not held back.
    leases = [ctl(m, globex, "lease", "grant", "60").stdout.split()[1] for m in (m0, m1)]
    refused(
        ctl(m2, globex, "lease", "grant", "60", check=False),
        "ward: tenant quota exceeded: too many leases",
    )
    for m in (m0, m1, m2):
        ctl(m, acme, "lease", "grant", "60")
    ctl(m0, globex, "lease", "revoke", leases[0])
    ctl(m1, globex, "lease", "grant", "60")


def test_a_policy_applied_on_one_member_is_enforced_by_every_member_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    m0, m1, m2 = cluster.members
    acme = login("acme-app")
    ctl(m0, acme, "put", "k", "v")
    # acme-app loses write: acme-rw becomes read-only.
    changed = POLICY.read_text().replace(
        '- {type: readwrite, key: "", prefix: true}     # the whole tenant',
        '- {type: read, key: "", prefix: true}',
    )
    assert changed != POLICY.read_text()
    policy = tmp_path / "readonly.yaml"
    policy.write_text(changed)
    before = ctl(m1, ROOT, "role", "get", "acme-rw").stdout
    out = wardctl("--endpoints", m1.endpoint, ROOT, "policy", "apply", "--dry-run", str(policy))
    assert "would update role acme-rw in tenant acme: read" in out.stdout
    assert "nothing applied" in out.stdout
    # The dry run changed nothing anywhere.
    for m in (m0, m1, m2):
        assert ctl(m, ROOT, "role", "get", "acme-rw").stdout == before
        ctl(m, acme, "put", "k", "still-writable")
    out = wardctl("--endpoints", m1.endpoint, ROOT, "policy", "apply", str(policy))
    assert "update role acme-rw" in out.stdout
    # Acknowledged on m1: every member refuses the write and serves the read at once.
    for m in (m2, m0, m1):
        refused(ctl(m, acme, "put", "k", "v2", check=False))
        assert ctl(m, acme, "get", "k", "--print-value-only").stdout == "still-writable\n"
    # Applying it again changes nothing.
    again = wardctl("--endpoints", m2.endpoint, ROOT, "policy", "apply", str(policy))
    assert "no changes" in again.stdout
    # A tenant admin cannot apply policies.
    out = wardctl(
        "--endpoints", m0.endpoint, login("acme-admin"), "policy", "apply", str(policy), check=False
    )
    assert out.returncode != 0 and DENIED in out.stderr


def test_an_edited_audit_line_fails_audit_verify(cluster: Cluster) -> None:
    m0, m1, _m2 = cluster.members
    refused(ctl(m0, login("globex-app"), "user", "add", "intruder:intruder-pass-1", check=False))
    ctl(m1, ROOT, "role", "add", "audited-role")
    for m in cluster.members:
        log = audit_log(m)
        out = wardctl("audit", "verify", str(log), "--key", str(audit_key(m)))
        assert "audit log OK" in out.stdout
        text = log.read_text()
        # Every member recorded the replicated change; no line carries a password or token.
        assert "audited-role" in text
        assert "pass-1" not in text and "token" not in text
    log = audit_log(m0)
    text = log.read_text()
    assert '"event":"denied"' in text and '"event":"authenticate"' in text
    lines = text.splitlines(keepends=True)
    key = str(audit_key(m0))

    def fails(new_lines: list[str]) -> str:
        log.write_text("".join(new_lines))
        out = wardctl("audit", "verify", str(log), "--key", key, check=False)
        assert out.returncode != 0, out.stdout
        return out.stderr

    edited = lines[2].replace('"user":"', '"user":"x', 1)
    assert edited != lines[2]
    assert "altered" in fails([*lines[:2], edited, *lines[3:]])
    assert "removed or lines were reordered" in fails([*lines[:2], *lines[3:]])
    assert "removed or lines were reordered" in fails([*lines[:2], lines[3], lines[2], *lines[4:]])
    assert "does not start at its anchor" in fails(lines[1:])
    log.write_text("".join(lines))
    assert "audit log OK" in wardctl("audit", "verify", str(log), "--key", key).stdout
