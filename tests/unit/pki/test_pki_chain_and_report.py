"""Chain checks and the inspection report (text and JSON)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from pki import (
    CertificateAuthority,
    ChainError,
    Profile,
    SubjectAltNames,
    describe_certificate,
    generate_key,
    parse_serial,
    verify_chain,
)
from pki.report import PKIReport

SANS = SubjectAltNames.parse(dns=["node1.example"], ips=["10.0.0.1"])


def _leaf(
    ca: CertificateAuthority, *, days: int = 365, now: dt.datetime | None = None
) -> x509.Certificate:
    return ca.issue(
        profile=Profile.PEER,
        public_key=generate_key().public_key(),
        common_name="node1",
        sans=SANS,
        days=days,
        now=now,
    )


def test_a_leaf_chains_through_its_intermediate_to_the_root(root_ca: CertificateAuthority) -> None:
    intermediate = root_ca.issue_intermediate(common_name="Mid", key=generate_key())
    leaf = _leaf(intermediate)
    path = verify_chain(leaf, roots=[root_ca.certificate], intermediates=[intermediate.certificate])
    assert path == (leaf, intermediate.certificate, root_ca.certificate)


def test_a_leaf_of_another_ca_does_not_chain(
    root_ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    with pytest.raises(ChainError, match="no CA certificate found"):
        verify_chain(_leaf(other_ca), roots=[root_ca.certificate])


def test_a_ca_with_the_same_name_but_another_key_does_not_verify(
    root_ca: CertificateAuthority,
) -> None:
    impostor = CertificateAuthority.create_root(common_name="Test Root", key=generate_key())
    with pytest.raises(ChainError, match="does not verify"):
        verify_chain(_leaf(impostor), roots=[root_ca.certificate])


def test_an_expired_leaf_fails_the_chain_check(root_ca: CertificateAuthority) -> None:
    leaf = _leaf(root_ca, days=1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    with pytest.raises(ChainError, match="expired"):
        verify_chain(leaf, roots=[root_ca.certificate], now=later)


def test_an_expired_ca_fails_the_chain_check() -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    ca = CertificateAuthority.create_root(common_name="Old", key=generate_key(), days=10, now=start)
    leaf = _leaf(ca, now=start + dt.timedelta(days=1), days=5)
    with pytest.raises(ChainError, match="expired"):
        verify_chain(leaf, roots=[ca.certificate], now=start + dt.timedelta(days=12))


def test_a_leaf_posing_as_an_issuer_is_rejected(root_ca: CertificateAuthority) -> None:
    """A leaf's key signs a certificate naming the leaf as issuer: it is not a CA."""
    leaf_key = generate_key()
    leaf = root_ca.issue(
        profile=Profile.SERVER, public_key=leaf_key.public_key(), common_name="evil", sans=SANS
    )
    now = dt.datetime.now(dt.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "victim")]))
        .issuer_name(leaf.subject)
        .public_key(generate_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(leaf_key, hashes.SHA256())
    )
    with pytest.raises(ChainError, match="not a CA"):
        verify_chain(forged, roots=[root_ca.certificate], intermediates=[leaf])


def test_path_length_is_enforced_on_chains_built_elsewhere() -> None:
    root = CertificateAuthority.create_root(common_name="R", key=generate_key(), path_length=0)
    # Build an intermediate under a path-length-0 root by hand: Ward itself refuses to.
    mid_key = generate_key()
    mid = CertificateAuthority.create_root(common_name="M", key=mid_key)
    crafted = (
        x509.CertificateBuilder()
        .subject_name(mid.certificate.subject)
        .issuer_name(root.certificate.subject)
        .public_key(mid_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(mid.certificate.not_valid_before_utc)
        .not_valid_after(mid.certificate.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root.key, hashes.SHA256())
    )
    leaf = _leaf(CertificateAuthority(crafted, mid_key))
    with pytest.raises(ChainError, match="allows 0 intermediate"):
        verify_chain(leaf, roots=[root.certificate], intermediates=[crafted])


def test_report_lists_what_an_operator_needs(root_ca: CertificateAuthority) -> None:
    key = generate_key()
    cert = root_ca.issue(
        profile=Profile.PEER, public_key=key.public_key(), common_name="node1", sans=SANS
    )
    report = describe_certificate(
        cert, source="node1.crt", roots=[root_ca.certificate], private_key=key
    )
    assert report.ok
    assert report.subject == "CN=node1" and report.issuer == "CN=Test Root"
    assert parse_serial(report.serial) == cert.serial_number
    assert report.profile == "peer"
    assert report.dns_names == ("node1.example",)
    assert report.ip_addresses == ("10.0.0.1",)
    assert report.key_usages == ("digitalSignature",)
    assert report.extended_key_usages == ("serverAuth", "clientAuth")
    assert report.key_type == "ecdsa-p256"
    assert 363 <= report.days_left <= 365
    assert report.chain is not None and report.chain.path == ("node1", "Test Root")
    assert report.key_matches is True
    text = report.to_text()
    for needle in ("CN=node1", "DNS:node1.example", "IP:10.0.0.1", "serverAuth", "days left"):
        assert needle in text


def test_report_json_is_parseable_and_carries_problems(
    root_ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    cert = _leaf(other_ca)
    report = describe_certificate(cert, roots=[root_ca.certificate], private_key=generate_key())
    assert not report.ok
    data = json.loads(PKIReport(certificates=(report,)).to_json())
    (entry,) = data["certificates"]
    assert data["ok"] is False
    assert entry["chain"]["ok"] is False
    assert entry["key_matches"] is False
    assert entry["serial"] == report.serial
    assert entry["not_after"].endswith("Z")
    assert len(entry["problems"]) == 2
