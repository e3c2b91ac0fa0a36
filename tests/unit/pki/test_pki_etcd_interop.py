"""Go's TLS stack accepts Ward's certificates: a real etcd serves mutual TLS with them.

Skipped unless Debian's etcd (/usr/bin/etcd) and etcdctl (/usr/bin/etcdctl) are installed.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pki import PKIStore, Profile
from tests.e2e.ward_process import free_port

ETCD = Path("/usr/bin/etcd")
ETCDCTL = Path("/usr/bin/etcdctl")
STARTUP_TIMEOUT_S = 20.0

pytestmark = pytest.mark.skipif(
    not (ETCD.exists() and ETCDCTL.exists()), reason="etcd and etcdctl are not installed"
)


@dataclass(frozen=True)
class _Etcd:
    endpoint: str
    pki: PKIStore
    other: PKIStore
    log: Path

    def etcdctl(
        self, owner: PKIStore, name: str, *args: str, timeout_s: int = 5
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(ETCDCTL),
                f"--endpoints={self.endpoint}",
                f"--cacert={self.pki.ca_cert_path}",
                f"--cert={owner.cert_path(name)}",
                f"--key={owner.key_path(name)}",
                f"--dial-timeout={timeout_s}s",
                f"--command-timeout={timeout_s}s",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "ETCDCTL_API": "3"},
            check=False,
        )


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Etcd]:
    tmp = tmp_path_factory.mktemp("etcd-tls")
    pki = PKIStore(tmp / "pki")
    pki.init_ca()
    pki.issue(Profile.SERVER, "server", dns=["localhost"], ips=["127.0.0.1"])
    pki.issue(Profile.CLIENT, "root")
    other = PKIStore(tmp / "other")
    other.init_ca(common_name="Other CA")
    other.issue(Profile.CLIENT, "root")

    client_url = f"https://127.0.0.1:{free_port()}"
    peer_url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp / "etcd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(ETCD),
                "--name=ward-pki",
                f"--data-dir={tmp / 'data'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=ward-pki={peer_url}",
                f"--cert-file={pki.cert_path('server')}",
                f"--key-file={pki.key_path('server')}",
                f"--trusted-ca-file={pki.ca_cert_path}",
                "--client-cert-auth",
                "--logger=zap",
                "--log-level=warn",  # rejected TLS connections are warnings
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = _Etcd(client_url, pki, other, log_path)
    try:
        _wait_ready(server, proc, log_path)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(server: _Etcd, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"etcd exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if server.etcdctl(server.pki, "root", "endpoint", "health").returncode == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"etcd did not become ready: {log.read_text()[-2000:]}")


def test_etcdctl_puts_and_gets_over_mutual_tls_with_our_certificates(etcd: _Etcd) -> None:
    put = etcd.etcdctl(etcd.pki, "root", "put", "ward/pki", "interop")
    assert put.returncode == 0, put.stderr
    got = etcd.etcdctl(etcd.pki, "root", "get", "ward/pki", "--print-value-only")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "interop"


def test_etcd_refuses_a_client_certificate_from_another_ca(etcd: _Etcd) -> None:
    put = etcd.etcdctl(etcd.other, "root", "put", "ward/pki", "intruder", timeout_s=1)
    assert put.returncode != 0
    # The refusal is etcd's TLS check, not a timeout: the same call with our cert goes through.
    assert "certificate signed by unknown authority" in etcd.log.read_text()
    got = etcd.etcdctl(etcd.pki, "root", "get", "ward/pki", "--print-value-only", timeout_s=1)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() != "intruder"
