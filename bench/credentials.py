"""Auth for the bench: turning it on in a fresh server, and getting a token."""

from __future__ import annotations

import grpc

from bench import wire
from bench.config import ConfigError, Target
from bench.worker import read_file
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc


def parse_user(value: str) -> tuple[str, str]:
    """``name:password`` as given to ``--user``."""
    name, sep, password = value.partition(":")
    if not sep or not name:
        raise ConfigError("--user wants NAME:PASSWORD")
    return name, password


# The user a run with --auth works as when --user is not given.
DEFAULT_USER = ("bench", "bench-password")
ROOT_PASSWORD = "bench-root-password"
# Every key the bench writes is 8 ASCII digits: all of them lie in [0, :).
KEY_RANGE = (b"0", b":")


def _channel(target: Target) -> grpc.Channel:
    if target.tls is None:
        return grpc.insecure_channel(target.endpoints[0])
    credentials = grpc.ssl_channel_credentials(
        read_file(target.tls.cacert), read_file(target.tls.key), read_file(target.tls.cert)
    )
    return grpc.secure_channel(target.endpoints[0], credentials)


def enable_auth(target: Target, name: str, password: str, timeout: float = 10.0) -> None:
    """Turn auth on in a fresh server: `root`, and `name` holding a role that may read and write
    every bench key (so permission checks run as they would for an application, not root's
    short cut)."""
    with _channel(target) as channel:
        auth = rpc_pb2_grpc.AuthStub(channel)
        auth.UserAdd(
            rpc_pb2.AuthUserAddRequest(name="root", password=ROOT_PASSWORD), timeout=timeout
        )
        auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="root"), timeout=timeout)
        auth.UserGrantRole(
            rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=timeout
        )
        auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="bench"), timeout=timeout)
        perm = auth_pb2.Permission(
            permType=auth_pb2.Permission.READWRITE, key=KEY_RANGE[0], range_end=KEY_RANGE[1]
        )
        auth.RoleGrantPermission(
            rpc_pb2.AuthRoleGrantPermissionRequest(name="bench", perm=perm), timeout=timeout
        )
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name=name, password=password), timeout=timeout)
        auth.UserGrantRole(
            rpc_pb2.AuthUserGrantRoleRequest(user=name, role="bench"), timeout=timeout
        )
        auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=timeout)


def fetch_token(target: Target, name: str, password: str, timeout: float = 10.0) -> str:
    """Authenticate against the first endpoint and return the token to send as metadata."""
    with _channel(target) as channel:
        call = channel.unary_unary(wire.AUTHENTICATE)
        response = call(wire.authenticate(name, password), timeout=timeout)
    return rpc_pb2.AuthenticateResponse.FromString(response).token
