"""TLS on Ward's listeners: credentials from the configuration, hot reload, per-RPC checks.

What gRPC Python can express, and what Ward does for the rest:

- Certificate, key, trusted CA bundle, client certificates required or not: gRPC's own
  (``grpc.dynamic_ssl_server_credentials``), with a fetcher that re-reads changed files before
  each handshake, so certificates *and* the CA bundle rotate without a restart
  (``server.tls.credentials``).
- TLS versions: gRPC negotiates TLS 1.2 or 1.3 (1.0 and 1.1 are refused in the handshake) and
  takes no minimum or maximum. ``--tls-min-version=TLS1.3`` is enforced on every RPC from the
  negotiated version gRPC reports; ``--tls-max-version=TLS1.2`` cannot be honoured (a client
  able to speak 1.3 always gets it) and is refused at start.
- Cipher suites: gRPC reads one process-wide list (``GRPC_SSL_CIPHER_SUITES``) when it loads,
  so ``server.main`` sets it before importing gRPC; workers inherit it. gRPC's default list is
  AEAD and forward-secret only. TLS 1.3 suites are not configurable (as in Go, hence etcd).
- CRLs, ``--peer-cert-allowed-cn`` and the host name allowlists: gRPC has no hook in the
  handshake, so ``server.tls.guard.CertGuard`` checks the verified peer chain on every RPC of
  every listener (client listeners of the core and of each worker; the peer listener through
  ``CertGuardInterceptor``).
- Handshake refusals (no certificate, unknown CA, expired, wrong key usage, plaintext on a TLS
  port, TLS 1.1) are logged by gRPC's core on stderr ("Handshake failed with error ...").
"""

from server.tls.credentials import (
    CertificateReloader,
    channel_credentials,
    load_certificate,
    server_credentials,
)
from server.tls.guard import (
    CertGuard,
    CertGuardInterceptor,
    PeerCertificate,
    RevocationList,
    cert_common_name,
    certificate_allowed,
    guarded_handler,
    set_cert_identity,
)
from server.tls.peer import (
    PeerTLS,
    peer_channel_credentials,
    peer_guard,
    peer_server_credentials,
    peer_tls,
)
from server.tls.serving import ClientListeners, use_cipher_suites
from server.tls.settings import (
    CIPHER_SUITES_VARIABLE,
    ListenerTLS,
    ManagedCerts,
    TLSSetupError,
    admin_client_files,
    cipher_suites_value,
    client_listener_tls,
    peer_listener_tls,
    pki_directory,
    prepare,
)

__all__ = [
    "CIPHER_SUITES_VARIABLE",
    "CertGuard",
    "CertGuardInterceptor",
    "CertificateReloader",
    "ClientListeners",
    "ListenerTLS",
    "ManagedCerts",
    "PeerCertificate",
    "PeerTLS",
    "RevocationList",
    "TLSSetupError",
    "admin_client_files",
    "cert_common_name",
    "certificate_allowed",
    "channel_credentials",
    "cipher_suites_value",
    "client_listener_tls",
    "guarded_handler",
    "load_certificate",
    "peer_channel_credentials",
    "peer_guard",
    "peer_listener_tls",
    "peer_server_credentials",
    "peer_tls",
    "pki_directory",
    "prepare",
    "server_credentials",
    "set_cert_identity",
    "use_cipher_suites",
]
