"""Users, roles and permissions as immutable values (the shapes of etcd's ``authpb``).

Names are ``str`` (etcd treats them as UTF-8 strings on the wire); keys are ``bytes``. A
``range_end`` follows etcd's convention: empty for a single key, ``b"\\0"`` for every key at or
after ``key``, anything else for the half-open range ``[key, range_end)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

ROOT_USER = "root"
ROOT_ROLE = "root"

FROM_KEY = b"\x00"
"""The ``range_end`` meaning "every key at or after ``key``"."""


class PermissionType(enum.IntEnum):
    """``authpb.Permission.Type``; the values are the wire values."""

    READ = 0
    WRITE = 1
    READWRITE = 2


@dataclass(frozen=True, slots=True)
class Permission:
    """Access of one type to a key, a range of keys, or every key from one on."""

    perm_type: PermissionType
    key: bytes
    range_end: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.perm_type, PermissionType):
            raise TypeError("perm_type must be a PermissionType")
        if not isinstance(self.key, bytes) or not isinstance(self.range_end, bytes):
            raise TypeError("key and range_end must be bytes")


ROOT_PERMISSION = Permission(PermissionType.READWRITE, b"", FROM_KEY)
"""What etcd reports as the permission of the ``root`` role (it bypasses checks anyway)."""


@dataclass(frozen=True, slots=True)
class User:
    """A stored user.

    ``password_hash`` is the argon2id hash string, or ``None`` for a user created with
    ``no_password`` (who can only authenticate by TLS client certificate). It is left out of
    ``repr`` so the hash never reaches a log line (SECURITY 12). ``roles`` is kept sorted and
    without duplicates, as etcd keeps it.
    """

    name: str
    password_hash: str | None = field(default=None, repr=False)
    roles: tuple[str, ...] = ()
    no_password: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError("user name must be str")
        if self.password_hash is not None and not isinstance(self.password_hash, str):
            raise TypeError("password_hash must be str or None")
        roles = tuple(self.roles)
        if not all(isinstance(r, str) for r in roles):
            raise TypeError("roles must be str")
        object.__setattr__(self, "roles", tuple(sorted(set(roles))))

    def has_role(self, role: str) -> bool:
        """Whether the role is granted to this user."""
        return role in self.roles

    @property
    def is_root(self) -> bool:
        """Whether the user holds the ``root`` role, which bypasses every permission check."""
        return ROOT_ROLE in self.roles


@dataclass(frozen=True, slots=True)
class Role:
    """A stored role: a name and its permissions, kept sorted by (key, range_end)."""

    name: str
    permissions: tuple[Permission, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError("role name must be str")
        perms = tuple(self.permissions)
        if not all(isinstance(p, Permission) for p in perms):
            raise TypeError("permissions must be Permission values")
        object.__setattr__(
            self, "permissions", tuple(sorted(perms, key=lambda p: (p.key, p.range_end)))
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """Who a request runs as, and the auth revision its token (or check) was issued at.

    etcd's ``AuthInfo``. A revision of 0 means "no user" (auth was off when it was made).
    """

    username: str
    revision: int
