"""Users, roles and permissions are validated, normalised values that hide secrets in repr."""

from __future__ import annotations

import pytest

from auth import Permission, PermissionType, Role, User
from auth.model import ROOT_PERMISSION

HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


def test_user_roles_are_sorted_and_unique() -> None:
    user = User("alice", HASH, roles=("b", "a", "b"))
    assert user.roles == ("a", "b")


def test_user_repr_and_str_leave_out_the_password_hash() -> None:
    user = User("alice", HASH, roles=("r",))
    assert HASH not in repr(user)
    assert HASH not in str(user)
    assert "alice" in repr(user)


def test_user_is_root_only_with_root_role() -> None:
    assert User("x", HASH, roles=("root",)).is_root
    assert not User("root", HASH).is_root


def test_user_rejects_non_str_name() -> None:
    with pytest.raises(TypeError):
        User(b"alice", HASH)  # type: ignore[arg-type]


def test_role_permissions_are_sorted_by_key_then_range_end() -> None:
    b = Permission(PermissionType.READ, b"b")
    a2 = Permission(PermissionType.READ, b"a", b"c")
    a1 = Permission(PermissionType.WRITE, b"a")
    assert Role("r", (b, a2, a1)).permissions == (a1, a2, b)


def test_permission_requires_bytes_and_type() -> None:
    with pytest.raises(TypeError):
        Permission(PermissionType.READ, "a")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Permission(0, b"a")  # type: ignore[arg-type]


def test_permission_type_values_are_the_wire_values() -> None:
    assert [t.value for t in PermissionType] == [0, 1, 2]


def test_root_permission_is_etcds_all_keys_readwrite() -> None:
    assert Permission(PermissionType.READWRITE, b"", b"\x00") == ROOT_PERMISSION


def test_values_are_frozen() -> None:
    user = User("alice", HASH)
    with pytest.raises(AttributeError):
        user.name = "bob"  # type: ignore[misc]
