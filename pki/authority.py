"""Certificate authorities and the certificates they sign (pure: no files, no clock of its own).

Every signing method takes ``now`` so tests can place a CA in the past; it defaults to the
current UTC time. Certificates start :data:`CLOCK_SKEW` before ``now`` so a peer whose clock is a
little behind still accepts them, and never outlive the CA that signs them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import NameOID

from pki.errors import BadCSRSignature, CAExpired, InvalidCSR, InvalidInput, NotACA
from pki.keys import (
    PrivateKey,
    PublicKey,
    check_public_key,
    require_pair,
    signature_hash,
)
from pki.profiles import Profile, ca_key_usage, leaf_key_usage
from pki.san import SubjectAltNames

CLOCK_SKEW = dt.timedelta(minutes=5)
DEFAULT_CA_DAYS = 3650
DEFAULT_INTERMEDIATE_DAYS = 1825
DEFAULT_LEAF_DAYS = 365
MAX_DAYS = 36500
# X.509's upper bound on a common name (RFC 5280, ub-common-name).
_MAX_CN_LENGTH = 64


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (what ``cryptography``'s ``*_utc`` accessors return)."""
    return dt.datetime.now(dt.UTC)


def check_days(days: int) -> int:
    """``days`` if it is a sensible validity period; :class:`InvalidInput` otherwise."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"validity must be between 1 and {MAX_DAYS} days, not {days!r}")
    return days


def subject_name(common_name: str) -> x509.Name:
    """A subject holding just ``common_name``; :class:`InvalidInput` if it is empty or too long."""
    cn = common_name.strip()
    if not cn or len(cn) > _MAX_CN_LENGTH or not cn.isprintable():
        raise InvalidInput(
            f"common name {common_name!r} must be 1-{_MAX_CN_LENGTH} printable characters"
        )
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def common_name_of(name: x509.Name) -> str | None:
    """The first common name in ``name``, if any."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode()


def is_self_signed(cert: x509.Certificate) -> bool:
    """True when ``cert`` is its own issuer (a root), by name and by signature."""
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_identifier(public_key: PublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA certificate with its private key, ready to sign.

    ``intermediates`` are the CA certificates between this one and the root, nearest first, the
    root itself excluded; together with :attr:`certificate` they form the chain a server sends
    after a leaf this CA signed (see :attr:`leaf_chain`).

    Construction checks that the certificate is a CA and that the key is its own.
    """

    certificate: x509.Certificate
    key: PrivateKey
    intermediates: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        constraints = _basic_constraints(self.certificate)
        if constraints is None or not constraints.ca:
            raise NotACA(f"{self.name!r} is not a CA certificate")
        try:
            usage = self.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.key_cert_sign:
            raise NotACA(f"CA {self.name!r} may not sign certificates (no keyCertSign usage)")
        require_pair(self.key, self.certificate.public_key(), what=f"CA {self.name!r}")

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create_root(
        cls,
        *,
        common_name: str,
        key: PrivateKey,
        days: int = DEFAULT_CA_DAYS,
        path_length: int | None = 1,
        now: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """A new self-signed root CA for ``key``.

        ``path_length`` is how many intermediate CAs may stand below it (None: no limit).
        """
        check_path_length(path_length)
        now = now or utcnow()
        subject = subject_name(common_name)
        public_key = key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=check_days(days)))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(ca_key_usage(), critical=True)
            .add_extension(_key_identifier(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
            )
        )
        return cls(builder.sign(key, signature_hash(key)), key)

    # -- properties ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return common_name_of(self.certificate.subject) or self.certificate.subject.rfc4514_string()

    @property
    def is_root(self) -> bool:
        return is_self_signed(self.certificate)

    @property
    def path_length(self) -> int | None:
        constraints = _basic_constraints(self.certificate)
        return None if constraints is None else constraints.path_length

    @property
    def leaf_chain(self) -> tuple[x509.Certificate, ...]:
        """What follows a leaf in its certificate file: every CA below the root, nearest first."""
        if self.is_root:
            return ()
        return (self.certificate, *self.intermediates)

    def check_valid(self, now: dt.datetime | None = None) -> None:
        """Raise :class:`CAExpired` unless ``now`` is within the CA's validity window."""
        now = now or utcnow()
        cert = self.certificate
        if now > cert.not_valid_after_utc:
            raise CAExpired(
                f"CA {self.name!r} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC;"
                " create a new CA (init-ca --force) and reissue"
            )
        if now < cert.not_valid_before_utc:
            raise CAExpired(
                f"CA {self.name!r} is not valid before"
                f" {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC (check the clock)"
            )

    def check_can_sign_ca(self, path_length: int | None) -> None:
        """Raise :class:`NotACA` unless this CA may sign a CA with ``path_length``."""
        check_path_length(path_length)
        own = self.path_length
        if own is None:
            return
        if own == 0:
            raise NotACA(f"CA {self.name!r} has path length 0: it may not sign CAs")
        if path_length is None or path_length >= own:
            raise NotACA(
                f"CA {self.name!r} has path length {own}: an intermediate below it needs a"
                f" path length below {own}"
            )

    # -- signing ------------------------------------------------------------------------------

    def issue_intermediate(
        self,
        *,
        common_name: str,
        key: PrivateKey,
        days: int = DEFAULT_INTERMEDIATE_DAYS,
        path_length: int | None = 0,
        now: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """A new intermediate CA for ``key``, signed by this CA."""
        self.check_can_sign_ca(path_length)
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=True, path_length=path_length), True),
            (ca_key_usage(), True),
        ]
        cert = self._sign(
            subject=subject_name(common_name),
            public_key=key.public_key(),
            extensions=extensions,
            days=days,
            now=now,
        )
        return CertificateAuthority(cert, key, intermediates=self.leaf_chain)

    def issue(
        self,
        *,
        profile: Profile,
        public_key: PublicKey,
        common_name: str,
        sans: SubjectAltNames | None = None,
        days: int = DEFAULT_LEAF_DAYS,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A leaf certificate of ``profile`` for ``public_key``."""
        sans = sans or SubjectAltNames()
        if profile.requires_san and not sans:
            raise InvalidInput(
                f"a {profile.value} certificate needs at least one DNS name or IP address"
            )
        public_key = check_public_key(public_key)
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (leaf_key_usage(public_key), True),
            (x509.ExtendedKeyUsage(list(profile.extended_key_usages)), False),
        ]
        if sans:
            extensions.append((sans.to_extension(), False))
        return self._sign(
            subject=subject_name(common_name),
            public_key=public_key,
            extensions=extensions,
            days=days,
            now=now,
        )

    def sign_csr(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        profile: Profile,
        common_name: str | None = None,
        sans: SubjectAltNames | None = None,
        days: int = DEFAULT_LEAF_DAYS,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Sign a CSR made elsewhere, after checking its self-signature.

        Only the CSR's public key, common name and SANs are used; ``common_name`` and ``sans``
        override them. Usages come from ``profile``: requested extensions are ignored, so a CSR
        cannot ask to become a CA.
        """
        verify_csr(csr)
        if common_name is None:
            common_name = common_name_of(csr.subject)
            if common_name is None:
                raise InvalidCSR("the CSR has no common name; give one explicitly")
        if not sans:
            sans = SubjectAltNames.from_extensions(csr.extensions)
        return self.issue(
            profile=profile,
            public_key=check_public_key(csr.public_key()),
            common_name=common_name,
            sans=sans,
            days=days,
            now=now,
        )

    def renew(
        self,
        cert: x509.Certificate,
        *,
        public_key: PublicKey | None = None,
        days: int = DEFAULT_LEAF_DAYS,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A new certificate with ``cert``'s subject, SANs and profile and a fresh validity.

        The public key stays the same unless ``public_key`` is given (re-keying).
        """
        common_name = common_name_of(cert.subject)
        if common_name is None:
            raise InvalidInput("the certificate to renew has no common name")
        return self.issue(
            profile=Profile.of_certificate(cert),
            public_key=public_key
            if public_key is not None
            else check_public_key(cert.public_key()),
            common_name=common_name,
            sans=SubjectAltNames.from_extensions(cert.extensions),
            days=days,
            now=now,
        )

    def _sign(
        self,
        *,
        subject: x509.Name,
        public_key: PublicKey,
        extensions: list[tuple[x509.ExtensionType, bool]],
        days: int,
        now: dt.datetime | None,
    ) -> x509.Certificate:
        now = now or utcnow()
        self.check_valid(now)
        # A certificate cannot be valid longer than its issuer: clamp rather than refuse, so a
        # CA near its end still issues (short-lived) certificates while it is being replaced.
        not_after = min(
            now + dt.timedelta(days=check_days(days)), self.certificate.not_valid_after_utc
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(_key_identifier(public_key), critical=False)
            .add_extension(self.authority_key_identifier(), critical=False)
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(self.key, signature_hash(self.key))

    def authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        """The AKI of what this CA signs: its own subject key identifier."""
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def verify_csr(csr: x509.CertificateSigningRequest) -> None:
    """Raise :class:`BadCSRSignature` unless the CSR is signed by the key it carries."""
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise BadCSRSignature(
            "the CSR's signature does not verify: it was altered or not made with its key"
        )
    check_public_key(csr.public_key())


def check_path_length(path_length: int | None) -> None:
    """Raise :class:`InvalidInput` unless ``path_length`` is None or a non-negative integer."""
    if path_length is not None and (
        isinstance(path_length, bool) or not isinstance(path_length, int) or path_length < 0
    ):
        raise InvalidInput(f"path length must be a non-negative integer, not {path_length!r}")
