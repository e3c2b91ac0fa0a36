"""An in-memory ``AuthBackend``, for tests and for tools that need no persistence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from auth.model import Role, User

if TYPE_CHECKING:
    from auth.backend import AuthBackend


class MemoryAuthBackend:
    """Users, roles, revision and enabled flag in dicts; the values are immutable."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._roles: dict[str, Role] = {}
        self._revision = 0
        self._enabled = False

    def __repr__(self) -> str:
        return (
            f"MemoryAuthBackend(users={len(self._users)}, roles={len(self._roles)}, "
            f"revision={self._revision}, enabled={self._enabled})"
        )

    def get_user(self, name: str) -> User | None:
        return self._users.get(name)

    def put_user(self, user: User) -> None:
        self._users[user.name] = user

    def delete_user(self, name: str) -> None:
        self._users.pop(name, None)

    def list_users(self) -> list[User]:
        return [self._users[name] for name in sorted(self._users)]

    def get_role(self, name: str) -> Role | None:
        return self._roles.get(name)

    def put_role(self, role: Role) -> None:
        self._roles[role.name] = role

    def delete_role(self, name: str) -> None:
        self._roles.pop(name, None)

    def list_roles(self) -> list[Role]:
        return [self._roles[name] for name in sorted(self._roles)]

    def get_revision(self) -> int:
        return self._revision

    def set_revision(self, revision: int) -> None:
        self._revision = revision

    def get_enabled(self) -> bool:
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        self._enabled = enabled


if TYPE_CHECKING:
    # mypy proves the class satisfies the Protocol.
    _conforms: type[AuthBackend] = MemoryAuthBackend
