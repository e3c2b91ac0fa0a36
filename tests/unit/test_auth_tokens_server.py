"""A member's token keys and providers (server/tokens.py), and how callers are told apart."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from auth.errors import InvalidAuthToken
from auth.jwt_tokens import JWTTokenProvider
from auth.model import TokenInfo
from auth.tokens import SignMethod, TokenKind, TokenOptions
from server.access import client_address, info_from_header, request_header
from server.storage.authdb import LmdbAuthBackend
from server.storage.backend import Backend, BackendOptions
from server.tokens import MemberTokens, token_settings
from wardpb.peerpb import peer_pb2


def test_the_member_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    options = TokenOptions(kind=TokenKind.JWT)
    first = token_settings(options, ttl=300, key_dir=tmp_path)
    (key_file,) = tmp_path.glob("jwt-*.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = token_settings(options, ttl=300, key_dir=tmp_path)
    assert again.private_key == first.private_key
    # Workers verify with the public key only.
    worker = first.for_worker()
    assert worker.private_key is None and worker.public_key == first.public_key


def test_a_verifier_learns_other_members_published_keys_from_the_tables(tmp_path: Path) -> None:
    backend = Backend(tmp_path / "db", BackendOptions(map_size=16 << 20, sync=False))
    try:
        db = LmdbAuthBackend(backend)
        other = JWTTokenProvider(sign_method=SignMethod.ES256)
        mine = MemberTokens(JWTTokenProvider(sign_method=SignMethod.ES256), db)
        token = other.assign("alice", 3)
        with pytest.raises(InvalidAuthToken):
            mine.info(token)
        with backend.write() as txn, db.bound(txn):
            db.put_key(other.published_key())
        assert mine.info(token) == TokenInfo("alice", 3)
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:10.0.0.1:5000", "10.0.0.1"),
        ("ipv6:[::1]:5000", "::1"),
        ("unix:/run/ward.sock", "unix"),
        ("", ""),
    ],
)
def test_rate_limits_count_per_client_address_not_per_connection(peer: str, address: str) -> None:
    assert client_address(peer) == address


def test_the_caller_travels_in_the_entry_header() -> None:
    raw = request_header(TokenInfo("alice", 7))
    header = peer_pb2.RequestHeader.FromString(raw)
    assert info_from_header(header) == TokenInfo("alice", 7)
    assert info_from_header(peer_pb2.RequestHeader.FromString(request_header(None))) is None
