"""Declarative policies: tenants, roles and users as data, and the plan that makes them so.

A policy is parsed from plain data (what a TOML or YAML file loads to; reading files is the
caller's job), validated as a whole (`PolicyError` lists every problem with where it is), and
turned into canonical JSON, which is what gets replicated. Applying it is `plan`: the difference
between an `AuthState` (the live tables) and the policy, as a list of `Change`s, computed the
same way on every member from the same tables, so the apply path can run it as one entry.

Shape (TOML shown; YAML is the same tree)::

    [[tenants]]
    name = "acme"
    prefix = "/tenants/acme/"
    quota = { keys = 1000, bytes = 1048576, leases = 100, watchers = 50, rps = 500 }
    admins = ["acme-admin"]

    [[roles]]
    name = "acme-app"
    tenant = "acme"                  # keys below are inside the tenant
    permissions = [ { type = "readwrite", key = "app/", prefix = true } ]

    [[users]]
    name = "acme-admin"
    tenant = "acme"
    roles = ["acme-app"]
    cert_only = false                # true: authenticates only by client certificate CN

No password is ever part of a policy: a user is created without one (it sets one later, or
authenticates by certificate). `root` (user and role) is outside every policy.

Without `prune`, objects the policy does not name are left alone; a named role gets exactly the
permissions listed, a named user exactly the roles listed.

Names: a tenant's members see its users and roles by the names `auth.tenant_names` shows, and
what its admins add is named ``<name>@<tenant>``. So a tenant's name has no ``@``, a user or role
outside a tenant cannot be named ``...@<tenant>``, and no tenant may hold both ``N`` and
``N@<tenant>`` (`plan` refuses all three).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auth import tenant_names
from auth.model import FROM_KEY, ROOT_ROLE, ROOT_USER, Permission, PermissionType, Role, User
from auth.tenants import Namespace, Tenant, prefix_end, valid_prefix

_TYPES = {"read": PermissionType.READ, "write": PermissionType.WRITE}
_TYPES["readwrite"] = PermissionType.READWRITE
_TYPE_NAMES = {v: k for k, v in _TYPES.items()}


class PolicyError(ValueError):
    """Everything wrong with a policy, one problem per line (each with where it is)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A role; `permissions` are relative to the tenant's prefix when `tenant` is set."""

    name: str
    tenant: str | None = None
    permissions: tuple[Permission, ...] = ()


@dataclass(frozen=True, slots=True)
class UserSpec:
    name: str
    tenant: str | None = None
    roles: tuple[str, ...] = ()
    cert_only: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    tenants: tuple[Tenant, ...] = ()
    roles: tuple[RoleSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()

    def to_json(self) -> bytes:
        """Canonical JSON (sorted, keys in hex): what is replicated and exported."""
        doc = {
            "tenants": [
                {
                    "name": t.name,
                    "prefix": t.prefix.hex(),
                    "quota_keys": t.quota_keys,
                    "quota_bytes": t.quota_bytes,
                    "quota_leases": t.quota_leases,
                    "quota_watchers": t.quota_watchers,
                    "quota_rps": t.quota_rps,
                    "admins": list(t.admins),
                }
                for t in sorted(self.tenants, key=lambda t: t.name)
            ],
            "roles": [
                {
                    "name": r.name,
                    "tenant": r.tenant,
                    "permissions": [
                        [int(p.perm_type), p.key.hex(), p.range_end.hex()] for p in r.permissions
                    ],
                }
                for r in sorted(self.roles, key=lambda r: r.name)
            ],
            "users": [
                {
                    "name": u.name,
                    "tenant": u.tenant,
                    "roles": sorted(u.roles),
                    "cert_only": u.cert_only,
                }
                for u in sorted(self.users, key=lambda u: u.name)
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Policy:
        """The inverse of `to_json`; raises `PolicyError` (ValueError) on anything else."""
        try:
            doc = json.loads(raw)
            tenants = tuple(
                Tenant(
                    t["name"],
                    bytes.fromhex(t["prefix"]),
                    int(t["quota_keys"]),
                    int(t["quota_bytes"]),
                    tuple(t["admins"]),
                    int(t.get("quota_leases", 0)),
                    int(t.get("quota_watchers", 0)),
                    int(t.get("quota_rps", 0)),
                )
                for t in doc["tenants"]
            )
            roles = tuple(
                RoleSpec(
                    r["name"],
                    r["tenant"],
                    tuple(
                        Permission(PermissionType(p[0]), bytes.fromhex(p[1]), bytes.fromhex(p[2]))
                        for p in r["permissions"]
                    ),
                )
                for r in doc["roles"]
            )
            users = tuple(
                UserSpec(u["name"], u["tenant"], tuple(u["roles"]), bool(u["cert_only"]))
                for u in doc["users"]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise PolicyError([f"malformed policy document: {e}"]) from None
        policy = cls(tenants, roles, users)
        validate(policy)
        return policy


# --- parsing ---------------------------------------------------------------------------------


def _where(source: str, path: str, node: object) -> str:
    line = getattr(node, "line", None)
    return f"{source}:{line}: {path}" if line else f"{source}: {path}"


def _fields(
    node: Any, allowed: Iterable[str], source: str, path: str, problems: list[str]
) -> Mapping[str, Any]:
    if not isinstance(node, Mapping):
        problems.append(f"{_where(source, path, node)}: expected a table")
        return {}
    for k in node:
        if k not in allowed:
            problems.append(f"{_where(source, path, node)}: unknown field {k!r}")
    return node


def _str(node: Mapping[str, Any], key: str, where: str, problems: list[str], *, need: bool) -> str:
    v = node.get(key)
    if v is None:
        if need:
            problems.append(f"{where}: {key} is required")
        return ""
    if not isinstance(v, str) or (need and not v):
        problems.append(f"{where}: {key} must be a non-empty string")
        return ""
    return v


def _int(node: Mapping[str, Any], key: str, where: str, problems: list[str]) -> int:
    v = node.get(key, 0)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        problems.append(f"{where}: {key} must be a non-negative integer")
        return 0
    return v


def _names(v: Any, where: str, what: str, problems: list[str]) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        problems.append(f"{where}: {what} must be a list of names")
        return ()
    return tuple(v)


def _permission(node: Any, source: str, path: str, problems: list[str]) -> Permission | None:
    p = _fields(node, ("type", "key", "range_end", "prefix", "from_key"), source, path, problems)
    if not p:
        return None
    where = _where(source, path, node)
    kind = p.get("type")
    if kind not in _TYPES:
        problems.append(f"{where}: type must be one of read, write, readwrite")
        return None
    key = p.get("key", "")
    if not isinstance(key, str):
        problems.append(f"{where}: key must be a string")
        return None
    kb = key.encode()
    ends = [k for k in ("range_end", "prefix", "from_key") if p.get(k) not in (None, False)]
    if len(ends) > 1:
        problems.append(f"{where}: give at most one of range_end, prefix, from_key")
        return None
    end = b""
    if "range_end" in ends:
        if not isinstance(p["range_end"], str) or not p["range_end"]:
            problems.append(f"{where}: range_end must be a non-empty string")
            return None
        end = p["range_end"].encode()
        if end <= kb:
            problems.append(f"{where}: inverted range: range_end {p['range_end']!r} <= key")
            return None
    elif "prefix" in ends:
        if p["prefix"] is not True:
            problems.append(f"{where}: prefix must be true or false")
            return None
        end = prefix_end(kb) if kb else FROM_KEY
    elif "from_key" in ends:
        if p["from_key"] is not True:
            problems.append(f"{where}: from_key must be true or false")
            return None
        end = FROM_KEY
    return Permission(_TYPES[kind], kb, end)


def parse(data: Any, source: str = "<policy>") -> Policy:
    """A policy from loaded TOML or YAML data; raises `PolicyError` listing every problem.

    Mappings that carry a `line` attribute (a YAML loader can attach one) give line numbers.
    """
    problems: list[str] = []
    top = _fields(data, ("tenants", "roles", "users"), source, "top level", problems)
    tenants: list[Tenant] = []
    roles: list[RoleSpec] = []
    users: list[UserSpec] = []
    for i, node in enumerate(_list(top.get("tenants"), source, "tenants", problems)):
        path = f"tenants[{i}]"
        t = _fields(node, ("name", "prefix", "quota", "admins"), source, path, problems)
        if not t:
            continue
        where = _where(source, path, node)
        quota = t.get("quota") or {}
        q = _fields(
            quota, ("keys", "bytes", "leases", "watchers", "rps"), source, f"{path}.quota", problems
        )
        name = _str(t, "name", where, problems, need=True)
        prefix = _str(t, "prefix", where, problems, need=True).encode()
        if prefix and not valid_prefix(prefix):
            problems.append(f"{where}: prefix must not be only 0xff bytes")
            continue
        if name and not tenant_names.valid_tenant_name(name):
            problems.append(f"{where}: a tenant's name cannot contain {tenant_names.SEPARATOR!r}")
            continue
        if not name or not prefix:
            continue
        tenants.append(
            Tenant(
                name,
                prefix,
                _int(q, "keys", where, problems),
                _int(q, "bytes", where, problems),
                _names(t.get("admins"), where, "admins", problems),
                _int(q, "leases", where, problems),
                _int(q, "watchers", where, problems),
                _int(q, "rps", where, problems),
            )
        )
    for i, node in enumerate(_list(top.get("roles"), source, "roles", problems)):
        path = f"roles[{i}]"
        r = _fields(node, ("name", "tenant", "permissions"), source, path, problems)
        if not r:
            continue
        where = _where(source, path, node)
        name = _str(r, "name", where, problems, need=True)
        tenant = _str(r, "tenant", where, problems, need=False) or None
        perms = []
        for j, pnode in enumerate(
            _list(r.get("permissions"), source, f"{path}.permissions", problems)
        ):
            perm = _permission(pnode, source, f"{path}.permissions[{j}]", problems)
            if perm is not None:
                if tenant is None and not perm.key:
                    problems.append(f"{where}: a role outside any tenant needs a non-empty key")
                    continue
                perms.append(perm)
        if name:
            roles.append(RoleSpec(name, tenant, tuple(perms)))
    for i, node in enumerate(_list(top.get("users"), source, "users", problems)):
        path = f"users[{i}]"
        u = _fields(node, ("name", "tenant", "roles", "cert_only"), source, path, problems)
        if not u:
            continue
        where = _where(source, path, node)
        name = _str(u, "name", where, problems, need=True)
        tenant = _str(u, "tenant", where, problems, need=False) or None
        cert_only = u.get("cert_only", False)
        if not isinstance(cert_only, bool):
            problems.append(f"{where}: cert_only must be true or false")
        if "password" in u:
            problems.append(f"{where}: a policy never holds a password")
        if name:
            users.append(
                UserSpec(name, tenant, _names(u.get("roles"), where, "roles", problems), cert_only)
            )
    if problems:
        raise PolicyError(problems)
    policy = Policy(tuple(tenants), tuple(roles), tuple(users))
    validate(policy, source=source)
    return policy


def _list(v: Any, source: str, path: str, problems: list[str]) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        problems.append(f"{source}: {path}: expected a list")
        return []
    return v


def merge(policies: Iterable[Policy]) -> Policy:
    """Several files as one policy (validated again as a whole by the caller)."""
    tenants: list[Tenant] = []
    roles: list[RoleSpec] = []
    users: list[UserSpec] = []
    for p in policies:
        tenants.extend(p.tenants)
        roles.extend(p.roles)
        users.extend(p.users)
    return Policy(tuple(tenants), tuple(roles), tuple(users))


def _overlap(a: Permission, b: Permission) -> bool:
    def end(p: Permission) -> bytes | None:
        if not p.range_end:
            return p.key + b"\x00"
        return None if p.range_end == FROM_KEY else p.range_end

    ea, eb = end(a), end(b)
    return (eb is None or a.key < eb) and (ea is None or b.key < ea)


def validate(policy: Policy, *, source: str = "<policy>") -> None:
    """The cross-references of a whole policy; raises `PolicyError`."""
    problems: list[str] = []
    tenants = {}
    for t in policy.tenants:
        if t.name in tenants:
            problems.append(f"{source}: tenant {t.name!r} is declared twice")
        if not tenant_names.valid_tenant_name(t.name):
            problems.append(f"{source}: tenant {t.name!r}: its name cannot contain '@'")
        tenants[t.name] = t
    ts = sorted(policy.tenants, key=lambda t: t.prefix)
    for a, b in itertools.pairwise(ts):
        if b.prefix.startswith(a.prefix):
            problems.append(
                f"{source}: tenants {a.name!r} and {b.name!r} have overlapping prefixes"
            )
    roles = {}
    for r in policy.roles:
        if r.name in roles:
            problems.append(f"{source}: role {r.name!r} is declared twice")
        if r.name == ROOT_ROLE:
            problems.append(f"{source}: the root role is outside policies")
        roles[r.name] = r
        if r.tenant is not None and r.tenant not in tenants:
            problems.append(f"{source}: role {r.name!r}: unknown tenant {r.tenant!r}")
        perms = sorted(r.permissions, key=lambda p: (p.key, p.range_end))
        for i, pa in enumerate(perms):
            for pb in perms[i + 1 :]:
                if _overlap(pa, pb):
                    problems.append(
                        f"{source}: role {r.name!r}: overlapping ranges {_show(pa)} and {_show(pb)}"
                    )
    users = {}
    for u in policy.users:
        if u.name in users:
            problems.append(f"{source}: user {u.name!r} is declared twice")
        if u.name == ROOT_USER:
            problems.append(f"{source}: the root user is outside policies")
        users[u.name] = u
        if u.tenant is not None and u.tenant not in tenants:
            problems.append(f"{source}: user {u.name!r}: unknown tenant {u.tenant!r}")
        for role in u.roles:
            spec = roles.get(role)
            if spec is None:
                problems.append(f"{source}: user {u.name!r}: unknown role {role!r}")
            elif spec.tenant != u.tenant:
                problems.append(
                    f"{source}: user {u.name!r}: role {role!r} belongs to another tenant"
                )
    for t in policy.tenants:
        for admin in t.admins:
            if admin not in users or users[admin].tenant != t.name:
                problems.append(
                    f"{source}: tenant {t.name!r}: admin {admin!r} is not a user of the tenant"
                )
    if problems:
        raise PolicyError(problems)


def _show(p: Permission) -> str:
    end = "from-key" if p.range_end == FROM_KEY else repr(p.range_end.decode(errors="replace"))
    return f"[{p.key.decode(errors='replace')!r}, {end})"


# --- the live tables and the plan -----------------------------------------------------------


@dataclass(slots=True)
class AuthState:
    """The live tables a plan is computed against (absolute keys; tenant of each object)."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    role_tenants: dict[str, str] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    user_tenants: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan. `op` is one of put_tenant, delete_tenant, put_role, delete_role,
    put_user, delete_user; `value` the object to store (None for deletes), `tenant` the tenant
    the role or user belongs to; `text` what `--dry-run` prints."""

    op: str
    name: str
    text: str
    value: Tenant | Role | User | None = None
    tenant: str | None = None


def absolute(tenant: Tenant | None, perm: Permission) -> Permission:
    """A tenant role's permission in absolute keys."""
    if tenant is None:
        return perm
    ns = tenant.namespace
    return Permission(perm.perm_type, ns.key(perm.key), ns.range_end(perm.range_end))


def relative(tenant: Tenant | None, perm: Permission) -> Permission:
    """The inverse of `absolute` (for export and for tenant admins reading their roles)."""
    if tenant is None:
        return perm
    ns = tenant.namespace
    return Permission(perm.perm_type, ns.strip(perm.key), ns.strip_end(perm.range_end))


def _quotas(t: Tenant) -> str:
    named = {
        "keys": t.quota_keys,
        "bytes": t.quota_bytes,
        "leases": t.quota_leases,
        "watchers": t.quota_watchers,
        "rps": t.quota_rps,
    }
    return ", ".join(f"{k}<={v}" for k, v in named.items() if v) or "none"


def plan(state: AuthState, policy: Policy, *, prune: bool = False) -> list[Change]:
    """What to change so the tables hold the policy; raises `PolicyError` when the result would
    be inconsistent with what the policy leaves alone (overlapping tenant prefixes, references
    to objects that do not exist)."""
    changes: list[Change] = []
    problems: list[str] = []
    tenants = dict(state.tenants)
    for t in policy.tenants:
        old = state.tenants.get(t.name)
        if old != t:
            what = "create" if old is None else "update"
            changes.append(
                Change(
                    "put_tenant",
                    t.name,
                    f"{what} tenant {t.name} (prefix {t.prefix!r}, quotas {_quotas(t)},"
                    f" admins {list(t.admins)})",
                    t,
                )
            )
        tenants[t.name] = t
    named_tenants = {t.name for t in policy.tenants}
    if prune:
        for name in sorted(state.tenants):
            if name not in named_tenants:
                changes.append(Change("delete_tenant", name, f"delete tenant {name}"))
                del tenants[name]
    others = sorted(tenants.values(), key=lambda t: t.prefix)
    for a, b in itertools.pairwise(others):
        if b.prefix.startswith(a.prefix):
            problems.append(f"tenants {a.name!r} and {b.name!r} would have overlapping prefixes")
    role_tenants = dict(state.role_tenants)
    roles = set(state.roles)
    for r in policy.roles:
        tenant = tenants.get(r.tenant) if r.tenant is not None else None
        if r.tenant is not None and tenant is None:
            problems.append(f"role {r.name!r}: unknown tenant {r.tenant!r}")
            continue
        want_role = Role(r.name, tuple(absolute(tenant, p) for p in r.permissions))
        old_role = state.roles.get(r.name)
        if old_role != want_role or state.role_tenants.get(r.name) != r.tenant:
            what = "create" if old_role is None else "update"
            shown = ", ".join(f"{_TYPE_NAMES[p.perm_type]} {_show(p)}" for p in r.permissions)
            where = f" in tenant {r.tenant}" if r.tenant else ""
            changes.append(
                Change(
                    "put_role", r.name, f"{what} role {r.name}{where}: {shown}", want_role, r.tenant
                )
            )
        roles.add(r.name)
        if r.tenant is None:
            role_tenants.pop(r.name, None)
        else:
            role_tenants[r.name] = r.tenant
    named_roles = {r.name for r in policy.roles}
    if prune:
        for name in sorted(state.roles):
            if name not in named_roles and name != ROOT_ROLE:
                changes.append(Change("delete_role", name, f"delete role {name}"))
                roles.discard(name)
    for u in policy.users:
        if u.tenant is not None and u.tenant not in tenants:
            problems.append(f"user {u.name!r}: unknown tenant {u.tenant!r}")
            continue
        for role in u.roles:
            if role not in roles:
                problems.append(f"user {u.name!r}: unknown role {role!r}")
            elif role_tenants.get(role) != u.tenant:
                problems.append(f"user {u.name!r}: role {role!r} belongs to another tenant")
        old_user = state.users.get(u.name)
        if old_user is None:
            want_user = User(u.name, None, u.roles, no_password=u.cert_only)
        else:
            # The password stays as it is (a policy never carries one); a certificate-only
            # user has none, as etcd's no-password users.
            kept = None if u.cert_only else old_user.password_hash
            want_user = User(u.name, kept, u.roles, no_password=u.cert_only)
        if old_user != want_user or state.user_tenants.get(u.name) != u.tenant:
            what = "create" if old_user is None else "update"
            where = f" in tenant {u.tenant}" if u.tenant else ""
            changes.append(
                Change(
                    "put_user",
                    u.name,
                    f"{what} user {u.name}{where}: roles {list(want_user.roles)}"
                    + (" (certificate only)" if u.cert_only else ""),
                    want_user,
                    u.tenant,
                )
            )
    named_users = {u.name for u in policy.users}
    user_tenants: dict[str, str | None] = {n: state.user_tenants.get(n) for n in state.users}
    for u in policy.users:
        user_tenants[u.name] = u.tenant
    if prune:
        for name in sorted(state.users):
            if name not in named_users and name != ROOT_USER:
                changes.append(Change("delete_user", name, f"delete user {name}"))
                del user_tenants[name]
    role_owner: dict[str, str | None] = {n: role_tenants.get(n) for n in roles}
    problems += _name_problems("user", user_tenants, tenants)
    problems += _name_problems("role", role_owner, tenants)
    if problems:
        raise PolicyError(problems)
    return changes


def _name_problems(
    what: str, owners: dict[str, str | None], tenants: Mapping[str, Tenant]
) -> list[str]:
    """What would break tenants' namespaces (`auth.tenant_names`): a name in a tenant's
    namespace held outside it, or two names a tenant's members would see as one."""
    problems = []
    seen: dict[tuple[str, str], str] = {}
    for name, owner in sorted(owners.items()):
        reserved = tenant_names.reserved_by(name, tenants)
        if reserved is not None and reserved != owner:
            problems.append(f"{what} {name!r}: the name is reserved for tenant {reserved!r}")
        if owner is None:
            continue
        shown = tenant_names.shown(owner, name)
        other = seen.setdefault((owner, shown), name)
        if other != name:
            problems.append(
                f"{what}s {other!r} and {name!r} would both be {shown!r} in tenant {owner!r}"
            )
    return problems


def export(state: AuthState) -> Policy:
    """The live tables as a policy (root left out) that `plan` turns back into the same state."""
    tenants = tuple(state.tenants.values())
    roles = []
    for name, role in sorted(state.roles.items()):
        if name == ROOT_ROLE:
            continue
        tname = state.role_tenants.get(name)
        tenant = state.tenants.get(tname) if tname else None
        roles.append(RoleSpec(name, tname, tuple(relative(tenant, p) for p in role.permissions)))
    users = [
        UserSpec(name, state.user_tenants.get(name), user.roles, user.no_password)
        for name, user in sorted(state.users.items())
        if name != ROOT_USER
    ]
    return Policy(tenants, tuple(roles), tuple(users))


def to_data(policy: Policy) -> dict[str, Any]:
    """A policy as plain data for a TOML or YAML file (keys as text)."""

    def perm(p: Permission) -> dict[str, Any]:
        out: dict[str, Any] = {"type": _TYPE_NAMES[p.perm_type], "key": p.key.decode()}
        if p.range_end == FROM_KEY:
            out["from_key" if p.key else "prefix"] = True
        elif p.range_end and p.range_end == prefix_end(p.key):
            out["prefix"] = True
        elif p.range_end:
            out["range_end"] = p.range_end.decode()
        return out

    data: dict[str, Any] = {}
    if policy.tenants:
        data["tenants"] = [
            {
                "name": t.name,
                "prefix": t.prefix.decode(),
                "quota": {
                    "keys": t.quota_keys,
                    "bytes": t.quota_bytes,
                    "leases": t.quota_leases,
                    "watchers": t.quota_watchers,
                    "rps": t.quota_rps,
                },
                "admins": list(t.admins),
            }
            for t in policy.tenants
        ]
    if policy.roles:
        data["roles"] = [
            {"name": r.name, "permissions": [perm(p) for p in r.permissions]}
            | ({"tenant": r.tenant} if r.tenant else {})
            for r in policy.roles
        ]
    if policy.users:
        data["users"] = [
            {"name": u.name, "roles": list(u.roles), "cert_only": u.cert_only}
            | ({"tenant": u.tenant} if u.tenant else {})
            for u in policy.users
        ]
    return data


__all__ = [
    "AuthState",
    "Change",
    "Namespace",
    "Policy",
    "PolicyError",
    "RoleSpec",
    "UserSpec",
    "export",
    "merge",
    "parse",
    "plan",
    "to_data",
    "validate",
]
