"""A PKI directory: the CA, the certificates it issued, its CRL and index, on disk.

Layout (all PEM)::

    ca.crt, ca.key                    root CA (ca.key may live elsewhere: an offline root)
    intermediate.crt, .key            optional intermediate CA; when present it signs leaves
    <name>.crt, <name>.key            leaf certificate (followed by any intermediate) and key
    crl.pem                           CRL of the issuing CA
    index.json                        serials issued and revoked, CRL number

Every operation validates its input before writing anything, runs under a directory lock, and
is idempotent: asking again for what is already there reports :attr:`Outcome.UNCHANGED`, and
asking for something different under an existing name needs ``force``. File I/O goes through
:mod:`pki.files`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from pki import files
from pki.authority import (
    DEFAULT_CA_DAYS,
    DEFAULT_INTERMEDIATE_DAYS,
    DEFAULT_LEAF_DAYS,
    CertificateAuthority,
    check_days,
    check_path_length,
    common_name_of,
    is_self_signed,
    subject_name,
    utcnow,
    verify_csr,
)
from pki.chain import verify_chain
from pki.crl import DEFAULT_CRL_DAYS, build_crl
from pki.errors import (
    CANotFound,
    CertificateNotFound,
    CertificateRevoked,
    FileExists,
    InvalidCertificate,
    InvalidCSR,
    InvalidInput,
    PKIError,
)
from pki.index import Index, IndexEntry
from pki.keys import (
    KeyType,
    PrivateKey,
    PublicKey,
    check_public_key,
    decode_private_key,
    describe_key,
    encode_private_key,
    generate_key,
    key_type_of,
    public_key_bytes,
    require_key_type,
    require_pair,
)
from pki.profiles import Profile
from pki.report import PKIReport, describe_certificate
from pki.results import CAResult, CRLResult, IssueResult, Outcome, RevokeResult
from pki.san import SubjectAltNames
from pki.serials import format_serial

DEFAULT_CA_COMMON_NAME = "Ward CA"
DEFAULT_INTERMEDIATE_COMMON_NAME = "Ward Intermediate CA"
RESERVED_NAMES = frozenset({"ca", "intermediate", "crl", "index"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    """``name`` if it can name a certificate's files; :class:`InvalidInput` otherwise."""
    if not _NAME.match(name) or ".." in name:
        raise InvalidInput(
            f"invalid certificate name {name!r}: use 1-64 letters, digits, '.', '_' or '-'"
        )
    if name.lower() in RESERVED_NAMES:
        raise InvalidInput(f"certificate name {name!r} is reserved")
    return name


def parse_certificates(data: bytes, *, source: str) -> list[x509.Certificate]:
    """Every certificate in PEM ``data`` (or the one in DER ``data``)."""
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise InvalidCertificate(f"{source} does not hold a valid certificate") from None
    return certs


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    """The CSR in PEM or DER ``data``; :class:`InvalidCSR` if there is none."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError:
        raise InvalidCSR("not a valid certificate signing request (PEM or DER)") from None


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_id(cert: x509.Certificate) -> str:
    """The hex subject key identifier of ``cert`` (computed from its key if it has none)."""
    try:
        digest = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        public = check_public_key(cert.public_key())
        digest = x509.SubjectKeyIdentifier.from_public_key(public).digest
    return digest.hex()


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True, slots=True)
class _LeafRequest:
    """What a leaf certificate should be; compared against an existing one for idempotence."""

    profile: Profile
    common_name: str
    sans: SubjectAltNames
    key_type: KeyType | None
    public_key: PublicKey | None = None


class PKIStore:
    """The PKI directory at ``directory``. ``clock`` gives the current UTC time (tests move it)."""

    def __init__(self, directory: Path | str, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.directory = Path(directory)
        self._clock = clock

    # -- layout -------------------------------------------------------------------------------

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def intermediate_cert_path(self) -> Path:
        return self.directory / "intermediate.crt"

    @property
    def intermediate_key_path(self) -> Path:
        return self.directory / "intermediate.key"

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def index_path(self) -> Path:
        return self.directory / "index.json"

    def cert_path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.crt"

    def key_path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.key"

    # -- reading ------------------------------------------------------------------------------

    def _read_certs(self, path: Path) -> list[x509.Certificate] | None:
        data = files.read_file(path)
        return None if data is None else parse_certificates(data, source=str(path))

    def _read_key(self, path: Path) -> PrivateKey | None:
        data = files.read_file(path, secret=True)
        return None if data is None else decode_private_key(data, what=str(path))

    def load_index(self) -> Index:
        data = files.read_file(self.index_path)
        return Index() if data is None else Index.from_json(data, source=str(self.index_path))

    def load_root_certificate(self) -> x509.Certificate:
        """The root CA certificate (``ca.crt``); :class:`CANotFound` if there is none."""
        certs = self._read_certs(self.ca_cert_path) if files.is_directory(self.directory) else None
        if not certs:
            raise CANotFound(
                f"no CA in {self.directory}: run 'wardctl pki init-ca --dir {self.directory}'"
            )
        return certs[0]

    def load_root_ca(self) -> CertificateAuthority:
        """The root CA with its key."""
        cert = self.load_root_certificate()
        key = self._read_key(self.ca_key_path)
        if key is None:
            raise CANotFound(f"the CA key {self.ca_key_path} is missing (an offline root?)")
        return CertificateAuthority(cert, key)

    def load_issuer(self) -> CertificateAuthority:
        """The CA that signs leaves here: the intermediate if there is one, else the root."""
        root = self.load_root_certificate()
        certs = self._read_certs(self.intermediate_cert_path)
        if certs is None:
            return self.load_root_ca()
        key = self._read_key(self.intermediate_key_path)
        if key is None:
            raise CANotFound(f"the intermediate CA key {self.intermediate_key_path} is missing")
        ca = CertificateAuthority(certs[0], key)
        now = self._clock()
        ca.check_valid(now)
        # After 'init-ca --force' an old intermediate no longer chains; signing with it would
        # hand out certificates nobody trusts.
        verify_chain(ca.certificate, roots=[root], now=now)
        return ca

    def load_crl(self) -> x509.CertificateRevocationList | None:
        """The published CRL (``crl.pem``), or None before the first ``publish_crl``."""
        data = files.read_file(self.crl_path)
        if data is None:
            return None
        try:
            return x509.load_pem_x509_crl(data)
        except ValueError:
            raise InvalidCertificate(f"{self.crl_path} is not a valid CRL") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not files.is_directory(self.directory):
            raise CANotFound(
                f"no PKI directory {self.directory}: run 'wardctl pki init-ca --dir"
                f" {self.directory}'"
            )
        files.ensure_directory(self.directory)
        with files.locked(self.directory):
            yield

    def _record(
        self, cert: x509.Certificate, *, name: str, kind: str, issuer: x509.Certificate
    ) -> None:
        entry = IndexEntry(
            serial=cert.serial_number,
            name=name,
            kind=kind,
            common_name=common_name_of(cert.subject) or "",
            issuer_key_id=key_id(issuer),
            not_after=cert.not_valid_after_utc,
        )
        index = self.load_index().add(entry)
        files.write_file(self.index_path, index.to_json(), mode=files.PUBLIC_MODE, overwrite=True)

    # -- CAs ----------------------------------------------------------------------------------

    def init_ca(
        self,
        *,
        common_name: str = DEFAULT_CA_COMMON_NAME,
        key_type: KeyType | None = None,
        days: int = DEFAULT_CA_DAYS,
        path_length: int | None = 1,
        force: bool = False,
    ) -> CAResult:
        """Create the root CA, or report the existing one unchanged if it has this name and key
        type. A different CA needs ``force`` (which invalidates everything it signed)."""
        subject_name(common_name)
        check_days(days)
        check_path_length(path_length)
        files.ensure_directory(self.directory)
        with files.locked(self.directory):
            now = self._clock()
            if files.exists(self.ca_cert_path) and not force:
                cert = self.load_root_certificate()
                problem = _ca_difference(cert, common_name, key_type)
                if problem is not None:
                    raise FileExists(
                        f"a different CA already exists in {self.directory} ({problem});"
                        " pass --force to replace it"
                    )
                key = self._read_key(self.ca_key_path)
                if key is not None:
                    CertificateAuthority(cert, key)  # refuses a key that is not the CA's
                return _ca_result(
                    Outcome.UNCHANGED, "CA", cert, self.ca_cert_path, self.ca_key_path
                )
            key, new_key = self._key_for(self.ca_key_path, key_type, force=force)
            ca = CertificateAuthority.create_root(
                common_name=common_name, key=key, days=days, path_length=path_length, now=now
            )
            replacing = files.exists(self.ca_cert_path)
            if new_key:
                self._write_key(self.ca_key_path, key, force=force)
            files.write_file(
                self.ca_cert_path, _pem(ca.certificate), mode=files.PUBLIC_MODE, overwrite=force
            )
            self._record(ca.certificate, name="ca", kind="ca", issuer=ca.certificate)
            outcome = Outcome.REPLACED if replacing else Outcome.CREATED
            return _ca_result(outcome, "CA", ca.certificate, self.ca_cert_path, self.ca_key_path)

    def init_intermediate(
        self,
        *,
        common_name: str = DEFAULT_INTERMEDIATE_COMMON_NAME,
        key_type: KeyType | None = None,
        days: int = DEFAULT_INTERMEDIATE_DAYS,
        path_length: int | None = 0,
        parent: Path | str | None = None,
        force: bool = False,
    ) -> CAResult:
        """Create the intermediate CA that will sign this directory's leaves.

        It is signed by the root CA of ``parent`` (another PKI directory, e.g. an offline root
        on removable media; its ``ca.crt`` is copied here) or of this directory.
        """
        subject_name(common_name)
        check_days(days)
        parent_store = self if parent is None else PKIStore(parent, clock=self._clock)
        root_ca = parent_store.load_root_ca()
        if common_name.strip() == root_ca.name:
            raise InvalidInput("the intermediate CA needs a common name different from the root's")
        root_ca.check_can_sign_ca(path_length)
        files.ensure_directory(self.directory)
        with files.locked(self.directory):
            now = self._clock()
            root_ca.check_valid(now)
            copy_root = False
            if parent_store is not self:
                local = self._read_certs(self.ca_cert_path)
                if local is not None and local[0] != root_ca.certificate and not force:
                    raise FileExists(
                        f"{self.ca_cert_path} is a different CA than {parent_store.ca_cert_path};"
                        " pass --force to replace it"
                    )
                copy_root = local is None or local[0] != root_ca.certificate
            existing = self._read_certs(self.intermediate_cert_path)
            if existing is not None and not force:
                cert = existing[0]
                problem = _ca_difference(cert, common_name, key_type)
                if problem is None and not _issued_by(cert, root_ca.certificate):
                    problem = "signed by another root"
                if problem is None and now > cert.not_valid_after_utc:
                    problem = "expired"
                if problem is not None:
                    raise FileExists(
                        f"a different intermediate CA exists in {self.directory} ({problem});"
                        " pass --force to replace it"
                    )
                if copy_root:
                    self._write_root_copy(root_ca.certificate)
                return _ca_result(
                    Outcome.UNCHANGED,
                    "intermediate CA",
                    cert,
                    self.intermediate_cert_path,
                    self.intermediate_key_path,
                )
            key, new_key = self._key_for(self.intermediate_key_path, key_type, force=force)
            ca = root_ca.issue_intermediate(
                common_name=common_name, key=key, days=days, path_length=path_length, now=now
            )
            if copy_root:
                self._write_root_copy(root_ca.certificate)
            if new_key:
                self._write_key(self.intermediate_key_path, key, force=force)
            files.write_file(
                self.intermediate_cert_path,
                _pem(ca.certificate),
                mode=files.PUBLIC_MODE,
                overwrite=force,
            )
            self._record(
                ca.certificate, name="intermediate", kind="intermediate", issuer=root_ca.certificate
            )
            outcome = Outcome.CREATED if existing is None else Outcome.REPLACED
            return _ca_result(
                outcome,
                "intermediate CA",
                ca.certificate,
                self.intermediate_cert_path,
                self.intermediate_key_path,
            )

    def _write_root_copy(self, root: x509.Certificate) -> None:
        """Copy a parent directory's root certificate here: clients of this directory trust it."""
        files.write_file(self.ca_cert_path, _pem(root), mode=files.PUBLIC_MODE, overwrite=True)

    def ensure_ca(
        self,
        *,
        common_name: str = DEFAULT_CA_COMMON_NAME,
        key_type: KeyType | None = None,
        days: int = DEFAULT_CA_DAYS,
    ) -> CAResult:
        """The existing issuing CA, whatever its name, or a new root CA if there is none.

        Raises :class:`CAExpired` for an expired CA: replacing it silently would strand every
        client holding the old one.
        """
        if not files.exists(self.ca_cert_path):
            return self.init_ca(common_name=common_name, key_type=key_type, days=days)
        ca = self.load_issuer()
        ca.check_valid(self._clock())
        cert_path = self.intermediate_cert_path if not ca.is_root else self.ca_cert_path
        key_path = self.intermediate_key_path if not ca.is_root else self.ca_key_path
        return _ca_result(Outcome.UNCHANGED, "CA", ca.certificate, cert_path, key_path)

    # -- leaves -------------------------------------------------------------------------------

    def issue(
        self,
        profile: Profile,
        name: str,
        *,
        dns: Iterable[str] = (),
        ips: Iterable[str] = (),
        common_name: str | None = None,
        days: int = DEFAULT_LEAF_DAYS,
        key_type: KeyType | None = None,
        force: bool = False,
    ) -> IssueResult:
        """Issue ``<name>.crt`` and ``<name>.key`` of ``profile``.

        The common name defaults to ``name`` (for a client certificate it is the user name).
        Issuing the same certificate again reports it unchanged; a different one under the same
        name needs ``force``. A key without a certificate (left by an interrupted run) is reused.
        """
        request = self._leaf_request(profile, name, dns, ips, common_name, key_type, days)
        with self._locked():
            return self._issue_locked(name, request, days=days, force=force)

    def ensure(
        self,
        profile: Profile,
        name: str,
        *,
        sans: SubjectAltNames,
        common_name: str | None = None,
        days: int = DEFAULT_LEAF_DAYS,
        key_type: KeyType | None = None,
        renew_before_days: int = 30,
    ) -> IssueResult:
        """Make sure ``<name>.crt`` is a current certificate of ``profile`` for at least ``sans``.

        Unlike :meth:`issue`, a certificate that differs, lacks a name, expires within
        ``renew_before_days`` or was revoked is reissued rather than refused: this is for
        credentials Ward manages itself. The key is kept when it is still good.
        """
        request = self._leaf_request(
            profile, name, sans.dns_names, sans.ip_addresses, common_name, key_type, days
        )
        with self._locked():
            ca = self.load_issuer()
            now = self._clock()
            ca.check_valid(now)
            certs = self._read_certs_lenient(self.cert_path(name))
            if certs is not None:
                problem = self._leaf_difference(
                    certs[0], self.key_path(name), ca, request, now, superset_ok=True
                )
                horizon = now + dt.timedelta(days=renew_before_days)
                if problem is None and certs[0].not_valid_after_utc > horizon:
                    return self._issue_result(Outcome.UNCHANGED, name, certs[0])
            key = self._usable_key(self.key_path(name), key_type)
            return self._write_leaf(name, request, ca, key=key, days=days, now=now, replace=True)

    def _leaf_request(
        self,
        profile: Profile,
        name: str,
        dns: Iterable[str],
        ips: Iterable[str | object],
        common_name: str | None,
        key_type: KeyType | None,
        days: int,
    ) -> _LeafRequest:
        check_name(name)
        check_days(days)
        sans = SubjectAltNames.parse(dns=dns, ips=[str(ip) for ip in ips])
        cn = (common_name if common_name is not None else name).strip()
        subject_name(cn)
        if profile.requires_san and not sans:
            raise InvalidInput(
                f"a {profile.value} certificate needs at least one DNS name or IP address"
                " (--dns/--ip)"
            )
        return _LeafRequest(profile=profile, common_name=cn, sans=sans, key_type=key_type)

    def _issue_locked(
        self, name: str, request: _LeafRequest, *, days: int, force: bool
    ) -> IssueResult:
        ca = self.load_issuer()
        now = self._clock()
        ca.check_valid(now)
        cert_path, key_path = self.cert_path(name), self.key_path(name)
        replacing = files.exists(cert_path)
        if replacing and not force:
            certs = self._read_certs(cert_path) or []
            if not certs:
                raise InvalidCertificate(f"{cert_path} is empty; pass --force to replace it")
            problem = self._leaf_difference(certs[0], key_path, ca, request, now)
            if problem is not None:
                raise FileExists(
                    f"certificate {name!r} already exists with {problem}; pass --force to"
                    " replace it (or use renew)"
                )
            return self._issue_result(Outcome.UNCHANGED, name, certs[0])
        key = None if force else self._read_key(key_path)
        if key is not None:
            require_key_type(key, request.key_type, what=f"existing key {key_path}")
        return self._write_leaf(name, request, ca, key=key, days=days, now=now, replace=force)

    def _write_leaf(
        self,
        name: str,
        request: _LeafRequest,
        ca: CertificateAuthority,
        *,
        key: PrivateKey | None,
        days: int,
        now: dt.datetime,
        replace: bool,
    ) -> IssueResult:
        cert_path, key_path = self.cert_path(name), self.key_path(name)
        replacing = files.exists(cert_path)
        new_key = key is None
        if key is None:
            key = generate_key(request.key_type or KeyType.ECDSA_P256)
        cert = ca.issue(
            profile=request.profile,
            public_key=key.public_key(),
            common_name=request.common_name,
            sans=request.sans,
            days=days,
            now=now,
        )
        if new_key:
            self._write_key(key_path, key, force=replace)
        files.write_file(
            cert_path, _pem(cert, *ca.leaf_chain), mode=files.PUBLIC_MODE, overwrite=replace
        )
        self._record(cert, name=name, kind=request.profile.value, issuer=ca.certificate)
        outcome = Outcome.REPLACED if replacing else Outcome.CREATED
        return self._issue_result(outcome, name, cert)

    def sign_csr(
        self,
        csr_data: bytes,
        *,
        profile: Profile,
        out: Path | str,
        name: str | None = None,
        common_name: str | None = None,
        dns: Iterable[str] = (),
        ips: Iterable[str] = (),
        days: int = DEFAULT_LEAF_DAYS,
        force: bool = False,
    ) -> IssueResult:
        """Sign a CSR made elsewhere into ``out`` (the certificate followed by any intermediate).

        The CSR's signature is verified first. ``common_name``/``dns``/``ips`` override the
        CSR's; the profile alone decides the usages.
        """
        out = Path(out)
        if out.suffix == ".key" or out.resolve() in self._reserved_paths():
            raise InvalidInput(f"{out} is one of the PKI's own files; choose another --out")
        csr = parse_csr(csr_data)
        verify_csr(csr)
        check_days(days)
        overrides = SubjectAltNames.parse(dns=dns, ips=ips)
        sans = overrides or SubjectAltNames.from_extensions(csr.extensions)
        cn = common_name if common_name is not None else common_name_of(csr.subject)
        if cn is None:
            raise InvalidCSR("the CSR has no common name; pass --cn")
        subject_name(cn)
        record_name = check_name(name) if name is not None else out.stem
        if profile.requires_san and not sans:
            raise InvalidInput(
                f"a {profile.value} certificate needs at least one DNS name or IP address:"
                " the CSR has none, pass --dns/--ip"
            )
        public_key = check_public_key(csr.public_key())
        request = _LeafRequest(profile, cn.strip(), sans, None, public_key)
        with self._locked():
            ca = self.load_issuer()
            now = self._clock()
            ca.check_valid(now)
            existing = self._read_certs(out) if files.exists(out) else None
            if existing and not force:
                problem = self._leaf_difference(existing[0], None, ca, request, now)
                if problem is not None:
                    raise FileExists(f"{out} already exists with {problem}; pass --force")
                return self._issue_result(Outcome.UNCHANGED, record_name, existing[0], path=out)
            cert = ca.sign_csr(csr, profile=profile, common_name=cn, sans=sans, days=days, now=now)
            files.write_file(
                out, _pem(cert, *ca.leaf_chain), mode=files.PUBLIC_MODE, overwrite=force
            )
            self._record(cert, name=record_name, kind=profile.value, issuer=ca.certificate)
            outcome = Outcome.CREATED if existing is None else Outcome.REPLACED
            return self._issue_result(outcome, record_name, cert, path=out)

    def renew(
        self,
        name: str,
        *,
        rekey: bool = False,
        key_type: KeyType | None = None,
        days: int = DEFAULT_LEAF_DAYS,
    ) -> IssueResult:
        """Reissue ``<name>.crt`` with the same subject, SANs and profile and a new validity.

        With ``rekey`` a new key replaces ``<name>.key`` (of ``key_type``, else the same type).
        A revoked certificate can only be renewed with a new key.
        """
        check_days(days)
        with self._locked():
            ca = self.load_issuer()
            now = self._clock()
            cert_path, key_path = self.cert_path(name), self.key_path(name)
            certs = self._read_certs(cert_path)
            if not certs:
                raise CertificateNotFound(f"no certificate named {name!r} in {self.directory}")
            old = certs[0]
            entry = self.load_index().find(old.serial_number)
            if entry is not None and entry.revoked and not rekey:
                raise CertificateRevoked(
                    f"certificate {name!r} is revoked; renew it with --rekey for a new key"
                )
            old_public = check_public_key(old.public_key())
            key: PrivateKey | None = None
            public: PublicKey = old_public
            if rekey:
                key = generate_key(key_type or key_type_of(old_public) or KeyType.ECDSA_P256)
                public = key.public_key()
            else:
                require_key_type(old_public, key_type, what=f"the key of {name!r}")
                current = self._read_key(key_path)
                if current is not None:
                    require_pair(current, old_public, what=str(cert_path))
            cert = ca.renew(old, public_key=public, days=days, now=now)
            if key is not None:
                self._write_key(key_path, key, force=True)
            files.write_file(
                cert_path, _pem(cert, *ca.leaf_chain), mode=files.PUBLIC_MODE, overwrite=True
            )
            self._record(
                cert, name=name, kind=Profile.of_certificate(cert).value, issuer=ca.certificate
            )
            return self._issue_result(Outcome.RENEWED, name, cert)

    # -- revocation ---------------------------------------------------------------------------

    def revoke(
        self,
        *,
        name: str | None = None,
        serial: int | None = None,
        reason: x509.ReasonFlags | None = None,
        crl_days: int = DEFAULT_CRL_DAYS,
    ) -> RevokeResult:
        """Revoke a certificate by ``name`` or ``serial`` and publish the new CRL."""
        if (name is None) == (serial is None):
            raise InvalidInput("revoke needs exactly one of a certificate name or --serial")
        check_days(crl_days)
        with self._locked():
            ca = self.load_issuer()
            now = self._clock()
            index = self.load_index()
            if name is not None:
                certs = self._read_certs(self.cert_path(name))
                if not certs:
                    raise CertificateNotFound(f"no certificate named {name!r} in {self.directory}")
                cert = certs[0]
                serial = cert.serial_number
                if index.find(serial) is None:
                    if not _issued_by(cert, ca.certificate):
                        raise InvalidInput(f"certificate {name!r} was not issued by this CA")
                    self._record(cert, name=name, kind="leaf", issuer=ca.certificate)
                    index = self.load_index()
            assert serial is not None
            entry = index.find(serial)
            if entry is None:
                raise CertificateNotFound(
                    f"serial {format_serial(serial)} was not issued from {self.directory}"
                )
            if entry.kind in ("ca", "intermediate"):
                raise InvalidInput(
                    f"serial {format_serial(serial)} is a CA certificate; replace the CA instead"
                    " (init-ca/intermediate --force)"
                )
            if entry.issuer_key_id != key_id(ca.certificate):
                raise InvalidInput(
                    f"serial {format_serial(serial)} was issued by another CA; its CRL is not"
                    " published here"
                )
            if entry.revoked:
                return RevokeResult(
                    Outcome.UNCHANGED, format_serial(serial), entry.name, self.crl_path
                )
            index = index.revoke(serial, at=now, reason=reason)
            self._publish_locked(ca, index, days=crl_days, now=now)
            return RevokeResult(Outcome.REVOKED, format_serial(serial), entry.name, self.crl_path)

    def publish_crl(self, *, days: int = DEFAULT_CRL_DAYS) -> CRLResult:
        """Publish a fresh CRL of the issuing CA (run it before the previous one expires)."""
        check_days(days)
        with self._locked():
            return self._publish_locked(
                self.load_issuer(), self.load_index(), days=days, now=self._clock()
            )

    def _publish_locked(
        self, ca: CertificateAuthority, index: Index, *, days: int, now: dt.datetime
    ) -> CRLResult:
        revocations = index.revocations(key_id(ca.certificate))
        number = index.crl_number + 1
        crl = build_crl(ca, revocations, number=number, days=days, now=now)
        # The index first: a CRL must never list less than the index says is revoked.
        index = Index(entries=index.entries, crl_number=number)
        files.write_file(self.index_path, index.to_json(), mode=files.PUBLIC_MODE, overwrite=True)
        files.write_file(
            self.crl_path,
            crl.public_bytes(serialization.Encoding.PEM),
            mode=files.PUBLIC_MODE,
            overwrite=True,
        )
        assert crl.next_update_utc is not None
        return CRLResult(self.crl_path, number, len(revocations), crl.next_update_utc)

    # -- helpers ------------------------------------------------------------------------------

    def _reserved_paths(self) -> set[Path]:
        return {
            p.resolve()
            for p in (
                self.ca_cert_path,
                self.intermediate_cert_path,
                self.crl_path,
                self.index_path,
            )
        }

    def _read_certs_lenient(self, path: Path) -> list[x509.Certificate] | None:
        try:
            return self._read_certs(path) or None
        except InvalidCertificate:
            return None

    def _usable_key(self, path: Path, key_type: KeyType | None) -> PrivateKey | None:
        """An existing key worth keeping, or None to generate one."""
        try:
            key = self._read_key(path)
        except PKIError:
            return None
        if key is None or (key_type is not None and key_type_of(key) is not key_type):
            return None
        return key

    def _key_for(
        self, path: Path, key_type: KeyType | None, *, force: bool
    ) -> tuple[PrivateKey, bool]:
        """The key at ``path`` (kept from an interrupted run) or a new one; True if new."""
        key = None if force else self._read_key(path)
        if key is None:
            return generate_key(key_type or KeyType.ECDSA_P256), True
        require_key_type(key, key_type, what=f"existing key {path}")
        return key, False

    def _write_key(self, path: Path, key: PrivateKey, *, force: bool) -> None:
        files.write_file(path, encode_private_key(key), mode=files.KEY_MODE, overwrite=force)

    def _leaf_difference(
        self,
        cert: x509.Certificate,
        key_path: Path | None,
        ca: CertificateAuthority,
        request: _LeafRequest,
        now: dt.datetime,
        *,
        superset_ok: bool = False,
    ) -> str | None:
        """Why ``cert`` is not what ``request`` asks for, or None when it is."""
        if not _issued_by(cert, ca.certificate):
            return "a different issuing CA"
        try:
            profile = Profile.of_certificate(cert)
        except InvalidCertificate:
            return "no TLS usage"
        if profile is not request.profile:
            return f"profile {profile.value}"
        if common_name_of(cert.subject) != request.common_name:
            return f"common name {common_name_of(cert.subject)!r}"
        sans = SubjectAltNames.from_extensions(cert.extensions)
        same = sans.covers(request.sans) if superset_ok else sans == request.sans
        if not same:
            return f"SANs {', '.join(sans.as_strings()) or '(none)'}"
        if now > cert.not_valid_after_utc:
            return "an expired validity"
        entry = self.load_index().find(cert.serial_number)
        if entry is not None and entry.revoked:
            return "a revoked certificate"
        public = check_public_key(cert.public_key())
        if request.public_key is not None and public_key_bytes(public) != public_key_bytes(
            request.public_key
        ):
            return "a different public key"
        if request.key_type is not None and key_type_of(public) is not request.key_type:
            if superset_ok:
                return f"key type {describe_key(public)}"
            # Asking for another key type is not a different certificate but a different key.
            require_key_type(public, request.key_type, what=f"the key of {cert_name(cert)!r}")
        if key_path is not None:
            key = self._read_key(key_path)
            if key is None:
                return f"no private key ({key_path} is missing)"
            if public_key_bytes(key) != public_key_bytes(public):
                return f"a private key ({key_path}) that does not match it"
        return None

    def _issue_result(
        self, outcome: Outcome, name: str, cert: x509.Certificate, *, path: Path | None = None
    ) -> IssueResult:
        return IssueResult(
            outcome=outcome,
            name=name,
            profile=Profile.of_certificate(cert).value,
            common_name=common_name_of(cert.subject) or "",
            sans=tuple(SubjectAltNames.from_extensions(cert.extensions).as_strings()),
            cert_path=path if path is not None else self.cert_path(name),
            key_path=None if path is not None else self.key_path(name),
            serial=format_serial(cert.serial_number),
            not_after=cert.not_valid_after_utc,
        )


def cert_name(cert: x509.Certificate) -> str:
    return common_name_of(cert.subject) or cert.subject.rfc4514_string()


def _ca_difference(
    cert: x509.Certificate, common_name: str, key_type: KeyType | None
) -> str | None:
    existing = common_name_of(cert.subject)
    if existing != common_name.strip():
        return f"common name {existing!r}"
    public = check_public_key(cert.public_key())
    if key_type is not None and key_type_of(public) is not key_type:
        return f"key type {describe_key(public)}"
    return None


def _ca_result(
    outcome: Outcome, kind: str, cert: x509.Certificate, cert_path: Path, key_path: Path
) -> CAResult:
    return CAResult(
        outcome=outcome,
        kind=kind,
        common_name=cert_name(cert),
        cert_path=cert_path,
        key_path=key_path,
        serial=format_serial(cert.serial_number),
        not_after=cert.not_valid_after_utc,
    )


# -- inspection -------------------------------------------------------------------------------


def inspect_path(
    path: Path | str,
    *,
    ca_files: Sequence[Path | str] = (),
    now: dt.datetime | None = None,
) -> PKIReport:
    """Report on the certificate file ``path``, or on every certificate in directory ``path``.

    Chains are checked against the self-signed CAs found (``ca_files``, else those in the
    directory), revocation against the directory's ``crl.pem``, and each ``<name>.crt`` against
    its ``<name>.key`` when that is readable.
    """
    path = Path(path)
    now = now or utcnow()
    directory = path if files.is_directory(path) else path.parent
    errors: list[str] = []
    loaded: dict[Path, list[x509.Certificate]] = {}
    if files.is_directory(path):
        for candidate in files.list_files(path):
            if candidate.suffix not in (".crt", ".pem", ".cer"):
                continue
            try:
                data = files.read_file(candidate) or b""
                # .pem is also used for keys, CSRs and CRLs: only certificates are reported.
                if candidate.suffix == ".pem" and b"-----BEGIN CERTIFICATE-----" not in data:
                    continue
                loaded[candidate] = parse_certificates(data, source=str(candidate))
            except PKIError as error:
                errors.append(str(error))
    else:
        loaded[path] = _read_certificate_file(path)

    pool: list[x509.Certificate] = [c for certs in loaded.values() for c in certs]
    anchor_files = [Path(p) for p in ca_files] or [directory / "ca.crt"]
    for anchor in anchor_files:
        if anchor not in loaded and (files.exists(anchor) or ca_files):
            pool += _read_certificate_file(anchor)
    if (
        files.exists(directory / "intermediate.crt")
        and directory / "intermediate.crt" not in loaded
    ):
        pool += _read_certificate_file(directory / "intermediate.crt")
    roots = [c for c in pool if _is_ca(c) and is_self_signed(c)]
    intermediates = [c for c in pool if _is_ca(c) and not is_self_signed(c)]
    crls = _read_crls(directory, errors)

    reports = []
    for source, certs in loaded.items():
        key = _read_matching_key(source, errors)
        reports.append(
            describe_certificate(
                certs[0],
                source=str(source),
                roots=_dedupe(roots),
                intermediates=_dedupe([*certs[1:], *intermediates]),
                crls=crls,
                private_key=key,
                now=now,
            )
        )
    return PKIReport(certificates=tuple(reports), errors=tuple(errors))


def _read_certificate_file(path: Path) -> list[x509.Certificate]:
    data = files.read_file(path)
    if data is None:
        raise CertificateNotFound(f"no such file: {path}")
    return parse_certificates(data, source=str(path))


def _read_crls(directory: Path, errors: list[str]) -> list[x509.CertificateRevocationList]:
    path = directory / "crl.pem"
    data = files.read_file(path) if files.exists(path) else None
    if data is None:
        return []
    try:
        return [x509.load_pem_x509_crl(data)]
    except ValueError:
        errors.append(f"{path}: not a valid CRL")
        return []


def _read_matching_key(cert_path: Path, errors: list[str]) -> PrivateKey | None:
    key_path = cert_path.with_suffix(".key")
    try:
        data = files.read_file(key_path, secret=True)
        return None if data is None else decode_private_key(data, what=str(key_path))
    except PKIError as error:
        errors.append(str(error))
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _dedupe(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    unique: list[x509.Certificate] = []
    for cert in certs:
        if cert not in unique:
            unique.append(cert)
    return unique
