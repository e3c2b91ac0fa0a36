"""Each auth error carries etcd's exact wire message and status code (rpctypes/error.go)."""

from __future__ import annotations

import grpc
import pytest

from auth import errors
from auth.errors import GrpcCode

IA = GrpcCode.INVALID_ARGUMENT
FP = GrpcCode.FAILED_PRECONDITION

ETCD_ERRORS = [
    (errors.RootUserNotExist, FP, "etcdserver: root user does not exist"),
    (errors.RootRoleNotExist, FP, "etcdserver: root user does not have root role"),
    (errors.UserAlreadyExists, FP, "etcdserver: user name already exists"),
    (errors.UserEmpty, IA, "etcdserver: user name is empty"),
    (errors.UserNotFound, FP, "etcdserver: user name not found"),
    (errors.RoleAlreadyExists, FP, "etcdserver: role name already exists"),
    (errors.RoleNotFound, FP, "etcdserver: role name not found"),
    (errors.RoleEmpty, IA, "etcdserver: role name is empty"),
    (errors.AuthFailed, IA, "etcdserver: authentication failed, invalid user ID or password"),
    (errors.PermissionNotGiven, IA, "etcdserver: permission not given"),
    (errors.PermissionDenied, GrpcCode.PERMISSION_DENIED, "etcdserver: permission denied"),
    (errors.RoleNotGranted, FP, "etcdserver: role is not granted to the user"),
    (errors.PermissionNotGranted, FP, "etcdserver: permission is not granted to the role"),
    (errors.AuthNotEnabled, FP, "etcdserver: authentication is not enabled"),
    (errors.InvalidAuthToken, GrpcCode.UNAUTHENTICATED, "etcdserver: invalid auth token"),
    (errors.InvalidAuthMgmt, IA, "etcdserver: invalid auth management"),
    (errors.AuthOldRevision, IA, "etcdserver: revision of auth store is old"),
    (errors.TooManyRequests, GrpcCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests"),
    (
        errors.NoPasswordUser,
        GrpcCode.UNKNOWN,
        "auth: authentication failed, password was given for no password user",
    ),
    (errors.VerifyOnly, GrpcCode.UNKNOWN, "auth: token signing attempted with verify-only key"),
]


@pytest.mark.parametrize(("cls", "code", "message"), ETCD_ERRORS, ids=lambda v: str(v)[:40])
def test_error_carries_etcd_message_and_code(
    cls: type[errors.AuthError], code: GrpcCode, message: str
) -> None:
    err = cls()
    assert err.message == message
    assert str(err) == message
    assert err.code is code
    assert isinstance(err, errors.AuthError)


@pytest.mark.parametrize("code", list(GrpcCode))
def test_code_names_a_grpc_status_code(code: GrpcCode) -> None:
    # The RPC layer maps with grpc.StatusCode[code.value]; every code must resolve.
    assert grpc.StatusCode[code.value].name == code.value


def test_password_too_short_names_the_minimum_only() -> None:
    err = errors.PasswordTooShort(12)
    assert err.code is IA
    assert err.message == "ward: password is too short (minimum 12 characters)"
    assert str(err) == err.message
    assert err.min_length == 12


def test_config_errors_keep_etcd_go_texts() -> None:
    assert errors.InvalidAuthOptions().message == "auth: invalid auth options"
    assert errors.InvalidAuthMethod().message == "auth: invalid auth signature method"
    assert errors.MissingKey().message == "auth: missing key data"
    assert errors.KeyMismatch().message == "auth: public and private keys don't match"
    assert issubclass(errors.InvalidKey, errors.AuthConfigError)


def test_repr_shows_class_code_and_message() -> None:
    assert repr(errors.PermissionDenied()) == (
        "PermissionDenied(PERMISSION_DENIED, 'etcdserver: permission denied')"
    )
