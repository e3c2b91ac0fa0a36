"""gRPC credentials from a ``ListenerTLS``, re-read when their files change.

gRPC calls a server's certificate-configuration fetcher before every TLS handshake. Ward's
fetcher compares the files' identity (inode, size, modification time) with what it loaded last
and, when any changed, loads and checks the new certificate, key and CA bundle: new connections
use them, connections already open keep theirs. A half-written or mismatched set (a new
certificate beside the old key) is not applied: it is logged once and retried at the next
handshake, so a rotation done file by file takes effect when the last file lands.

Every serving process (the core and each worker) has its own fetcher, so a rotation reaches all
of them without any signal between processes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from cryptography.x509.oid import NameOID

from server.tls import expiry
from server.tls.settings import ListenerTLS, TLSSetupError

log = logging.getLogger("ward.tls")

_Stamp = tuple[tuple[int, int, int] | None, ...]


def file_stamp(paths: tuple[str, ...]) -> _Stamp:
    """What changes when any of ``paths`` is rewritten or replaced (None: no such file)."""
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LoadedCertificate:
    """A checked certificate chain, its key and the CA bundle, as PEM bytes."""

    chain: bytes
    key: bytes
    ca: bytes | None
    subject: str
    not_after: dt.datetime
    common_name: str = ""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise TLSSetupError(f"cannot read {what} {path}: {err.strerror or err}") from None


def load_certificate(tls: ListenerTLS, *, now: dt.datetime | None = None) -> LoadedCertificate:
    """Read and check ``tls``'s files: a parsable chain, a key that matches it, a current
    certificate and a parsable CA bundle. Raise ``TLSSetupError`` saying which file is wrong."""
    chain = _read(tls.cert_file, "certificate file")
    key = _read(tls.key_file, "key file")
    ca = _read(tls.trusted_ca_file, "trusted CA file") if tls.trusted_ca_file else None
    try:
        leaf = x509.load_pem_x509_certificates(chain)[0]
    except ValueError:
        raise TLSSetupError(f"{tls.cert_file} holds no PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise TLSSetupError(f"{tls.key_file} holds no unencrypted PEM private key") from None
    if isinstance(private, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        # gRPC's TLS (BoringSSL) does not offer Ed25519 signatures in the handshake, so such a
        # certificate could never complete one. (An Ed25519 CA signing other keys is fine.)
        raise TLSSetupError(
            f"{tls.cert_file} has an Ed25519/Ed448 key, which gRPC's TLS cannot sign handshakes"
            " with; issue it with an ECDSA P-256 or RSA key (wardctl pki renew --rekey"
            " --key-type ecdsa-p256)"
        )
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(der, spki) != private.public_key().public_bytes(der, spki):
        raise TLSSetupError(f"{tls.key_file} is not the key of {tls.cert_file}")
    moment = now or dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc <= moment:
        raise TLSSetupError(
            f"{tls.cert_file} expired at {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
        )
    if ca is not None:
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise TLSSetupError(f"{tls.trusted_ca_file} holds no PEM certificate") from None
    subject = leaf.subject.rfc4514_string()
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    return LoadedCertificate(chain, key, ca, subject, leaf.not_valid_after_utc, cn)


def _configuration(loaded: LoadedCertificate) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(loaded.key, loaded.chain)], loaded.ca)


class CertificateReloader:
    """The fetcher of ``grpc.dynamic_ssl_server_credentials`` for one listener's files.

    Construction loads the files (raising ``TLSSetupError`` if they are unusable: a server
    must not start without them); calls return a new configuration after a change, else None.
    """

    def __init__(self, tls: ListenerTLS) -> None:
        self._tls = tls
        self._paths = tuple(p for p in (tls.cert_file, tls.key_file, tls.trusted_ca_file) if p)
        # gRPC may run handshakes on several threads; one reload at a time.
        self._lock = threading.Lock()
        self._stamp = file_stamp(self._paths)
        self.current = load_certificate(tls)
        expiry.record(tls.label, self.current.common_name, self.current.not_after)
        self._refused: _Stamp | None = None
        self.reloads = 0

    def initial(self) -> grpc.ServerCertificateConfiguration:
        return _configuration(self.current)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        stamp = file_stamp(self._paths)
        if stamp == self._stamp or stamp == self._refused:
            return None
        with self._lock:
            if stamp == self._stamp:
                return None
            try:
                loaded = load_certificate(self._tls)
            except TLSSetupError as err:
                self._refused = stamp
                log.warning(
                    f"not reloading the {self._tls.label} TLS certificate: {err};"
                    " still serving the previous one"
                )
                return None
            # The stamp taken before reading: a change made while reading is seen next time.
            self._stamp = stamp
            self.current = loaded
            self.reloads += 1
            expiry.record(self._tls.label, loaded.common_name, loaded.not_after)
        log.info(
            f"reloaded the {self._tls.label} TLS certificate and trusted CAs",
            extra={
                "cert_file": self._tls.cert_file,
                "subject": loaded.subject,
                "not_after": f"{loaded.not_after:%Y-%m-%dT%H:%M:%SZ}",
                "trusted_ca_file": self._tls.trusted_ca_file or "",
                "pid": os.getpid(),  # each serving process reloads on its own
            },
        )
        return _configuration(loaded)


def server_credentials(tls: ListenerTLS) -> grpc.ServerCredentials:
    """Server credentials for ``tls`` whose certificate and CA bundle follow their files."""
    reloader = CertificateReloader(tls)
    return grpc.dynamic_ssl_server_credentials(
        reloader.initial(),
        reloader,
        require_client_authentication=tls.require_client_cert,
    )


def channel_credentials(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> grpc.ChannelCredentials:
    """Channel credentials from PEM files as they are now.

    gRPC's channel credentials are fixed once made: after a rotation, make new ones (and new
    channels) for new connections.
    """
    ca = _read(ca_file, "trusted CA file") if ca_file else None
    cert = _read(cert_file, "certificate file") if cert_file else None
    key = _read(key_file, "key file") if key_file else None
    return grpc.ssl_channel_credentials(ca, key, cert)
