"""Key types and subject alternative names: what is accepted, what is refused and how."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from pki import InvalidInput, InvalidSAN, KeyType, SubjectAltNames, UnsupportedKey, generate_key
from pki.keys import (
    check_public_key,
    decode_private_key,
    encode_private_key,
    key_type_of,
)


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [
        (KeyType.ECDSA_P256, ec.EllipticCurvePrivateKey),
        (KeyType.ED25519, ed25519.Ed25519PrivateKey),
        (KeyType.RSA_2048, rsa.RSAPrivateKey),
    ],
)
def test_generate_key_makes_the_requested_type(key_type: KeyType, expected: type) -> None:
    key = generate_key(key_type)
    assert isinstance(key, expected)
    assert key_type_of(key) is key_type


def test_ecdsa_p256_is_the_default_key_type() -> None:
    key = generate_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)


def test_key_type_parse_names_the_choices_when_unknown() -> None:
    assert KeyType.parse("RSA-3072") is KeyType.RSA_3072
    with pytest.raises(InvalidInput, match="ecdsa-p256"):
        KeyType.parse("dsa-1024")


def test_private_key_pem_round_trips() -> None:
    key = generate_key(KeyType.ED25519)
    again = decode_private_key(encode_private_key(key))
    assert encode_private_key(again) == encode_private_key(key)


def test_garbage_is_not_a_private_key() -> None:
    with pytest.raises(UnsupportedKey, match="not a valid PEM private key"):
        decode_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_weak_and_foreign_public_keys_are_refused() -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(UnsupportedKey, match="1024 bits"):
        check_public_key(small_rsa)
    dsa_key = dsa.generate_private_key(key_size=1024).public_key()
    with pytest.raises(UnsupportedKey, match="DSA"):
        check_public_key(dsa_key)


def test_sans_are_normalised_deduplicated_and_sorted() -> None:
    sans = SubjectAltNames.parse(
        dns=["B.example.com.", "a.example.com", "b.example.com"],
        ips=["::1", "10.0.0.2", "10.0.0.1"],
    )
    assert sans.dns_names == ("a.example.com", "b.example.com")
    assert sans.ip_addresses == (
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("10.0.0.2"),
        ipaddress.ip_address("::1"),
    )
    assert sans == SubjectAltNames.parse(
        dns=["b.example.com", "a.example.com"], ips=["10.0.0.1", "::1", "10.0.0.2"]
    )


def test_hosts_are_sorted_into_dns_names_and_ip_addresses() -> None:
    sans = SubjectAltNames.from_hosts(["node1.local", "192.168.1.5", "fe80::1", "localhost"])
    assert sans.dns_names == ("localhost", "node1.local")
    assert [str(ip) for ip in sans.ip_addresses] == ["192.168.1.5", "fe80::1"]


def test_a_wildcard_is_allowed_as_the_whole_leftmost_label() -> None:
    assert SubjectAltNames.parse(dns=["*.nodes.example"]).dns_names == ("*.nodes.example",)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("bad_name", "label 'bad_name'"),
        ("-lead.example", "label '-lead'"),
        ("trail-.example", "label 'trail-'"),
        ("a..b", "label ''"),
        ("x" * 64 + ".example", "label"),
        ("has space.example", "label 'has space'"),
        ("*.example", "at least two labels"),
        ("a.*.example", r"label '\*'"),
        ("10.0.0.1", "IP address"),
        ("host.123", "all digits"),
        ("bücher.example", "punycode"),
        ("a." * 127 + "com", "longer than 253"),
    ],
)
def test_malformed_dns_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidSAN, match=reason):
        SubjectAltNames.parse(dns=[name])


@pytest.mark.parametrize("address", ["300.1.1.1", "10.0.0", "::g", "localhost", "10.0.0.0/8", ""])
def test_malformed_ip_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidSAN, match="invalid IP address"):
        SubjectAltNames.parse(ips=[address])


def test_covers_is_a_superset_test() -> None:
    big = SubjectAltNames.from_hosts(["a.example", "b.example", "127.0.0.1"])
    small = SubjectAltNames.from_hosts(["a.example", "127.0.0.1"])
    assert big.covers(small)
    assert not small.covers(big)
