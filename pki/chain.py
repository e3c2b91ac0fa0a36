"""Chain verification: does a certificate lead, signature by signature, to a trusted CA?

Used by ``wardctl pki show`` to report on certificates, and by tests; TLS stacks do their own
verification at handshake time. Checks the signature, validity window, CA flag, keyCertSign
usage and path length of every link.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from pki.authority import common_name_of, utcnow
from pki.errors import ChainError

# Deeper chains than this are a misconfiguration (or a loop), not a PKI Ward made.
MAX_DEPTH = 8


def display_name(cert: x509.Certificate) -> str:
    """The certificate's common name, or its whole subject if it has none."""
    return common_name_of(cert.subject) or cert.subject.rfc4514_string()


def check_validity(cert: x509.Certificate, now: dt.datetime, *, what: str = "certificate") -> None:
    """Raise :class:`ChainError` unless ``now`` is within ``cert``'s validity window."""
    if now > cert.not_valid_after_utc:
        raise ChainError(
            f"{what} {display_name(cert)!r} expired on {cert.not_valid_after_utc:%Y-%m-%d} UTC"
        )
    if now < cert.not_valid_before_utc:
        raise ChainError(
            f"{what} {display_name(cert)!r} is not valid before"
            f" {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
        )


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_issuer(issuer: x509.Certificate, cas_below: int, now: dt.datetime) -> None:
    name = display_name(issuer)
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ChainError(f"issuer {name!r} is not a CA (no CA:TRUE basic constraint)")
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        raise ChainError(f"issuer {name!r} may not sign certificates (no keyCertSign usage)")
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise ChainError(
            f"CA {name!r} allows {constraints.path_length} intermediate CA(s) below it,"
            f" the chain has {cas_below}"
        )
    check_validity(issuer, now, what="CA")


def verify_chain(
    cert: x509.Certificate,
    *,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, ...]:
    """The path from ``cert`` (first) to one of ``roots`` (last); :class:`ChainError` if none.

    ``intermediates`` are untrusted CA certificates that may be used to build the path.
    """
    now = now or utcnow()
    check_validity(cert, now)
    path = [cert]
    candidates = [*intermediates, *roots]
    while True:
        current = path[-1]
        if current in roots:
            return tuple(path)
        if len(path) > MAX_DEPTH:
            raise ChainError(f"chain of {display_name(cert)!r} is longer than {MAX_DEPTH}")
        named = [c for c in candidates if c.subject == current.issuer and c not in path]
        if not named:
            if current.subject == current.issuer:
                raise ChainError(f"chain ends at {display_name(current)!r}, not a trusted CA")
            raise ChainError(
                f"no CA certificate found for {current.issuer.rfc4514_string()!r},"
                f" the issuer of {display_name(current)!r}"
            )
        issuer = next((c for c in named if _signed_by(current, c)), None)
        if issuer is None:
            raise ChainError(
                f"signature of {display_name(current)!r} does not verify with the key of CA"
                f" {display_name(named[0])!r}"
            )
        # CAs between the leaf and this issuer; self-issued ones do not count (RFC 5280 6.1.4).
        cas_below = sum(1 for c in path[1:] if c.subject != c.issuer)
        _check_issuer(issuer, cas_below, now)
        path.append(issuer)
