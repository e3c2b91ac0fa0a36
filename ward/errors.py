"""etcd's errors as Python exceptions, recognised from the gRPC status a server sends.

etcd's Go client turns a status whose message it knows into a typed error and leaves any other
status as a plain gRPC error; Ward's client does the same. Every server error is an
`EtcdError` carrying the status code and message; the messages etcd defines each have their own
subclass (`CompactedError`, `PermissionDeniedError`, ...), so callers can catch what they handle.
`EtcdError.known` tells a recognised message from an unrecognised one (etcdctl prints them
differently).
"""

from __future__ import annotations

from typing import ClassVar

import grpc

__all__ = [
    "AuthFailedError",
    "AuthNotEnabledError",
    "BadLeaderTransfereeError",
    "ClientConfigError",
    "CompactedError",
    "ConnectionLostTimeoutError",
    "CorruptError",
    "DeadlineExceededError",
    "DuplicateKeyError",
    "EmptyKeyError",
    "EtcdError",
    "FutureRevisionError",
    "InvalidAuthMgmtError",
    "InvalidAuthTokenError",
    "KeyNotFoundError",
    "LeaderChangedError",
    "LeaderFailTimeoutError",
    "LearnerNotReadyError",
    "LeaseExistError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseTTLTooLargeError",
    "MemberBadURLsError",
    "MemberExistError",
    "MemberNotEnoughStartedError",
    "MemberNotFoundError",
    "MemberNotLearnerError",
    "NoEndpointsError",
    "NoLeaderError",
    "NoSpaceError",
    "NotCapableError",
    "NotLeaderError",
    "NotSupportedForLearnerError",
    "PeerURLExistError",
    "PermissionDeniedError",
    "PermissionNotGrantedError",
    "RequestCanceledError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "RoleAlreadyExistError",
    "RoleEmptyError",
    "RoleNotFoundError",
    "RoleNotGrantedError",
    "RootRoleNotExistError",
    "RootUserNotExistError",
    "StoppedError",
    "TooManyLearnersError",
    "TooManyOpsError",
    "TooManyRequestsError",
    "UnhealthyError",
    "UserAlreadyExistError",
    "UserEmptyError",
    "UserNotFoundError",
    "ValueProvidedError",
    "error_from_rpc",
]


class ClientConfigError(ValueError):
    """The client was configured with something unusable (a missing certificate, a bad URL)."""


class NoEndpointsError(ClientConfigError):
    """The client was given no endpoint at all."""


class EtcdError(Exception):
    """An error answered by the server (or by the client on its behalf, like a deadline).

    `code` is the gRPC status code and `message` the status message, exactly as sent.
    """

    # Set on subclasses: the message etcd sends for this error and the code it sends it with.
    MESSAGE: ClassVar[str] = ""
    CODE: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.CODE

    @property
    def known(self) -> bool:
        """Whether this is one of etcd's own errors (rather than an arbitrary gRPC status)."""
        return type(self).MESSAGE != ""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.message!r})"


_IA = grpc.StatusCode.INVALID_ARGUMENT
_FP = grpc.StatusCode.FAILED_PRECONDITION
_OOR = grpc.StatusCode.OUT_OF_RANGE
_UN = grpc.StatusCode.UNAVAILABLE
_NF = grpc.StatusCode.NOT_FOUND
_RE = grpc.StatusCode.RESOURCE_EXHAUSTED


# KV
class EmptyKeyError(EtcdError):
    MESSAGE = "etcdserver: key is not provided"
    CODE = _IA


class KeyNotFoundError(EtcdError):
    MESSAGE = "etcdserver: key not found"
    CODE = _IA


class ValueProvidedError(EtcdError):
    MESSAGE = "etcdserver: value is provided"
    CODE = _IA


class LeaseProvidedError(EtcdError):
    MESSAGE = "etcdserver: lease is provided"
    CODE = _IA


class TooManyOpsError(EtcdError):
    MESSAGE = "etcdserver: too many operations in txn request"
    CODE = _IA


class DuplicateKeyError(EtcdError):
    MESSAGE = "etcdserver: duplicate key given in txn request"
    CODE = _IA


class CompactedError(EtcdError):
    MESSAGE = "etcdserver: mvcc: required revision has been compacted"
    CODE = _OOR


class FutureRevisionError(EtcdError):
    MESSAGE = "etcdserver: mvcc: required revision is a future revision"
    CODE = _OOR


class NoSpaceError(EtcdError):
    MESSAGE = "etcdserver: mvcc: database space exceeded"
    CODE = _RE


class RequestTooLargeError(EtcdError):
    MESSAGE = "etcdserver: request is too large"
    CODE = _IA


class TooManyRequestsError(EtcdError):
    MESSAGE = "etcdserver: too many requests"
    CODE = _RE


# Leases
class LeaseNotFoundError(EtcdError):
    MESSAGE = "etcdserver: requested lease not found"
    CODE = _NF


class LeaseExistError(EtcdError):
    MESSAGE = "etcdserver: lease already exists"
    CODE = _FP


class LeaseTTLTooLargeError(EtcdError):
    MESSAGE = "etcdserver: too large lease TTL"
    CODE = _OOR


# Membership
class MemberExistError(EtcdError):
    MESSAGE = "etcdserver: member ID already exist"
    CODE = _FP


class PeerURLExistError(EtcdError):
    MESSAGE = "etcdserver: Peer URLs already exists"
    CODE = _FP


class MemberNotEnoughStartedError(EtcdError):
    MESSAGE = "etcdserver: re-configuration failed due to not enough started members"
    CODE = _FP


class MemberBadURLsError(EtcdError):
    MESSAGE = "etcdserver: given member URLs are invalid"
    CODE = _IA


class MemberNotFoundError(EtcdError):
    MESSAGE = "etcdserver: member not found"
    CODE = _NF


class MemberNotLearnerError(EtcdError):
    MESSAGE = "etcdserver: can only promote a learner member"
    CODE = _FP


class LearnerNotReadyError(EtcdError):
    MESSAGE = "etcdserver: can only promote a learner member which is in sync with leader"
    CODE = _FP


class TooManyLearnersError(EtcdError):
    MESSAGE = "etcdserver: too many learner members in cluster"
    CODE = _FP


# Auth
class RootUserNotExistError(EtcdError):
    MESSAGE = "etcdserver: root user does not exist"
    CODE = _FP


class RootRoleNotExistError(EtcdError):
    MESSAGE = "etcdserver: root user does not have root role"
    CODE = _FP


class UserAlreadyExistError(EtcdError):
    MESSAGE = "etcdserver: user name already exists"
    CODE = _FP


class UserEmptyError(EtcdError):
    MESSAGE = "etcdserver: user name is empty"
    CODE = _IA


class UserNotFoundError(EtcdError):
    MESSAGE = "etcdserver: user name not found"
    CODE = _FP


class RoleAlreadyExistError(EtcdError):
    MESSAGE = "etcdserver: role name already exists"
    CODE = _FP


class RoleNotFoundError(EtcdError):
    MESSAGE = "etcdserver: role name not found"
    CODE = _FP


class RoleEmptyError(EtcdError):
    MESSAGE = "etcdserver: role name is empty"
    CODE = _IA


class AuthFailedError(EtcdError):
    MESSAGE = "etcdserver: authentication failed, invalid user ID or password"
    CODE = _IA


class PermissionDeniedError(EtcdError):
    MESSAGE = "etcdserver: permission denied"
    CODE = grpc.StatusCode.PERMISSION_DENIED


class RoleNotGrantedError(EtcdError):
    MESSAGE = "etcdserver: role is not granted to the user"
    CODE = _FP


class PermissionNotGrantedError(EtcdError):
    MESSAGE = "etcdserver: permission is not granted to the role"
    CODE = _FP


class AuthNotEnabledError(EtcdError):
    MESSAGE = "etcdserver: authentication is not enabled"
    CODE = _FP


class InvalidAuthTokenError(EtcdError):
    MESSAGE = "etcdserver: invalid auth token"
    CODE = grpc.StatusCode.UNAUTHENTICATED


class InvalidAuthMgmtError(EtcdError):
    MESSAGE = "etcdserver: invalid auth management"
    CODE = _IA


# Cluster and server state
class NoLeaderError(EtcdError):
    MESSAGE = "etcdserver: no leader"
    CODE = _UN


class NotLeaderError(EtcdError):
    MESSAGE = "etcdserver: not leader"
    CODE = _FP


class LeaderChangedError(EtcdError):
    MESSAGE = "etcdserver: leader changed"
    CODE = _UN


class NotCapableError(EtcdError):
    MESSAGE = "etcdserver: not capable"
    CODE = _UN


class StoppedError(EtcdError):
    MESSAGE = "etcdserver: server stopped"
    CODE = _UN


class RequestTimeoutError(EtcdError):
    MESSAGE = "etcdserver: request timed out"
    CODE = _UN


class LeaderFailTimeoutError(EtcdError):
    MESSAGE = "etcdserver: request timed out, possibly due to previous leader failure"
    CODE = _UN


class ConnectionLostTimeoutError(EtcdError):
    MESSAGE = "etcdserver: request timed out, possibly due to connection lost"
    CODE = _UN


class UnhealthyError(EtcdError):
    MESSAGE = "etcdserver: unhealthy cluster"
    CODE = _UN


class CorruptError(EtcdError):
    MESSAGE = "etcdserver: corrupt cluster"
    CODE = grpc.StatusCode.DATA_LOSS


class NotSupportedForLearnerError(EtcdError):
    MESSAGE = "etcdserver: rpc not supported for learner"
    CODE = _UN


class BadLeaderTransfereeError(EtcdError):
    MESSAGE = "etcdserver: bad leader transferee"
    CODE = _FP


# Raised by the client itself, worded as Go's context package words them (etcdctl prints these).
class DeadlineExceededError(EtcdError):
    """The call's deadline passed before an answer came (also: no endpoint could be reached)."""

    MESSAGE = "context deadline exceeded"
    CODE = grpc.StatusCode.DEADLINE_EXCEEDED


class RequestCanceledError(EtcdError):
    """The call was cancelled on the client side."""

    MESSAGE = "context canceled"
    CODE = grpc.StatusCode.CANCELLED


def _all_subclasses(cls: type[EtcdError]) -> list[type[EtcdError]]:
    found: list[type[EtcdError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


# The one table from a server's message to its exception type.
_BY_MESSAGE: dict[str, type[EtcdError]] = {
    sub.MESSAGE: sub
    for sub in _all_subclasses(EtcdError)
    if sub.MESSAGE and sub not in (DeadlineExceededError, RequestCanceledError)
}


def error_from_rpc(err: grpc.RpcError, *, deadline_passed: bool = False) -> EtcdError:
    """Translate a failed gRPC call into the matching `EtcdError` subclass.

    `deadline_passed` says the caller's own deadline has expired, so a DEADLINE_EXCEEDED status is
    reported as Go's "context deadline exceeded" whatever transport detail came with it.
    """
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    message = (details_fn() if callable(details_fn) else None) or ""
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    known = _BY_MESSAGE.get(message)
    if known is not None:
        return known(message, code)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and (deadline_passed or not message):
        return DeadlineExceededError(DeadlineExceededError.MESSAGE, code)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and message == "Deadline Exceeded":
        # grpc's own wording for a client-side deadline.
        return DeadlineExceededError(DeadlineExceededError.MESSAGE, code)
    if code == grpc.StatusCode.CANCELLED and message in ("", "Locally cancelled by application!"):
        return RequestCanceledError(RequestCanceledError.MESSAGE, code)
    return EtcdError(message, code)
