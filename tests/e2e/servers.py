"""Servers for the client-side end-to-end tests, started by kind ("etcd" or "ward").

`start_server(kind, tmp_path)` returns an `Endpoint`: where the server listens, and how to stop
it (`stop()`, which the caller must run in a finalizer). Two servers started with the same
`identity` answer with the same cluster and member IDs, so two of them fed the same requests
in lockstep answer byte for byte alike; that is what the wardctl/etcdctl differential test
relies on.

To add a kind, add a branch to `start_server` and its name to `SERVER_KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.ward_process import ETCD, EtcdProcess, WardProcess, _ServerProcess

__all__ = ["SERVER_KINDS", "Endpoint", "start_server"]

# Every kind the differential tests run against.
SERVER_KINDS: tuple[str, ...] = ("etcd", "ward")

# etcd derives member and cluster IDs from the advertised peer URLs and the member name; a
# single-member cluster never dials its own advertised peer URL, so a fixed one is harmless.
_IDENTITY_PEER_URL = "http://127.0.0.1:2380"


@dataclass
class Endpoint:
    """A running server: `address` is host:port as etcdctl's --endpoints takes it."""

    kind: str
    address: str
    data_dir: Path
    process: _ServerProcess = field(repr=False)

    @property
    def url(self) -> str:
        """The client URL (plaintext)."""
        return f"http://{self.address}"

    def stop(self) -> None:
        """Stop the server and everything it forked."""
        self.process.stop()


def start_server(
    kind: str, tmp_path: Path, *extra_flags: str, identity: str | None = "e2e"
) -> Endpoint:
    """Start a server of `kind` on fresh loopback ports with its data under `tmp_path`.

    Servers started with the same `identity` share their member and cluster IDs (None: let the
    server choose). Skips the test when the server's binary is not installed.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    if kind == "etcd":
        if not ETCD.exists():
            pytest.skip("etcd-server is not installed")
        etcd = EtcdProcess(tmp_path)
        flags = list(extra_flags)
        if identity is not None:
            # Repeated flags: the last value wins, replacing the per-port peer URL.
            flags += [
                "--name",
                identity,
                "--initial-advertise-peer-urls",
                _IDENTITY_PEER_URL,
                "--initial-cluster",
                f"{identity}={_IDENTITY_PEER_URL}",
            ]
        try:
            etcd.start(*flags)
        except BaseException:
            etcd.kill9()
            raise
        return Endpoint(kind, etcd.endpoint, etcd.data_dir, etcd)
    if kind == "ward":
        ward = WardProcess(tmp_path)
        flags = list(extra_flags)
        if identity is not None:
            flags += [
                "--name",
                identity,
                "--initial-advertise-peer-urls",
                _IDENTITY_PEER_URL,
                "--initial-cluster",
                f"{identity}={_IDENTITY_PEER_URL}",
            ]
        try:
            ward.start(*flags)
        except BaseException:
            ward.kill9()
            raise
        return Endpoint(kind, ward.endpoint, ward.data_dir, ward)
    raise ValueError(f"unknown server kind {kind!r}")
