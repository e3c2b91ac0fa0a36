"""Tenant-relative user and role names: each tenant names its users and roles in its own namespace.

A tenant's members (its delegated admins above all) name users and roles relative to their
tenant. Inside tenant ``T``, a name ``N`` means

- the user (role) ``N`` itself when it belongs to ``T`` (root named it so in a policy);
- otherwise ``N@T``: what ``T``'s admins add is stored under that name, which is also what such a
  user logs in as (a password, or a certificate whose CN is ``N@T``).

Nothing outside ``T`` can be named ``...@T``: root's adds of such names are refused, a policy
cannot create one outside ``T`` (nor a tenant whose suffix an existing name outside it already
ends with), and tenant names contain no ``@``, so no two tenants' suffixes nest. A name a tenant
member gives therefore resolves to one of its tenant's users or roles, or to one that does not
exist; never to another tenant's or a global one. So asking about a foreign name gets exactly
the answer for a missing one ("user name not found"), and adding a name that exists elsewhere
creates the tenant's own, without a clash that would tell it apart.

Within ``T``, names shown (`shown`) are unique: a policy cannot give ``T`` both ``N`` and
``N@T``, and ``T``'s admins cannot add ``N`` when ``T`` has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

SEPARATOR = "@"


class TenantTables(Protocol):
    """Which tenant a user or role belongs to (None: none); `server.storage.authdb` has them."""

    def user_tenant(self, user: str) -> str | None: ...

    def role_tenant(self, role: str) -> str | None: ...


def qualified(tenant: str, name: str) -> str:
    """The stored name of `name` in `tenant`'s own namespace ("" stays "": etcd's empty name)."""
    return f"{name}{SEPARATOR}{tenant}" if name else ""


def shown(tenant: str, name: str) -> str:
    """How a member of `tenant` sees one of its tenant's users or roles."""
    suffix = SEPARATOR + tenant
    if name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return name


def user_name(tables: TenantTables, tenant: str, name: str) -> str:
    """The stored user a member of `tenant` means by `name` (which need not exist)."""
    if name and shown(tenant, name) == name and tables.user_tenant(name) == tenant:
        return name
    return qualified(tenant, name)


def role_name(tables: TenantTables, tenant: str, name: str) -> str:
    """The stored role a member of `tenant` means by `name` (which need not exist)."""
    if name and shown(tenant, name) == name and tables.role_tenant(name) == tenant:
        return name
    return qualified(tenant, name)


def reserved_by(name: str, tenants: Iterable[str]) -> str | None:
    """The tenant among `tenants` whose namespace `name` lies in, if any."""
    for tenant in tenants:
        if shown(tenant, name) != name:
            return tenant
    return None


def valid_tenant_name(name: str) -> bool:
    """A tenant's name carries no separator, so no tenant's suffix ends another's."""
    return bool(name) and SEPARATOR not in name
