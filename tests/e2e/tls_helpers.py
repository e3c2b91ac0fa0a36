"""Real certificates and TLS-serving `ward` processes for the TLS end-to-end tests.

Certificates come from Ward's own `pki` package (two unrelated CAs, server and client
certificates, an expired one); the server reads them from a `served/` directory the tests
rewrite atomically to rotate them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from pki import PKIStore, Profile
from tests.e2e.ward_process import ETCDCTL, WardProcess, _clean_environ

HOSTS = {"dns": ["localhost"], "ips": ["127.0.0.1"]}
CTL_TIMEOUT_S = 60.0


@dataclass
class Credentials:
    """Paths a client presents: the CA bundle it trusts, its certificate and key."""

    cacert: Path | None
    cert: Path | None = None
    key: Path | None = None

    def flags(self) -> list[str]:
        out = []
        if self.cacert is not None:
            out.append(f"--cacert={self.cacert}")
        if self.cert is not None and self.key is not None:
            out += [f"--cert={self.cert}", f"--key={self.key}"]
        return out


@dataclass
class Certs:
    """Two unrelated CAs and the certificates the TLS tests need, under `root`."""

    root: Path
    ca1: PKIStore
    ca2: PKIStore
    served: Path  # what the server reads: server.crt, server.key, ca.pem, crl.pem

    @classmethod
    def create(cls, root: Path) -> Certs:
        now = dt.datetime.now(dt.UTC)
        # CA one exists "since a month", so that a certificate that ended yesterday can exist.
        past = PKIStore(root / "ca1", clock=lambda: now - dt.timedelta(days=30))
        past.init_ca(common_name="Test CA One")
        past.issue(Profile.CLIENT, "expired", days=2)
        ca1 = PKIStore(root / "ca1")
        ca2 = PKIStore(root / "ca2")
        ca2.init_ca(common_name="Test CA Two")
        for name in ("server", "server-b"):
            ca1.issue(Profile.SERVER, name, **HOSTS)  # type: ignore[arg-type]
        ca2.issue(Profile.SERVER, "server", **HOSTS)  # type: ignore[arg-type]
        for name in ("alice", "bob", "root"):
            ca1.issue(Profile.CLIENT, name)
        ca2.issue(Profile.CLIENT, "carol")
        ca1.publish_crl()
        pki = cls(root, ca1, ca2, root / "served")
        pki.served.mkdir(mode=0o700)
        pki.serve(ca1, "server")
        pki.trust(ca1)
        return pki

    # -- what the server reads, rewritten as an operator would (atomic renames) --

    @property
    def server_cert(self) -> Path:
        return self.served / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.served / "server.key"

    @property
    def ca_bundle(self) -> Path:
        return self.served / "ca.pem"

    def serve(self, store: PKIStore, name: str) -> None:
        """Make the server's certificate and key `name` of `store` (key first, then cert)."""
        _replace(self.server_key, store.key_path(name).read_bytes(), 0o600)
        _replace(self.server_cert, store.cert_path(name).read_bytes(), 0o644)

    def trust(self, *stores: PKIStore) -> None:
        """Make the server's trusted CA bundle the CAs of `stores`."""
        _replace(self.ca_bundle, b"".join(s.ca_cert_path.read_bytes() for s in stores), 0o644)

    def bundle(self, *stores: PKIStore) -> Path:
        """A CA bundle file for clients, trusting the CAs of `stores`."""
        path = self.root / ("bundle-" + "-".join(s.directory.name for s in stores) + ".pem")
        path.write_bytes(b"".join(s.ca_cert_path.read_bytes() for s in stores))
        return path

    def client(self, store: PKIStore, name: str, cacert: Path | None = None) -> Credentials:
        ca = cacert or store.ca_cert_path
        return Credentials(ca, store.cert_path(name), store.key_path(name))

    def server_flags(self, *, crl: bool = True) -> list[str]:
        flags = [
            f"--cert-file={self.server_cert}",
            f"--key-file={self.server_key}",
            f"--trusted-ca-file={self.ca_bundle}",
            "--client-cert-auth",
        ]
        if crl:
            flags.append(f"--client-crl-file={self.ca1.crl_path}")
        return flags


def _replace(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rot-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def https_flags(ward: WardProcess, host: str = "127.0.0.1") -> list[str]:
    """One member serving clients on https://host:port (peers in plaintext, loopback)."""
    url = f"https://{host}:{ward.client_port}"
    return [
        "--name", ward.name,
        "--data-dir", str(ward.data_dir),
        "--listen-client-urls", url,
        "--advertise-client-urls", url,
        "--listen-peer-urls", ward.peer_url,
        "--initial-advertise-peer-urls", ward.peer_url,
        "--initial-cluster", f"{ward.name}={ward.peer_url}",
        "--workers", str(ward.workers),
    ]  # fmt: skip


def start_tls_ward(tmp_path: Path, *extra: str, workers: int = 2) -> WardProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    ward = WardProcess(tmp_path, workers=workers)
    try:
        # The refusal tests read gRPC's own handshake errors in the server's log: ask for
        # them explicitly rather than rely on gRPC's default verbosity.
        # The refusal tests read gRPC's own handshake errors, which its C core logs at INFO,
        # in the server's log: ask for that level rather than depend on gRPC's default.
        ward.start(*https_flags(ward), *extra, base_flags=False, env={"GRPC_VERBOSITY": "INFO"})
        ward.wait_listening(workers)
    except BaseException:
        ward.kill9()
        raise
    return ward


def ctl(
    endpoint: str,
    creds: Credentials | None,
    *args: str,
    timeout: float = CTL_TIMEOUT_S,
    cwd: Path | None = None,
    fail_within: str = "",
) -> subprocess.CompletedProcess[str]:
    """The real etcdctl 3.4 against `endpoint` with `creds`; short dial and command timeouts.

    A refused handshake makes etcdctl retry until its timeouts run out: a call expected to be
    refused can pass a shorter `fail_within` (a Go duration) for both."""
    return subprocess.run(
        [
            str(ETCDCTL),
            f"--endpoints={endpoint}",
            f"--dial-timeout={fail_within or '3s'}",
            f"--command-timeout={fail_within or '5s'}",
            *(creds.flags() if creds else []),
            *args,
        ],
        capture_output=True,
        text=True,
        env=_clean_environ({"ETCDCTL_API": "3"}),
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def served_certificate(port: int, creds: Credentials) -> x509.Certificate:
    """The certificate the server presents on a new connection (a new handshake)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    assert creds.cert is not None and creds.key is not None
    context.load_cert_chain(creds.cert, creds.key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def log_records(ward: WardProcess, message: str) -> list[dict[str, object]]:
    """The JSON log records whose message contains `message`."""
    out = []
    for line in ward.log_text().splitlines():
        if message in line and line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def wardctl(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = CTL_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """`wardctl` from this checkout, run in `cwd`."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "ward.cli", *args],
        capture_output=True,
        text=True,
        env=_clean_environ({"ETCDCTL_API": "3", **(env or {})}),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def files_in(directory: Path) -> Sequence[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def _literal(name: str, value: str) -> bytes:
    # HPACK "literal header field without indexing, new name", no Huffman (lengths < 127).
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def grpc_call_over_tls12(port: int, creds: Credentials, path: str, message: bytes) -> bytes:
    """One gRPC call over a TLS 1.2 connection, spoken by hand (gRPC's own clients always
    negotiate TLS 1.3); returns whatever the server sent back, undecoded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    assert creds.cert is not None and creds.key is not None
    context.load_cert_chain(creds.cert, creds.key)
    headers = b"".join(
        _literal(k, v)
        for k, v in (
            (":method", "POST"),
            (":scheme", "https"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    )
    body = b"\x00" + len(message).to_bytes(4, "big") + message
    received = b""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock) as conn,
    ):
        assert conn.version() == "TLSv1.2"
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b""))
        conn.sendall(_frame(4, 1, 0, b""))  # acknowledge the server's settings
        conn.sendall(_frame(1, 0x4, 1, headers) + _frame(0, 0x1, 1, body))
        conn.settimeout(3)
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                received += chunk
    return received
