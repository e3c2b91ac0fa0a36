"""Checks gRPC's handshake cannot make, made on every RPC from the peer's certificate.

gRPC Python verifies the chain, the validity dates and the key usage during the handshake, but
has no hook for a CRL, for CN or host name allowlists, or for a minimum TLS version. A
``CertGuard`` makes those checks from ``context.auth_context()`` (the peer's verified chain and
the negotiated version) before any handler runs, on every listener that uses it: the client
listeners of the core and of every worker, unary and streaming calls alike, and the peer
listener through ``CertGuardInterceptor``.

Costs are kept off the hot path: the CRL file is looked at no more than once a second, and a
certificate chain is judged once per CRL version (the verdict is cached by its PEM bytes). With
nothing to check (no revocation listed, no allowlist, TLS 1.2 allowed) a call costs one clock
read. A revocation applies to every RPC after the CRL file changes, on connections already
open too; a stream already open runs to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.serials import format_serial
from server.errors import EtcdError
from server.tls.credentials import file_stamp
from server.tls.settings import ListenerTLS, TLSSetupError

log = logging.getLogger("ward.tls")

CRL_POLL_SECONDS = 1.0
_MAX_VERDICTS = 4096
_REFUSED = grpc.StatusCode.UNAUTHENTICATED


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What the checks need from a presented chain: the leaf's names and every link's
    (issuer, serial)."""

    common_name: str
    subject: str
    serial: int
    dns_names: tuple[str, ...]
    ip_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    links: tuple[tuple[bytes, int], ...]  # (issuer DER, serial) of the leaf, then intermediates

    @classmethod
    def from_pem(cls, pem: bytes) -> PeerCertificate:
        certs = x509.load_pem_x509_certificates(pem)
        leaf = certs[0]
        cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = tuple(san.get_values_for_type(x509.DNSName))
            ips = tuple(san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            dns, ips = (), ()
        return cls(
            common_name=str(cns[0].value) if cns else "",
            subject=leaf.subject.rfc4514_string(),
            serial=leaf.serial_number,
            dns_names=dns,
            ip_addresses=ips,  # type: ignore[arg-type]
            links=tuple((c.issuer.public_bytes(), c.serial_number) for c in certs),
        )


def hostname_matches(pattern: str, host: str) -> bool:
    """Whether certificate name ``pattern`` (possibly ``*.example.com``) covers ``host``."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def certificate_allowed(
    cert: PeerCertificate, allowed_cns: tuple[str, ...], allowed_hostnames: tuple[str, ...]
) -> bool:
    """etcd's ``--peer-cert-allowed-cn``/``--peer-cert-allowed-hostname`` (and the client
    hostname allowlist): the CN is one of ``allowed_cns``, or a SAN covers one of
    ``allowed_hostnames``. No allowlist allows every certificate."""
    if not allowed_cns and not allowed_hostnames:
        return True
    if cert.common_name and cert.common_name in allowed_cns:
        return True
    for name in allowed_hostnames:
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            if any(hostname_matches(d, name) for d in cert.dns_names):
                return True
        else:
            if ip in cert.ip_addresses:
                return True
    return False


class RevocationList:
    """The serials a CRL file revokes, by issuer (serials are only unique per issuer).

    The file may hold several PEM CRLs (one per CA, e.g. while two CAs overlap) or one DER CRL.
    """

    def __init__(self, revoked: dict[bytes, frozenset[int]]) -> None:
        self._revoked = revoked

    @classmethod
    def empty(cls) -> RevocationList:
        return cls({})

    @classmethod
    def parse(cls, data: bytes, *, source: str) -> RevocationList:
        crls: list[x509.CertificateRevocationList] = []
        try:
            if b"-----BEGIN" in data:
                marker = b"-----BEGIN X509 CRL-----"
                for part in data.split(marker)[1:]:
                    crls.append(x509.load_pem_x509_crl(marker + part))
            elif data:
                crls.append(x509.load_der_x509_crl(data))
        except ValueError:
            raise TLSSetupError(f"{source} is not a valid CRL (PEM or DER)") from None
        if data and not crls:
            raise TLSSetupError(f"{source} holds no CRL")
        revoked: dict[bytes, set[int]] = {}
        for crl in crls:
            serials = revoked.setdefault(crl.issuer.public_bytes(), set())
            serials.update(r.serial_number for r in crl)
        return cls({k: frozenset(v) for k, v in revoked.items()})

    def __len__(self) -> int:
        return sum(len(v) for v in self._revoked.values())

    def revoked_link(self, cert: PeerCertificate) -> tuple[bytes, int] | None:
        """The first link of ``cert``'s chain this list revokes, or None."""
        for issuer, serial in cert.links:
            serials = self._revoked.get(issuer)
            if serials and serial in serials:
                return issuer, serial
        return None


class CertGuard:
    """The per-RPC checks of one listener: CRL, allowlists, minimum TLS version.

    ``check(context)`` returns the ``EtcdError`` to answer with (UNAUTHENTICATED, saying why),
    or None. Construction reads an explicit CRL file and raises ``TLSSetupError`` if it is
    missing or unreadable; later changes are picked up within ``CRL_POLL_SECONDS``.
    """

    def __init__(self, tls: ListenerTLS, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._tls = tls
        self._clock = clock
        self._crl_paths = (tls.crl_file,) if tls.crl_file else ()
        self._crl = RevocationList.empty()
        self._crl_stamp = file_stamp(self._crl_paths)
        self._tls13_only = tls.min_version == "TLS1.3"
        self._allowlists = bool(tls.allowed_cns or tls.allowed_hostnames)
        self._verdicts: dict[bytes, EtcdError | None] = {}
        self._old_version_peers: set[str] = set()
        self._next_poll = clock() + CRL_POLL_SECONDS
        if tls.crl_file:
            self._crl = self._read_crl(strict=not tls.crl_optional) or self._crl
        self._active = self._is_active()

    @property
    def revoked_count(self) -> int:
        return len(self._crl)

    def _is_active(self) -> bool:
        return bool(len(self._crl)) or self._tls13_only or self._allowlists

    def _read_crl(self, *, strict: bool) -> RevocationList | None:
        path = self._tls.crl_file
        assert path is not None
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if strict:
                raise TLSSetupError(f"CRL file {path} does not exist") from None
            # Ward's own crl.pem before any revocation; an operator's CRL that went missing
            # must not silently un-revoke everything (fail closed: keep the last one read).
            return RevocationList.empty() if self._tls.crl_optional else None
        except OSError as err:
            if strict:
                raise TLSSetupError(f"cannot read CRL file {path}: {err.strerror}") from None
            return None
        try:
            return RevocationList.parse(data, source=path)
        except TLSSetupError:
            if strict:
                raise
            return None

    def poll(self, now: float | None = None) -> None:
        """Re-read the CRL if its file changed (``check`` does this at most once a second)."""
        self._next_poll = (self._clock() if now is None else now) + CRL_POLL_SECONDS
        if not self._crl_paths:
            return
        stamp = file_stamp(self._crl_paths)
        if stamp == self._crl_stamp:
            return
        self._crl_stamp = stamp
        crl = self._read_crl(strict=False)
        if crl is None:
            # Keep enforcing what was last read rather than forgetting every revocation.
            log.warning(
                f"cannot read the {self._tls.label} CRL {self._tls.crl_file}; still enforcing"
                f" the previous one ({len(self._crl)} revoked)"
            )
            return
        self._crl = crl
        self._verdicts.clear()
        self._active = self._is_active()
        log.info(
            f"reloaded the {self._tls.label} CRL",
            extra={"crl_file": self._tls.crl_file, "revoked": len(crl)},
        )

    def check(self, context: Any) -> EtcdError | None:
        """The refusal for the call in ``context`` (a ``grpc.aio.ServicerContext``), or None."""
        now = self._clock()
        if now >= self._next_poll:
            self.poll(now)
        if not self._active:
            return None
        props = context.auth_context()
        kind = props.get("transport_security_type")
        if not kind or kind[0] != b"ssl":
            return None  # a plaintext listener the operator asked for: no certificate to check
        if self._tls13_only:
            version = props.get("ssl_tls_version")
            if version and version[0] != b"TLSv1.3":
                return self._refuse_version(version[0].decode(), context)
        chain = props.get("x509_pem_cert_chain") or props.get("x509_pem_cert")
        if not chain:
            return None  # no client certificate was asked for on this listener
        key = chain[0]
        try:
            return self._verdicts[key]
        except KeyError:
            pass
        verdict = self._judge(key, context)
        if len(self._verdicts) >= _MAX_VERDICTS:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        return verdict

    def _judge(self, pem: bytes, context: Any) -> EtcdError | None:
        try:
            cert = PeerCertificate.from_pem(pem)
        except ValueError:
            return self._refuse("unreadable certificate", None, context)
        link = self._crl.revoked_link(cert)
        if link is not None:
            which = "certificate" if link == cert.links[0] else "issuing CA certificate"
            return self._refuse(
                f"{which} serial {format_serial(link[1])} is revoked", cert, context
            )
        if not certificate_allowed(cert, self._tls.allowed_cns, self._tls.allowed_hostnames):
            return self._refuse(
                f"certificate CN={cert.common_name!r} (SANs {', '.join(cert.dns_names) or '-'})"
                " is not allowed on this listener",
                cert,
                context,
            )
        return None

    def _refuse(self, reason: str, cert: PeerCertificate | None, context: Any) -> EtcdError:
        # Logged once per certificate and CRL version: verdicts are cached.
        log.warning(
            f"refused a {self._tls.label} certificate: {reason}",
            extra={
                "remote": context.peer(),
                "subject": cert.subject if cert else "",
                "serial": format_serial(cert.serial) if cert else "",
                "pid": os.getpid(),  # which serving process refused (core or a worker)
            },
        )
        return EtcdError(_REFUSED, f"ward: {self._tls.label} {reason}")

    def _refuse_version(self, version: str, context: Any) -> EtcdError:
        remote = context.peer()
        if remote not in self._old_version_peers:  # once per connection, not per call
            if len(self._old_version_peers) >= _MAX_VERDICTS:
                self._old_version_peers.clear()
            self._old_version_peers.add(remote)
            what = f"refused a {self._tls.label} connection over {version}"
            log.warning(
                f"{what}: --tls-min-version=TLS1.3", extra={"remote": remote, "pid": os.getpid()}
            )
        return EtcdError(
            _REFUSED, f"ward: {version} is below this server's minimum TLS version (TLS 1.3)"
        )


class CertGuardInterceptor(grpc.aio.ServerInterceptor):
    """Puts a ``CertGuard`` in front of every method of a ``grpc.aio`` server (the peer
    listener, for one): ``grpc.aio.server(interceptors=[CertGuardInterceptor(guard)])``."""

    def __init__(self, guard: CertGuard) -> None:
        self._guard = guard

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return guarded_handler(handler, self._guard)


FIRST_REQUEST_WAIT_SECONDS = 1.0


async def before_refusing_a_stream(requests: Any) -> None:
    """Let a client-streaming call's first request arrive before it is aborted.

    grpc.aio answers "INTERNAL: Internal error from Core" instead of the abort's status about
    one time in ten when a call that streams requests is aborted before any was read; clients
    must see why they were refused. Waits ``FIRST_REQUEST_WAIT_SECONDS`` at most.
    """
    with contextlib.suppress(Exception):
        await asyncio.wait_for(anext(aiter(requests)), FIRST_REQUEST_WAIT_SECONDS)


def guarded_handler(handler: grpc.RpcMethodHandler, guard: CertGuard) -> grpc.RpcMethodHandler:
    """``handler`` with ``guard.check`` run first (a refusal aborts the call)."""
    ser, de = handler.response_serializer, handler.request_deserializer

    async def refuse(context: Any, requests: Any = None) -> bool:
        err = guard.check(context)
        if err is None:
            return False
        if requests is not None:
            await before_refusing_a_stream(requests)
        await context.abort(err.code, err.message)
        return True

    async def run(inner: Any, request: Any, context: Any) -> Any:
        result = inner(request, context)
        return await result if hasattr(result, "__await__") else result

    async def stream(inner: Any, request: Any, context: Any) -> Any:
        result = inner(request, context)
        if hasattr(result, "__aiter__"):
            async for item in result:
                yield item
        elif hasattr(result, "__await__"):
            await result
        else:
            for item in result:
                yield item

    if handler.unary_unary is not None:
        fn = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            if not await refuse(context):
                return await run(fn, request, context)
            return None

        return grpc.unary_unary_rpc_method_handler(unary_unary, de, ser)
    if handler.stream_unary is not None:
        fn = handler.stream_unary

        async def stream_unary(requests: Any, context: Any) -> Any:
            if not await refuse(context, requests):
                return await run(fn, requests, context)
            return None

        return grpc.stream_unary_rpc_method_handler(stream_unary, de, ser)
    if handler.unary_stream is not None:
        fn = handler.unary_stream

        async def unary_stream(request: Any, context: Any) -> Any:
            if not await refuse(context):
                async for item in stream(fn, request, context):
                    yield item

        return grpc.unary_stream_rpc_method_handler(unary_stream, de, ser)
    fn = handler.stream_stream

    async def stream_stream(requests: Any, context: Any) -> Any:
        if not await refuse(context, requests):
            async for item in stream(fn, requests, context):
                yield item

    return grpc.stream_stream_rpc_method_handler(stream_stream, de, ser)


# --- the caller's identity ------------------------------------------------------------------

_identity = {"enabled": False}


def set_cert_identity(enabled: bool) -> None:
    """Whether a verified client certificate's CN names the caller in this process (set once
    by each serving process from its ``ListenerTLS.cert_identity``)."""
    _identity["enabled"] = enabled


def cert_common_name(context: Any) -> str | None:
    """The CN of the caller's verified client certificate, when it names the caller.

    It does with ``--client-cert-auth``, or when Ward's own CA verifies clients (the default);
    otherwise, and on plaintext connections, None. gRPC only reports a CN for a certificate it
    verified (Ward never asks for a certificate without verifying it), and a CRL-revoked one
    never reaches a handler. For the auth store the CN is the user name; a token or a user name
    and password sent with the request take precedence (as in etcd).
    """
    if not _identity["enabled"]:
        return None
    names = context.auth_context().get("x509_common_name")
    return names[0].decode() if names else None
