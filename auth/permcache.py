"""Each user's merged permissions, valid for exactly one auth revision.

Entries are built on first use from the backend and dropped as soon as the backend's auth
revision differs from the one they were built at, and on every applied change and reload, so a
restored snapshot or a restart can never serve old grants (SECURITY 9). Other processes that
share the storage (workers reading lmdb) see the revision move and rebuild the same way. All
access goes through one lock.
"""

from __future__ import annotations

import threading

from auth.backend import AuthBackend
from auth.model import Permission
from auth.ranges import UserPermissions, build_user_permissions

DEFAULT_MAX_USERS = 65_536


def load_user_permissions(backend: AuthBackend, username: str) -> UserPermissions | None:
    """The user's merged permissions from storage, or None if there is no such user."""
    user = backend.get_user(username)
    if user is None:
        return None
    perms: list[Permission] = []
    for role_name in user.roles:
        role = backend.get_role(role_name)
        # The root role may be granted before a role of that name exists.
        if role is not None:
            perms.extend(role.permissions)
    return build_user_permissions(perms, is_root=user.is_root)


class PermissionCache:
    """username -> merged permissions at one auth revision; thread-safe."""

    def __init__(self, *, max_users: int = DEFAULT_MAX_USERS) -> None:
        self._lock = threading.Lock()
        self._revision = -1
        self._entries: dict[str, UserPermissions | None] = {}
        self._max_users = max_users

    def __repr__(self) -> str:
        return f"PermissionCache(revision={self._revision}, users={len(self._entries)})"

    def get(self, backend: AuthBackend, username: str, revision: int) -> UserPermissions | None:
        """The user's permissions at ``revision`` (the backend's current one), or None if there
        is no such user."""
        with self._lock:
            if revision != self._revision:
                self._entries.clear()
                self._revision = revision
            elif username in self._entries:
                return self._entries[username]
        perms = load_user_permissions(backend, username)
        with self._lock:
            # Built outside the lock: keep it only if no change or clear came in between.
            if revision == self._revision:
                if len(self._entries) >= self._max_users:
                    self._entries.clear()
                self._entries[username] = perms
        return perms

    def clear(self) -> None:
        """Forget everything (a change was applied, or storage was reloaded)."""
        with self._lock:
            self._entries.clear()
            self._revision = -1
