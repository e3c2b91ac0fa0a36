"""Tokens against real `ward` processes: `--auth-token` forms, keys, restarts, and etcd's answers.

- JWT with the member's own key (the default): the key is kept in the data directory (0600),
  so tokens survive a restart; the rules, kept in lmdb, survive it too (SECURITY 9).
- JWT with configured keys (etcd's `jwt,pub-key=,priv-key=,sign-method=`): anyone holding the
  public key can check a token, and a token names the user and the auth revision.
- `simple` tokens, only when asked, with a warning: the core keeps them, workers ask it.
- A denied watch answers as etcd 3.4 answers (checked against etcd in the same run).
"""

from __future__ import annotations

import stat
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.auth_client import Client, authenticate, status_of
from tests.e2e.servers import SERVER_KINDS, start_server
from tests.e2e.ward_process import start_ward
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2

SPREAD = 8
ROOT_PW = "root-pass-1"
ALICE_PW = "alice-pass-1"


def setup_auth(endpoint: str) -> None:
    """root (root role); alice (read and write under `a/`); auth on."""
    with Client(endpoint) as c:
        for name, pw in (("root", ROOT_PW), ("alice", ALICE_PW)):
            c.call(c.auth.UserAdd, rpc_pb2.AuthUserAddRequest(name=name, password=pw))
        for role in ("root", "ra"):
            c.call(c.auth.RoleAdd, rpc_pb2.AuthRoleAddRequest(name=role))
        c.call(
            c.auth.RoleGrantPermission,
            rpc_pb2.AuthRoleGrantPermissionRequest(
                name="ra", perm=auth_pb2.Permission(permType=2, key=b"a/", range_end=b"a0")
            ),
        )
        for user, role in (("root", "root"), ("alice", "ra")):
            c.call(c.auth.UserGrantRole, rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role))
        c.call(c.auth.AuthEnable, rpc_pb2.AuthEnableRequest())


def test_security9_member_key_is_private_and_tokens_and_rules_survive_a_restart(
    tmp_path: Path,
) -> None:
    ward = start_ward(tmp_path, "--bcrypt-cost", "4")
    try:
        setup_auth(ward.endpoint)
        token = authenticate(ward.endpoint, "alice", ALICE_PW)
        keys = list((ward.data_dir / "member").glob("jwt-*.key"))
        assert len(keys) == 1
        assert stat.S_IMODE(keys[0].stat().st_mode) == 0o600
        ward.restart()
        for _ in range(SPREAD):
            with Client(ward.endpoint, token) as c:
                c.put(b"a/after-restart")
                assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"secret"))[0] == (
                    grpc.StatusCode.PERMISSION_DENIED
                )
    finally:
        ward.stop()


def test_configured_jwt_keys_sign_tokens_anyone_with_the_public_key_can_check(
    tmp_path: Path,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = tmp_path / "jwt.key"
    pub = tmp_path / "jwt.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    option = f"jwt,pub-key={pub},priv-key={priv},sign-method=RS256,ttl=2m"
    ward = start_ward(tmp_path, "--bcrypt-cost", "4", "--auth-token", option)
    try:
        setup_auth(ward.endpoint)
        token = authenticate(ward.endpoint, "alice", ALICE_PW)
        claims = jwt.decode(token, pub.read_bytes(), algorithms=["RS256"])
        assert claims["username"] == "alice" and claims["revision"] > 0
        assert 110 <= claims["exp"] - claims["iat"] <= 120
        for _ in range(SPREAD):
            with Client(ward.endpoint, token) as c:
                c.put(b"a/rs256")
        # A token signed with another key is refused everywhere.
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode({**claims, "username": "root"}, other, algorithm="RS256")
        for _ in range(SPREAD):
            with Client(ward.endpoint, forged) as c:
                assert c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"a/x")) == (
                    grpc.StatusCode.UNAUTHENTICATED,
                    "etcdserver: invalid auth token",
                )
        assert not list((ward.data_dir / "member").glob("jwt-*.key"))
    finally:
        ward.stop()


def test_simple_tokens_only_when_asked_with_a_warning_and_valid_on_every_process(
    tmp_path: Path,
) -> None:
    ward = start_ward(tmp_path, "--bcrypt-cost", "4", "--auth-token", "simple")
    try:
        assert "--auth-token=simple" in ward.log_text()
        setup_auth(ward.endpoint)
        token = authenticate(ward.endpoint, "alice", ALICE_PW)
        assert "." not in token  # not a JWT
        for _ in range(SPREAD):
            with Client(ward.endpoint, token) as c, Client(ward.endpoint, token + "x") as bad:
                c.put(b"a/simple")
                assert c.get(b"a/simple") == [b"a/simple"]
                assert status_of_range(bad) == (
                    grpc.StatusCode.UNAUTHENTICATED,
                    "etcdserver: invalid auth token",
                )
    finally:
        ward.stop()


def status_of_range(c: Client) -> tuple[grpc.StatusCode, str]:
    return c.refused(c.kv.Range, rpc_pb2.RangeRequest(key=b"a/x"))


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_security4_denied_watch_answer_is_etcds(kind: str, tmp_path: Path) -> None:
    server = start_server(kind, tmp_path, "--bcrypt-cost", "4")
    try:
        setup_auth(server.address)
        with Client(server.address, authenticate(server.address, "alice", ALICE_PW)) as c:
            stream = c.watch()
            denied = stream.create(b"secret", watch_id=7)
            assert (denied.watch_id, denied.created, denied.canceled) == (-1, True, True)
            assert denied.cancel_reason == (
                "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
            )
            assert not denied.events
            stream.close()
    finally:
        server.stop()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_authenticate_errors_are_etcds(kind: str, tmp_path: Path) -> None:
    server = start_server(kind, tmp_path, "--bcrypt-cost", "4")
    try:
        with pytest.raises(grpc.RpcError) as e:
            authenticate(server.address, "root", ROOT_PW)
        assert status_of(e.value) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "etcdserver: authentication is not enabled",
        )
        setup_auth(server.address)
        for name, pw in (("alice", "wrong-password"), ("nobody", "any-password")):
            with pytest.raises(grpc.RpcError) as e:
                authenticate(server.address, name, pw)
            assert status_of(e.value) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "etcdserver: authentication failed, invalid user ID or password",
            )
    finally:
        server.stop()
