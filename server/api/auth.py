"""The Auth service: users, roles, permissions, enabling auth, and Authenticate.

Served by the core process (workers forward its calls). Changes become replicated entries; the
apply path checks the caller again and applies them (`server.auth_apply`), so the rules hold on
every member. Reads (UserGet, RoleGet, the lists, AuthStatus) answer from the local tables.

A password is hashed here, on the member that received it and off the event loop, before
anything is proposed: the log carries only the argon2id hash (SECURITY 11). Callers are checked
before any hashing, so a stranger cannot make the member burn CPU on hashes that will be refused.
A password never reaches a log line or an error message (SECURITY 12).

Beyond etcd: a user may change their own password; failed Authenticate calls are rate-limited
per user name and per client address (`auth.ratelimit`).

Tenants: a tenant's members name users and roles relative to their tenant (`auth.tenant_names`),
here and where changes apply, and see only their tenant's (lists, a user's roles). A tenant
admin asking about a user or role of another tenant, or of none, is asking about a name of its
own namespace that does not exist, and gets exactly that answer ("user name not found").
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from functools import partial

from auth import errors as auth_errors
from auth.errors import AuthError
from auth.model import Permission, PermissionType
from auth.policy import relative
from auth.ranges import is_valid_permission_range
from auth.tenants import Tenant
from server import errors
from server.access import Access, Checker, client_address, request_header, who
from server.api.rpc import CallInfo, Unary
from server.auth_metrics import ALLOWED, DECISIONS, DENIED
from server.errors import from_auth
from server.state import (
    ENTRY_AUTH_DISABLE,
    ENTRY_AUTH_ENABLE,
    ENTRY_AUTH_ROLE_ADD,
    ENTRY_AUTH_ROLE_DELETE,
    ENTRY_AUTH_ROLE_GRANT_PERMISSION,
    ENTRY_AUTH_ROLE_REVOKE_PERMISSION,
    ENTRY_AUTH_USER_ADD,
    ENTRY_AUTH_USER_CHANGE_PASSWORD,
    ENTRY_AUTH_USER_DELETE,
    ENTRY_AUTH_USER_GRANT_ROLE,
    ENTRY_AUTH_USER_REVOKE_ROLE,
    ServerState,
)
from server.storage.authdb import name_fits, perm_type
from server.tenant_apply import check_auth_change, check_reserved
from server.wire import field_bool, field_bytes, field_message, field_varint
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2

log = logging.getLogger("ward.auth")


class AuthService:
    """etcd's Auth service in the core process."""

    def __init__(self, state: ServerState, access: Access, hashing: Executor) -> None:
        self._s = state
        self._access = access
        # Password hashing and checking run here: argon2 releases the GIL, so they use every
        # core without holding up the event loop.
        self._hashing = hashing

    def methods(self) -> dict[str, Unary]:
        return {
            "AuthEnable": self.auth_enable,
            "AuthDisable": self.auth_disable,
            "AuthStatus": self.auth_status,
            "Authenticate": self.authenticate,
            "UserAdd": self.user_add,
            "UserGet": self.user_get,
            "UserList": self.user_list,
            "UserDelete": self.user_delete,
            "UserChangePassword": self.user_change_password,
            "UserGrantRole": self.user_grant_role,
            "UserRevokeRole": self.user_revoke_role,
            "RoleAdd": self.role_add,
            "RoleGet": self.role_get,
            "RoleList": self.role_list,
            "RoleDelete": self.role_delete,
            "RoleGrantPermission": self.role_grant_permission,
            "RoleRevokePermission": self.role_revoke_permission,
        }

    def _header(self) -> bytes:
        s = self._s
        with s.backend.read() as txn:
            return field_message(1, s.header.header(s.kv.current_revision(txn)))

    async def _propose(
        self, field: int, kind: str, r: object, request: bytes, call: CallInfo
    ) -> bytes:
        """Propose an auth change as the caller, checked here first as where it applies (so a
        refusal costs nothing, and is audited with who sent it), and again there."""
        info = await self._access.identify(call)
        with self._s.backend.read() as txn, self._access.checker(txn, info) as chk:
            # Root, or a tenant's delegated admin: the apply path keeps it inside its tenant.
            check_auth_change(chk, kind, r)
        return await self._s.proposer.propose(field, request, header=request_header(info, call))

    # --- enabling ---

    async def auth_enable(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthEnableRequest.FromString(request)
        return await self._propose(ENTRY_AUTH_ENABLE, "auth_enable", r, request, call)

    async def auth_disable(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthDisableRequest.FromString(request)
        return await self._propose(ENTRY_AUTH_DISABLE, "auth_disable", r, request, call)

    async def auth_status(self, request: bytes, call: CallInfo) -> bytes:
        rpc_pb2.AuthStatusRequest.FromString(request)
        enabled, revision = self._access.state()
        return self._header() + field_bool(2, enabled) + field_varint(3, revision)

    # --- Authenticate ---

    async def authenticate(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthenticateRequest.FromString(request)
        check = partial(
            self._access.store.authenticate,
            r.name,
            r.password,
            client_address=client_address(call.peer),
        )
        # The token carries the auth revision this member has applied. Wait until it has applied
        # everything committed before this call (etcd puts Authenticate through Raft for the
        # same reason): otherwise a member that lags behind a grant another member acknowledged
        # hands out a token that is refused as "revision of auth store is old".
        wait = self._s.read_index()
        if wait is not None:
            await wait
        try:
            token = await asyncio.get_running_loop().run_in_executor(self._hashing, check)
        except AuthError as e:
            if not isinstance(e, auth_errors.AuthNotEnabled):
                # The name is no secret; the password never appears in any log line.
                log.info("authentication failed", extra={"user": r.name, "error": e.message})
                DECISIONS.count("authenticate", DENIED)
                self._audit_authenticate(r.name, e.message)
            raise from_auth(e) from None
        DECISIONS.count("authenticate", ALLOWED)
        self._audit_authenticate(r.name, "ok")
        return self._header() + field_bytes(2, token.encode())

    def _audit_authenticate(self, name: str, result: str) -> None:
        audit = self._access.audit
        if audit is not None:
            # Who and from where; never the password nor the token.
            audit("authenticate", **who(name), result=result)

    # --- users ---

    async def user_add(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthUserAddRequest.FromString(request)
        info = await self._access.identify(call)
        no_password = r.options.no_password
        with self._s.backend.read() as txn, self._access.checker(txn, info) as chk:
            tenant = _admin_or_tenant_admin(chk)
            if not r.name:
                raise from_auth(auth_errors.UserEmpty())
            # The entry carries the name as given; where it applies, it is resolved the same.
            name = chk.user_name(r.name)
            if not name_fits(name):
                raise errors.NAME_TOO_LONG
            if tenant is None:
                check_reserved(self._access.db, name)
            # Refused before hashing: a hash for a user that exists would be wasted work.
            if self._access.db.get_user(name) is not None:
                raise from_auth(auth_errors.UserAlreadyExists())
        if r.hashedPassword and not no_password:
            raise errors.HASHED_PASSWORD_REFUSED
        store = self._access.store
        try:
            command = await asyncio.get_running_loop().run_in_executor(
                self._hashing,
                partial(store.propose_user_add, r.name, r.password, no_password=no_password),
            )
        except AuthError as e:
            raise from_auth(e) from None
        entry = peer_pb2.AuthUserAdd(
            name=command.name,
            password_hash=command.password_hash or "",
            no_password=command.no_password,
        )
        return await self._s.proposer.propose(
            ENTRY_AUTH_USER_ADD, entry.SerializeToString(), header=request_header(info, call)
        )

    async def user_get(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthUserGetRequest.FromString(request)
        info = await self._access.identify(call)
        s = self._s
        with s.backend.read() as txn, self._access.checker(txn, info) as chk:
            name = chk.user_name(r.name)
            # As etcd: a user may look at themself.
            if not (chk.enabled and info is not None and info.username == name):
                _admin_or_tenant_admin(chk)
            user = self._access.db.get_user(name)
            if user is None:
                raise from_auth(auth_errors.UserNotFound())
            roles = [chk.shown(role) for role in user.roles]
            header = field_message(1, s.header.header(s.kv.current_revision(txn)))
        return header + b"".join(field_bytes(2, role.encode()) for role in roles)

    async def user_list(self, request: bytes, call: CallInfo) -> bytes:
        rpc_pb2.AuthUserListRequest.FromString(request)
        info = await self._access.identify(call)
        s = self._s
        with s.backend.read() as txn, self._access.checker(txn, info) as chk:
            tenant = _admin_or_tenant_admin(chk)
            db = self._access.db
            names = [u.name for u in db.list_users()]
            if tenant is not None:
                # A tenant admin sees its tenant's users only, by the names it gives them.
                names = sorted(chk.shown(n) for n in names if db.user_tenant(n) == tenant.name)
            header = field_message(1, s.header.header(s.kv.current_revision(txn)))
        return header + b"".join(field_bytes(2, n.encode()) for n in names)

    async def user_delete(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthUserDeleteRequest.FromString(request)
        return await self._propose(ENTRY_AUTH_USER_DELETE, "auth_user_delete", r, request, call)

    async def user_change_password(self, request: bytes, call: CallInfo) -> bytes:
        """An admin may set anyone's password; beyond etcd, a user may set their own."""
        r = rpc_pb2.AuthUserChangePasswordRequest.FromString(request)
        info = await self._access.identify(call)
        with self._s.backend.read() as txn, self._access.checker(txn, info) as chk:
            check_auth_change(chk, "auth_user_change_password", r)
        if r.hashedPassword:
            raise errors.HASHED_PASSWORD_REFUSED
        store = self._access.store
        try:
            command = await asyncio.get_running_loop().run_in_executor(
                self._hashing, partial(store.propose_user_change_password, r.name, r.password)
            )
        except AuthError as e:
            raise from_auth(e) from None
        entry = peer_pb2.AuthUserChangePassword(
            name=command.name, password_hash=command.password_hash
        )
        return await self._s.proposer.propose(
            ENTRY_AUTH_USER_CHANGE_PASSWORD,
            entry.SerializeToString(),
            header=request_header(info, call),
        )

    async def user_grant_role(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthUserGrantRoleRequest.FromString(request)
        kind = "auth_user_grant_role"
        return await self._propose(ENTRY_AUTH_USER_GRANT_ROLE, kind, r, request, call)

    async def user_revoke_role(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthUserRevokeRoleRequest.FromString(request)
        kind = "auth_user_revoke_role"
        return await self._propose(ENTRY_AUTH_USER_REVOKE_ROLE, kind, r, request, call)

    # --- roles ---

    async def role_add(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthRoleAddRequest.FromString(request)
        info = await self._access.identify(call)
        with self._s.backend.read() as txn, self._access.checker(txn, info) as chk:
            if _admin_or_tenant_admin(chk) is None:
                # Root: a name in a tenant's namespace is that tenant's to give.
                check_reserved(self._access.db, r.name)
        return await self._propose(ENTRY_AUTH_ROLE_ADD, "auth_role_add", r, request, call)

    async def role_get(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthRoleGetRequest.FromString(request)
        info = await self._access.identify(call)
        s = self._s
        with s.backend.read() as txn, self._access.checker(txn, info) as chk:
            # As etcd: a user may look at the roles they hold.
            name = chk.role_name(r.role)
            holds = (
                chk.enabled
                and info is not None
                and self._access.store.has_role(info.username, name)
            )
            if not holds:
                _admin_or_tenant_admin(chk)
            role = self._access.db.get_role(name)
            if role is None:
                raise from_auth(auth_errors.RoleNotFound())
            # The stored grants, as etcd 3.4 answers (the root role needs none: it passes
            # every check); a tenant user sees them relative to its tenant.
            perms = role.permissions
            _mapped, tenant = chk.tenant()
            if tenant is not None:
                perms = tuple(relative(tenant, p) for p in perms if tenant.namespace.owns(p.key))
            header = field_message(1, s.header.header(s.kv.current_revision(txn)))
        return header + b"".join(field_message(2, _permission(p)) for p in perms)

    async def role_list(self, request: bytes, call: CallInfo) -> bytes:
        rpc_pb2.AuthRoleListRequest.FromString(request)
        info = await self._access.identify(call)
        s = self._s
        with s.backend.read() as txn, self._access.checker(txn, info) as chk:
            tenant = _admin_or_tenant_admin(chk)
            db = self._access.db
            names = [r.name for r in db.list_roles()]
            if tenant is not None:
                names = sorted(chk.shown(n) for n in names if db.role_tenant(n) == tenant.name)
            header = field_message(1, s.header.header(s.kv.current_revision(txn)))
        return header + b"".join(field_bytes(2, n.encode()) for n in names)

    async def role_delete(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthRoleDeleteRequest.FromString(request)
        return await self._propose(ENTRY_AUTH_ROLE_DELETE, "auth_role_delete", r, request, call)

    async def role_grant_permission(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthRoleGrantPermissionRequest.FromString(request)
        info = await self._access.identify(call)
        with self._s.backend.read() as txn, self._access.checker(txn, info) as chk:
            tenant = _admin_or_tenant_admin(chk)
        if not r.HasField("perm"):
            raise from_auth(auth_errors.PermissionNotGiven())
        if r.perm.permType not in PermissionType.__members__.values():
            raise from_auth(auth_errors.InvalidAuthMgmt())
        key, end = r.perm.key, r.perm.range_end
        if tenant is not None:
            # A tenant admin's grant is relative to its tenant ("" is the whole tenant).
            key, end = tenant.namespace.key(key), tenant.namespace.range_end(end)
        if not is_valid_permission_range(key, end):
            raise from_auth(auth_errors.InvalidAuthMgmt())
        return await self._s.proposer.propose(
            ENTRY_AUTH_ROLE_GRANT_PERMISSION, request, header=request_header(info, call)
        )

    async def role_revoke_permission(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AuthRoleRevokePermissionRequest.FromString(request)
        kind = "auth_role_revoke_permission"
        return await self._propose(ENTRY_AUTH_ROLE_REVOKE_PERMISSION, kind, r, request, call)


def _admin_or_tenant_admin(chk: Checker) -> Tenant | None:
    """Pass root (None) or a tenant's delegated admin (its tenant); refuse anyone else. What a
    tenant admin names is resolved in its tenant (`Checker.user_name`), so it stays inside."""
    tenant = chk.tenant_admin() if chk.enabled else None
    if tenant is None:
        chk.admin()
        return None
    return tenant


def _permission(p: Permission) -> bytes:
    return auth_pb2.Permission(
        permType=perm_type(p), key=p.key, range_end=p.range_end
    ).SerializeToString()
