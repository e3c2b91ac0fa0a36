"""Tenant-relative user and role names (auth/tenant_names.py) and what policies must keep of
them, without processes: a tenant member's name never resolves outside its tenant, and nothing
outside a tenant can take a name of its namespace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.model import Role, User
from auth.policy import AuthState, Policy, PolicyError, parse, plan, to_data
from auth.tenant_names import qualified, reserved_by, role_name, shown, user_name
from auth.tenants import Tenant

NAMES = st.text(alphabet="abc@-", max_size=8)


class Tables:
    """Which tenant each user and role belongs to, as `auth.tenant_names` reads them."""

    def __init__(self, users: dict[str, str | None], roles: dict[str, str | None]) -> None:
        self.users = users
        self.roles = roles

    def user_tenant(self, user: str) -> str | None:
        return self.users.get(user)

    def role_tenant(self, role: str) -> str | None:
        return self.roles.get(role)


TABLES = Tables(
    users={
        "acme-app": "acme",  # root named it in a policy
        "dev@acme": "acme",  # acme's admin added "dev"
        "globex-app": "globex",
        "dev@globex": "globex",
        "operator": None,  # the cluster's
        "root": None,
    },
    roles={"acme-rw": "acme", "rw@acme": "acme", "globex-rw": "globex", "root": None},
)


def test_a_name_resolves_to_the_tenants_own_or_into_its_namespace() -> None:
    assert user_name(TABLES, "acme", "acme-app") == "acme-app"
    assert user_name(TABLES, "acme", "dev") == "dev@acme"
    # Another tenant's, the cluster's and root: names of acme's namespace, which do not exist.
    assert user_name(TABLES, "acme", "globex-app") == "globex-app@acme"
    assert user_name(TABLES, "acme", "operator") == "operator@acme"
    assert user_name(TABLES, "acme", "root") == "root@acme"
    # A stored name as root sees it is no name inside the tenant.
    assert user_name(TABLES, "acme", "dev@globex") == "dev@globex@acme"
    assert user_name(TABLES, "acme", "dev@acme") == "dev@acme@acme"
    assert role_name(TABLES, "acme", "rw") == "rw@acme"
    assert role_name(TABLES, "acme", "acme-rw") == "acme-rw"
    assert role_name(TABLES, "acme", "globex-rw") == "globex-rw@acme"
    # etcd's empty name stays empty ("user name is empty"), never the bare suffix.
    assert user_name(TABLES, "acme", "") == "" == qualified("acme", "")


@given(NAMES)
def test_whatever_a_member_names_is_its_tenants_or_in_its_namespace(name: str) -> None:
    if not name:
        return  # stays empty: etcd's "name is empty" (above)
    for resolve, tables in ((user_name, TABLES.users), (role_name, TABLES.roles)):
        stored = resolve(TABLES, "acme", name)
        assert tables.get(stored) == "acme" or (
            reserved_by(stored, ["acme", "globex"]) == "acme" and stored not in tables
        ), (name, stored)
        # What the member is shown is what it named.
        assert shown("acme", stored) == name


def test_names_a_member_is_shown() -> None:
    assert shown("acme", "dev@acme") == "dev"
    assert shown("acme", "acme-app") == "acme-app"
    assert shown("acme", "@acme") == "@acme"
    assert reserved_by("dev@acme", ["globex", "acme"]) == "acme"
    assert reserved_by("alice@example.com", ["acme"]) is None


TENANTS = {"tenants": [{"name": "acme", "prefix": "/t/acme/"}]}


@pytest.mark.parametrize(
    ("users", "roles", "problem"),
    [
        # A user or role outside acme cannot take a name of acme's namespace.
        ([{"name": "x@acme"}], [], "user 'x@acme': the name is reserved for tenant 'acme'"),
        ([], [{"name": "r@acme"}], "role 'r@acme': the name is reserved for tenant 'acme'"),
        # Acme's members would see both as "x".
        (
            [{"name": "x", "tenant": "acme"}, {"name": "x@acme", "tenant": "acme"}],
            [],
            "users 'x' and 'x@acme' would both be 'x' in tenant 'acme'",
        ),
    ],
)
def test_a_plan_keeps_every_tenants_namespace(
    users: list[dict[str, object]], roles: list[dict[str, object]], problem: str
) -> None:
    policy = parse({**TENANTS, "users": users, "roles": roles})
    with pytest.raises(PolicyError) as e:
        plan(AuthState(), policy)
    assert problem in str(e.value)


def test_a_tenant_cannot_be_created_over_names_already_in_its_namespace() -> None:
    state = AuthState(users={"bob@acme": User("bob@acme", "h")}, roles={"r@acme": Role("r@acme")})
    with pytest.raises(PolicyError) as e:
        plan(state, parse(TENANTS))
    assert "user 'bob@acme': the name is reserved for tenant 'acme'" in str(e.value)
    assert "role 'r@acme': the name is reserved for tenant 'acme'" in str(e.value)
    # Its own users may carry its suffix.
    ok = parse({**TENANTS, "users": [{"name": "bob@acme", "tenant": "acme"}]})
    assert [c.op for c in plan(AuthState(), ok)] == ["put_tenant", "put_user"]


def test_a_tenant_name_has_no_separator() -> None:
    with pytest.raises(PolicyError) as e:
        parse({"tenants": [{"name": "a@b", "prefix": "/ab/"}]}, "f.toml")
    assert "a tenant's name cannot contain '@'" in str(e.value)
    with pytest.raises(PolicyError):
        Policy.from_json(Policy((Tenant("a@b", b"/ab/"),)).to_json())


def test_a_policy_sets_the_watcher_quota_and_exports_it() -> None:
    policy = parse({"tenants": [{"name": "acme", "prefix": "/a/", "quota": {"watchers": 7}}]})
    assert policy.tenants[0].quota_watchers == 7
    assert to_data(policy)["tenants"][0]["quota"]["watchers"] == 7
    assert Policy.from_json(policy.to_json()) == policy
