"""What ``wardctl pki show`` reports about certificates, as data that renders to text and JSON.

Pure: the caller supplies the certificates, CAs, CRLs and keys (see :func:`pki.store.inspect_path`
for the part that reads them from disk).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki.authority import common_name_of, utcnow
from pki.chain import display_name, verify_chain
from pki.crl import check_not_revoked
from pki.errors import CertificateRevoked, ChainError, CRLError, InvalidCertificate, InvalidSAN
from pki.keys import PrivateKey, describe_key, public_key_bytes
from pki.profiles import Profile
from pki.san import SubjectAltNames
from pki.serials import format_serial

_KEY_USAGE_NAMES = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The outcome of verifying a certificate's chain to the CA(s) found."""

    ok: bool
    path: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "path": list(self.path), "error": self.error}


@dataclass(frozen=True, slots=True)
class CertificateReport:
    """Everything ``show`` says about one certificate; ``problems`` empty means healthy."""

    source: str | None
    subject: str
    common_name: str | None
    issuer: str
    serial: str
    is_ca: bool
    path_length: int | None
    profile: str | None
    key_type: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_usages: tuple[str, ...]
    extended_key_usages: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    days_left: int
    fingerprint_sha256: str
    chain: ChainCheck | None
    revoked: bool | None
    key_matches: bool | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "subject": self.subject,
            "common_name": self.common_name,
            "issuer": self.issuer,
            "serial": self.serial,
            "is_ca": self.is_ca,
            "path_length": self.path_length,
            "profile": self.profile,
            "key_type": self.key_type,
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "key_usages": list(self.key_usages),
            "extended_key_usages": list(self.extended_key_usages),
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "days_left": self.days_left,
            "fingerprint_sha256": self.fingerprint_sha256,
            "chain": None if self.chain is None else self.chain.to_dict(),
            "revoked": self.revoked,
            "key_matches": self.key_matches,
            "problems": list(self.problems),
            "ok": self.ok,
        }

    def to_text(self) -> str:
        kind = "CA" if self.is_ca else f"leaf ({self.profile or 'no TLS usage'})"
        if self.is_ca:
            kind += (
                " (no path length limit)"
                if self.path_length is None
                else (f" (path length {self.path_length})")
            )
        sans = [f"DNS:{n}" for n in self.dns_names] + [f"IP:{ip}" for ip in self.ip_addresses]
        if self.chain is None:
            chain = "not checked (no CA certificate found)"
        elif self.chain.ok:
            chain = "OK: " + " -> ".join(self.chain.path)
        else:
            chain = f"FAILED: {self.chain.error}"
        revoked = {None: "not checked (no CRL)", True: "REVOKED", False: "no"}[self.revoked]
        lines = [
            self.source or "(certificate)",
            f"  subject:      {self.subject}",
            f"  issuer:       {self.issuer}",
            f"  serial:       {self.serial}",
            f"  kind:         {kind}, {self.key_type} key",
            f"  SANs:         {', '.join(sans) or '-'}",
            f"  key usage:    {', '.join(self.key_usages) or '-'}",
            f"  ext. usage:   {', '.join(self.extended_key_usages) or '-'}",
            f"  not before:   {_iso(self.not_before)}",
            f"  not after:    {_iso(self.not_after)} ({self.days_left} days left)",
            f"  sha256:       {self.fingerprint_sha256}",
            f"  chain:        {chain}",
            f"  revoked:      {revoked}",
        ]
        if self.key_matches is not None:
            lines.append(f"  key matches:  {'yes' if self.key_matches else 'NO'}")
        lines += [f"  problem:      {problem}" for problem in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class PKIReport:
    """The reports of every certificate found, and the files that could not be checked."""

    certificates: tuple[CertificateReport, ...]
    errors: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.errors and all(c.ok for c in self.certificates)

    @property
    def problems(self) -> tuple[str, ...]:
        found = [
            f"{c.source or c.subject}: {problem}"
            for c in self.certificates
            for problem in c.problems
        ]
        return (*found, *self.errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "certificates": [c.to_dict() for c in self.certificates],
            "errors": list(self.errors),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        parts = [c.to_text() for c in self.certificates]
        parts += [f"error: {entry}" for entry in self.errors]
        return "\n\n".join(parts) if parts else "no certificates found"


def _key_usages(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name for attr, name in _KEY_USAGE_NAMES if getattr(usage, attr))


def _extended_key_usages(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(_EKU_NAMES.get(oid, oid.dotted_string) for oid in usages)


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def describe_certificate(
    cert: x509.Certificate,
    *,
    source: str | None = None,
    roots: Sequence[x509.Certificate] = (),
    intermediates: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    private_key: PrivateKey | None = None,
    now: dt.datetime | None = None,
) -> CertificateReport:
    """Describe ``cert`` and check it: its chain to ``roots``, its CA's CRL, its private key."""
    now = now or utcnow()
    problems: list[str] = []
    constraints = _basic_constraints(cert)
    is_ca = bool(constraints and constraints.ca)
    try:
        sans = SubjectAltNames.from_extensions(cert.extensions)
    except (InvalidSAN, ValueError) as error:  # reported, not fatal to the report
        problems.append(f"bad SAN: {error}")
        sans = SubjectAltNames()
    try:
        profile: str | None = None if is_ca else Profile.of_certificate(cert).value
    except InvalidCertificate:
        profile = None

    chain: ChainCheck | None = None
    path: tuple[x509.Certificate, ...] = ()
    if roots:
        try:
            path = verify_chain(cert, roots=roots, intermediates=intermediates, now=now)
        except ChainError as error:
            chain = ChainCheck(ok=False, error=str(error))
            problems.append(str(error))
        else:
            chain = ChainCheck(ok=True, path=tuple(display_name(c) for c in path))
    elif now > cert.not_valid_after_utc:
        problems.append(f"expired on {cert.not_valid_after_utc:%Y-%m-%d} UTC")

    revoked = _revocation(cert, path, crls, now, problems)

    key_matches: bool | None = None
    if private_key is not None:
        key_matches = public_key_bytes(private_key) == public_key_bytes(cert.public_key())  # type: ignore[arg-type]
        if not key_matches:
            problems.append("the private key does not match the certificate")

    return CertificateReport(
        source=source,
        subject=cert.subject.rfc4514_string(),
        common_name=common_name_of(cert.subject),
        issuer=cert.issuer.rfc4514_string(),
        serial=format_serial(cert.serial_number),
        is_ca=is_ca,
        path_length=constraints.path_length if constraints and constraints.ca else None,
        profile=profile,
        key_type=describe_key(cert.public_key()),
        dns_names=sans.dns_names,
        ip_addresses=tuple(str(ip) for ip in sans.ip_addresses),
        key_usages=_key_usages(cert),
        extended_key_usages=_extended_key_usages(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        days_left=(cert.not_valid_after_utc - now).days,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        chain=chain,
        revoked=revoked,
        key_matches=key_matches,
        problems=tuple(problems),
    )


def _revocation(
    cert: x509.Certificate,
    path: tuple[x509.Certificate, ...],
    crls: Sequence[x509.CertificateRevocationList],
    now: dt.datetime,
    problems: list[str],
) -> bool | None:
    # Only a verified chain tells us which CA's CRL applies; a self-signed root has none.
    if len(path) < 2:
        return None
    issuer = path[1]
    for crl in crls:
        if crl.issuer != issuer.subject:
            continue
        try:
            check_not_revoked(cert, crl, issuer=issuer, now=now)
        except CertificateRevoked as error:
            problems.append(str(error))
            return True
        except CRLError as error:
            problems.append(str(error))
            return None
        return False
    return None
