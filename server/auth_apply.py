"""Auth on the apply path: every committed entry is checked, and auth entries change the tables.

Runs on every member for every entry, inside the lmdb write transaction that applies it, so a
permission change is in force on a member exactly from the entry that made it: a write proposed
under the old rules but applied after the change is refused ("etcdserver: revision of auth store
is old"), on every member alike, and nothing is acknowledged before it is applied. The checks are
`server.access.Checker`'s, with the user and auth revision the entry's header carries (set by the
member that received the request, from the caller's token).

Entries no client can send as such (lease expiry, membership attributes, key publication) and
alarms (checked where they arrive, because the member raises the space alarm itself) pass.
The same checks run whatever the member's state (alarms raised, learner, catching up), because
there is only this one apply path (SECURITY 7).

Refusals here are counted but not written to the audit log: only the member that received the
request knows who sent it (certificate, address), and it writes the line (`server.denials`, with
the checks of `ENTRY_CHECKS`). Applied auth and policy changes are written by every member, with
who sent them (the entry's header carries the sender's address and CN for these).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lmdb

from auth.commands import (
    AuthCommand,
    AuthDisable,
    AuthEnable,
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
from auth.errors import AuthError, PermissionNotGiven
from auth.jwt_tokens import PublishedKey
from auth.model import Permission, PermissionType
from auth.tokens import SignMethod
from server import errors
from server.access import Access, Checker, info_from_header
from server.apply import Applier, HeaderInfo
from server.errors import from_auth
from server.storage.authdb import name_fits
from server.storage.mvcc import KVStore, KVWriter
from server.tenant_apply import (
    PolicyApplier,
    QuotaObserver,
    TenantAuthHooks,
    check_auth_change,
    header_fn,
    lease_quota,
)
from server.wire import field_message
from wardpb.peerpb import peer_pb2

# Entry kinds that change the auth tables; all but key publication need an admin.
AUTH_KINDS = (
    "auth_enable",
    "auth_disable",
    "auth_user_add",
    "auth_user_delete",
    "auth_user_change_password",
    "auth_user_grant_role",
    "auth_user_revoke_role",
    "auth_role_add",
    "auth_role_delete",
    "auth_role_grant_permission",
    "auth_role_revoke_permission",
)


def _command(kind: str, r: Any) -> AuthCommand:
    """The auth core's command for an auth entry's request."""
    if kind == "auth_enable":
        return AuthEnable()
    if kind == "auth_disable":
        return AuthDisable()
    if kind == "auth_user_add":
        _names(r.name)
        if not r.no_password and not r.password_hash:
            # Only a member's propose side makes these, always with a hash: refuse rather
            # than create a user nobody can log in as.
            raise errors.MALFORMED_AUTH_ENTRY
        return UserAdd(r.name, None if r.no_password else r.password_hash, r.no_password)
    if kind == "auth_user_delete":
        return UserDelete(r.name)
    if kind == "auth_user_change_password":
        return UserChangePassword(r.name, r.password_hash)
    if kind == "auth_user_grant_role":
        _names(r.user, r.role)
        return UserGrantRole(r.user, r.role)
    if kind == "auth_user_revoke_role":
        return UserRevokeRole(r.name, r.role)
    if kind == "auth_role_add":
        _names(r.name)
        return RoleAdd(r.name)
    if kind == "auth_role_delete":
        return RoleDelete(r.role)
    if kind == "auth_role_grant_permission":
        if not r.HasField("perm"):
            raise PermissionNotGiven()
        p = r.perm
        return RoleGrantPermission(
            r.name, Permission(PermissionType(p.permType), p.key, p.range_end)
        )
    if kind == "auth_role_revoke_permission":
        return RoleRevokePermission(r.role, r.key, r.range_end)
    raise ValueError(f"not an auth entry: {kind}")


def _names(*names: str) -> None:
    for name in names:
        if not name_fits(name):
            raise errors.NAME_TOO_LONG


EntryCheck = Callable[[Checker, Any], None]


def _entry_checks() -> dict[str, EntryCheck]:
    checks: dict[str, EntryCheck] = {
        "put": lambda chk, r: chk.put(r),
        "delete_range": lambda chk, r: chk.delete(r),
        "txn": lambda chk, r: chk.txn(r),
        "compaction": lambda chk, r: chk.compact(),
        "lease_grant": lambda chk, r: chk.user(),
        "lease_revoke": lambda chk, r: chk.lease_revoke(r.ID),
        # Policies change tenants and every table at once: root only.
        "policy_apply": lambda chk, r: chk.admin(),
    }

    def auth_change(kind: str) -> EntryCheck:
        # Root, or a tenant's delegated admin inside its tenant (server.tenant_apply).
        return lambda chk, r: check_auth_change(chk, kind, r)

    for kind in AUTH_KINDS:
        checks.setdefault(kind, auth_change(kind))
    return checks


# The check of every entry kind a client's request becomes (kinds not here pass).
ENTRY_CHECKS = _entry_checks()


class AuthApplier:
    """Checks every entry before it applies, and applies the auth entries (see the module
    docstring). `install` hooks it into an `Applier`."""

    def __init__(self, access: Access, kv: KVStore, header: HeaderInfo) -> None:
        self._access = access
        self._kv = kv
        self._header = header
        self._checks = ENTRY_CHECKS
        self._tenants = TenantAuthHooks(access)
        self.policy = PolicyApplier(access, kv, header_fn(header))
        self.quota = QuotaObserver(access, kv)
        # The caller of the entry being applied (its header's user), for the auth hooks, and
        # where it sent it from (auth and policy entries only), for the audit log.
        self._caller = ""
        self._who: dict[str, str] = {}

    def install(self, applier: Applier) -> None:
        applier.guard = self.check
        for kind in AUTH_KINDS:
            applier.register(kind, self._apply_command(kind))
        applier.register("auth_publish_key", self._publish_key)
        applier.register("policy_apply", self._policy_apply)
        grant = lease_quota(
            self._access, applier.handler("lease_grant"), applier.lease_exists, lambda: self._caller
        )
        applier.register("lease_grant", grant)
        self._kv.observer = self.quota

    def check(
        self, txn: lmdb.Transaction, header: peer_pb2.RequestHeader, kind: str, request: Any
    ) -> None:
        """Raise etcd's error if the entry's caller may not do what it asks."""
        self._caller = header.username
        self._who = {"cn": header.common_name, "client": header.client}
        check = self._checks.get(kind)
        if check is None:
            return
        with self._access.checker(txn, info_from_header(header), audited=False) as chk:
            check(chk, request)

    def _apply_command(self, kind: str) -> Callable[[lmdb.Transaction, KVWriter, Any], bytes]:
        def apply(txn: lmdb.Transaction, w: KVWriter, r: Any) -> bytes:
            caller = self._caller
            try:
                command = _command(kind, r)
                with self._access.db.bound(txn):
                    command, tenant = self._tenants.before(command, caller)
                    self._access.store.apply(command)
                    self._tenants.after(command, tenant)
                    revision = self._access.db.get_revision()
            except AuthError as e:
                raise from_auth(e) from None
            audit = self._access.audit
            if audit is not None:
                # Names only (as stored): the command's repr leaves out password hashes.
                audit(
                    "auth_change",
                    user=caller,
                    **self._who,
                    kind=kind,
                    change=repr(command),
                    revision=revision,
                )
            return field_message(1, self._header.header(w.revision))

        return apply

    def _policy_apply(self, txn: lmdb.Transaction, w: KVWriter, r: peer_pb2.PolicyApply) -> bytes:
        self.policy.audit = self._access.audit
        return self.policy.apply(txn, w, r, self._caller, self._who)

    def _publish_key(self, txn: lmdb.Transaction, w: KVWriter, r: peer_pb2.AuthPublishKey) -> bytes:
        try:
            method = SignMethod(r.sign_method)
        except ValueError:
            raise errors.MALFORMED_AUTH_ENTRY from None
        with self._access.db.bound(txn):
            # A kid names one key (it is a digest of it), so a second record is the same key.
            if not self._access.db.has_key(r.kid):
                self._access.db.put_key(PublishedKey(r.kid, method, r.public_pem))
        return b""
