"""The one exception hierarchy of Ward's PKI.

Every failure the package can report is a :class:`PKIError`; callers (``wardctl pki``, the
server's secure-by-default start) catch that one class and print ``str(error)``, so each message
is a complete sentence an operator can act on. Nothing here ever carries key material.
"""

from __future__ import annotations


class PKIError(Exception):
    """Base class of every error raised by :mod:`pki`."""


class InvalidInput(PKIError):
    """An argument is malformed (a name, a number of days, a serial, a path length)."""


class InvalidSAN(InvalidInput):
    """A subject alternative name is not a valid DNS name or IP address."""


class UnsupportedKey(PKIError):
    """A key is of a type or size Ward does not issue or accept (DSA, RSA < 2048, ...)."""


class KeyTypeMismatch(PKIError):
    """A key is not of the type asked for (e.g. ``--key-type rsa-2048`` for an ECDSA key)."""


class KeyMismatch(PKIError):
    """A private key does not belong to the certificate it is paired with."""


class CANotFound(PKIError):
    """No CA certificate or CA key where one is needed."""


class NotACA(PKIError):
    """A certificate used as an issuer is not a CA, or may not sign what was asked of it."""


class CAExpired(PKIError):
    """The CA is outside its validity window (expired, or not yet valid)."""


class InvalidCSR(PKIError):
    """A certificate signing request cannot be parsed."""


class BadCSRSignature(InvalidCSR):
    """A CSR's self-signature does not verify: whoever made it does not hold the key."""


class CertificateNotFound(PKIError):
    """No certificate by that name or serial."""


class InvalidCertificate(PKIError):
    """A certificate or CRL file cannot be parsed, or lacks what Ward needs from it."""


class ChainError(PKIError):
    """A certificate does not chain to a trusted CA (signature, validity, CA flag or path)."""


class CertificateRevoked(ChainError):
    """The certificate's serial is listed on its CA's CRL."""


class CRLError(PKIError):
    """A CRL is not signed by the expected CA, or is past its next update."""


class FileExists(PKIError):
    """A file would be overwritten by a different one and ``force`` was not given."""


class InsecurePermissions(PKIError):
    """A PKI directory or key file is accessible by other users."""


class StorageError(PKIError):
    """A PKI file could not be read or written (the underlying ``OSError`` is chained)."""
