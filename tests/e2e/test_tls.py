"""TLS end to end: real `ward` processes (core + worker), real certificates, the real etcdctl 3.4.

Each refusal the issue lists is pinned here (no client certificate, another CA, a revoked
certificate on every serving process, an expired one, the wrong key usage, TLS 1.1, plaintext
on a TLS port), and so are hot rotation of the server certificate and of the CA bundle with
clients connected, and the secure default (first start, wardctl finding the credentials, an
idempotent restart).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from pki import KeyType, PKIStore, Profile
from tests.e2e.tls_helpers import (
    Certs,
    Credentials,
    ctl,
    files_in,
    grpc_call_over_tls12,
    https_flags,
    log_records,
    served_certificate,
    start_tls_ward,
    wardctl,
)
from tests.e2e.ward_process import ETCDCTL, WardProcess, _clean_environ, eventually, free_port
from wardpb.etcdserverpb import rpc_pb2

pytestmark = pytest.mark.skipif(not ETCDCTL.exists(), reason="etcdctl is not installed")

HANDSHAKE_FAILED = "Handshake failed"


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs.create(tmp_path / "certs")


@pytest.fixture
def ward(tmp_path: Path, certs: Certs) -> Iterator[WardProcess]:
    """A ward serving mutual TLS with the test CA one, its CRL, and two serving processes."""
    server = start_tls_ward(tmp_path / "w", *certs.server_flags())
    try:
        yield server
    finally:
        server.stop()


def url(ward: WardProcess) -> str:
    return f"https://127.0.0.1:{ward.client_port}"


def refused(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0


def refused_call(endpoint: str, creds: Credentials | None, *args: str) -> bool:
    """Whether etcdctl fails; with short timeouts, as a refused handshake is retried until
    they run out."""
    return refused(ctl(endpoint, creds, *args, fail_within="1s"))


# --- the baseline and each refusal --------------------------------------------------------------


def test_etcdctl_with_a_client_certificate_puts_and_gets(ward: WardProcess, certs: Certs) -> None:
    alice = certs.client(certs.ca1, "alice")
    assert ctl(url(ward), alice, "put", "k", "v").stdout.strip() == "OK"
    assert ctl(url(ward), alice, "get", "k").stdout.split() == ["k", "v"]


def test_a_client_without_a_certificate_is_refused(ward: WardProcess, certs: Certs) -> None:
    assert refused_call(url(ward), Credentials(certs.ca1.ca_cert_path), "get", "k")
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in ward.log_text()


def test_a_certificate_from_another_ca_is_refused(ward: WardProcess, certs: Certs) -> None:
    carol = certs.client(certs.ca2, "carol", cacert=certs.ca1.ca_cert_path)
    assert refused_call(url(ward), carol, "get", "k")
    assert "CERTIFICATE_VERIFY_FAILED" in ward.log_text()


def test_an_expired_certificate_is_refused(ward: WardProcess, certs: Certs) -> None:
    assert refused_call(url(ward), certs.client(certs.ca1, "expired"), "get", "k")
    assert "CERTIFICATE_VERIFY_FAILED" in ward.log_text()


def test_a_server_certificate_cannot_authenticate_a_client(ward: WardProcess, certs: Certs) -> None:
    # serverAuth only: the key usage check in the handshake refuses it as a client.
    assert refused_call(url(ward), certs.client(certs.ca1, "server-b"), "get", "k")
    assert HANDSHAKE_FAILED in ward.log_text()


def test_plaintext_to_a_tls_port_is_refused(ward: WardProcess) -> None:
    assert refused_call(f"http://127.0.0.1:{ward.client_port}", None, "get", "k")
    assert HANDSHAKE_FAILED in ward.log_text()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_below_1_2_is_refused(ward: WardProcess, version: ssl.TLSVersion) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError, ValueError):
        context.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer what it can
    context.minimum_version = context.maximum_version = version
    with (
        pytest.raises((ssl.SSLError, OSError)),
        socket.create_connection(("127.0.0.1", ward.client_port), timeout=10) as sock,
        context.wrap_socket(sock),
    ):
        pass
    # The server saw the hello and refused the version (not the client giving up alone).
    eventually(lambda: "UNSUPPORTED_PROTOCOL" in ward.log_text(), what="the server refused")


def test_tls_min_version_1_3_refuses_calls_over_tls_1_2(tmp_path: Path, certs: Certs) -> None:
    w = start_tls_ward(tmp_path / "w", *certs.server_flags(), "--tls-min-version=TLS1.3")
    alice = certs.client(certs.ca1, "alice")
    try:
        assert ctl(url(w), alice, "put", "k", "v").returncode == 0  # etcdctl speaks TLS 1.3
        request = rpc_pb2.RangeRequest(key=b"k").SerializeToString()
        for _ in range(2):
            answer = grpc_call_over_tls12(w.client_port, alice, "/etcdserverpb.KV/Range", request)
            assert b"\x02v" not in answer  # the value never comes back
        refusals = log_records(w, "refused a client connection over TLSv1.2")
        assert refusals and "--tls-min-version=TLS1.3" in str(refusals[0]["msg"])
    finally:
        w.stop()


def test_tls_max_version_1_2_cannot_be_honoured_and_stops_the_start(tmp_path: Path) -> None:
    w = WardProcess(tmp_path)
    w.start(*https_flags(w), "--tls-max-version=TLS1.2", base_flags=False, wait=False)
    assert w.wait_exit() != 0
    assert "--tls-max-version=TLS1.2 cannot be honoured" in w.log_text()


# --- revocation, on every serving process and every kind of call ------------------------------


def test_a_revoked_certificate_is_refused_by_every_process_for_every_kind_of_call(
    ward: WardProcess, certs: Certs
) -> None:
    bob = certs.client(certs.ca1, "bob")
    assert ctl(url(ward), bob, "put", "k", "before").returncode == 0
    serial = x509.load_pem_x509_certificate(certs.ca1.cert_path("bob").read_bytes()).serial_number
    certs.ca1.revoke(name="bob")
    alice = certs.client(certs.ca1, "alice")

    def every_process_refused() -> bool:
        # Each new etcdctl is a new connection, spread over the processes by SO_REUSEPORT.
        for args in (("get", "k"), ("put", "k", "after"), ("lease", "grant", "60")):
            result = ctl(url(ward), bob, *args)
            assert refused(result), result.stdout
            assert "Unauthenticated" in result.stderr and "revoked" in result.stderr
        pids = {r["pid"] for r in log_records(ward, "refused a client certificate")}
        return len(pids) == ward.workers

    # The CRL is read again within a second of changing.
    time.sleep(1.5)
    eventually(every_process_refused, timeout=60, what="both processes refuse bob")
    record = log_records(ward, "refused a client certificate")[0]
    assert int(str(record["serial"]), 16) == serial
    # A stream (watch) is refused as well, and another client is untouched.
    watch = ctl(url(ward), bob, "watch", "k", timeout=30)
    assert refused(watch) and "Unauthenticated" in watch.stderr and "revoked" in watch.stderr
    assert ctl(url(ward), alice, "get", "k").stdout.split() == ["k", "before"]


# --- hot rotation -------------------------------------------------------------------------------


class Watcher:
    """A background `etcdctl watch` (one long-lived connection) and what it printed."""

    def __init__(self, endpoint: str, creds: Credentials, key: str) -> None:
        self.proc = subprocess.Popen(
            # etcdctl pings every 2 s by default, which gRPC servers answer with GOAWAY (too
            # many pings), and then dials again: ping rarely, so the connection stays the same.
            [
                str(ETCDCTL),
                f"--endpoints={endpoint}",
                "--keepalive-time=1h",
                *creds.flags(),
                "watch",
                key,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_clean_environ({"ETCDCTL_API": "3"}),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def saw(self, value: str) -> bool:
        return value in self.lines

    def wait_watching(self, endpoint: str, creds: Credentials) -> None:
        """Put until the watcher reports it: its watch is then set up (it starts at "now")."""
        key = self.proc.args[-1]  # type: ignore[index]

        def seen() -> bool:
            ctl(endpoint, creds, "put", key, "ping")
            return self.saw("ping")

        eventually(seen, what="the watcher is watching")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    out: list[Watcher] = []
    yield out
    for w in out:
        w.stop()


def _reloads(ward: WardProcess) -> set[object]:
    return {r["pid"] for r in log_records(ward, "reloaded the client TLS certificate")}


def test_server_certificate_rotates_without_restart_and_open_connections_go_on(
    ward: WardProcess, certs: Certs, watchers: list[Watcher]
) -> None:
    alice = certs.client(certs.ca1, "alice")
    watcher = Watcher(url(ward), alice, "rot")
    watchers.append(watcher)
    watcher.wait_watching(url(ward), alice)
    old = served_certificate(ward.client_port, alice)

    certs.serve(certs.ca1, "server-b")
    new_serial = certs.ca1.cert_path("server-b").read_bytes()
    assert new_serial
    # Every new connection (to whichever process) gets the new certificate.
    for _ in range(12):
        assert served_certificate(ward.client_port, alice).serial_number != old.serial_number
    eventually(lambda: len(_reloads(ward)) == ward.workers, what="every process reloaded")
    assert ctl(url(ward), alice, "put", "rot", "v2").returncode == 0
    eventually(lambda: watcher.saw("v2"), what="the old connection still streams")
    assert watcher.proc.poll() is None


def test_ca_rotates_with_old_and_new_ca_trusted_during_the_overlap(
    ward: WardProcess, certs: Certs, watchers: list[Watcher]
) -> None:
    both = certs.bundle(certs.ca1, certs.ca2)
    alice = certs.client(certs.ca1, "alice", cacert=both)
    carol = certs.client(certs.ca2, "carol", cacert=both)
    watcher = Watcher(url(ward), alice, "ca")  # opened under CA one only
    watchers.append(watcher)
    watcher.wait_watching(url(ward), alice)
    assert refused_call(url(ward), carol, "get", "ca")  # CA two is not trusted yet

    # Overlap: both CAs trusted; the server moves to a certificate from CA two.
    certs.trust(certs.ca1, certs.ca2)
    certs.serve(certs.ca2, "server")
    eventually(
        lambda: ctl(url(ward), carol, "put", "ca", "from-carol").returncode == 0,
        what="a CA-two client is accepted",
    )
    assert ctl(url(ward), alice, "put", "ca", "from-alice").returncode == 0
    eventually(lambda: watcher.saw("from-alice"), what="the watcher opened before goes on")

    # End of the overlap: CA one is no longer trusted for new connections.
    certs.trust(certs.ca2)
    eventually(lambda: refused_call(url(ward), alice, "get", "ca"), what="CA one refused")
    for _ in range(6):  # on every process
        assert refused_call(url(ward), alice, "get", "ca")
        assert ctl(url(ward), carol, "get", "ca").returncode == 0
    assert ctl(url(ward), carol, "put", "ca", "last").returncode == 0
    eventually(lambda: watcher.saw("last"), what="a connection made under CA one stays up")


def test_a_broken_rotation_keeps_the_previous_certificate(ward: WardProcess, certs: Certs) -> None:
    alice = certs.client(certs.ca1, "alice")
    before = served_certificate(ward.client_port, alice).serial_number
    # A certificate without its key (a rotation half done): not applied, logged, still serving.
    certs.server_cert.write_bytes(certs.ca1.cert_path("server-b").read_bytes())
    for _ in range(4):
        assert served_certificate(ward.client_port, alice).serial_number == before
    assert ctl(url(ward), alice, "get", "k").returncode == 0
    assert "not reloading the client TLS certificate" in ward.log_text()


# --- cipher suites --------------------------------------------------------------------------


def test_cipher_suites_limit_tls_1_2_on_every_process(tmp_path: Path, certs: Certs) -> None:
    w = start_tls_ward(
        tmp_path / "w",
        *certs.server_flags(),
        "--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    )
    alice = certs.client(certs.ca1, "alice")
    try:

        def offer(cipher: str) -> str | None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(cipher)
            context.set_alpn_protocols(["h2"])
            assert alice.cert and alice.key
            context.load_cert_chain(alice.cert, alice.key)
            try:
                with (
                    socket.create_connection(("127.0.0.1", w.client_port), timeout=10) as s,
                    context.wrap_socket(s) as conn,
                ):
                    return conn.cipher()[0]  # type: ignore[index]
            except (ssl.SSLError, OSError):
                return None

        for _ in range(6):
            assert offer("ECDHE-ECDSA-AES256-GCM-SHA384") == "ECDHE-ECDSA-AES256-GCM-SHA384"
            assert offer("ECDHE-ECDSA-AES128-GCM-SHA256") is None
    finally:
        w.stop()


# --- Ward's own CA: secure by default -------------------------------------------------------


def _first_start_flags(w: WardProcess) -> list[str]:
    # The defaults with free ports: https://localhost:<port>, no certificate flags at all.
    client = f"https://localhost:{w.client_port}"
    return [
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", w.peer_url,
        "--initial-advertise-peer-urls", w.peer_url,
        "--initial-cluster", f"default={w.peer_url}",
        "--workers", "2",
    ]  # fmt: skip


def test_first_start_makes_a_ca_and_serves_mutual_tls_that_wardctl_uses(
    tmp_path: Path,
) -> None:
    w = WardProcess(tmp_path, workers=2)
    w.start(*_first_start_flags(w), base_flags=False)  # data dir: ./default.ward
    try:
        pki = tmp_path / "default.ward" / "pki"
        assert files_in(pki) == [
            "ca.crt", "ca.key", "client-root.crt", "client-root.key", "index.json",
            "server.crt", "server.key",
        ]  # fmt: skip
        for key in ("ca.key", "client-root.key", "server.key"):
            assert stat.S_IMODE((pki / key).stat().st_mode) == 0o600
        assert stat.S_IMODE(pki.stat().st_mode) == 0o700
        ep = f"127.0.0.1:{w.client_port}"  # as etcdctl's default endpoint is written
        # wardctl in the same directory finds the credentials by itself.
        assert wardctl("--endpoints", ep, "put", "greeting", "hello", cwd=tmp_path).stdout == "OK\n"
        got = wardctl("--endpoints", ep, "get", "greeting", cwd=tmp_path)
        assert got.stdout.split() == ["greeting", "hello"], got.stderr
        # ... and from elsewhere through WARD_DATA_DIR.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = {"WARD_DATA_DIR": str(tmp_path / "default.ward")}
        got = wardctl("--endpoints", ep, "get", "greeting", cwd=elsewhere, env=env)
        assert got.stdout.split() == ["greeting", "hello"], got.stderr
        # Without the admin certificate nobody gets in; plaintext neither.
        assert refused_call(ep, Credentials(pki / "ca.crt"), "get", "greeting")
        assert refused_call(f"http://{ep}", None, "get", "greeting")
        admin = Credentials(pki / "ca.crt", pki / "client-root.crt", pki / "client-root.key")
        assert ctl(f"https://{ep}", admin, "get", "greeting").stdout.split()[1] == "hello"
        assert "serving insecure" not in w.log_text()
        assert log_records(w, "serving client traffic securely")
        # The data dir CA is the trusted one: its crl.pem is watched once it exists.
        assert log_records(w, "serving client traffic securely")[0]["crl_file"].endswith("crl.pem")
    finally:
        w.stop()


def test_a_restart_reuses_the_ca_and_certificates(tmp_path: Path) -> None:
    w = WardProcess(tmp_path, workers=1)
    flags = _first_start_flags(w)
    flags[-1] = "1"
    w.start(*flags, base_flags=False)
    pki = tmp_path / "default.ward" / "pki"
    before = {name: (pki / name).read_bytes() for name in files_in(pki)}
    w.restart()
    try:
        after = {name: (pki / name).read_bytes() for name in files_in(pki)}
        assert after == before
        got = wardctl("--endpoints", f"127.0.0.1:{w.client_port}", "put", "a", "b", cwd=tmp_path)
        assert got.stdout == "OK\n", got.stderr
    finally:
        w.stop()


def test_wards_ca_revokes_through_wardctl_pki(tmp_path: Path) -> None:
    w = WardProcess(tmp_path, workers=2)
    w.start(*_first_start_flags(w), base_flags=False)
    try:
        pki = tmp_path / "default.ward" / "pki"
        ep = f"127.0.0.1:{w.client_port}"
        issued = wardctl("pki", "issue", "client", "dave", "--dir", str(pki), cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        dave = Credentials(pki / "ca.crt", pki / "dave.crt", pki / "dave.key")
        assert ctl(f"https://{ep}", dave, "put", "x", "1").returncode == 0
        revoked = wardctl("pki", "revoke", "dave", "--dir", str(pki), cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        eventually(lambda: refused_call(f"https://{ep}", dave, "get", "x"), what="dave refused")
        assert wardctl("--endpoints", ep, "get", "x", cwd=tmp_path).returncode == 0
    finally:
        w.stop()


def test_auto_tls_certificates_come_from_the_data_dir_ca_and_verify(tmp_path: Path) -> None:
    w = WardProcess(tmp_path, workers=1)
    flags = _first_start_flags(w)
    flags[-1] = "1"
    w.start(*flags, "--auto-tls", base_flags=False)
    try:
        pki = tmp_path / "default.ward" / "pki"
        # Verifiable: etcdctl checks the server against the data dir's CA (no skip-verify).
        admin = Credentials(pki / "ca.crt", pki / "client-root.crt", pki / "client-root.key")
        assert ctl(f"https://localhost:{w.client_port}", admin, "put", "a", "b").returncode == 0
        assert "authenticates nobody" not in w.log_text()
    finally:
        w.stop()


def test_plaintext_only_on_http_urls_the_operator_wrote_with_etcds_warning(
    tmp_path: Path,
) -> None:
    w = WardProcess(tmp_path, workers=1)
    plain = f"http://127.0.0.1:{w.client_port}"
    secure_port = free_port()
    secure = f"https://127.0.0.1:{secure_port}"
    flags = _first_start_flags(w)
    flags[1] = flags[3] = f"{plain},{secure}"
    flags[-1] = "1"
    w.start(*flags, base_flags=False)
    try:
        assert ctl(plain, None, "put", "a", "b").returncode == 0
        assert refused_call(f"http://127.0.0.1:{secure_port}", None, "get", "a")
        warnings = log_records(w, "serving insecure client requests")
        assert [r["msg"] for r in warnings] == [
            f"serving insecure client requests on 127.0.0.1:{w.client_port}, this is strongly"
            " discouraged!"
        ]
    finally:
        w.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(
    _listening(2379) or _listening(2380), reason="something listens on etcd's default ports"
)
def test_ward_with_no_flags_at_all_is_secure(tmp_path: Path) -> None:
    w = WardProcess(tmp_path, workers=1)
    w.start("--workers", "1", base_flags=False)
    try:
        got = wardctl("put", "greeting", "hello", cwd=tmp_path)  # etcdctl's default endpoint
        assert got.stdout == "OK\n", got.stderr
        assert refused_call("127.0.0.1:2379", None, "get", "greeting")
        # The peer listener (https://localhost:2380) has its own certificate from the same CA.
        assert (tmp_path / "default.ward" / "pki" / "peer.crt").exists()
        assert log_records(w, "issued peer TLS certificates")
    finally:
        w.stop()


def test_wardctl_with_a_named_data_dir_without_credentials_says_so(tmp_path: Path) -> None:
    got = wardctl("get", "a", cwd=tmp_path, env={"WARD_DATA_DIR": str(tmp_path / "nowhere")})
    assert got.returncode != 0
    assert "WARD_DATA_DIR" in got.stderr


# --- key types ------------------------------------------------------------------------------


def _key_type_pki(root: Path, ca: str, leaf: str) -> tuple[PKIStore, list[str]]:
    store = PKIStore(root)
    store.init_ca(key_type=KeyType.parse(ca))
    store.issue(
        Profile.SERVER, "server", dns=["localhost"], ips=["127.0.0.1"], key_type=KeyType.parse(leaf)
    )
    store.issue(Profile.CLIENT, "client", key_type=KeyType.parse(leaf))
    flags = [
        f"--cert-file={store.cert_path('server')}",
        f"--key-file={store.key_path('server')}",
        f"--trusted-ca-file={store.ca_cert_path}",
        "--client-cert-auth",
    ]
    return store, flags


@pytest.mark.parametrize(("ca", "leaf"), [("rsa-3072", "rsa-2048"), ("ed25519", "ecdsa-p256")])
def test_rsa_certificates_and_an_ed25519_ca_serve_etcdctl(
    tmp_path: Path, ca: str, leaf: str
) -> None:
    store, flags = _key_type_pki(tmp_path / "pki", ca, leaf)
    w = start_tls_ward(tmp_path / "w", *flags, workers=1)
    try:
        client = Credentials(
            store.ca_cert_path, store.cert_path("client"), store.key_path("client")
        )
        assert ctl(url(w), client, "put", "k", "v").stdout.strip() == "OK"
    finally:
        w.stop()


def test_an_ed25519_server_certificate_is_refused_at_start_with_the_reason(tmp_path: Path) -> None:
    _, flags = _key_type_pki(tmp_path / "pki", "ecdsa-p256", "ed25519")
    w = WardProcess(tmp_path, workers=1)
    w.start(*https_flags(w), *flags, base_flags=False, wait=False)
    assert w.wait_exit() != 0
    assert "gRPC's TLS cannot sign handshakes" in w.log_text()
