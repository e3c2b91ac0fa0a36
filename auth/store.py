"""The auth store: etcd's auth rules over an ``AuthBackend``, with no I/O of its own.

It has three faces, because in the server they run in different places:

- the **propose side** (``propose_*``) runs where a request arrives: it validates what needs no
  state and hashes passwords, so the request that gets replicated carries only the hash
  (SECURITY 11);
- the **apply side** (``apply``) runs on every member for every committed request: a
  deterministic change of the tables (``auth.apply``), then the caches above them are dropped;
- the **read side** answers queries, authenticates, and checks permissions.

Permission checks follow etcd: with auth off everything is allowed; otherwise the caller needs a
user and an auth revision not older than the store's ("revision of auth store is old",
SECURITY 10), the ``root`` role allows everything, and other users need a grant covering the
whole requested range (``auth.ranges``).
"""

from __future__ import annotations

from dataclasses import dataclass

from auth import errors
from auth.apply import Applied, apply_command
from auth.backend import AuthBackend
from auth.commands import AuthCommand, RoleGrantPermission, UserAdd, UserChangePassword
from auth.model import ROOT_PERMISSION, ROOT_ROLE, Permission, TokenInfo
from auth.passwords import PasswordHasher
from auth.permcache import PermissionCache
from auth.ranges import is_valid_permission_range
from auth.ratelimit import RateLimiter
from auth.tokens import TokenProvider

# A password check is slow; if the auth revision moves meanwhile, check again (as etcd does) so
# the token is not stale at birth, but not forever.
_AUTHENTICATE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class AuthStatus:
    enabled: bool
    revision: int


class AuthStore:
    """etcd's auth store over ``backend``; see the module docstring for its three sides."""

    def __init__(
        self,
        backend: AuthBackend,
        *,
        tokens: TokenProvider,
        hasher: PasswordHasher,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._backend = backend
        self._tokens = tokens
        self._hasher = hasher
        self._limiter = rate_limiter
        self._cache = PermissionCache()

    def __repr__(self) -> str:
        return f"AuthStore(enabled={self.is_enabled()}, revision={self.revision()})"

    @property
    def tokens(self) -> TokenProvider:
        """The token provider this store issues and checks tokens with."""
        return self._tokens

    # --- state ------------------------------------------------------------------------------

    def is_enabled(self) -> bool:
        """Whether authentication is on."""
        return self._backend.get_enabled()

    def revision(self) -> int:
        """The current auth revision."""
        return self._backend.get_revision()

    def status(self) -> AuthStatus:
        """What AuthStatus answers."""
        return AuthStatus(self.is_enabled(), self.revision())

    def reload(self) -> None:
        """The backend's contents were replaced (start, snapshot restore): drop every cache."""
        self._cache.clear()
        if not self.is_enabled():
            self._tokens.disable()

    # --- propose side -----------------------------------------------------------------------

    def propose_user_add(self, name: str, password: str, *, no_password: bool = False) -> UserAdd:
        """The replicated request that adds a user: validated, the password hashed.

        Raises ``UserEmpty`` or ``PasswordTooShort``. The password is ignored for a
        ``no_password`` user (who can only authenticate by TLS client certificate).
        """
        if not name:
            raise errors.UserEmpty()
        if no_password:
            return UserAdd(name, None, no_password=True)
        return UserAdd(name, self._hasher.hash(password))

    def propose_user_change_password(self, name: str, password: str) -> UserChangePassword:
        """The replicated request that sets a user's password: the password hashed.

        Raises ``UserNotFound`` early when the user is missing (the apply side checks again) so
        no hash is computed for nothing, or ``PasswordTooShort``.
        """
        if self._backend.get_user(name) is None:
            raise errors.UserNotFound()
        return UserChangePassword(name, self._hasher.hash(password))

    def propose_role_grant_permission(
        self, name: str, permission: Permission | None
    ) -> RoleGrantPermission:
        """The replicated request that grants a permission; raises ``PermissionNotGiven`` or,
        for a range etcd refuses (empty key, end not above key), ``InvalidAuthMgmt``."""
        if permission is None:
            raise errors.PermissionNotGiven()
        if not is_valid_permission_range(permission.key, permission.range_end):
            raise errors.InvalidAuthMgmt()
        return RoleGrantPermission(name, permission)

    # --- apply side -------------------------------------------------------------------------

    def apply(self, command: AuthCommand) -> Applied:
        """Apply one committed auth request (in the caller's write transaction).

        Raises the request's etcd error, leaving the tables unchanged, if it is refused.
        """
        applied = apply_command(self._backend, command)
        if applied.changed:
            self._cache.clear()
        if applied.user_invalidated is not None:
            self._tokens.invalidate_user(applied.user_invalidated)
        if applied.disabled:
            self._tokens.disable()
        return applied

    # --- read side --------------------------------------------------------------------------

    def user_get(self, name: str) -> tuple[str, ...]:
        """The user's roles; raises ``UserNotFound``."""
        user = self._backend.get_user(name)
        if user is None:
            raise errors.UserNotFound()
        return user.roles

    def user_list(self) -> list[str]:
        """Every user name, sorted."""
        return [u.name for u in self._backend.list_users()]

    def role_get(self, name: str) -> tuple[Permission, ...]:
        """The role's permissions (for ``root``, etcd's all-keys read-write); raises
        ``RoleNotFound``."""
        role = self._backend.get_role(name)
        if role is None:
            raise errors.RoleNotFound()
        if role.name == ROOT_ROLE:
            return (ROOT_PERMISSION,)
        return role.permissions

    def role_list(self) -> list[str]:
        """Every role name, sorted."""
        return [r.name for r in self._backend.list_roles()]

    def has_role(self, username: str, role: str) -> bool:
        """Whether the user exists and holds the role."""
        user = self._backend.get_user(username)
        return user is not None and user.has_role(role)

    def authenticate(self, name: str, password: str, *, client_address: str = "") -> str:
        """Check the password and issue a token at the auth revision it was checked at.

        Raises ``AuthNotEnabled``, ``TooManyRequests`` (rate limited), ``AuthFailed`` (no such
        user, or a wrong password: the two are indistinguishable, in time too) or
        ``NoPasswordUser``. The check is slow by design (argon2id): run it off the event loop.
        """
        if not self.is_enabled():
            raise errors.AuthNotEnabled()
        if self._limiter is not None:
            self._limiter.check(user=name, address=client_address)
        revision = 0
        for _ in range(_AUTHENTICATE_ATTEMPTS):
            # Revision first: a change after this read makes the token stale, never wrongly fresh.
            revision = self._backend.get_revision()
            user = self._backend.get_user(name)
            try:
                if user is None:
                    self._hasher.reject(password)
                if user.no_password:
                    raise errors.NoPasswordUser()
                if user.password_hash is None:
                    raise errors.AuthFailed()
                self._hasher.verify(user.password_hash, password)
            except (errors.AuthFailed, errors.NoPasswordUser):
                if self._limiter is not None:
                    self._limiter.record_failure(user=name, address=client_address)
                raise
            if self._backend.get_revision() == revision:
                break
        return self._tokens.assign(name, revision)

    def info_from_token(self, token: str | None) -> TokenInfo | None:
        """Who a request's token names: None with auth off or no token (as etcd); raises
        ``InvalidAuthToken``."""
        if not token or not self.is_enabled():
            return None
        return self._tokens.info(token)

    def check_permission(
        self, info: TokenInfo | None, key: bytes, range_end: bytes = b"", *, write: bool
    ) -> None:
        """Return if ``info``'s user may read (or write) ``key``/``range_end``; raise otherwise.

        ``range_end`` is etcd's encoding: empty for one key, ``b"\\0"`` for every key from
        ``key`` on. Raises ``UserEmpty`` (no user), ``AuthOldRevision`` (``info`` predates the
        current auth revision) or ``PermissionDenied``.
        """
        if not self.is_enabled():
            return
        if info is None or not info.username or info.revision == 0:
            raise errors.UserEmpty()
        current = self._backend.get_revision()
        if info.revision < current:
            raise errors.AuthOldRevision()
        perms = self._cache.get(self._backend, info.username, current)
        if perms is None:
            raise errors.PermissionDenied()
        allowed = perms.can_write(key, range_end) if write else perms.can_read(key, range_end)
        if not allowed:
            raise errors.PermissionDenied()

    def check_admin(self, info: TokenInfo | None) -> None:
        """Return if ``info``'s user holds the ``root`` role (or auth is off); raise otherwise.

        As etcd's ``IsAdminPermitted``: ``UserEmpty``, ``UserNotFound`` or ``PermissionDenied``.
        The user's roles are read as they are now, so no revision check is needed.
        """
        if not self.is_enabled():
            return
        if info is None or not info.username:
            raise errors.UserEmpty()
        user = self._backend.get_user(info.username)
        if user is None:
            raise errors.UserNotFound()
        if not user.is_root:
            raise errors.PermissionDenied()

    def is_admin(self, info: TokenInfo | None) -> bool:
        """Whether ``check_admin`` would pass."""
        try:
            self.check_admin(info)
        except errors.AuthError:
            return False
        return True
