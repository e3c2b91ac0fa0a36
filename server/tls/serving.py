"""The client listeners of one serving process: TLS or plaintext ports, and their guard.

The core process and every worker build one ``ClientListeners`` from the same ``ListenerTLS``
(it crosses to workers in ``WorkerArgs``), so all the processes sharing the client port serve
the same credentials, reload the same files and make the same per-RPC checks.
"""

from __future__ import annotations

import asyncio
import logging
import os

import grpc

from server.tls.credentials import server_credentials
from server.tls.guard import CertGuard, set_cert_identity
from server.tls.settings import (
    CIPHER_SUITES_VARIABLE,
    ListenerTLS,
    TLSSetupError,
    cipher_suites_value,
    prepare,
)

log = logging.getLogger("ward.tls")

RENEW_CHECK_SECONDS = 3600.0


class ClientListeners:
    """Binds client addresses on a ``grpc.aio`` server, with TLS where it is asked for."""

    def __init__(self, tls: ListenerTLS | None, secure: tuple[str, ...] = ()) -> None:
        """``secure``: the addresses (as passed to ``bind``) that serve TLS."""
        if secure and tls is None:
            raise TLSSetupError("TLS addresses given without TLS settings")
        self.tls = tls
        self._secure = frozenset(secure)
        self._credentials = server_credentials(tls) if tls is not None else None
        self.guard = CertGuard(tls) if tls is not None else None
        set_cert_identity(tls is not None and tls.cert_identity)
        self._renewal: asyncio.Task[None] | None = None

    def start_renewal(self, interval: float = RENEW_CHECK_SECONDS) -> None:
        """In the core process: check Ward's own certificates every ``interval`` seconds and
        reissue one nearing its end (every process's reloader then picks up the new files), so
        a server that runs for years never serves an expired certificate."""
        if self.tls is None or self.tls.managed is None or self._renewal is not None:
            return
        self._renewal = asyncio.get_running_loop().create_task(self._renew(self.tls, interval))

    async def _renew(self, tls: ListenerTLS, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                await loop.run_in_executor(None, prepare, tls)
            except TLSSetupError as err:
                log.error(f"cannot renew Ward's {tls.label} certificate: {err}")

    def is_secure(self, address: str) -> bool:
        return address in self._secure

    def bind(self, server: grpc.aio.Server, address: str) -> int:
        """Add ``address`` to ``server`` (TLS if it is one of the secure ones); the port."""
        if address in self._secure:
            assert self._credentials is not None
            return server.add_secure_port(address, self._credentials)
        return server.add_insecure_port(address)

    def log_serving(self, address: str, *, secure: bool) -> None:
        """etcd's lines for a listener: plaintext is logged as strongly discouraged."""
        if secure:
            tls = self.tls
            assert tls is not None
            log.info(
                "serving client traffic securely",
                extra={
                    "address": address,
                    "cert_file": tls.cert_file,
                    "trusted_ca_file": tls.trusted_ca_file or "",
                    "client_cert_auth": tls.require_client_cert,
                    "crl_file": tls.crl_file or "",
                },
            )
        else:
            log.warning(
                f"serving insecure client requests on {address}, this is strongly discouraged!"
            )


def use_cipher_suites(value: str | None) -> bool:
    """Make ``GRPC_SSL_CIPHER_SUITES`` say ``value`` (None: unset, gRPC's own AEAD-only list);
    whether it changed, in which case gRPC, which reads it once when it is imported, only sees
    it in a new process. Worker processes inherit it, so they serve the same suites.

    A value inherited from the environment is replaced too: only ``--cipher-suites`` (whose weak
    suites the configuration has dropped) decides what Ward offers.
    """
    if os.environ.get(CIPHER_SUITES_VARIABLE) == value:
        return False
    if value is None:
        del os.environ[CIPHER_SUITES_VARIABLE]
    else:
        os.environ[CIPHER_SUITES_VARIABLE] = value
    return True


__all__ = ["ClientListeners", "cipher_suites_value", "use_cipher_suites"]
