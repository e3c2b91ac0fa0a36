"""What the auth store needs from storage; the storage layer implements it.

``auth/`` defines this Protocol so the arrows point one way: ``server/storage`` imports ``auth``,
never the reverse. Calls made by the apply side run inside the caller's write transaction; the
store does no I/O of its own.

Implementations should answer from one consistent view where they can. The store reads the
revision *before* the records that depend on it, so a record changed between the two reads makes
the answer stale (and refused later), never falsely fresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from auth.model import Role, User


class AuthBackend(Protocol):
    """Storage of users, roles, the auth revision and the enabled flag."""

    def get_user(self, name: str) -> User | None:
        """The user, or None."""
        ...

    def put_user(self, user: User) -> None:
        """Create or replace the user."""
        ...

    def delete_user(self, name: str) -> None:
        """Remove the user (absent is not an error)."""
        ...

    def list_users(self) -> Sequence[User]:
        """Every user, sorted by name."""
        ...

    def get_role(self, name: str) -> Role | None:
        """The role, or None."""
        ...

    def put_role(self, role: Role) -> None:
        """Create or replace the role."""
        ...

    def delete_role(self, name: str) -> None:
        """Remove the role (absent is not an error)."""
        ...

    def list_roles(self) -> Sequence[Role]:
        """Every role, sorted by name."""
        ...

    def get_revision(self) -> int:
        """The auth revision: bumped by every change to users, roles or grants."""
        ...

    def set_revision(self, revision: int) -> None:
        """Store the auth revision."""
        ...

    def get_enabled(self) -> bool:
        """Whether authentication is on."""
        ...

    def set_enabled(self, enabled: bool) -> None:
        """Store whether authentication is on."""
        ...
