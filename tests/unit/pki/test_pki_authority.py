"""The CA and what it signs: extensions per profile, validity, path length, expired CAs."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import DNSName as VerifyDNSName
from cryptography.x509.verification import PolicyBuilder, Store

from pki import (
    CLOCK_SKEW,
    CAExpired,
    CertificateAuthority,
    InvalidInput,
    KeyMismatch,
    KeyType,
    NotACA,
    Profile,
    SubjectAltNames,
    generate_key,
)
from pki.keys import PrivateKey

SERVER_SANS = SubjectAltNames.parse(dns=["node1.example", "localhost"], ips=["127.0.0.1"])


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(kind)


def _issue(
    ca: CertificateAuthority,
    profile: Profile,
    *,
    key: PrivateKey | None = None,
    common_name: str = "node1",
    sans: SubjectAltNames = SERVER_SANS,
    days: int = 365,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    key = key or generate_key()
    return ca.issue(
        profile=profile,
        public_key=key.public_key(),
        common_name=common_name,
        sans=sans,
        days=days,
        now=now,
    )


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_root_ca_is_a_critical_ca_with_path_length_and_cert_and_crl_signing(
    root_ca: CertificateAuthority,
) -> None:
    cert = root_ca.certificate
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca is True
    assert constraints.value.path_length == 1
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature and not usage.value.key_encipherment
    assert cert.subject == cert.issuer
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(root_ca.key.public_key())
    assert root_ca.is_root


@pytest.mark.parametrize(
    ("profile", "usages"),
    [
        (Profile.SERVER, [ExtendedKeyUsageOID.SERVER_AUTH]),
        (Profile.CLIENT, [ExtendedKeyUsageOID.CLIENT_AUTH]),
        (Profile.PEER, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
def test_each_profile_gets_exactly_its_extended_key_usages(
    root_ca: CertificateAuthority, profile: Profile, usages: list[x509.ObjectIdentifier]
) -> None:
    cert = _issue(root_ca, profile)
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == usages
    assert Profile.of_certificate(cert) is profile


def test_a_leaf_is_not_a_ca_and_may_only_sign_digitally(root_ca: CertificateAuthority) -> None:
    cert = _issue(root_ca, Profile.SERVER)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_encipherment  # only RSA keys need it
    assert not usage.value.key_cert_sign and not usage.value.crl_sign


def test_an_rsa_leaf_also_gets_key_encipherment(root_ca: CertificateAuthority) -> None:
    cert = _issue(root_ca, Profile.SERVER, key=generate_key(KeyType.RSA_2048))
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment


def test_leaf_carries_sans_and_key_identifiers_linking_it_to_its_ca(
    root_ca: CertificateAuthority,
) -> None:
    key = generate_key()
    cert = _issue(root_ca, Profile.SERVER, key=key)
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "node1.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(root_ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node1"
    cert.verify_directly_issued_by(root_ca.certificate)


def test_serial_numbers_are_random_and_positive(root_ca: CertificateAuthority) -> None:
    serials = {
        _issue(root_ca, Profile.CLIENT, sans=SubjectAltNames()).serial_number for _ in range(5)
    }
    assert len(serials) == 5
    assert all(0 < s < 2**159 for s in serials)


def test_validity_starts_before_now_for_clock_skew_and_lasts_the_days_asked(
    root_ca: CertificateAuthority,
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = _issue(root_ca, Profile.SERVER, days=30, now=now)
    assert cert.not_valid_before_utc == now - CLOCK_SKEW
    assert cert.not_valid_after_utc == now + dt.timedelta(days=30)


def test_a_leaf_never_outlives_its_ca() -> None:
    start = utc(2030, 1, 1)
    ca = CertificateAuthority.create_root(
        common_name="Short", key=generate_key(), days=10, now=start
    )
    cert = _issue(ca, Profile.SERVER, days=365, now=start + dt.timedelta(days=1))
    assert cert.not_valid_after_utc == ca.certificate.not_valid_after_utc


def test_a_server_certificate_without_any_san_is_refused(root_ca: CertificateAuthority) -> None:
    with pytest.raises(InvalidInput, match="at least one DNS name or IP address"):
        _issue(root_ca, Profile.SERVER, sans=SubjectAltNames())


def test_a_client_certificate_needs_no_san(root_ca: CertificateAuthority) -> None:
    cert = _issue(root_ca, Profile.CLIENT, common_name="root", sans=SubjectAltNames())
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.SubjectAlternativeName)


@pytest.mark.parametrize("days", [0, -1, 36501])
def test_nonsensical_validity_is_refused(root_ca: CertificateAuthority, days: int) -> None:
    with pytest.raises(InvalidInput, match="between 1 and"):
        _issue(root_ca, Profile.SERVER, days=days)


@pytest.mark.parametrize("name", ["", " ", "x" * 65, "tab\there"])
def test_bad_common_names_are_refused(root_ca: CertificateAuthority, name: str) -> None:
    with pytest.raises(InvalidInput, match="common name"):
        _issue(root_ca, Profile.SERVER, common_name=name)


def test_an_expired_ca_refuses_to_sign() -> None:
    start = utc(2020, 1, 1)
    ca = CertificateAuthority.create_root(common_name="Old", key=generate_key(), days=10, now=start)
    with pytest.raises(CAExpired, match="expired on 2020-01-11"):
        _issue(ca, Profile.SERVER)


def test_a_ca_not_yet_valid_refuses_to_sign() -> None:
    ca = CertificateAuthority.create_root(
        common_name="Future", key=generate_key(), now=utc(2099, 1, 1)
    )
    with pytest.raises(CAExpired, match="not valid before"):
        _issue(ca, Profile.SERVER, now=utc(2098, 1, 1))


def test_a_leaf_cannot_act_as_a_ca(root_ca: CertificateAuthority) -> None:
    key = generate_key()
    leaf = _issue(root_ca, Profile.SERVER, key=key)
    with pytest.raises(NotACA, match="not a CA"):
        CertificateAuthority(leaf, key)


def test_a_ca_with_someone_elses_key_is_refused(root_ca: CertificateAuthority) -> None:
    with pytest.raises(KeyMismatch, match="does not match"):
        CertificateAuthority(root_ca.certificate, generate_key())


def test_intermediate_is_signed_by_the_root_and_sent_after_its_leaves(
    root_ca: CertificateAuthority,
) -> None:
    intermediate = root_ca.issue_intermediate(common_name="Test Intermediate", key=generate_key())
    cert = intermediate.certificate
    cert.verify_directly_issued_by(root_ca.certificate)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert not intermediate.is_root
    assert intermediate.leaf_chain == (cert,)
    assert root_ca.leaf_chain == ()


def test_path_length_zero_forbids_signing_further_cas(root_ca: CertificateAuthority) -> None:
    intermediate = root_ca.issue_intermediate(common_name="Test Intermediate", key=generate_key())
    with pytest.raises(NotACA, match="path length 0"):
        intermediate.issue_intermediate(common_name="Too Deep", key=generate_key())


def test_an_intermediate_must_have_a_shorter_path_than_its_parent(
    root_ca: CertificateAuthority,
) -> None:
    with pytest.raises(NotACA, match="path length below 1"):
        root_ca.issue_intermediate(common_name="Wide", key=generate_key(), path_length=None)


def test_rust_webpki_verifier_accepts_the_server_chain(root_ca: CertificateAuthority) -> None:
    """cryptography's RFC 5280 verifier is strict about extensions: a second opinion on ours."""
    intermediate = root_ca.issue_intermediate(common_name="Test Intermediate", key=generate_key())
    leaf = _issue(intermediate, Profile.PEER)
    verifier = (
        PolicyBuilder()
        .store(Store([root_ca.certificate]))
        .build_server_verifier(VerifyDNSName("node1.example"))
    )
    chain = verifier.verify(leaf, [intermediate.certificate])
    assert chain == [leaf, intermediate.certificate, root_ca.certificate]
    client = PolicyBuilder().store(Store([root_ca.certificate])).build_client_verifier()
    assert client.verify(leaf, [intermediate.certificate]).chain[-1] == root_ca.certificate


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.RSA_2048])
def test_cas_of_other_key_types_sign_verifiable_leaves(key_type: KeyType) -> None:
    ca = CertificateAuthority.create_root(common_name="Typed", key=generate_key(key_type))
    leaf = _issue(ca, Profile.SERVER)
    leaf.verify_directly_issued_by(ca.certificate)
