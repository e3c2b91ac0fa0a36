"""Credentials the server makes for itself, so ``ward`` with no TLS flags is still TLS-only.

On first start the server calls :func:`ensure_server_credentials` on a directory inside its data
directory: it gets a CA, a server certificate for the names and addresses it advertises, and an
admin client certificate (CN ``root``) for ``wardctl``. On later starts the same call changes
nothing, unless the advertised names grew or a certificate is near its end, in which case that
certificate alone is reissued (under the same CA, so clients keep working).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pki.authority import DEFAULT_LEAF_DAYS, utcnow
from pki.errors import InvalidInput
from pki.keys import KeyType
from pki.profiles import Profile
from pki.san import SubjectAltNames
from pki.store import DEFAULT_CA_COMMON_NAME, PKIStore

SERVER_NAME = "server"
ADMIN_CLIENT_NAME = "client-root"
ADMIN_COMMON_NAME = "root"
PEER_NAME = "peer"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
RENEW_BEFORE_DAYS = 30
_UNSPECIFIED = frozenset({"0.0.0.0", "::", "[::]"})


@dataclass(frozen=True, slots=True)
class ServerCredentials:
    """Paths of the CA certificate, the server's certificate and key, and the admin client's."""

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    changed: bool


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Paths of the CA certificate and of this member's peer certificate and key."""

    directory: Path
    ca_cert: Path
    cert: Path
    key: Path
    changed: bool


def _sans(hosts: Sequence[str], include_loopback: bool) -> SubjectAltNames:
    # A wildcard listen address (0.0.0.0, ::) is never dialled, so it is no name to certify.
    dialled = [h for h in hosts if h.strip() not in _UNSPECIFIED]
    return SubjectAltNames.from_hosts([*dialled, *(LOOPBACK_HOSTS if include_loopback else ())])


def ensure_server_credentials(
    directory: Path | str,
    *,
    hosts: Sequence[str],
    include_loopback: bool = True,
    ca_common_name: str = DEFAULT_CA_COMMON_NAME,
    admin_common_name: str = ADMIN_COMMON_NAME,
    key_type: KeyType = KeyType.ECDSA_P256,
    days: int = DEFAULT_LEAF_DAYS,
    renew_before_days: int = RENEW_BEFORE_DAYS,
    clock: Callable[[], dt.datetime] = utcnow,
) -> ServerCredentials:
    """Create (or keep) a CA, a server certificate for ``hosts`` and an admin client certificate.

    ``hosts`` are the names and IP addresses clients dial (sorted into DNS and IP SANs, each
    validated; wildcard addresses such as ``0.0.0.0`` are skipped); loopback names are added
    unless ``include_loopback`` is false. Idempotent.
    Raises :class:`pki.errors.PKIError` (e.g. ``CAExpired``, ``InsecurePermissions``) when the
    directory cannot be used: the server should refuse to start rather than serve insecurely.
    """
    sans = _sans(hosts, include_loopback)  # a bad host fails before anything is written
    store = PKIStore(directory, clock=clock)
    ca = store.ensure_ca(common_name=ca_common_name, key_type=key_type)
    server = store.ensure(
        Profile.SERVER,
        SERVER_NAME,
        sans=sans,
        days=days,
        key_type=key_type,
        renew_before_days=renew_before_days,
    )
    client = store.ensure(
        Profile.CLIENT,
        ADMIN_CLIENT_NAME,
        sans=SubjectAltNames(),
        common_name=admin_common_name,
        days=days,
        key_type=key_type,
        renew_before_days=renew_before_days,
    )
    return ServerCredentials(
        directory=store.directory,
        ca_cert=store.ca_cert_path,
        server_cert=server.cert_path,
        server_key=store.key_path(SERVER_NAME),
        client_cert=client.cert_path,
        client_key=store.key_path(ADMIN_CLIENT_NAME),
        changed=ca.outcome.changed or server.outcome.changed or client.outcome.changed,
    )


def ensure_peer_credentials(
    directory: Path | str,
    *,
    hosts: Sequence[str],
    name: str = PEER_NAME,
    common_name: str | None = None,
    include_loopback: bool = False,
    ca_common_name: str = DEFAULT_CA_COMMON_NAME,
    key_type: KeyType = KeyType.ECDSA_P256,
    days: int = DEFAULT_LEAF_DAYS,
    renew_before_days: int = RENEW_BEFORE_DAYS,
    clock: Callable[[], dt.datetime] = utcnow,
) -> PeerCredentials:
    """Create (or keep) a peer certificate (server and client auth) for ``hosts``.

    Members of one cluster must share a CA: copy ``ca.crt`` and ``ca.key`` (or an intermediate)
    into each member's directory first; a CA is created only when none is there.
    """
    sans = _sans(hosts, include_loopback)
    if not sans:
        raise InvalidInput("a peer certificate needs at least one host name or IP address")
    store = PKIStore(directory, clock=clock)
    ca = store.ensure_ca(common_name=ca_common_name, key_type=key_type)
    peer = store.ensure(
        Profile.PEER,
        name,
        sans=sans,
        common_name=common_name,
        days=days,
        key_type=key_type,
        renew_before_days=renew_before_days,
    )
    return PeerCredentials(
        directory=store.directory,
        ca_cert=store.ca_cert_path,
        cert=peer.cert_path,
        key=store.key_path(name),
        changed=ca.outcome.changed or peer.outcome.changed,
    )
