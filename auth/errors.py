"""The auth errors, each with etcd's exact message and the gRPC status code etcd sends with it.

The messages are the ones etcd's RPC layer puts on the wire (``rpctypes.ErrGRPC*``), not the
``auth: ...`` texts of etcd's Go errors, because clients match on them. Where etcd has no mapping
(its RPC layer then answers ``Unknown`` with the Go error's text), the Go text is kept.

``auth/`` does not import grpc: the code is carried as the *name* of a ``grpc.StatusCode``
member, so the RPC layer maps an error with ``grpc.StatusCode[error.code.value]``.

No error carries user data: every message is fixed text. A password, hash or token must never
reach an error (SECURITY 12), so these classes take no free-form argument at all.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class GrpcCode(enum.StrEnum):
    """Names of the gRPC status codes auth errors use; equal to ``grpc.StatusCode`` member names."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNKNOWN = "UNKNOWN"


class AuthError(Exception):
    """Base of every error ``auth/`` raises; ``code`` and ``message`` are what the client sees."""

    code: ClassVar[GrpcCode] = GrpcCode.UNKNOWN
    default_message: ClassVar[str] = "auth: error"

    def __init__(self) -> None:
        self.message: str = self.default_message
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}, {self.message!r})"


_IA = GrpcCode.INVALID_ARGUMENT
_FP = GrpcCode.FAILED_PRECONDITION


class RootUserNotExist(AuthError):
    code = _FP
    default_message = "etcdserver: root user does not exist"


class RootRoleNotExist(AuthError):
    code = _FP
    default_message = "etcdserver: root user does not have root role"


class UserAlreadyExists(AuthError):
    code = _FP
    default_message = "etcdserver: user name already exists"


class UserEmpty(AuthError):
    code = _IA
    default_message = "etcdserver: user name is empty"


class UserNotFound(AuthError):
    code = _FP
    default_message = "etcdserver: user name not found"


class RoleAlreadyExists(AuthError):
    code = _FP
    default_message = "etcdserver: role name already exists"


class RoleNotFound(AuthError):
    code = _FP
    default_message = "etcdserver: role name not found"


class RoleEmpty(AuthError):
    code = _IA
    default_message = "etcdserver: role name is empty"


class AuthFailed(AuthError):
    code = _IA
    default_message = "etcdserver: authentication failed, invalid user ID or password"


class PermissionNotGiven(AuthError):
    code = _IA
    default_message = "etcdserver: permission not given"


class PermissionDenied(AuthError):
    code = GrpcCode.PERMISSION_DENIED
    default_message = "etcdserver: permission denied"


class RoleNotGranted(AuthError):
    code = _FP
    default_message = "etcdserver: role is not granted to the user"


class PermissionNotGranted(AuthError):
    code = _FP
    default_message = "etcdserver: permission is not granted to the role"


class AuthNotEnabled(AuthError):
    code = _FP
    default_message = "etcdserver: authentication is not enabled"


class InvalidAuthToken(AuthError):
    code = GrpcCode.UNAUTHENTICATED
    default_message = "etcdserver: invalid auth token"


class InvalidAuthMgmt(AuthError):
    code = _IA
    default_message = "etcdserver: invalid auth management"


class AuthOldRevision(AuthError):
    code = _IA
    default_message = "etcdserver: revision of auth store is old"


class TooManyRequests(AuthError):
    """Too many failed Authenticate calls for this user or client address; etcd's own wording."""

    code = GrpcCode.RESOURCE_EXHAUSTED
    default_message = "etcdserver: too many requests"


class NoPasswordUser(AuthError):
    """A password was given for a user created with ``no_password``.

    etcd's RPC layer has no mapping for this error, so it answers ``Unknown`` with the Go text.
    """

    code = GrpcCode.UNKNOWN
    default_message = "auth: authentication failed, password was given for no password user"


class VerifyOnly(AuthError):
    """This member holds only a public key, so it can check tokens but not issue them."""

    code = GrpcCode.UNKNOWN
    default_message = "auth: token signing attempted with verify-only key"


class PasswordTooShort(AuthError):
    """Ward's own: the password is shorter than the configured minimum (SECURITY 14).

    The message names the minimum, never the password or its length.
    """

    code = _IA
    default_message = "ward: password is too short"

    def __init__(self, min_length: int) -> None:
        super().__init__()
        self.min_length = min_length
        self.message = f"ward: password is too short (minimum {min_length} characters)"
        self.args = (self.message,)


# Configuration errors: raised while a member starts, never sent to a client.


class AuthConfigError(AuthError):
    """Base of errors in the ``--auth-token`` option or its keys."""


class InvalidAuthOptions(AuthConfigError):
    default_message = "auth: invalid auth options"


class InvalidAuthMethod(AuthConfigError):
    default_message = "auth: invalid auth signature method"


class MissingKey(AuthConfigError):
    default_message = "auth: missing key data"


class KeyMismatch(AuthConfigError):
    default_message = "auth: public and private keys don't match"


class InvalidKey(AuthConfigError):
    """Ward's own: key data that does not parse, does not suit the sign method, or is too weak."""

    default_message = "auth: invalid key data for the sign method"
