"""The auth requests as they are replicated: what the apply side receives on every member.

They mirror etcd's ``AuthUserAddRequest`` etc., with one difference that matters: a password
travels only as its hash (SECURITY 11). The server encodes them into its log entries; building
one that needs a hash is the propose side's job (``AuthStore.propose_*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.model import Permission


@dataclass(frozen=True, slots=True)
class AuthEnable:
    pass


@dataclass(frozen=True, slots=True)
class AuthDisable:
    pass


@dataclass(frozen=True, slots=True)
class UserAdd:
    """Add a user. ``password_hash`` is None exactly when ``no_password`` is set."""

    name: str
    password_hash: str | None = field(repr=False)
    no_password: bool = False

    def __post_init__(self) -> None:
        if (self.password_hash is None) != self.no_password:
            raise ValueError("a user has a password hash unless it is a no-password user")


@dataclass(frozen=True, slots=True)
class UserDelete:
    name: str


@dataclass(frozen=True, slots=True)
class UserChangePassword:
    name: str
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class UserGrantRole:
    user: str
    role: str


@dataclass(frozen=True, slots=True)
class UserRevokeRole:
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class RoleAdd:
    name: str


@dataclass(frozen=True, slots=True)
class RoleDelete:
    role: str


@dataclass(frozen=True, slots=True)
class RoleGrantPermission:
    name: str
    permission: Permission


@dataclass(frozen=True, slots=True)
class RoleRevokePermission:
    role: str
    key: bytes
    range_end: bytes = b""


AuthCommand = (
    AuthEnable
    | AuthDisable
    | UserAdd
    | UserDelete
    | UserChangePassword
    | UserGrantRole
    | UserRevokeRole
    | RoleAdd
    | RoleDelete
    | RoleGrantPermission
    | RoleRevokePermission
)
"""Every replicated auth request."""
