"""Certificate revocation lists: building one for a CA, and checking a certificate against one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from pki.authority import CLOCK_SKEW, CertificateAuthority, utcnow
from pki.chain import display_name
from pki.errors import CertificateRevoked, CRLError, InvalidInput
from pki.keys import signature_hash
from pki.serials import format_serial

DEFAULT_CRL_DAYS = 7


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revoked serial number of a CA."""

    serial: int
    revoked_at: dt.datetime
    reason: x509.ReasonFlags | None = None


def parse_reason(text: str) -> x509.ReasonFlags:
    """A CRL reason from its RFC 5280 name (``keyCompromise``, ``superseded``, ...)."""
    for flag in x509.ReasonFlags:
        if flag.value.lower() == text.strip().lower() or flag.name.lower() == text.strip().lower():
            return flag
    choices = ", ".join(
        f.value for f in x509.ReasonFlags if f is not x509.ReasonFlags.remove_from_crl
    )
    raise InvalidInput(f"unknown revocation reason {text!r} (choose one of: {choices})")


def build_crl(
    ca: CertificateAuthority,
    revocations: Iterable[Revocation],
    *,
    number: int,
    days: int = DEFAULT_CRL_DAYS,
    now: dt.datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL of ``ca`` listing ``revocations``, valid until ``days`` from ``now``.

    ``number`` is the monotonically increasing CRL number, so relying parties can tell a newer
    CRL from an older one.
    """
    now = now or utcnow()
    ca.check_valid(now)
    if number < 0:
        raise InvalidInput(f"CRL number must be non-negative, not {number}")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            ca.authority_key_identifier(),
            critical=False,
        )
    )
    for revocation in revocations:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(revocation.serial)
            .revocation_date(revocation.revoked_at)
        )
        if revocation.reason is not None:
            entry = entry.add_extension(x509.CRLReason(revocation.reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca.key, signature_hash(ca.key))


def check_crl(
    crl: x509.CertificateRevocationList,
    *,
    issuer: x509.Certificate,
    now: dt.datetime | None = None,
) -> None:
    """Raise :class:`CRLError` unless ``crl`` is ``issuer``'s, correctly signed and current."""
    now = now or utcnow()
    if crl.issuer != issuer.subject:
        raise CRLError(f"the CRL was issued by {crl.issuer.rfc4514_string()!r}, not by the CA")
    public_key = issuer.public_key()
    try:
        valid = crl.is_signature_valid(public_key)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise CRLError(f"the CRL is not signed by CA {display_name(issuer)!r}")
    next_update = crl.next_update_utc
    if next_update is not None and now > next_update:
        raise CRLError(
            f"the CRL expired on {next_update:%Y-%m-%d %H:%M:%S} UTC; publish a new one"
            " (wardctl pki crl)"
        )


def check_not_revoked(
    cert: x509.Certificate,
    crl: x509.CertificateRevocationList,
    *,
    issuer: x509.Certificate,
    now: dt.datetime | None = None,
) -> None:
    """Raise :class:`CertificateRevoked` if ``issuer``'s ``crl`` lists ``cert``.

    The CRL is checked first (:func:`check_crl`): a forged or stale CRL is an error, never a
    pass.
    """
    check_crl(crl, issuer=issuer, now=now)
    if cert.issuer != issuer.subject:
        raise CRLError(f"certificate {display_name(cert)!r} was not issued by the CRL's CA")
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is not None:
        raise CertificateRevoked(
            f"certificate {display_name(cert)!r} (serial {format_serial(cert.serial_number)})"
            f" was revoked on {entry.revocation_date_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
