"""Key types Ward issues, key generation, and PEM encoding of private keys.

ECDSA P-256 is the default: fast to generate and to handshake with, and accepted by every TLS
stack Ward talks to (Python's ``ssl``, Go, gRPC). RSA is offered for peers that require it;
Ed25519 for modern ones.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pki.errors import InvalidInput, KeyMismatch, KeyTypeMismatch, UnsupportedKey

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# The smallest RSA modulus accepted from a CSR; Ward itself never generates less.
MIN_RSA_BITS = 2048
_ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_CURVE_NAMES = {"secp256r1": "p256", "secp384r1": "p384", "secp521r1": "p521"}


class KeyType(enum.StrEnum):
    """A key type Ward can generate; the value is the spelling used on the command line."""

    ECDSA_P256 = "ecdsa-p256"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"

    @classmethod
    def parse(cls, text: str) -> KeyType:
        """The key type spelled ``text`` (e.g. ``"rsa-3072"``); :class:`InvalidInput` otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(k.value for k in cls)
            raise InvalidInput(f"unknown key type {text!r} (choose one of: {choices})") from None

    @property
    def is_rsa(self) -> bool:
        return self in (KeyType.RSA_2048, KeyType.RSA_3072, KeyType.RSA_4096)


_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def generate_key(key_type: KeyType = KeyType.ECDSA_P256) -> PrivateKey:
    """A new private key of ``key_type``."""
    if key_type is KeyType.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def describe_key(key: object) -> str:
    """A short human name of a key's type, e.g. ``"ecdsa-p384"`` or ``"rsa-1024"``."""
    public = key.public_key() if isinstance(key, PrivateKey) else key
    if isinstance(public, ec.EllipticCurvePublicKey):
        return "ecdsa-" + _CURVE_NAMES.get(public.curve.name, public.curve.name)
    if isinstance(public, rsa.RSAPublicKey):
        return f"rsa-{public.key_size}"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    return type(public).__name__


def key_type_of(key: PrivateKey | PublicKey) -> KeyType | None:
    """The :class:`KeyType` of ``key``, or None for an acceptable key Ward does not generate.

    (ECDSA P-384 or an RSA key of another size, say, signed from a CSR.)
    """
    public = key.public_key() if isinstance(key, PrivateKey) else key
    if isinstance(public, ec.EllipticCurvePublicKey):
        return KeyType.ECDSA_P256 if isinstance(public.curve, ec.SECP256R1) else None
    if isinstance(public, rsa.RSAPublicKey):
        for key_type, bits in _RSA_BITS.items():
            if public.key_size == bits:
                return key_type
        return None
    return KeyType.ED25519


def check_public_key(key: object) -> PublicKey:
    """``key`` if Ward accepts it in a certificate; :class:`UnsupportedKey` otherwise."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, _ACCEPTED_CURVES):
            return key
        raise UnsupportedKey(f"unsupported elliptic curve {key.curve.name}")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise UnsupportedKey(f"RSA key of {key.key_size} bits is too small (minimum 2048)")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise UnsupportedKey(f"unsupported key type {type(key).__name__}")


def require_key_type(key: PrivateKey | PublicKey, expected: KeyType | None, *, what: str) -> None:
    """Raise :class:`KeyTypeMismatch` unless ``expected`` is None or ``key`` is of that type."""
    if expected is not None and key_type_of(key) is not expected:
        raise KeyTypeMismatch(
            f"{what} is {describe_key(key)}, not {expected.value}"
            " (use renew --rekey or --force to replace the key)"
        )


def signature_hash(key: PrivateKey) -> hashes.SHA256 | None:
    """The hash to sign with ``key``: SHA-256, or None for Ed25519 (which hashes internally)."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def public_key_bytes(key: PrivateKey | PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key``, for comparing keys."""
    public = key.public_key() if isinstance(key, PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def require_pair(key: PrivateKey, public: object, *, what: str) -> None:
    """Raise :class:`KeyMismatch` unless ``key`` is the private half of ``public``."""
    if not isinstance(public, PublicKey) or public_key_bytes(key) != public_key_bytes(public):
        raise KeyMismatch(f"{what}: the private key does not match the certificate")


def encode_private_key(key: PrivateKey) -> bytes:
    """``key`` as an unencrypted PKCS#8 PEM block (the file holding it is 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def decode_private_key(data: bytes, *, what: str = "private key") -> PrivateKey:
    """The private key in PEM ``data``; :class:`UnsupportedKey` for a type Ward does not use."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UnsupportedKey(f"{what} is encrypted; Ward needs an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise UnsupportedKey(f"{what} is not a valid PEM private key") from None
    if not isinstance(key, PrivateKey):
        raise UnsupportedKey(f"{what} is of unsupported type {type(key).__name__}")
    check_public_key(key.public_key())
    return key
