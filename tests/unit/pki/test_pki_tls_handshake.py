"""Certificates from the PKI complete real mutual-TLS handshakes with Python's ssl (OpenSSL).

Server and client run on 127.0.0.1 with an ephemeral port; the server always requires a client
certificate.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pki import KeyType, PKIStore, Profile

TIMEOUT_S = 5.0


@dataclass
class _Outcome:
    server_error: BaseException | None = None
    client_error: BaseException | None = None
    reply: bytes = b""
    peer_subject: list[tuple[tuple[str, str], ...]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None and self.reply == b"pong"


def _server_context(pki: PKIStore, name: str, *, check_crl: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_path(name), pki.key_path(name))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=pki.ca_cert_path)
    if check_crl:
        context.load_verify_locations(cafile=pki.crl_path)
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def _client_context(trust: PKIStore, owner: PKIStore | None, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=trust.ca_cert_path)
    if owner is not None and name is not None:
        context.load_cert_chain(owner.cert_path(name), owner.key_path(name))
    return context


def _exchange(
    server: ssl.SSLContext, client: ssl.SSLContext, *, hostname: str = "localhost"
) -> _Outcome:
    outcome = _Outcome()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT_S)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(TIMEOUT_S)
                    peer = tls.getpeercert()
                    outcome.peer_subject = list(peer.get("subject", ())) if peer else []
                    if tls.recv(4) == b"ping":
                        tls.sendall(b"pong")
            except (OSError, ssl.SSLError) as error:
                outcome.server_error = error

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
                client.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                tls.sendall(b"ping")
                outcome.reply = tls.recv(4)
        except (OSError, ssl.SSLError) as error:
            outcome.client_error = error
        thread.join(TIMEOUT_S * 2)
        assert not thread.is_alive()
    return outcome


def _pki(tmp_path: Path, name: str, *, key_type: KeyType | None = None) -> PKIStore:
    pki = PKIStore(tmp_path / name)
    pki.init_ca(common_name=f"{name} CA", key_type=key_type)
    pki.issue(Profile.SERVER, "server", dns=["localhost"], ips=["127.0.0.1"], key_type=key_type)
    pki.issue(Profile.CLIENT, "admin", common_name="root", key_type=key_type)
    return pki


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ED25519])
def test_mutual_tls_succeeds_and_the_server_sees_the_client_cn(
    tmp_path: Path, key_type: KeyType
) -> None:
    pki = _pki(tmp_path, "ward", key_type=key_type)
    outcome = _exchange(_server_context(pki, "server"), _client_context(pki, pki, "admin"))
    assert outcome.ok, (outcome.server_error, outcome.client_error)
    assert (("commonName", "root"),) in outcome.peer_subject


def test_mutual_tls_with_rsa_keys_over_tls12(tmp_path: Path) -> None:
    """RSA certificates also serve older clients limited to TLS 1.2."""
    pki = _pki(tmp_path, "ward", key_type=KeyType.RSA_2048)
    client = _client_context(pki, pki, "admin")
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = _exchange(_server_context(pki, "server"), client)
    assert outcome.ok, (outcome.server_error, outcome.client_error)


def test_mutual_tls_through_an_intermediate_ca(tmp_path: Path) -> None:
    pki = PKIStore(tmp_path / "ward")
    pki.init_ca()
    pki.init_intermediate()
    pki.issue(Profile.PEER, "server", dns=["localhost"])
    pki.issue(Profile.CLIENT, "admin")
    outcome = _exchange(_server_context(pki, "server"), _client_context(pki, pki, "admin"))
    assert outcome.ok, (outcome.server_error, outcome.client_error)


def test_a_client_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    ours, theirs = _pki(tmp_path, "ours"), _pki(tmp_path, "theirs")
    outcome = _exchange(_server_context(ours, "server"), _client_context(ours, theirs, "admin"))
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert "certificate verify failed" in str(outcome.server_error)
    assert outcome.reply != b"pong"


def test_a_client_without_a_certificate_is_refused(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "ward")
    outcome = _exchange(_server_context(pki, "server"), _client_context(pki, None, None))
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert outcome.reply != b"pong"


def test_a_name_missing_from_the_sans_fails_hostname_verification(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "ward")
    client = _client_context(pki, pki, "admin")
    outcome = _exchange(_server_context(pki, "server"), client, hostname="elsewhere.example")
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "elsewhere.example" in str(outcome.client_error)


def test_a_client_profile_certificate_cannot_serve_tls(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "ward")
    pki.issue(Profile.CLIENT, "imposter", common_name="localhost")
    outcome = _exchange(_server_context(pki, "imposter"), _client_context(pki, pki, "admin"))
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "unsuitable certificate purpose" in str(outcome.client_error)


def test_a_server_profile_certificate_cannot_authenticate_a_client(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "ward")
    outcome = _exchange(_server_context(pki, "server"), _client_context(pki, pki, "server"))
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert "unsuitable certificate purpose" in str(outcome.server_error)


def test_openssl_honours_our_crl_for_a_revoked_client(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "ward")
    pki.issue(Profile.CLIENT, "bob")
    pki.revoke(name="admin")
    server = _server_context(pki, "server", check_crl=True)
    refused = _exchange(server, _client_context(pki, pki, "admin"))
    assert isinstance(refused.server_error, ssl.SSLError)
    assert "certificate revoked" in str(refused.server_error)
    accepted = _exchange(server, _client_context(pki, pki, "bob"))
    assert accepted.ok, (accepted.server_error, accepted.client_error)
