"""Getting an auth token for servers that have authentication on."""

from __future__ import annotations

import grpc

from bench import wire
from bench.config import ConfigError, Target
from bench.worker import read_file
from wardpb.etcdserverpb import rpc_pb2


def parse_user(value: str) -> tuple[str, str]:
    """``name:password`` as given to ``--user``."""
    name, sep, password = value.partition(":")
    if not sep or not name:
        raise ConfigError("--user wants NAME:PASSWORD")
    return name, password


def fetch_token(target: Target, name: str, password: str, timeout: float = 10.0) -> str:
    """Authenticate against the first endpoint and return the token to send as metadata."""
    endpoint = target.endpoints[0]
    if target.tls is None:
        channel = grpc.insecure_channel(endpoint)
    else:
        credentials = grpc.ssl_channel_credentials(
            read_file(target.tls.cacert), read_file(target.tls.key), read_file(target.tls.cert)
        )
        channel = grpc.secure_channel(endpoint, credentials)
    with channel:
        call = channel.unary_unary(wire.AUTHENTICATE)
        response = call(wire.authenticate(name, password), timeout=timeout)
    return rpc_pb2.AuthenticateResponse.FromString(response).token
