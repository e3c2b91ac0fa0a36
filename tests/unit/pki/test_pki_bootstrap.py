"""The server's own credentials for a secure-by-default start."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509

from pki import (
    CAExpired,
    InvalidSAN,
    PKIStore,
    Profile,
    SubjectAltNames,
    ensure_peer_credentials,
    ensure_server_credentials,
    verify_chain,
)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != ".lock"}


def test_first_start_creates_a_ca_a_server_cert_and_a_root_client_cert(tmp_path: Path) -> None:
    creds = ensure_server_credentials(tmp_path / "tls", hosts=["node1.example", "10.1.2.3"])
    assert creds.changed
    assert stat.S_IMODE(creds.directory.stat().st_mode) == 0o700
    for key in (creds.server_key, creds.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = _cert(creds.ca_cert)
    server, client = _cert(creds.server_cert), _cert(creds.client_cert)
    assert verify_chain(server, roots=[ca]) and verify_chain(client, roots=[ca])
    assert Profile.of_certificate(server) is Profile.SERVER
    assert Profile.of_certificate(client) is Profile.CLIENT
    assert client.subject.rfc4514_string() == "CN=root"
    sans = SubjectAltNames.from_extensions(server.extensions)
    assert sans.dns_names == ("localhost", "node1.example")
    assert [str(ip) for ip in sans.ip_addresses] == ["10.1.2.3", "127.0.0.1", "::1"]


def test_a_second_start_changes_nothing(tmp_path: Path) -> None:
    ensure_server_credentials(tmp_path / "tls", hosts=["node1.example"])
    before = _contents(tmp_path / "tls")
    again = ensure_server_credentials(tmp_path / "tls", hosts=["node1.example"])
    assert not again.changed
    assert _contents(tmp_path / "tls") == before


def test_a_new_advertised_name_reissues_only_the_server_cert_under_the_same_ca(
    tmp_path: Path,
) -> None:
    first = ensure_server_credentials(tmp_path / "tls", hosts=["node1.example"])
    before = _contents(tmp_path / "tls")
    second = ensure_server_credentials(tmp_path / "tls", hosts=["node1.example", "10.9.9.9"])
    after = _contents(tmp_path / "tls")
    assert second.changed
    assert after["ca.crt"] == before["ca.crt"]
    assert after["client-root.crt"] == before["client-root.crt"]
    assert after["server.key"] == before["server.key"]  # the key is kept
    assert after["server.crt"] != before["server.crt"]
    sans = SubjectAltNames.from_extensions(_cert(first.server_cert).extensions)
    assert "10.9.9.9" in [str(ip) for ip in sans.ip_addresses]


def test_a_certificate_near_its_end_is_renewed(tmp_path: Path) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=350)
    ensure_server_credentials(tmp_path / "tls", hosts=["n"], days=365, clock=lambda: start)
    old = _cert(tmp_path / "tls" / "server.crt")
    ensure_server_credentials(tmp_path / "tls", hosts=["n"])
    new = _cert(tmp_path / "tls" / "server.crt")
    assert new.not_valid_after_utc > old.not_valid_after_utc + dt.timedelta(days=300)


def test_an_existing_ca_of_any_name_is_used(tmp_path: Path) -> None:
    PKIStore(tmp_path / "tls").init_ca(common_name="Operator CA")
    creds = ensure_server_credentials(tmp_path / "tls", hosts=["n"])
    assert _cert(creds.server_cert).issuer.rfc4514_string() == "CN=Operator CA"


def test_an_expired_ca_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    PKIStore(tmp_path / "tls", clock=lambda: past).init_ca(days=10)
    with pytest.raises(CAExpired, match="expired"):
        ensure_server_credentials(tmp_path / "tls", hosts=["n"])


def test_peer_credentials_are_for_both_server_and_client_auth(tmp_path: Path) -> None:
    creds = ensure_peer_credentials(tmp_path / "tls", hosts=["node2.example", "10.0.0.2"])
    cert = _cert(creds.cert)
    assert Profile.of_certificate(cert) is Profile.PEER
    assert not ensure_peer_credentials(
        tmp_path / "tls", hosts=["node2.example", "10.0.0.2"]
    ).changed


def test_wildcard_listen_addresses_are_not_certified(tmp_path: Path) -> None:
    creds = ensure_server_credentials(tmp_path / "tls", hosts=["0.0.0.0", "::", "n.example"])
    sans = SubjectAltNames.from_extensions(_cert(creds.server_cert).extensions)
    assert [str(ip) for ip in sans.ip_addresses] == ["127.0.0.1", "::1"]
    assert sans.dns_names == ("localhost", "n.example")


def test_a_malformed_host_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidSAN):
        ensure_server_credentials(tmp_path / "tls", hosts=["bad_host"])
    assert not (tmp_path / "tls").exists()
