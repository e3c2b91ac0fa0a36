"""Tenants on the apply path: policies applied whole, delegated admins, and quotas.

Runs on every member for every entry, inside the write transaction that applies it, reading
nothing but that transaction, so every member reaches the same tables and the same verdicts:

- **Policies** (`wardpeerpb.PolicyApply`, root only): the member computes the plan from its own
  tables (`auth.policy.plan`) and applies every change of it in the entry's child transaction,
  with one auth revision bump: all of it, on every member at the same log index, or nothing.
- **Delegated admins**: a tenant's admins may manage the users and roles of their tenant only
  (`check_auth_change`): the names they give are relative to their tenant (`auth.tenant_names`),
  so they cannot name another's; a user or role they add belongs to their tenant, and the
  permissions they grant or revoke are relative to the tenant's prefix (`TenantAuthHooks`).
  Names in a tenant's namespace are refused to everyone else (`reserved_name`).
- **Quotas** (`QuotaObserver`, told of every key change): each tenant's live keys and their key
  and value bytes are counted in the auth tables; a change that takes a tenant past a quota fails
  its entry (rolled back), whoever sent it, and only that tenant's writes are refused.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from typing import Any

import grpc
import lmdb

from auth import tenant_names
from auth.commands import (
    AuthCommand,
    RoleAdd,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
    UserAdd,
    UserChangePassword,
    UserDelete,
    UserGrantRole,
    UserRevokeRole,
)
from auth.errors import AuthError
from auth.policy import AuthState, Change, Policy, PolicyError, absolute, plan
from auth.tenants import Tenant, Usage
from server import errors
from server.access import Access, Checker
from server.errors import EtcdError, from_auth
from server.storage.authdb import LmdbAuthBackend, name_fits
from server.storage.mvcc import Item, KVStore, KVWriter
from server.wire import field_message
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2
from wardpb.policypb import policy_pb2

TENANT_KEY_QUOTA = EtcdError(
    grpc.StatusCode.RESOURCE_EXHAUSTED, "ward: tenant quota exceeded: too many keys"
)
TENANT_BYTE_QUOTA = EtcdError(
    grpc.StatusCode.RESOURCE_EXHAUSTED, "ward: tenant quota exceeded: too many bytes"
)
TENANT_LEASE_QUOTA = EtcdError(
    grpc.StatusCode.RESOURCE_EXHAUSTED, "ward: tenant quota exceeded: too many leases"
)


def reserved_name(name: str, tenant: str) -> EtcdError:
    """A user or role outside `tenant` cannot take a name of its namespace (auth.tenant_names):
    only root meets this (a tenant's members name inside their own)."""
    return EtcdError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"ward: the name {name!r} is reserved for tenant {tenant!r}"
        f" (names ending in {tenant_names.SEPARATOR}{tenant})",
    )


def check_reserved(db: LmdbAuthBackend, name: str) -> None:
    """Refuse a name outside every tenant that lies in a tenant's namespace."""
    tenant = tenant_names.reserved_by(name, (t.name for t in db.list_tenants()))
    if tenant is not None:
        raise reserved_name(name, tenant)


def invalid_policy(problems: list[str]) -> EtcdError:
    message = "ward: invalid policy: " + "; ".join(problems)
    return EtcdError(grpc.StatusCode.INVALID_ARGUMENT, message)


def load_state(db: LmdbAuthBackend) -> AuthState:
    """The live tables as `auth.policy` sees them (through the transaction bound to `db`)."""
    state = AuthState()
    for t in db.list_tenants():
        state.tenants[t.name] = t
    for r in db.list_roles():
        state.roles[r.name] = r
        tenant = db.role_tenant(r.name)
        if tenant is not None:
            state.role_tenants[r.name] = tenant
    for u in db.list_users():
        state.users[u.name] = u
        tenant = db.user_tenant(u.name)
        if tenant is not None:
            state.user_tenants[u.name] = tenant
    return state


def tenant_usage(kv: KVStore, txn: lmdb.Transaction, tenant: Tenant) -> Usage:
    """Count what lives under a tenant's prefix now (once, when the tenant is created)."""
    ns = tenant.namespace
    items = kv.range_current(txn, ns.prefix, ns.end)
    return Usage(len(items), sum(len(it.key) + len(kv.value(txn, it)) for it in items))


# --- delegated administration ---


def check_auth_change(chk: Checker, kind: str, r: Any) -> None:
    """The caller may make this auth change: root anywhere, a tenant admin inside its tenant.

    A tenant admin's names are relative to its tenant (`auth.tenant_names`): a user or role of
    another tenant, or of none, is one it cannot even name, so what it asks about it gets the
    answer for one that does not exist, where the change applies. Enabling and disabling auth
    stay root's.
    """
    if not chk.enabled:
        return
    tenant = chk.tenant_admin()
    if tenant is None:
        if kind == "auth_user_change_password":
            chk.self_or_admin(chk.user_name(r.name))
        else:
            chk.admin()
        return
    if kind in ("auth_enable", "auth_disable"):
        chk.admin()  # refused (a tenant user is never a cluster admin), and audited


class TenantAuthHooks:
    """What tenants add around an auth command as it applies (see the module docstring)."""

    def __init__(self, access: Access) -> None:
        self._access = access

    def before(self, command: AuthCommand, caller: str | None) -> tuple[AuthCommand, Tenant | None]:
        """The command as it applies (a tenant member's names resolved in its tenant, a tenant
        admin's keys made absolute), and the tenant the caller administers, if any."""
        db = self._access.db
        tenant = member_of = None
        if caller and db.get_enabled():
            tname = db.user_tenant(caller)
            member_of = db.get_tenant(tname) if tname is not None else None
            if member_of is not None and caller in member_of.admins:
                tenant = member_of
        if member_of is not None:
            command = _names_in(db, member_of.name, command)
        elif isinstance(command, (UserAdd, RoleAdd)):
            # Root: a name in a tenant's namespace is that tenant's to give.
            check_reserved(db, command.name)
        if tenant is not None:
            if isinstance(command, RoleGrantPermission):
                command = RoleGrantPermission(command.name, absolute(tenant, command.permission))
            elif isinstance(command, RoleRevokePermission):
                ns = tenant.namespace
                command = RoleRevokePermission(
                    command.role, ns.key(command.key), ns.range_end(command.range_end)
                )
        return command, tenant

    def after(self, command: AuthCommand, tenant: Tenant | None) -> None:
        db = self._access.db
        if isinstance(command, UserAdd) and tenant is not None:
            db.set_user_tenant(command.name, tenant.name)
        elif isinstance(command, RoleAdd) and tenant is not None:
            db.set_role_tenant(command.name, tenant.name)
        elif isinstance(command, UserDelete):
            # The mapping goes with the user: a user of that name added later starts afresh.
            db.set_user_tenant(command.name, None)
        elif isinstance(command, RoleDelete):
            db.set_role_tenant(command.role, None)


_USER_FIELDS = {
    UserAdd: ("name",),
    UserDelete: ("name",),
    UserChangePassword: ("name",),
    UserGrantRole: ("user",),
    UserRevokeRole: ("name",),
}
_ROLE_FIELDS = {
    UserGrantRole: ("role",),
    UserRevokeRole: ("role",),
    RoleAdd: ("name",),
    RoleDelete: ("role",),
    RoleGrantPermission: ("name",),
    RoleRevokePermission: ("role",),
}


def _names_in(db: LmdbAuthBackend, tenant: str, command: AuthCommand) -> AuthCommand:
    """`command` with a tenant member's user and role names resolved in its tenant."""
    changes: dict[str, str] = {}
    for f in _USER_FIELDS.get(type(command), ()):
        changes[f] = tenant_names.user_name(db, tenant, getattr(command, f))
    for f in _ROLE_FIELDS.get(type(command), ()):
        changes[f] = tenant_names.role_name(db, tenant, getattr(command, f))
    for name in changes.values():
        if not name_fits(name):
            raise errors.NAME_TOO_LONG
    return dataclasses.replace(command, **changes) if changes else command  # type: ignore[arg-type]


# --- quotas ---


class QuotaObserver:
    """Counts each tenant's keys and bytes as keys change, and refuses a change past a quota.

    The tenants are read from the applying transaction and kept for one auth revision (every
    tenant change bumps it), so a change without tenants costs one lmdb get.
    """

    def __init__(self, access: Access, kv: KVStore) -> None:
        self._db = access.db
        self._kv = kv
        self._revision = -1
        self._prefixes: list[bytes] = []
        self._tenants: list[Tenant] = []

    def reset(self) -> None:
        self._revision = -1

    def _tenant(self, key: bytes) -> Tenant | None:
        revision = self._db.get_revision()
        if revision != self._revision:
            tenants = sorted(self._db.list_tenants(), key=lambda t: t.prefix)
            self._tenants = tenants
            self._prefixes = [t.prefix for t in tenants]
            self._revision = revision
        if not self._prefixes:
            return None
        # Prefixes never overlap, so only the greatest one not after the key can hold it.
        i = bisect.bisect_right(self._prefixes, key) - 1
        if i >= 0 and key.startswith(self._prefixes[i]):
            return self._tenants[i]
        return None

    def put(self, txn: lmdb.Transaction, key: bytes, value: bytes, prev: Item | None) -> None:
        # bind/unbind rather than `bound`: this runs for every key written.
        previous = self._db.bind(txn)
        try:
            self._put(txn, key, value, prev)
        finally:
            self._db.unbind(previous)

    def _put(self, txn: lmdb.Transaction, key: bytes, value: bytes, prev: Item | None) -> None:
        tenant = self._tenant(key)
        if tenant is None:
            return
        usage = self._db.get_usage(tenant.name)
        old = len(key) + len(self._kv.value(txn, prev)) if prev is not None else 0
        keys = usage.keys + (0 if prev is not None else 1)
        size = usage.bytes - old + len(key) + len(value)
        if prev is None and tenant.quota_keys and keys > tenant.quota_keys:
            raise TENANT_KEY_QUOTA
        if size > usage.bytes and tenant.quota_bytes and size > tenant.quota_bytes:
            raise TENANT_BYTE_QUOTA
        self._db.put_usage(tenant.name, Usage(keys, max(size, 0)))

    def deleted(self, txn: lmdb.Transaction, item: Item) -> None:
        with self._db.bound(txn):
            tenant = self._tenant(item.key)
            if tenant is None:
                return
            usage = self._db.get_usage(tenant.name)
            size = len(item.key) + len(self._kv.value(txn, item))
            self._db.put_usage(
                tenant.name, Usage(max(usage.keys - 1, 0), max(usage.bytes - size, 0))
            )


def lease_quota(
    access: Access,
    grant: Callable[[lmdb.Transaction, KVWriter, Any], bytes],
    lease_exists: Callable[[lmdb.Transaction, int], bool],
    caller: Callable[[], str],
) -> Callable[[lmdb.Transaction, KVWriter, Any], bytes]:
    """`grant` (the lease_grant handler) holding a tenant user's tenant to its lease quota.

    The tenant's leases are recorded as they are granted; those revoked or expired since are
    forgotten when the next grant counts them (at most the quota of them), so nothing else on
    the apply path needs to know about tenants.
    """
    db = access.db

    def apply(txn: lmdb.Transaction, w: KVWriter, r: Any) -> bytes:
        name = caller()
        with db.bound(txn):
            tname = db.user_tenant(name) if name else None
            tenant = db.get_tenant(tname) if tname is not None else None
            if tenant is None or not tenant.quota_leases:
                return grant(txn, w, r)
            held = 0
            for lease in db.tenant_leases(tenant.name):
                if lease_exists(txn, lease):
                    held += 1
                else:
                    db.set_tenant_lease(tenant.name, lease, False)
            if held >= tenant.quota_leases:
                raise TENANT_LEASE_QUOTA
            resp = grant(txn, w, r)
            granted = rpc_pb2.LeaseGrantResponse.FromString(resp).ID
            db.set_tenant_lease(tenant.name, granted, True)
            return resp

    return apply


# --- policies ---


class PolicyApplier:
    """Applies `policy_apply` entries (see the module docstring)."""

    def __init__(
        self,
        access: Access,
        kv: KVStore,
        header: Callable[[int], bytes],
        audit: Callable[..., None] | None = None,
    ) -> None:
        self._access = access
        self._kv = kv
        self._header = header
        self.audit = audit

    def plan(self, txn: lmdb.Transaction, document: bytes, *, prune: bool) -> list[Change]:
        """The plan of a policy against the tables `txn` sees (a dry run reads it too)."""
        try:
            policy = Policy.from_json(document)
            with self._access.db.bound(txn):
                return plan(load_state(self._access.db), policy, prune=prune)
        except PolicyError as e:
            raise invalid_policy(e.problems) from None

    def apply(
        self,
        txn: lmdb.Transaction,
        w: KVWriter,
        r: peer_pb2.PolicyApply,
        caller: str = "",
        who: dict[str, str] | None = None,
    ) -> bytes:
        """Apply a policy entry; `who` is its sender's client address and CN (audit log)."""
        changes = self.plan(txn, r.document, prune=r.prune)
        db = self._access.db
        with db.bound(txn):
            try:
                for change in changes:
                    self._execute(txn, db, change)
            except AuthError as e:
                raise from_auth(e) from None
            if changes:
                db.set_revision(db.get_revision() + 1)
                # Permissions and tokens above the tables are keyed on the revision just bumped;
                # a deleted user's simple tokens go at once.
                self._access.store.reload()
                for change in changes:
                    if change.op == "delete_user":
                        self._access.store.tokens.invalidate_user(change.name)
            revision = db.get_revision()
        if self.audit is not None:
            for change in changes:
                self.audit(
                    "policy_change",
                    user=caller,
                    **(who or {}),
                    change=change.text,
                    revision=revision,
                )
        return policy_pb2.PolicyApplyResponse(
            changes=[c.text for c in changes], auth_revision=revision, applied=True
        ).SerializeToString()

    def _execute(self, txn: lmdb.Transaction, db: LmdbAuthBackend, change: Change) -> None:
        if change.op == "put_tenant":
            assert isinstance(change.value, Tenant)
            old = db.get_tenant(change.name)
            db.put_tenant(change.value)
            if old is None or old.prefix != change.value.prefix:
                db.put_usage(change.name, tenant_usage(self._kv, txn, change.value))
        elif change.op == "delete_tenant":
            db.delete_tenant(change.name)
        elif change.op == "put_role":
            db.put_role(change.value)  # type: ignore[arg-type]
            db.set_role_tenant(change.name, change.tenant)
        elif change.op == "delete_role":
            for user in db.list_users():
                if user.has_role(change.name):
                    roles = tuple(x for x in user.roles if x != change.name)
                    db.put_user(type(user)(user.name, user.password_hash, roles, user.no_password))
            db.delete_role(change.name)
            db.set_role_tenant(change.name, None)
        elif change.op == "put_user":
            db.put_user(change.value)  # type: ignore[arg-type]
            db.set_user_tenant(change.name, change.tenant)
        elif change.op == "delete_user":
            db.delete_user(change.name)
            db.set_user_tenant(change.name, None)
        else:
            raise ValueError(f"unknown change {change.op}")


def header_fn(header: Any) -> Callable[[int], bytes]:
    """A response header encoder from a `HeaderInfo` (its `header(revision)`)."""
    return lambda rev: field_message(1, header.header(rev))
