"""TLS for the peer transport, from the configuration: what the lead's transport plugs in.

``server/peer/transport.py`` takes ``server_credentials: grpc.ServerCredentials | None`` and
``channel_credentials: grpc.ChannelCredentials | None``. Wiring, in the core process, after the
data directory is open (Ward may create ``<data-dir>/pki``)::

    server_creds = peer_server_credentials(cfg)     # None: plaintext peer URLs
    channel_creds = peer_channel_credentials(cfg)   # None: dial peers in plaintext
    guard = peer_guard(cfg)                          # None: nothing to check per RPC
    interceptors = [CertGuardInterceptor(guard)] if guard else []
    server = grpc.aio.server(interceptors=interceptors, ...)

The same rules as for clients (see ``server.tls.settings``): ``--peer-cert-file`` or Ward's own
peer certificate (CN = the member name, for ``--peer-cert-allowed-cn``); peer certificates
required and verified against ``--peer-trusted-ca-file`` or Ward's own CA; ``--peer-crl-file``
(or Ward's ``crl.pem``), ``--peer-cert-allowed-cn`` and ``--peer-cert-allowed-hostname`` checked
on every peer RPC by the guard. With Ward's own certificates, the members of one cluster must
share the CA: copy ``ca.crt`` and ``ca.key`` into each member's ``<data-dir>/pki`` before its
first start (or issue peer certificates with ``wardctl pki``, see the README).

Server credentials follow their files (rotation without restart); channel credentials are made
from the files as they are when called, so after a rotation call again for new channels.
"""

from __future__ import annotations

import grpc

from server.config import Config
from server.tls.credentials import channel_credentials, server_credentials
from server.tls.guard import CertGuard
from server.tls.settings import ListenerTLS, peer_client_files, peer_listener_tls, prepare


def _peer_tls(cfg: Config) -> ListenerTLS | None:
    tls = peer_listener_tls(cfg)
    if tls is not None:
        prepare(tls)
    return tls


def peer_server_credentials(cfg: Config) -> grpc.ServerCredentials | None:
    """Credentials for the peer listener, or None when the peer URLs are plaintext."""
    tls = _peer_tls(cfg)
    return None if tls is None else server_credentials(tls)


def peer_channel_credentials(cfg: Config) -> grpc.ChannelCredentials | None:
    """Credentials to dial ``https://`` peers with (``--peer-client-cert-file`` or the peer
    certificate, and the peer CA), or None when this member has no peer TLS."""
    tls = _peer_tls(cfg)
    if tls is None:
        return None
    cert, key = peer_client_files(cfg, tls)
    return channel_credentials(tls.trusted_ca_file, cert, key)


def peer_guard(cfg: Config) -> CertGuard | None:
    """The per-RPC checks of the peer listener (CRL, allowed CN/host names), or None."""
    tls = peer_listener_tls(cfg)
    return None if tls is None else CertGuard(tls)
