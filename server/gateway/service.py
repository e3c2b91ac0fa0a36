"""The member's HTTP endpoints: the JSON gateway, /metrics, /health, /livez and /readyz.

Why a separate listener and not etcd's cmux on the gRPC port: gRPC Python owns its listening
sockets and exposes no way to hand it an accepted connection, so a port cannot be split by
protocol without a byte-copying proxy in front of every gRPC call (it would double the CPU of
the hot path, PERFORMANCE.md). Ward serves HTTP on `--listen-client-http-urls` (etcd 3.5's
flag for exactly this split) and metrics/health on `--listen-metrics-urls`; both are served
by the core process, which holds every servicer, the driver and the lessor.

Every listener gets the same checks as gRPC's (SECURITY 15, 16): the same certificate, CA and
client-certificate requirement, the same `CertGuard` (CRL, allowlists, minimum version) run on
every request, the same request size limit, and the `Authorization` token or the verified
certificate's CN as the caller, passed to the same handlers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.api.rpc import CallInfo
from server.gateway.http import HTTPServer, Request, Response
from server.gateway.jsonapi import HTTP_STATUS, JSONGateway, error_body
from server.metrics import Registry
from server.tls import CIPHER_SUITES_VARIABLE, CertGuard, ListenerTLS

log = logging.getLogger("ward.gateway")

_ALARM_NAMES = {1: "NOSPACE", 2: "CORRUPT"}
HEALTH_READ_TIMEOUT_S = 1.0  # etcd's /health gives its linearizable read one second
RELOAD_CHECK_S = 1.0


@dataclass(slots=True)
class HealthSource:
    """What /health looks at: the Raft leader, active alarms, and a linearizable read."""

    leader: Callable[[], int]
    alarms: Callable[[], list[tuple[int, int]]]
    read_index: Callable[[], Awaitable[None] | None]


async def check_health(src: HealthSource) -> tuple[bool, str]:
    """etcd's checkHealth: any alarm, no leader, or a failing linearizable read is unhealthy."""
    alarms = src.alarms()
    if alarms:
        return False, "ALARM " + ",".join(_ALARM_NAMES.get(a, str(a)) for _, a in alarms)
    if not src.leader():
        return False, "RAFT NO LEADER"
    try:
        pending = src.read_index()
        if pending is not None:
            await asyncio.wait_for(pending, HEALTH_READ_TIMEOUT_S)
    except Exception as e:
        return False, f"QGET ERROR:{getattr(e, 'message', None) or type(e).__name__}"
    return True, ""


class ServerTLS:
    """The `ssl.SSLContext` of the HTTP listeners, from the client listeners' settings; rebuilt
    when the certificate, key or CA files change (as gRPC's fetcher re-reads them). The HTTP
    server asks `context()` for each connection it accepts."""

    def __init__(self, tls: ListenerTLS) -> None:
        self._tls = tls
        self._stamp = self._files_stamp()
        self._current = self._build()
        self._next_check = time.monotonic() + RELOAD_CHECK_S

    def _files_stamp(self) -> tuple[float, ...]:
        out = []
        for p in (self._tls.cert_file, self._tls.key_file, self._tls.trusted_ca_file):
            try:
                out.append(os.stat(p).st_mtime if p else 0.0)
            except OSError:
                out.append(-1.0)
        return tuple(out)

    def _build(self) -> ssl.SSLContext:
        t = self._tls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if t.min_version == "TLS1.3" else ssl.TLSVersion.TLSv1_2
        )
        suites = os.environ.get(CIPHER_SUITES_VARIABLE)
        if suites:
            ctx.set_ciphers(suites)
        ctx.load_cert_chain(t.cert_file, t.key_file)
        if t.trusted_ca_file:
            ctx.load_verify_locations(t.trusted_ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED if t.require_client_cert else ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def context(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RELOAD_CHECK_S
            stamp = self._files_stamp()
            if stamp != self._stamp:
                try:
                    self._current = self._build()
                    self._stamp = stamp
                    log.info("reloaded the HTTP listener's certificates")
                except (OSError, ssl.SSLError) as e:  # half-written files: keep the last ones
                    log.warning("cannot reload the HTTP listener's certificates: %s", e)
        return self._current


class _TLSCallContext:
    """What `CertGuard.check` reads of a gRPC context, from an HTTP connection's TLS."""

    def __init__(self, sslobj: ssl.SSLObject, peer: str) -> None:
        self._ssl = sslobj
        self._peer = peer

    def auth_context(self) -> dict[str, list[bytes]]:
        props: dict[str, list[bytes]] = {
            "transport_security_type": [b"ssl"],
            "ssl_tls_version": [(self._ssl.version() or "").encode()],
        }
        der = self._ssl.getpeercert(binary_form=True)
        if der:
            # Python before 3.13 gives the leaf only: the CRL is checked on it.
            props["x509_pem_cert_chain"] = [ssl.DER_cert_to_PEM_cert(der).encode()]
        return props

    def peer(self) -> str:
        return f"ipv4:{self._peer}"


def _common_name(sslobj: ssl.SSLObject) -> str:
    cert = sslobj.getpeercert()  # only filled for a certificate the handshake verified
    for rdn in (cert or {}).get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return str(v)
    return ""


def _json(status: int, value: dict[str, Any]) -> Response:
    return Response(status, json.dumps(value, separators=(",", ":")).encode())


class Endpoints:
    """Routes one HTTP request; `api` is False on metrics-only listeners."""

    def __init__(
        self,
        *,
        gateway: JSONGateway,
        registry: Registry,
        health: HealthSource,
        guard: CertGuard | None,
        cert_identity: bool,
    ) -> None:
        self._gw = gateway
        self._reg = registry
        self._health = health
        self._guard = guard
        self._cert_identity = cert_identity

    def handler(self, *, api: bool) -> Callable[[Request], Awaitable[Response]]:
        async def handle(req: Request) -> Response:
            return await self._handle(req, api)

        return handle

    async def _handle(self, req: Request, api: bool) -> Response:
        if req.tls is not None and self._guard is not None:
            refused = self._guard.check(_TLSCallContext(req.tls, req.peer))
            if refused is not None:
                return Response(
                    HTTP_STATUS.get(refused.code, 403), error_body(refused.code, refused.message)
                )
        path = req.path
        if path == "/metrics":
            return Response(200, self._reg.render(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/health":
            ok, reason = await check_health(self._health)
            # etcd 3.4's body when healthy; etcd 3.5's reason when not (clients read "health").
            if ok:
                return _json(200, {"health": "true"})
            return _json(503, {"health": "false", "reason": reason})
        if path == "/livez":
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/readyz":
            ok, reason = await check_health(self._health)
            if ok:
                return Response(200, b"ok", "text/plain; charset=utf-8")
            text = f"[-]health failed: {reason}\nreadyz check failed"
            return Response(503, text.encode(), "text/plain; charset=utf-8")
        route = self._gw.route(path) if api else None
        if route is None:
            return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")
        if req.method != "POST":
            return Response(405, b"Method Not Allowed\n", "text/plain; charset=utf-8")
        info = CallInfo(
            peer=req.peer,
            token=req.headers.get("authorization", ""),
            common_name=_common_name(req.tls) if req.tls and self._cert_identity else "",
        )
        if route.server_streaming:
            status, err, lines = self._gw.stream(route, req.body, info, req.gone)
            if lines is None:
                return Response(status, err)
            return Response(200, stream=lines)
        status, body = await self._gw.unary(route, req.body, info)
        return Response(status, body)


@dataclass(slots=True)
class HTTPListeners:
    servers: list[HTTPServer]
    ports: list[int]

    async def close(self) -> None:
        for s in self.servers:
            await s.close()


async def start_http(
    endpoints: Endpoints,
    *,
    client_http: tuple[str, ...],
    metrics: tuple[str, ...],
    secure: tuple[str, ...],
    tls: ListenerTLS | None,
    max_body_bytes: int,
) -> HTTPListeners:
    """Serve `client_http` (API, metrics, health) and `metrics` (metrics, health) addresses;
    those in `secure` with `tls`."""
    api = HTTPServer(endpoints.handler(api=True), max_body_bytes=max_body_bytes)
    mon = HTTPServer(endpoints.handler(api=False), max_body_bytes=max_body_bytes)
    server_tls = ServerTLS(tls) if tls is not None and secure else None
    ports = []
    for server, addrs in ((api, client_http), (mon, metrics)):
        for addr in addrs:
            host, _, port = addr.rpartition(":")
            ctx = None
            if addr in secure:
                if server_tls is None:
                    raise ValueError(f"{addr}: https needs the client TLS settings")
                ctx = server_tls.context
            bound = await server.listen(host.strip("[]"), int(port), ctx)
            ports.append(bound)
            scheme = "https" if ctx else "http"
            log.info("serving HTTP", extra={"address": f"{scheme}://{host}:{bound}"})
    return HTTPListeners([api, mon], ports)
