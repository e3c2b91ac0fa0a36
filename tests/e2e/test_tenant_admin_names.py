"""A tenant admin cannot tell another tenant's users and roles, or the cluster's, from names that
do not exist, on a real `ward` driven by the real etcdctl 3.4.

Names a tenant's members give are relative to their tenant (auth/tenant_names.py): what its admin
adds is stored as ``name@tenant``, so a name that exists elsewhere never clashes, and asking
about one gets, word for word, the answer for a missing name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.tenant_setup import ROOT, error_line, login, must, plain_ctl, policy_ward
from tests.e2e.ward_process import WardProcess

pytestmark = pytest.mark.slow

POLICY = """
tenants:
  - {name: acme, prefix: /tenants/acme/, admins: [acme-admin]}
  - {name: globex, prefix: /tenants/globex/, admins: [globex-admin]}
roles:
  - {name: acme-rw, tenant: acme, permissions: [{type: readwrite, key: "", prefix: true}]}
  - {name: globex-rw, tenant: globex, permissions: [{type: readwrite, key: "", prefix: true}]}
  - {name: ops, permissions: [{type: read, key: "ops/", prefix: true}]}
users:
  - {name: acme-admin, tenant: acme, roles: [acme-rw]}
  - {name: globex-admin, tenant: globex, roles: [globex-rw]}
  - {name: globex-app, tenant: globex, roles: [globex-rw]}
  - {name: operator, roles: [ops]}
"""
USERS = ["acme-admin", "globex-admin", "globex-app", "operator"]
# Names outside acme (another tenant's, the cluster's, root) and names that exist nowhere.
FOREIGN_USERS = ["globex-app", "globex-admin", "operator", "root"]
FOREIGN_ROLES = ["globex-rw", "ops", "root"]
MISSING_USER, MISSING_ROLE = "nobody-at-all", "no-such-role"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WardProcess]:
    with policy_ward(tmp_path, POLICY, USERS) as ward:
        ctl = plain_ctl(ward.endpoint)
        must(ctl(login("acme-admin"), "user", "add", "acme-dev:acme-dev-pass-1"))
        must(ctl(login("acme-admin"), "role", "add", "acme-dev-role"))
        yield ward


def test_a_tenant_admin_gets_the_same_answer_for_foreign_and_missing_names(
    server: WardProcess,
) -> None:
    ctl = plain_ctl(server.endpoint)
    admin = login("acme-admin")

    def answer(*args: str, input: str | None = None) -> str:
        return error_line(ctl(admin, *args, input=input))

    user_ops = [
        lambda u: answer("user", "get", u),
        lambda u: answer("user", "delete", u),
        lambda u: answer("user", "grant-role", u, "acme-dev-role"),
        lambda u: answer("user", "revoke-role", u, "acme-dev-role"),
        lambda u: answer("user", "passwd", u, "--interactive=false", input="new-pass-12345"),
    ]
    role_ops = [
        lambda r: answer("role", "get", r),
        lambda r: answer("role", "delete", r),
        lambda r: answer("role", "grant-permission", r, "read", "x"),
        lambda r: answer("role", "revoke-permission", r, "x"),
        lambda r: answer("user", "grant-role", "acme-dev", r),
        lambda r: answer("user", "revoke-role", "acme-dev", r),
    ]
    for op in user_ops:
        missing = op(MISSING_USER)
        for name in FOREIGN_USERS:
            assert op(name) == missing, name
    for op in role_ops:
        missing = op(MISSING_ROLE)
        for name in FOREIGN_ROLES:
            assert op(name) == missing, name
    # etcd's own words, as for any missing name.
    assert answer("user", "get", "globex-app") == "Error: etcdserver: user name not found"
    assert answer("role", "get", "globex-rw") == "Error: etcdserver: role name not found"
    assert (
        answer("user", "revoke-role", "acme-dev", "globex-rw")
        == "Error: etcdserver: role is not granted to the user"
    )
    # Nothing foreign was touched.
    assert must(ctl(ROOT, "user", "get", "globex-app")).stdout.split() == [
        "User:",
        "globex-app",
        "Roles:",
        "globex-rw",
    ]
    assert "[/tenants/globex/" in must(ctl(ROOT, "role", "get", "globex-rw")).stdout


def test_a_tenant_admin_lists_and_adds_inside_its_own_namespace(server: WardProcess) -> None:
    ctl = plain_ctl(server.endpoint)
    admin = login("acme-admin")
    assert must(ctl(admin, "user", "list")).stdout.split() == ["acme-admin", "acme-dev"]
    assert must(ctl(admin, "role", "list")).stdout.split() == ["acme-dev-role", "acme-rw"]

    # Adding a name taken elsewhere answers as adding a fresh one: it is acme's own.
    taken = must(ctl(admin, "user", "add", "globex-app:acme-copy-pass-1")).stdout
    fresh = must(ctl(admin, "user", "add", "brand-new:acme-new-pass-1")).stdout
    assert taken.replace("globex-app", "NAME") == fresh.replace("brand-new", "NAME")
    assert must(ctl(admin, "role", "add", "ops")).stdout == "Role ops created\n"
    assert must(ctl(admin, "role", "add", "root")).stdout == "Role root created\n"
    # A name its own tenant has is taken, as anywhere.
    assert error_line(ctl(admin, "user", "add", "acme-dev:x-pass-12345")) == (
        "Error: etcdserver: user name already exists"
    )
    assert must(ctl(admin, "user", "list")).stdout.split() == [
        "acme-admin",
        "acme-dev",
        "brand-new",
        "globex-app",
    ]
    must(ctl(admin, "user", "grant-role", "globex-app", "acme-rw"))
    assert must(ctl(admin, "user", "get", "globex-app")).stdout.split() == [
        "User:",
        "globex-app",
        "Roles:",
        "acme-rw",
    ]

    # Outside the tenant, its users are name@tenant: that is their login, and they live in acme.
    copy = "--user=globex-app@acme:acme-copy-pass-1"
    must(ctl(copy, "put", "k", "from-acme"))
    assert must(ctl(ROOT, "get", "/tenants/acme/k", "--print-value-only")).stdout == "from-acme\n"
    # The other tenant's user of that name is untouched, and keeps its own password and keys.
    must(ctl(login("globex-app"), "put", "k", "from-globex"))
    assert must(ctl(login("globex-app"), "get", "k", "--print-value-only")).stdout == (
        "from-globex\n"
    )
    root_list = must(ctl(ROOT, "user", "list")).stdout.split()
    assert {"globex-app", "globex-app@acme", "acme-dev@acme", "brand-new@acme"} <= set(root_list)
    assert {"ops", "ops@acme", "root", "root@acme"} <= set(
        must(ctl(ROOT, "role", "list")).stdout.split()
    )


def test_names_in_a_tenants_namespace_are_refused_outside_it(server: WardProcess) -> None:
    ctl = plain_ctl(server.endpoint)
    # etcdctl prints an error it does not know as "rpc error: code = ... desc = <message>".
    reserved = (
        "Error: rpc error: code = InvalidArgument desc = ward: the name 'intruder@acme' is"
        " reserved for tenant 'acme' (names ending in @acme)"
    )
    assert error_line(ctl(ROOT, "user", "add", "intruder@acme:x-pass-12345")) == reserved
    assert error_line(ctl(ROOT, "role", "add", "intruder@acme")) == reserved
    # Another tenant's admin cannot reach into it either: its names are its own tenant's.
    out = must(ctl(login("globex-admin"), "user", "add", "acme-dev@acme:x-pass-12345"))
    assert out.stdout == "User acme-dev@acme created\n"
    assert "acme-dev@acme@globex" in must(ctl(ROOT, "user", "list")).stdout.split()
    assert must(ctl(login("acme-admin"), "user", "get", "acme-dev")).stdout.split() == [
        "User:",
        "acme-dev",
        "Roles:",
    ]
