"""etcd's errors, with their exact messages and gRPC status codes.

Every layer below the RPC layer raises an `EtcdError`; the RPC layer maps it to a gRPC status
through this one table, so clients see the message and code etcd would send.
"""

from __future__ import annotations

import grpc

from auth.errors import AuthError


class EtcdError(Exception):
    """An error with etcd's gRPC status code and message."""

    __slots__ = ("code", "message")

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"EtcdError({self.code.name}, {self.message!r})"


def _err(code: grpc.StatusCode, message: str) -> EtcdError:
    return EtcdError(code, message)


_IA = grpc.StatusCode.INVALID_ARGUMENT
_FP = grpc.StatusCode.FAILED_PRECONDITION
_OOR = grpc.StatusCode.OUT_OF_RANGE
_UN = grpc.StatusCode.UNAVAILABLE
_NF = grpc.StatusCode.NOT_FOUND

# KV
EMPTY_KEY = _err(_IA, "etcdserver: key is not provided")
KEY_NOT_FOUND = _err(_IA, "etcdserver: key not found")
VALUE_PROVIDED = _err(_IA, "etcdserver: value is provided")
LEASE_PROVIDED = _err(_IA, "etcdserver: lease is provided")
TOO_MANY_OPS = _err(_IA, "etcdserver: too many operations in txn request")
DUPLICATE_KEY = _err(_IA, "etcdserver: duplicate key given in txn request")
COMPACTED = _err(_OOR, "etcdserver: mvcc: required revision has been compacted")
FUTURE_REV = _err(_OOR, "etcdserver: mvcc: required revision is a future revision")
NO_SPACE = _err(grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
REQUEST_TOO_LARGE = _err(_IA, "etcdserver: request is too large")
KEY_TOO_LARGE = _err(_IA, "etcdserver: key is too large")

# Leases
LEASE_NOT_FOUND = _err(_NF, "etcdserver: requested lease not found")
LEASE_EXIST = _err(_FP, "etcdserver: lease already exists")
LEASE_TTL_TOO_LARGE = _err(_OOR, "etcdserver: too large lease TTL")

# Cluster and server state
NO_LEADER = _err(_UN, "etcdserver: no leader")
NOT_LEADER = _err(grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: not leader")
LEADER_CHANGED = _err(_UN, "etcdserver: leader changed")
NOT_CAPABLE = _err(_UN, "etcdserver: not capable")
STOPPED = _err(_UN, "etcdserver: server stopped")
TIMEOUT = _err(_UN, "etcdserver: request timed out")
TIMEOUT_DUE_TO_LEADER_FAIL = _err(
    _UN, "etcdserver: request timed out, possibly due to previous leader failure"
)
TIMEOUT_LEADER_TRANSFER = _err(
    _UN, "etcdserver: request timed out, leader transfer took too long"
)
UNHEALTHY = _err(_UN, "etcdserver: unhealthy cluster")
CORRUPT = _err(grpc.StatusCode.DATA_LOSS, "etcdserver: corrupt cluster")
MEMBER_NOT_FOUND = _err(_NF, "etcdserver: member not found")
MEMBER_EXIST = _err(_FP, "etcdserver: member ID already exist")
MEMBER_BAD_URLS = _err(_IA, "etcdserver: given member URLs are invalid")
NOT_ENOUGH_STARTED_MEMBERS = _err(
    _FP, "etcdserver: re-configuration failed due to not enough started members"
)
PEER_URL_EXIST = _err(_FP, "etcdserver: Peer URLs already exists")
MEMBER_NOT_LEARNER = _err(_FP, "etcdserver: can only promote a learner member")
LEARNER_NOT_READY = _err(
    _FP, "etcdserver: can only promote a learner member which is in sync with leader"
)
TOO_MANY_LEARNERS = _err(_FP, "etcdserver: too many learner members in cluster")
NOT_SUPPORTED_FOR_LEARNER = _err(_UN, "etcdserver: rpc not supported for learner")
BAD_LEADER_TRANSFEREE = _err(_FP, "etcdserver: bad leader transferee")
UNIMPLEMENTED = _err(grpc.StatusCode.UNIMPLEMENTED, "etcdserver: not implemented yet in Ward")


def grpc_too_large(received: int, limit: int) -> EtcdError:
    """gRPC's own refusal of a message over the receive limit, worded as grpc-go words it."""
    return EtcdError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"grpc: received message larger than max ({received} vs. {limit})",
    )


# Auth: the auth core's errors carry etcd's code and message already; Ward's own below.
HASHED_PASSWORD_REFUSED = _err(
    _IA, "ward: hashed passwords are not accepted (Ward hashes with argon2id); send the password"
)
NAME_TOO_LONG = _err(_IA, "ward: user or role name is too long")
MALFORMED_AUTH_ENTRY = _err(_IA, "ward: malformed auth entry")


class AuthDenied(EtcdError):
    """An auth error as etcd's RPC layer maps it; `auth_error` is the auth core's error."""

    __slots__ = ("auth_error",)

    def __init__(self, e: AuthError) -> None:
        super().__init__(grpc.StatusCode[e.code.value], e.message)
        self.auth_error = e


def from_auth(e: AuthError) -> AuthDenied:
    """The status etcd sends for an auth error (the auth core names the code, grpc-free)."""
    return AuthDenied(e)


# etcd's Maintenance service returns the auth store's Go errors unmapped, so its clients see
# status Unknown and these texts (etcd's auth/store.go).
_AUTH_GO_TEXT = {
    "UserEmpty": "auth: user name is empty",
    "UserNotFound": "auth: user not found",
    "PermissionDenied": "auth: permission denied",
    "InvalidAuthToken": "auth: invalid auth token",
    "AuthOldRevision": "auth: revision in header is old",
}


def unmapped_auth(e: AuthDenied) -> EtcdError:
    """`e` as etcd's Maintenance service sends it: status Unknown, the Go error's text."""
    text = _AUTH_GO_TEXT.get(type(e.auth_error).__name__, e.message)
    return EtcdError(grpc.StatusCode.UNKNOWN, text)


# For the inter-process link: statuses travel as their numeric value.
CODE_BY_VALUE: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}
