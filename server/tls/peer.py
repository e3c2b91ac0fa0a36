"""TLS for the peer transport, from the configuration: what the lead's transport plugs in.

``server/peer/transport.py`` takes ``server_credentials: grpc.ServerCredentials | None`` and
``channel_credentials: grpc.ChannelCredentials | None``. Wiring, in the core process, after the
data directory is open (Ward may create ``<data-dir>/pki``)::

    server_creds = peer_server_credentials(cfg)     # None: plaintext peer URLs
    channel_creds = peer_channel_credentials(cfg)   # None: dial peers in plaintext
    guard = peer_guard(cfg)                          # None: nothing to check per RPC
    interceptors = [CertGuardInterceptor(guard)] if guard else []
    server = grpc.aio.server(interceptors=interceptors, ...)

Where only ``ServerOptions`` reach the member, carry ``peer_tls(cfg)`` (plain data) in them
and build from it in ``Member``: ``t.prepare()``, then ``t.server_credentials()``,
``t.channel_credentials()`` and ``t.guard()``.

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

from dataclasses import dataclass

import grpc

from server.config import Config
from server.tls.credentials import channel_credentials, server_credentials
from server.tls.guard import CertGuard
from server.tls.settings import ListenerTLS, peer_client_files, peer_listener_tls, prepare


@dataclass(frozen=True, slots=True)
class PeerTLS:
    """A member's peer TLS as plain data (it fits in ``ServerOptions``), and its builders."""

    listener: ListenerTLS
    client_cert: str  # what this member presents when it dials a peer
    client_key: str

    def prepare(self) -> None:
        """Create Ward's own peer certificate when it manages one (idempotent)."""
        prepare(self.listener)

    def server_credentials(self) -> grpc.ServerCredentials:
        """The peer listener's credentials, following their files (rotation without restart)."""
        return server_credentials(self.listener)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials to dial ``https://`` peers with, from the files as they are now."""
        return channel_credentials(self.listener.trusted_ca_file, self.client_cert, self.client_key)

    def guard(self) -> CertGuard:
        """The per-RPC checks of the peer listener (CRL, allowed CN and host names)."""
        return CertGuard(self.listener)


def peer_tls(cfg: Config) -> PeerTLS | None:
    """The member's peer TLS, or None when its peer URLs are plaintext (no files touched)."""
    tls = peer_listener_tls(cfg)
    if tls is None:
        return None
    cert, key = peer_client_files(cfg, tls)
    return PeerTLS(tls, cert, key)


def _prepared(cfg: Config) -> PeerTLS | None:
    t = peer_tls(cfg)
    if t is not None:
        t.prepare()
    return t


def peer_server_credentials(cfg: Config) -> grpc.ServerCredentials | None:
    """Credentials for the peer listener, or None when the peer URLs are plaintext."""
    t = _prepared(cfg)
    return None if t is None else t.server_credentials()


def peer_channel_credentials(cfg: Config) -> grpc.ChannelCredentials | None:
    """Credentials to dial ``https://`` peers with (``--peer-client-cert-file`` or the peer
    certificate, and the peer CA), or None when this member has no peer TLS."""
    t = _prepared(cfg)
    return None if t is None else t.channel_credentials()


def peer_guard(cfg: Config) -> CertGuard | None:
    """The per-RPC checks of the peer listener (CRL, allowed CN/host names), or None."""
    t = peer_tls(cfg)
    return None if t is None else t.guard()
