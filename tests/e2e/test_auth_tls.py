"""A verified client certificate's CN is a user to the auth store, as a token's user is; a token
(or `--user`) sent on the same connection takes precedence, as in etcd.

Real etcdctl 3.4 against a `ward` serving mutual TLS (both serving processes), with client
certificates from Ward's own `pki` package.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.tls_helpers import Certs, ctl, start_tls_ward
from tests.e2e.ward_process import WardProcess

ROOT_PW = "root-pass-1"


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs.create(tmp_path / "pki")


@pytest.fixture
def ward(tmp_path: Path, certs: Certs) -> Iterator[WardProcess]:
    server = start_tls_ward(tmp_path / "w", *certs.server_flags(), "--bcrypt-cost", "4")
    try:
        yield server
    finally:
        server.stop()


def test_client_certificate_cn_is_the_user_and_a_token_takes_precedence(
    ward: WardProcess, certs: Certs
) -> None:
    url = f"https://127.0.0.1:{ward.client_port}"
    root = certs.client(certs.ca1, "root")
    alice = certs.client(certs.ca1, "alice")
    for args in (
        ("user", "add", f"root:{ROOT_PW}"),
        ("role", "add", "root"),
        ("user", "grant-role", "root", "root"),
        ("user", "add", "alice", "--no-password"),
        ("role", "add", "ra"),
        ("role", "grant-permission", "ra", "readwrite", "--prefix", "a/"),
        ("user", "grant-role", "alice", "ra"),
        ("user", "add", "bob:bob-pass-1"),
        ("auth", "enable"),
        # Auth is on: the root certificate is the root user.
        ("put", "secret", "s"),
        ("role", "add", "extra"),
    ):
        res = ctl(url, root, *args)
        assert res.returncode == 0, (args, res.stderr)
    for _ in range(4):  # new connections: both serving processes
        assert ctl(url, alice, "put", "a/x", "v").returncode == 0
        assert ctl(url, alice, "get", "a/x", "--print-value-only").stdout == "v\n"
        denied = ctl(url, alice, "put", "secret", "v")
        assert denied.returncode != 0
        assert "Error: etcdserver: permission denied" in denied.stderr
        # alice's certificate, bob's password: the request runs as bob.
        as_bob = ctl(url, alice, "--user=bob:bob-pass-1", "put", "a/x", "v")
        assert as_bob.returncode != 0
        assert "Error: etcdserver: permission denied" in as_bob.stderr
