"""Certificate profiles: what a leaf certificate may be used for.

The profile alone decides the usages of a certificate Ward signs; a CSR's requested extensions
are never copied (otherwise whoever writes the CSR could ask for a CA certificate).
"""

from __future__ import annotations

import enum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki.errors import InvalidCertificate, InvalidInput
from pki.keys import PublicKey


class Profile(enum.StrEnum):
    """The role of a leaf certificate; the value is its command-line spelling."""

    SERVER = "server"
    CLIENT = "client"
    PEER = "peer"

    @classmethod
    def parse(cls, text: str) -> Profile:
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise InvalidInput(f"unknown profile {text!r} (choose one of: {choices})") from None

    @property
    def extended_key_usages(self) -> tuple[x509.ObjectIdentifier, ...]:
        if self is Profile.SERVER:
            return (ExtendedKeyUsageOID.SERVER_AUTH,)
        if self is Profile.CLIENT:
            return (ExtendedKeyUsageOID.CLIENT_AUTH,)
        return (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)

    @property
    def requires_san(self) -> bool:
        """Servers and peers are dialled by name, and Go matches only SANs, never the CN."""
        return self is not Profile.CLIENT

    @classmethod
    def of_certificate(cls, cert: x509.Certificate) -> Profile:
        """The profile a certificate was issued with, read back from its extended key usage."""
        try:
            usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            raise InvalidCertificate("certificate has no extended key usage") from None
        server = ExtendedKeyUsageOID.SERVER_AUTH in usages
        client = ExtendedKeyUsageOID.CLIENT_AUTH in usages
        if server and client:
            return cls.PEER
        if server:
            return cls.SERVER
        if client:
            return cls.CLIENT
        raise InvalidCertificate("certificate is neither for TLS servers nor for TLS clients")


def leaf_key_usage(public_key: PublicKey) -> x509.KeyUsage:
    """digitalSignature, plus keyEncipherment for RSA (TLS 1.2 RSA key exchange needs it)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def ca_key_usage() -> x509.KeyUsage:
    """keyCertSign and cRLSign: a CA key signs certificates and CRLs, nothing else."""
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
