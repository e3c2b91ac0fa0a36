"""The apply side: deterministic changes to the auth tables, one replicated request at a time.

Every member runs this on every committed auth request, so it uses nothing but the request and
the backend: no clock, no randomness, no hashing (the request already carries the hash). Each
function checks everything before it writes, so a request that fails leaves the tables and the
revision untouched. The rules and their order are etcd 3.5's (``server/auth/store.go``):

- every change bumps the auth revision, except enabling auth (as in etcd) and no-ops;
- while auth is on, ``root`` cannot be deleted, nor lose the ``root`` role, nor can the ``root``
  role be deleted (``InvalidAuthMgmt``);
- enabling needs a ``root`` user holding the ``root`` role; the ``root`` role can be granted
  before a role of that name exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from auth import errors
from auth.backend import AuthBackend
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
from auth.model import ROOT_ROLE, ROOT_USER, Permission, Role, User
from auth.ranges import is_valid_permission_range


@dataclass(frozen=True, slots=True)
class Applied:
    """What an applied request changed, for the caches above the tables.

    ``changed``: the tables or the enabled flag changed. ``user_invalidated``: a user whose
    tokens must be forgotten (deleted, or given a new password). ``disabled``: auth was turned
    off, so every remembered token goes.
    """

    changed: bool
    user_invalidated: str | None = None
    disabled: bool = False


_NO_CHANGE = Applied(changed=False)
_CHANGED = Applied(changed=True)


def apply_command(backend: AuthBackend, command: AuthCommand) -> Applied:
    """Apply one replicated auth request; raise its etcd error if it is refused."""
    match command:
        case AuthEnable():
            return _auth_enable(backend)
        case AuthDisable():
            return _auth_disable(backend)
        case UserAdd():
            return _user_add(backend, command)
        case UserDelete():
            return _user_delete(backend, command)
        case UserChangePassword():
            return _user_change_password(backend, command)
        case UserGrantRole():
            return _user_grant_role(backend, command)
        case UserRevokeRole():
            return _user_revoke_role(backend, command)
        case RoleAdd():
            return _role_add(backend, command)
        case RoleDelete():
            return _role_delete(backend, command)
        case RoleGrantPermission():
            return _role_grant_permission(backend, command)
        case RoleRevokePermission():
            return _role_revoke_permission(backend, command)
    raise TypeError(f"not an auth command: {type(command).__name__}")


def _bump(backend: AuthBackend) -> None:
    backend.set_revision(backend.get_revision() + 1)


def _auth_enable(backend: AuthBackend) -> Applied:
    if backend.get_enabled():
        return _NO_CHANGE
    root = backend.get_user(ROOT_USER)
    if root is None:
        raise errors.RootUserNotExist()
    if not root.is_root:
        raise errors.RootRoleNotExist()
    backend.set_enabled(True)
    return _CHANGED


def _auth_disable(backend: AuthBackend) -> Applied:
    if not backend.get_enabled():
        return _NO_CHANGE
    backend.set_enabled(False)
    _bump(backend)
    return Applied(changed=True, disabled=True)


def _user_add(backend: AuthBackend, command: UserAdd) -> Applied:
    if not command.name:
        raise errors.UserEmpty()
    if backend.get_user(command.name) is not None:
        raise errors.UserAlreadyExists()
    backend.put_user(
        User(
            command.name,
            password_hash=None if command.no_password else command.password_hash,
            no_password=command.no_password,
        )
    )
    _bump(backend)
    return _CHANGED


def _user_delete(backend: AuthBackend, command: UserDelete) -> Applied:
    if backend.get_enabled() and command.name == ROOT_USER:
        raise errors.InvalidAuthMgmt()
    if backend.get_user(command.name) is None:
        raise errors.UserNotFound()
    backend.delete_user(command.name)
    _bump(backend)
    return Applied(changed=True, user_invalidated=command.name)


def _user_change_password(backend: AuthBackend, command: UserChangePassword) -> Applied:
    user = backend.get_user(command.name)
    if user is None:
        raise errors.UserNotFound()
    # As etcd: a no-password user stays one; the request still counts as a change.
    new_hash = None if user.no_password else command.password_hash
    backend.put_user(
        User(user.name, password_hash=new_hash, roles=user.roles, no_password=user.no_password)
    )
    _bump(backend)
    return Applied(changed=True, user_invalidated=command.name)


def _user_grant_role(backend: AuthBackend, command: UserGrantRole) -> Applied:
    user = backend.get_user(command.user)
    if user is None:
        raise errors.UserNotFound()
    if command.role != ROOT_ROLE and backend.get_role(command.role) is None:
        raise errors.RoleNotFound()
    if user.has_role(command.role):
        return _NO_CHANGE
    backend.put_user(
        User(
            user.name,
            password_hash=user.password_hash,
            roles=(*user.roles, command.role),
            no_password=user.no_password,
        )
    )
    _bump(backend)
    return _CHANGED


def _user_revoke_role(backend: AuthBackend, command: UserRevokeRole) -> Applied:
    if backend.get_enabled() and command.name == ROOT_USER and command.role == ROOT_ROLE:
        raise errors.InvalidAuthMgmt()
    user = backend.get_user(command.name)
    if user is None:
        raise errors.UserNotFound()
    if not user.has_role(command.role):
        raise errors.RoleNotGranted()
    backend.put_user(_without_role(user, command.role))
    _bump(backend)
    return _CHANGED


def _without_role(user: User, role: str) -> User:
    return User(
        user.name,
        password_hash=user.password_hash,
        roles=tuple(r for r in user.roles if r != role),
        no_password=user.no_password,
    )


def _role_add(backend: AuthBackend, command: RoleAdd) -> Applied:
    if not command.name:
        raise errors.RoleEmpty()
    if backend.get_role(command.name) is not None:
        raise errors.RoleAlreadyExists()
    backend.put_role(Role(command.name))
    _bump(backend)
    return _CHANGED


def _role_delete(backend: AuthBackend, command: RoleDelete) -> Applied:
    if backend.get_enabled() and command.role == ROOT_ROLE:
        raise errors.InvalidAuthMgmt()
    if backend.get_role(command.role) is None:
        raise errors.RoleNotFound()
    holders = [u for u in backend.list_users() if u.has_role(command.role)]
    backend.delete_role(command.role)
    for user in holders:
        backend.put_user(_without_role(user, command.role))
    _bump(backend)
    return _CHANGED


def _role_grant_permission(backend: AuthBackend, command: RoleGrantPermission) -> Applied:
    perm = command.permission
    if not is_valid_permission_range(perm.key, perm.range_end):
        raise errors.InvalidAuthMgmt()
    role = backend.get_role(command.name)
    if role is None:
        raise errors.RoleNotFound()
    # A grant on the same (key, range_end) replaces the type of the existing one.
    kept = tuple(p for p in role.permissions if (p.key, p.range_end) != (perm.key, perm.range_end))
    backend.put_role(Role(role.name, (*kept, Permission(perm.perm_type, perm.key, perm.range_end))))
    _bump(backend)
    return _CHANGED


def _role_revoke_permission(backend: AuthBackend, command: RoleRevokePermission) -> Applied:
    role = backend.get_role(command.role)
    if role is None:
        raise errors.RoleNotFound()
    kept = tuple(
        p for p in role.permissions if (p.key, p.range_end) != (command.key, command.range_end)
    )
    if len(kept) == len(role.permissions):
        raise errors.PermissionNotGranted()
    backend.put_role(Role(role.name, kept))
    _bump(backend)
    return _CHANGED
