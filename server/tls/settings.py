"""What each listener's TLS is made of, resolved from the configuration.

A ``ListenerTLS`` is plain data (it crosses to worker processes): the certificate, key and
trusted-CA files, whether client certificates are required, the CRL, the allowlists, and
whether Ward manages the files itself (in ``<data-dir>/pki``).

Ward's rules, client side (the peer side is the same with the ``--peer-`` flags):

- The certificate is ``--cert-file``/``--key-file`` when given; otherwise Ward's own, issued by
  the CA in ``<data-dir>/pki`` (created on first start) for the advertised and listened-on
  names plus loopback. ``--auto-tls`` asks for exactly that (etcd's makes a self-signed
  certificate nobody can verify; Ward's can be verified with ``<data-dir>/pki/ca.crt``).
- Client certificates are required and verified against ``--trusted-ca-file`` when given (as
  etcd: a trusted CA means client certificates are required); otherwise, when Ward issued the
  server certificate, against Ward's own CA: mutual TLS by default. Only an operator who brings
  a server certificate and no CA gets TLS without client certificates.
- The CRL is ``--client-crl-file``; with Ward's own CA, also ``<data-dir>/pki/crl.pem`` when it
  exists (``wardctl pki revoke --dir <data-dir>/pki NAME`` writes it).
- A client certificate's CN is the auth user name with ``--client-cert-auth``, and with Ward's
  own CA (whose certificates only the operator can mint).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pki import PKIError, ensure_peer_credentials, ensure_server_credentials
from pki.bootstrap import ADMIN_CLIENT_NAME, PEER_NAME, SERVER_NAME
from server.config import Config, ConfigError
from server.config.tls import OPENSSL_NAMES
from server.config.urls import URL

log = logging.getLogger("ward.tls")

PKI_DIR_NAME = "pki"
"""Where in the data directory Ward keeps the CA and certificates it makes itself."""

CIPHER_SUITES_VARIABLE = "GRPC_SSL_CIPHER_SUITES"
"""gRPC's process-wide TLS 1.2 cipher list, read once when gRPC is loaded."""

_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)


class TLSSetupError(Exception):
    """TLS cannot be set up as configured; the message says what and how to fix it."""


@dataclass(frozen=True, slots=True)
class ManagedCerts:
    """Certificates Ward issues itself from the CA in ``directory``."""

    directory: str
    hosts: tuple[str, ...]
    days: int
    common_name: str | None = None  # peer certificates carry the member name


@dataclass(frozen=True, slots=True)
class ListenerTLS:
    """How one kind of listener (``label``: "client" or "peer") serves TLS."""

    label: str
    cert_file: str
    key_file: str
    trusted_ca_file: str | None
    require_client_cert: bool
    crl_file: str | None = None
    # A CRL file that may be absent (Ward's own crl.pem before anything is revoked).
    crl_optional: bool = False
    allowed_cns: tuple[str, ...] = ()
    allowed_hostnames: tuple[str, ...] = ()
    min_version: str = "TLS1.2"
    cert_identity: bool = False
    managed: ManagedCerts | None = None


def pki_directory(cfg: Config) -> Path:
    """``<data-dir>/pki``: the CA and the certificates Ward makes for itself."""
    return cfg.data_dir / PKI_DIR_NAME


def _dialled_hosts(urls: tuple[URL, ...]) -> list[str]:
    return [u.host for u in urls if not u.is_unix]


def _days(cfg: Config) -> int:
    return 365 * cfg.self_signed_cert_validity


def _check_version(cfg: Config) -> None:
    if cfg.tls_max_version == "TLS1.2":
        # gRPC negotiates the highest version both ends know and takes no maximum: a client
        # able to speak TLS 1.3 would get it whatever the flag says. Refusing beats pretending.
        raise ConfigError(
            "--tls-max-version=TLS1.2 cannot be honoured: Ward's gRPC transport always"
            " negotiates TLS 1.3 with clients that support it; leave --tls-max-version unset"
            " (or TLS1.3)"
        )


def client_listener_tls(cfg: Config) -> ListenerTLS | None:
    """The client listeners' TLS, or None when no client URL uses TLS."""
    _check_version(cfg)
    if not any(u.is_tls for u in cfg.listen_client_urls):
        return None
    pki = pki_directory(cfg)
    managed = None
    if cfg.cert_file is not None and cfg.key_file is not None:
        cert, key = str(cfg.cert_file), str(cfg.key_file)
    else:
        cert, key = str(pki / f"{SERVER_NAME}.crt"), str(pki / f"{SERVER_NAME}.key")
        hosts = _dialled_hosts(cfg.advertise_client_urls + cfg.listen_client_urls)
        managed = ManagedCerts(str(pki), tuple(dict.fromkeys(hosts)), _days(cfg))
    crl = str(cfg.client_crl_file) if cfg.client_crl_file else None
    crl_optional = False
    if cfg.trusted_ca_file is not None:
        ca: str | None = str(cfg.trusted_ca_file)
    elif managed is not None:
        ca = str(pki / "ca.crt")
        if crl is None:
            crl, crl_optional = str(pki / "crl.pem"), True
    else:
        ca = None
    if ca is None and (cfg.client_crl_file or cfg.client_cert_allowed_hostname):
        raise ConfigError(
            "--client-crl-file and --client-cert-allowed-hostname check client certificates:"
            " give --trusted-ca-file (or let Ward issue the server certificate) so that"
            " clients must present one"
        )
    return ListenerTLS(
        label="client",
        cert_file=cert,
        key_file=key,
        trusted_ca_file=ca,
        require_client_cert=ca is not None,
        crl_file=crl,
        crl_optional=crl_optional,
        allowed_hostnames=cfg.client_cert_allowed_hostname,
        min_version=cfg.tls_min_version,
        cert_identity=ca is not None and (cfg.client_cert_auth or managed is not None),
        managed=managed,
    )


def peer_listener_tls(cfg: Config) -> ListenerTLS | None:
    """The peer listener's TLS, or None when the peer URLs are plaintext and no peer
    certificate is configured."""
    _check_version(cfg)
    given = cfg.peer_cert_file is not None and cfg.peer_key_file is not None
    peer_urls = cfg.listen_peer_urls + cfg.initial_advertise_peer_urls
    if not given and not any(u.is_tls for u in peer_urls):
        return None
    pki = pki_directory(cfg)
    managed = None
    if given:
        cert, key = str(cfg.peer_cert_file), str(cfg.peer_key_file)
    else:
        cert, key = str(pki / f"{PEER_NAME}.crt"), str(pki / f"{PEER_NAME}.key")
        hosts = _dialled_hosts(cfg.initial_advertise_peer_urls + cfg.listen_peer_urls)
        managed = ManagedCerts(
            str(pki), tuple(dict.fromkeys(hosts)), _days(cfg), common_name=cfg.name
        )
    crl = str(cfg.peer_crl_file) if cfg.peer_crl_file else None
    crl_optional = False
    if cfg.peer_trusted_ca_file is not None:
        ca: str | None = str(cfg.peer_trusted_ca_file)
    elif managed is not None:
        ca = str(pki / "ca.crt")
        if crl is None:
            crl, crl_optional = str(pki / "crl.pem"), True
    else:
        ca = None
    checks = cfg.peer_crl_file or cfg.peer_cert_allowed_cn or cfg.peer_cert_allowed_hostname
    if ca is None and checks:
        raise ConfigError(
            "--peer-crl-file, --peer-cert-allowed-cn and --peer-cert-allowed-hostname check peer"
            " certificates: give --peer-trusted-ca-file (or let Ward issue the peer certificate)"
        )
    return ListenerTLS(
        label="peer",
        cert_file=cert,
        key_file=key,
        trusted_ca_file=ca,
        require_client_cert=ca is not None,
        crl_file=crl,
        crl_optional=crl_optional,
        allowed_cns=cfg.peer_cert_allowed_cn,
        allowed_hostnames=cfg.peer_cert_allowed_hostname,
        min_version=cfg.tls_min_version,
        managed=managed,
    )


def peer_client_files(cfg: Config, tls: ListenerTLS) -> tuple[str, str]:
    """The certificate and key a member presents when it dials a peer."""
    if cfg.peer_client_cert_file is not None and cfg.peer_client_key_file is not None:
        return str(cfg.peer_client_cert_file), str(cfg.peer_client_key_file)
    return tls.cert_file, tls.key_file


def cipher_suites_value(cfg: Config) -> str | None:
    """The value gRPC must find in ``GRPC_SSL_CIPHER_SUITES``, or None to keep gRPC's list.

    gRPC's default list is already AEAD and forward-secret only (no 3DES, no CBC, no RC4).
    TLS 1.3 suites are left out: they are not configurable (as in Go, hence etcd).
    """
    names = [OPENSSL_NAMES[n] for n in cfg.cipher_suites if n not in _TLS13_SUITES]
    return ":".join(names) if names else None


def admin_client_files(directory: str | Path) -> tuple[Path, Path, Path]:
    """``(ca.crt, client-root.crt, client-root.key)`` of a PKI directory Ward manages."""
    d = Path(directory)
    return d / "ca.crt", d / f"{ADMIN_CLIENT_NAME}.crt", d / f"{ADMIN_CLIENT_NAME}.key"


def prepare(tls: ListenerTLS) -> None:
    """Create or renew the certificates Ward manages for ``tls`` (nothing when it manages none).

    Idempotent: the CA is made once; a certificate is reissued only when names were added or
    its end is near. Raise ``TLSSetupError`` when the PKI directory cannot be used.
    """
    m = tls.managed
    if m is None:
        return
    try:
        if tls.label == "peer":
            peer = ensure_peer_credentials(
                m.directory,
                hosts=m.hosts,
                include_loopback=True,
                common_name=m.common_name,
                days=m.days,
            )
            changed = peer.changed
        else:
            server = ensure_server_credentials(m.directory, hosts=m.hosts, days=m.days)
            changed = server.changed
    except PKIError as err:
        raise TLSSetupError(f"cannot set up Ward's certificates in {m.directory}: {err}") from None
    if changed:
        log.info(
            f"issued {tls.label} TLS certificates from Ward's CA",
            extra={"directory": m.directory, "ca": str(Path(m.directory) / "ca.crt")},
        )
