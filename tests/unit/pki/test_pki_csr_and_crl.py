"""Signing CSRs made elsewhere, and revoking certificates through a CRL."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki import (
    BadCSRSignature,
    CertificateAuthority,
    CertificateRevoked,
    CRLError,
    InvalidCSR,
    Profile,
    Revocation,
    SubjectAltNames,
    build_crl,
    check_not_revoked,
    generate_key,
)
from pki.keys import PrivateKey


def _csr(
    key: PrivateKey,
    *,
    cn: str | None = "alice",
    dns: tuple[str, ...] = (),
    ask_for_ca: bool = False,
) -> x509.CertificateSigningRequest:
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    if ask_for_ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    return builder.sign(key, hashes.SHA256())


def _tampered(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    """The same CSR with one byte of its subject changed, so its signature no longer matches."""
    der = csr.public_bytes(serialization.Encoding.DER)
    assert der.count(b"alice") == 1
    return x509.load_der_x509_csr(der.replace(b"alice", b"alicf"))


def test_a_csr_is_signed_for_its_own_key_cn_and_sans(root_ca: CertificateAuthority) -> None:
    key = generate_key()
    csr = _csr(key, cn="node7", dns=("node7.example",))
    cert = root_ca.sign_csr(csr, profile=Profile.SERVER)
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=node7"
    assert SubjectAltNames.from_extensions(cert.extensions).dns_names == ("node7.example",)
    cert.verify_directly_issued_by(root_ca.certificate)


def test_the_profile_not_the_csr_decides_usages(root_ca: CertificateAuthority) -> None:
    csr = _csr(generate_key(), ask_for_ca=True)
    cert = root_ca.sign_csr(csr, profile=Profile.CLIENT)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_only_the_common_name_of_the_csr_subject_is_kept(root_ca: CertificateAuthority) -> None:
    cert = root_ca.sign_csr(_csr(generate_key()), profile=Profile.CLIENT)
    assert cert.subject.rfc4514_string() == "CN=alice"  # no O=system:masters


def test_explicit_cn_and_sans_override_the_csr(root_ca: CertificateAuthority) -> None:
    csr = _csr(generate_key(), dns=("asked.example",))
    cert = root_ca.sign_csr(
        csr,
        profile=Profile.SERVER,
        common_name="granted",
        sans=SubjectAltNames.parse(dns=["granted.example"]),
    )
    assert cert.subject.rfc4514_string() == "CN=granted"
    assert SubjectAltNames.from_extensions(cert.extensions).dns_names == ("granted.example",)


def test_a_csr_with_a_bad_signature_is_refused(root_ca: CertificateAuthority) -> None:
    bad = _tampered(_csr(generate_key()))
    with pytest.raises(BadCSRSignature, match="does not verify"):
        root_ca.sign_csr(bad, profile=Profile.CLIENT)


def test_a_csr_without_a_common_name_needs_one_given(root_ca: CertificateAuthority) -> None:
    with pytest.raises(InvalidCSR, match="no common name"):
        root_ca.sign_csr(_csr(generate_key(), cn=None), profile=Profile.CLIENT)


def test_a_server_csr_without_sans_is_refused(root_ca: CertificateAuthority) -> None:
    with pytest.raises(Exception, match="at least one DNS name or IP address"):
        root_ca.sign_csr(_csr(generate_key()), profile=Profile.SERVER)


def test_a_csr_with_a_malformed_san_is_refused(root_ca: CertificateAuthority) -> None:
    with pytest.raises(Exception, match="invalid DNS name 'bad_name'"):
        root_ca.sign_csr(_csr(generate_key(), dns=("bad_name",)), profile=Profile.SERVER)


def _client(ca: CertificateAuthority) -> x509.Certificate:
    return ca.issue(profile=Profile.CLIENT, public_key=generate_key().public_key(), common_name="c")


def test_a_revoked_certificate_is_found_on_the_crl(root_ca: CertificateAuthority) -> None:
    revoked, kept = _client(root_ca), _client(root_ca)
    now = dt.datetime.now(dt.UTC)
    crl = build_crl(
        root_ca,
        [Revocation(revoked.serial_number, now, x509.ReasonFlags.key_compromise)],
        number=1,
    )
    with pytest.raises(CertificateRevoked, match="was revoked"):
        check_not_revoked(revoked, crl, issuer=root_ca.certificate)
    check_not_revoked(kept, crl, issuer=root_ca.certificate)
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1


def test_the_crl_is_signed_by_the_ca_and_has_a_next_update(root_ca: CertificateAuthority) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    crl = build_crl(root_ca, [], number=3, days=2, now=now)
    assert crl.is_signature_valid(root_ca.key.public_key())
    assert crl.next_update_utc == now + dt.timedelta(days=2)
    assert crl.issuer == root_ca.certificate.subject


def test_a_crl_of_another_ca_is_an_error_not_a_pass(
    root_ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    crl = build_crl(other_ca, [], number=1)
    with pytest.raises(CRLError, match="issued by"):
        check_not_revoked(_client(root_ca), crl, issuer=root_ca.certificate)


def test_a_forged_crl_with_the_right_issuer_name_is_an_error(
    root_ca: CertificateAuthority,
) -> None:
    impostor = CertificateAuthority.create_root(common_name="Test Root", key=generate_key())
    crl = build_crl(impostor, [], number=1)
    with pytest.raises(CRLError, match="not signed by CA"):
        check_not_revoked(_client(root_ca), crl, issuer=root_ca.certificate)


def test_a_stale_crl_is_an_error(root_ca: CertificateAuthority) -> None:
    crl = build_crl(root_ca, [], number=1, days=1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with pytest.raises(CRLError, match="expired"):
        check_not_revoked(_client(root_ca), crl, issuer=root_ca.certificate, now=later)
