"""server.tls in one process: settings from the configuration, reloads, the per-RPC guard and
the caller's identity, over real gRPC TLS connections on loopback with real certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import PKIStore, Profile
from server.config import Config, ConfigError, parse_config
from server.tls import (
    CertGuard,
    CertGuardInterceptor,
    CertificateReloader,
    ClientListeners,
    ListenerTLS,
    PeerCertificate,
    RevocationList,
    TLSSetupError,
    cert_common_name,
    certificate_allowed,
    cipher_suites_value,
    client_listener_tls,
    peer_channel_credentials,
    peer_guard,
    peer_listener_tls,
    peer_server_credentials,
    prepare,
    server_credentials,
    set_cert_identity,
)
from server.tls.guard import hostname_matches
from ward.credentials import find_local_credentials, local_credentials
from ward.errors import ClientConfigError

HTTPS = [
    "--listen-client-urls=https://127.0.0.1:2379",
    "--advertise-client-urls=https://a.example:2379",
]
PEER_HTTPS = [
    "--listen-peer-urls=https://127.0.0.1:2380",
    "--initial-advertise-peer-urls=https://127.0.0.1:2380",
    "--initial-cluster=default=https://127.0.0.1:2380",
]


def cfg(tmp_path: Path, *argv: str) -> Config:
    config, _ = parse_config(["--data-dir", str(tmp_path / "data"), *argv], {})
    return config


@pytest.fixture
def store(tmp_path: Path) -> PKIStore:
    ca = PKIStore(tmp_path / "ca")
    ca.init_ca(common_name="Unit CA")
    ca.issue(Profile.SERVER, "server", dns=["localhost"], ips=["127.0.0.1"])
    ca.issue(Profile.PEER, "m1", dns=["localhost"], ips=["127.0.0.1"])
    ca.issue(Profile.PEER, "m2", dns=["localhost"], ips=["127.0.0.1"])
    ca.issue(Profile.CLIENT, "alice")
    ca.publish_crl()
    return ca


# --- settings ------------------------------------------------------------------------------


def test_plaintext_client_urls_have_no_tls(tmp_path: Path) -> None:
    plain = ["--listen-client-urls=http://127.0.0.1:1", "--advertise-client-urls=http://h:1"]
    assert client_listener_tls(cfg(tmp_path, *plain)) is None


def test_by_default_ward_issues_its_certificate_and_requires_client_certificates(
    tmp_path: Path,
) -> None:
    tls = client_listener_tls(cfg(tmp_path))
    assert tls is not None
    pki = tmp_path / "data" / "pki"
    assert (tls.cert_file, tls.key_file) == (str(pki / "server.crt"), str(pki / "server.key"))
    assert tls.trusted_ca_file == str(pki / "ca.crt")
    assert tls.require_client_cert and tls.cert_identity
    assert (tls.crl_file, tls.crl_optional) == (str(pki / "crl.pem"), True)
    assert tls.managed is not None and "localhost" in tls.managed.hosts


def test_advertised_names_are_certified(tmp_path: Path) -> None:
    tls = client_listener_tls(cfg(tmp_path, *HTTPS))
    assert tls is not None and tls.managed is not None
    assert tls.managed.hosts == ("a.example", "127.0.0.1")
    (tmp_path / "data").mkdir(mode=0o700)
    prepare(tls)
    cert = x509.load_pem_x509_certificate(Path(tls.cert_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"a.example", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert os.stat(tls.key_file).st_mode & 0o777 == 0o600


def test_an_operators_certificate_without_a_ca_asks_for_no_client_certificate(
    tmp_path: Path,
) -> None:
    tls = client_listener_tls(cfg(tmp_path, *HTTPS, "--cert-file=s.crt", "--key-file=s.key"))
    assert tls is not None and tls.managed is None
    assert not tls.require_client_cert and not tls.cert_identity and tls.crl_file is None


def test_a_trusted_ca_requires_client_certificates_and_cn_names_only_with_cert_auth(
    tmp_path: Path,
) -> None:
    own = [*HTTPS, "--cert-file=s.crt", "--key-file=s.key", "--trusted-ca-file=ca.pem"]
    tls = client_listener_tls(cfg(tmp_path, *own))
    assert tls is not None and tls.require_client_cert and not tls.cert_identity
    tls = client_listener_tls(cfg(tmp_path, *own, "--client-cert-auth"))
    assert tls is not None and tls.cert_identity


def test_client_checks_need_client_certificates(tmp_path: Path) -> None:
    own = [*HTTPS, "--cert-file=s.crt", "--key-file=s.key"]
    with pytest.raises(ConfigError, match="--trusted-ca-file"):
        client_listener_tls(cfg(tmp_path, *own, "--client-crl-file=c.pem"))


def test_tls_max_version_1_2_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be honoured"):
        client_listener_tls(cfg(tmp_path, "--tls-max-version=TLS1.2"))


def test_tls_1_3_minimum_is_checked_per_rpc(tmp_path: Path) -> None:
    tls = client_listener_tls(cfg(tmp_path, "--tls-min-version=TLS1.3"))
    assert tls is not None and tls.min_version == "TLS1.3"


def test_cipher_suites_become_grpcs_list_without_tls13_names(tmp_path: Path) -> None:
    assert cipher_suites_value(cfg(tmp_path)) is None
    value = cipher_suites_value(
        cfg(
            tmp_path,
            "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256",
        )
    )
    assert value == "ECDHE-RSA-AES128-GCM-SHA256"


def test_peer_settings(tmp_path: Path) -> None:
    plain = [
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--initial-cluster=default=http://127.0.0.1:2380",
    ]
    assert peer_listener_tls(cfg(tmp_path, *plain)) is None
    default = peer_listener_tls(cfg(tmp_path))  # https://localhost:2380, Ward's own certificate
    assert default is not None and default.managed is not None
    assert default.require_client_cert and "localhost" in default.managed.hosts
    tls = peer_listener_tls(cfg(tmp_path, *PEER_HTTPS, "--peer-cert-allowed-cn=m1,m2"))
    assert tls is not None and tls.require_client_cert
    assert tls.managed is not None and tls.managed.common_name == "default"
    assert tls.allowed_cns == ("m1", "m2")
    with pytest.raises(ConfigError, match="--peer-trusted-ca-file"):
        peer_listener_tls(
            cfg(
                tmp_path,
                *PEER_HTTPS,
                "--peer-cert-file=p.crt",
                "--peer-key-file=p.key",
                "--peer-cert-allowed-cn=x",
            )
        )


# --- certificates re-read when their files change --------------------------------------------


def _listener(store: PKIStore, tmp_path: Path, **kw: Any) -> ListenerTLS:
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    for name in ("server.crt", "server.key"):
        (served / name).write_bytes((store.directory / name).read_bytes())
    return ListenerTLS(
        label="client",
        cert_file=str(served / "server.crt"),
        key_file=str(served / "server.key"),
        trusted_ca_file=str(store.ca_cert_path),
        require_client_cert=True,
        **kw,
    )


def test_reloader_applies_a_complete_new_set_and_keeps_the_old_one_otherwise(
    store: PKIStore, tmp_path: Path
) -> None:
    tls = _listener(store, tmp_path)
    reloader = CertificateReloader(tls)
    assert reloader() is None  # nothing changed
    store.issue(Profile.SERVER, "next", dns=["localhost"])
    Path(tls.cert_file).write_bytes(store.cert_path("next").read_bytes())
    assert reloader() is None  # the new certificate without its key: not applied
    assert reloader.reloads == 0
    Path(tls.key_file).write_bytes(store.key_path("next").read_bytes())
    assert reloader() is not None
    assert reloader.reloads == 1 and reloader() is None


def test_unusable_files_stop_the_start(store: PKIStore, tmp_path: Path) -> None:
    tls = _listener(store, tmp_path)
    Path(tls.key_file).write_bytes(store.key_path("alice").read_bytes())
    with pytest.raises(TLSSetupError, match="is not the key of"):
        CertificateReloader(tls)


# --- guard, identity: over real TLS connections ------------------------------------------------


def _client_creds(store: PKIStore, name: str) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        store.ca_cert_path.read_bytes(),
        store.key_path(name).read_bytes(),
        store.cert_path(name).read_bytes(),
    )


Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


async def _serve_and_call(
    server_creds: grpc.ServerCredentials,
    channel_creds: grpc.ChannelCredentials,
    handler: Handler,
    *,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
    calls: int = 1,
    between: Callable[[], None] | None = None,
) -> list[tuple[grpc.StatusCode, bytes | str]]:
    server = grpc.aio.server(interceptors=interceptors or [])
    methods = {"Echo": grpc.unary_unary_rpc_method_handler(handler)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.T", methods)])
    port = server.add_secure_port("127.0.0.1:0", server_creds)
    await server.start()
    out: list[tuple[grpc.StatusCode, bytes | str]] = []
    try:
        async with grpc.aio.secure_channel(f"localhost:{port}", channel_creds) as channel:
            echo = channel.unary_unary("/t.T/Echo")
            for _ in range(calls):
                try:
                    out.append((grpc.StatusCode.OK, await echo(b"", timeout=10)))
                except grpc.aio.AioRpcError as err:
                    out.append((err.code(), err.details() or ""))
                if between:
                    between()
    finally:
        await server.stop(0)
    return out


async def _cn(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return (cert_common_name(context) or "-").encode()


def test_cert_common_name_is_the_callers_identity_only_when_enabled(
    store: PKIStore, tmp_path: Path
) -> None:
    tls = _listener(store, tmp_path)
    try:
        set_cert_identity(True)
        got = asyncio.run(
            _serve_and_call(server_credentials(tls), _client_creds(store, "alice"), _cn)
        )
        assert got == [(grpc.StatusCode.OK, b"alice")]
        set_cert_identity(False)
        got = asyncio.run(
            _serve_and_call(server_credentials(tls), _client_creds(store, "alice"), _cn)
        )
        assert got == [(grpc.StatusCode.OK, b"-")]
    finally:
        set_cert_identity(False)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_peer_listener_refuses_a_revoked_peer_from_the_next_call(
    store: PKIStore, tmp_path: Path
) -> None:
    config = cfg(
        tmp_path,
        *PEER_HTTPS,
        f"--peer-cert-file={store.cert_path('m1')}",
        f"--peer-key-file={store.key_path('m1')}",
        f"--peer-trusted-ca-file={store.ca_cert_path}",
        f"--peer-crl-file={store.crl_path}",
        "--peer-client-cert-auth",
    )
    tls = peer_listener_tls(config)
    assert tls is not None
    clock = _Clock()
    guard = CertGuard(tls, clock=clock)
    # m2 dials m1 with m2's peer certificate.
    m2 = cfg(
        tmp_path,
        *PEER_HTTPS,
        f"--peer-cert-file={store.cert_path('m2')}",
        f"--peer-key-file={store.key_path('m2')}",
        f"--peer-trusted-ca-file={store.ca_cert_path}",
    )
    creds = peer_channel_credentials(m2)
    assert creds is not None

    def revoke_m2() -> None:
        if clock.now == 0.0:
            store.revoke(name="m2")
            clock.now = 5.0  # past the CRL poll interval

    async def ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"ok"

    got = asyncio.run(
        _serve_and_call(
            peer_server_credentials(config),  # type: ignore[arg-type]
            creds,
            ok,
            interceptors=[CertGuardInterceptor(guard)],
            calls=2,
            between=revoke_m2,
        )
    )
    assert got[0] == (grpc.StatusCode.OK, b"ok")
    assert got[1][0] == grpc.StatusCode.UNAUTHENTICATED and "revoked" in str(got[1][1])
    assert guard.revoked_count == 1


def test_peer_listener_allows_only_listed_common_names(store: PKIStore, tmp_path: Path) -> None:
    def member(name: str, *extra: str) -> Config:
        return cfg(
            tmp_path,
            *PEER_HTTPS,
            f"--peer-cert-file={store.cert_path(name)}",
            f"--peer-key-file={store.key_path(name)}",
            f"--peer-trusted-ca-file={store.ca_cert_path}",
            *extra,
        )

    m1 = member("m1", "--peer-cert-allowed-cn=m1")
    guard = peer_guard(m1)
    assert guard is not None

    async def ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"ok"

    def call(dialer: str) -> tuple[grpc.StatusCode, bytes | str]:
        creds = peer_channel_credentials(member(dialer))
        assert creds is not None
        server_creds = peer_server_credentials(m1)
        assert server_creds is not None
        return asyncio.run(
            _serve_and_call(server_creds, creds, ok, interceptors=[CertGuardInterceptor(guard)])
        )[0]

    assert call("m1") == (grpc.StatusCode.OK, b"ok")
    code, details = call("m2")
    assert code == grpc.StatusCode.UNAUTHENTICATED and "CN='m2'" in str(details)


def test_wards_own_peer_certificates_name_the_member_and_share_the_ca(tmp_path: Path) -> None:
    config = cfg(tmp_path, *PEER_HTTPS, "--name", "default")
    (tmp_path / "data").mkdir(mode=0o700)
    assert peer_server_credentials(config) is not None
    pki = tmp_path / "data" / "pki"
    cert = x509.load_pem_x509_certificate((pki / "peer.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=default"
    assert (pki / "ca.crt").exists()


# --- pure parts -----------------------------------------------------------------------------


def test_hostname_matching() -> None:
    assert hostname_matches("*.example.com", "a.example.com")
    assert not hostname_matches("*.example.com", "a.b.example.com")
    assert not hostname_matches("*.example.com", "example.com")
    assert hostname_matches("Node1.Example.com.", "node1.example.com")


def test_allowlists(store: PKIStore) -> None:
    m1 = PeerCertificate.from_pem(store.cert_path("m1").read_bytes())
    assert certificate_allowed(m1, (), ())
    assert certificate_allowed(m1, ("m1",), ())
    assert not certificate_allowed(m1, ("m2",), ())
    assert certificate_allowed(m1, (), ("localhost",))
    assert certificate_allowed(m1, (), ("127.0.0.1",))
    assert not certificate_allowed(m1, ("m2",), ("other.example",))


def test_revocation_list_reads_several_crls_and_der(store: PKIStore, tmp_path: Path) -> None:
    other = PKIStore(tmp_path / "other")
    other.init_ca(common_name="Other")
    other.issue(Profile.CLIENT, "zed")
    store.revoke(name="alice")
    other.revoke(name="zed")
    both = store.crl_path.read_bytes() + other.crl_path.read_bytes()
    crl = RevocationList.parse(both, source="both")
    assert len(crl) == 2
    alice = PeerCertificate.from_pem(store.cert_path("alice").read_bytes())
    assert crl.revoked_link(alice) is not None
    der = x509.load_pem_x509_crl(store.crl_path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert RevocationList.parse(der, source="der").revoked_link(alice) is not None
    with pytest.raises(TLSSetupError):
        RevocationList.parse(b"-----BEGIN X509 CRL-----\ngarbage\n", source="bad")


def test_a_missing_explicit_crl_stops_the_start(store: PKIStore, tmp_path: Path) -> None:
    tls = _listener(store, tmp_path, crl_file=str(tmp_path / "missing.pem"))
    with pytest.raises(TLSSetupError, match="does not exist"):
        CertGuard(tls)
    optional = _listener(store, tmp_path, crl_file=str(tmp_path / "missing.pem"), crl_optional=True)
    assert CertGuard(optional).revoked_count == 0


def test_an_expired_certificate_stops_the_start(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    past = PKIStore(tmp_path / "past", clock=lambda: now - dt.timedelta(days=10))
    past.init_ca()
    past.issue(Profile.SERVER, "server", dns=["localhost"], days=1)
    tls = _listener(past, tmp_path)
    with pytest.raises(TLSSetupError, match="expired"):
        CertificateReloader(tls)


# --- wardctl's search for a local server's credentials -------------------------------------


def test_local_credentials_in_the_default_data_dir(tmp_path: Path) -> None:
    assert find_local_credentials({}, tmp_path) is None
    assert local_credentials({}, tmp_path) == {}
    pki = tmp_path / "default.ward" / "pki"
    pki.mkdir(parents=True)
    for name in ("ca.crt", "client-root.crt", "client-root.key"):
        (pki / name).write_text("x")
    found = find_local_credentials({}, tmp_path)
    assert found is not None and found.key == pki / "client-root.key"
    assert local_credentials({}, tmp_path)["cacert"] == str(pki / "ca.crt")


def test_a_named_data_dir_must_hold_credentials(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError, match="WARD_DATA_DIR"):
        find_local_credentials({"WARD_DATA_DIR": str(tmp_path)}, tmp_path)


def test_the_core_renews_wards_own_certificates_while_it_runs(tmp_path: Path) -> None:
    tls = client_listener_tls(cfg(tmp_path))
    assert tls is not None
    (tmp_path / "data").mkdir(mode=0o700)
    prepare(tls)
    listeners = ClientListeners(tls, ())
    Path(tls.cert_file).unlink()  # as good as a certificate at its end: ensure reissues it

    async def run() -> None:
        listeners.start_renewal(interval=0.05)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if Path(tls.cert_file).exists():
                return

    asyncio.run(run())
    assert Path(tls.cert_file).exists()
    set_cert_identity(False)


def test_an_operators_crl_that_goes_missing_keeps_its_revocations(
    store: PKIStore, tmp_path: Path
) -> None:
    store.revoke(name="alice")
    crl = tmp_path / "crl.pem"
    crl.write_bytes(store.crl_path.read_bytes())
    clock = _Clock()
    guard = CertGuard(_listener(store, tmp_path, crl_file=str(crl)), clock=clock)
    assert guard.revoked_count == 1
    crl.unlink()
    guard.poll()
    assert guard.revoked_count == 1


def test_the_interceptor_guards_streaming_methods_too(store: PKIStore, tmp_path: Path) -> None:
    store.revoke(name="m2")

    def member(name: str) -> Config:
        return cfg(
            tmp_path,
            *PEER_HTTPS,
            f"--peer-cert-file={store.cert_path(name)}",
            f"--peer-key-file={store.key_path(name)}",
            f"--peer-trusted-ca-file={store.ca_cert_path}",
            f"--peer-crl-file={store.crl_path}",
        )

    guard = peer_guard(member("m1"))
    assert guard is not None

    async def collect(requests: Any, context: grpc.aio.ServicerContext) -> bytes:
        return b"".join([r async for r in requests])

    async def repeat(request: bytes, context: grpc.aio.ServicerContext) -> Any:
        for _ in range(2):
            yield request

    async def echo(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        async for r in requests:
            yield r

    async def run(dialer: str) -> list[grpc.StatusCode]:
        server = grpc.aio.server(interceptors=[CertGuardInterceptor(guard)])
        methods = {
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Repeat": grpc.unary_stream_rpc_method_handler(repeat),
            "Echo": grpc.stream_stream_rpc_method_handler(echo),
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.S", methods)])
        server_creds = peer_server_credentials(member("m1"))
        assert server_creds is not None
        port = server.add_secure_port("127.0.0.1:0", server_creds)
        await server.start()
        creds = peer_channel_credentials(member(dialer))
        assert creds is not None
        codes = []
        try:
            async with grpc.aio.secure_channel(f"localhost:{port}", creds) as channel:

                async def two() -> Any:
                    for chunk in (b"a", b"b"):
                        yield chunk

                calls = [
                    lambda: channel.stream_unary("/t.S/Collect")(two(), timeout=10),
                    lambda: _drain(channel.unary_stream("/t.S/Repeat")(b"x", timeout=10)),
                    lambda: _drain(channel.stream_stream("/t.S/Echo")(two(), timeout=10)),
                ]
                for call in calls:
                    try:
                        await call()
                        codes.append(grpc.StatusCode.OK)
                    except grpc.aio.AioRpcError as err:
                        codes.append(err.code())
        finally:
            await server.stop(0)
        return codes

    assert asyncio.run(run("m1")) == [grpc.StatusCode.OK] * 3
    assert asyncio.run(run("m2")) == [grpc.StatusCode.UNAUTHENTICATED] * 3


async def _drain(call: Any) -> list[Any]:
    return [item async for item in call]
