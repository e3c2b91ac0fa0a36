"""Operability metrics scraped over HTTP from running `ward` processes: etcd's
`etcd_network_peer_round_trip_time_seconds` (3 members: every member times both peers) and
Ward's `ward_tls_certificate_expiry_timestamp_seconds` (the certificate each listener serves,
followed through a rotation)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509

from tests.e2e.tls_helpers import Certs, served_certificate, start_tls_ward
from tests.e2e.ward_process import eventually, free_port

RTT = "etcd_network_peer_round_trip_time_seconds"
EXPIRY = "ward_tls_certificate_expiry_timestamp_seconds"


def _samples(text: str, name: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample of `name` (labels as written)."""
    out = {}
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE):
        out[m.group(1) or ""] = float(m.group(2))
    return out


@pytest.mark.slow
def test_every_member_times_its_round_trips_to_each_peer(tmp_path: Path) -> None:
    from cluster import Cluster

    c = Cluster(tmp_path, 3)
    ic = c.initial_cluster
    metrics: dict[str, str] = {}
    for m in c.members:
        port = free_port()
        metrics[m.name] = f"http://127.0.0.1:{port}/metrics"
        m.launch(
            [*m.flags(ic, "new", c.token), "--listen-metrics-urls", f"http://127.0.0.1:{port}"]
        )
    try:
        for m in c.members:
            m.proc.wait_ready()
        ids = {}
        for m in c.members:
            text = requests.get(metrics[m.name], timeout=10).text
            (labels,) = _samples(text, "etcd_server_id")
            ids[m.name] = re.search(r'server_id="([0-9a-f]+)"', labels).group(1)  # type: ignore[union-attr]
        for m in c.members:
            peers = [ids[o.name] for o in c.members if o is not m]

            def counted(m: object = m, peers: list[str] = peers) -> bool:
                text = requests.get(metrics[m.name], timeout=10).text  # type: ignore[attr-defined]
                counts = _samples(text, RTT + "_count")
                return all(counts.get(f'{{To="{p}"}}', 0) >= 2 for p in peers)

            eventually(counted, what=f"two probes of each peer from {m.name}")
            text = requests.get(metrics[m.name], timeout=10).text
            assert f"# TYPE {RTT} histogram" in text
            buckets = _samples(text, RTT + "_bucket")
            sums, counts = _samples(text, RTT + "_sum"), _samples(text, RTT + "_count")
            for p in peers:
                to = f'{{To="{p}"}}'
                # Loopback: each round trip well under a second, and above nothing.
                assert 0 < sums[to] / counts[to] < 1.0
                assert buckets[f'{{To="{p}",le="+Inf"}}'] == counts[to]
                assert buckets[f'{{To="{p}",le="0.0001"}}'] <= counts[to]  # etcd's first bucket
            assert ids[m.name] not in " ".join(_samples(text, RTT + "_count"))
    finally:
        c.stop()


def test_certificate_expiry_of_each_listener_follows_a_rotation(tmp_path: Path) -> None:
    certs = Certs.create(tmp_path / "pki")
    mon = free_port()
    ward_dir = tmp_path / "ward"
    ward = start_tls_ward(
        ward_dir,
        *certs.server_flags(crl=False),
        "--listen-metrics-urls",
        f"http://127.0.0.1:{mon}",
        workers=1,
    )
    url = f"http://127.0.0.1:{mon}/metrics"
    try:

        def expiry() -> dict[str, float]:
            return _samples(requests.get(url, timeout=10).text, EXPIRY)

        first = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
        assert f"# TYPE {EXPIRY} gauge" in requests.get(url, timeout=10).text
        got = expiry()
        assert got == {'{listener="client",cn="server"}': first.not_valid_after_utc.timestamp()}
        assert got['{listener="client",cn="server"}'] > time.time()

        # Rotate: the next handshake loads the new certificate, and the metric follows it.
        certs.serve(certs.ca1, "server-b")
        creds = certs.client(certs.ca1, "alice")
        eventually(
            lambda: (
                served_certificate(ward.client_port, creds).subject.rfc4514_string()
                == "CN=server-b"
            ),
            what="the rotated certificate served",
        )
        second = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
        assert expiry() == {
            '{listener="client",cn="server-b"}': second.not_valid_after_utc.timestamp()
        }
    finally:
        ward.stop()


def test_wards_own_peer_certificate_is_reported_too(tmp_path: Path) -> None:
    """With https:// peer URLs and no certificate given, Ward issues the peer certificate from
    its own CA (CN: the member name); its expiry is reported beside the client listener's."""
    from tests.e2e.ward_process import WardProcess

    mon = free_port()
    ward = WardProcess(tmp_path, workers=1)
    flags = ward.base_flags()
    peer = ward.peer_url.replace("http://", "https://")
    flags = [peer if f == ward.peer_url else f for f in flags]
    flags = [f.replace(ward.peer_url, peer) for f in flags]
    ward.start(*flags, "--listen-metrics-urls", f"http://127.0.0.1:{mon}", base_flags=False)
    try:
        got = _samples(requests.get(f"http://127.0.0.1:{mon}/metrics", timeout=10).text, EXPIRY)
        crt = x509.load_pem_x509_certificate((ward.data_dir / "pki" / "peer.crt").read_bytes())
        assert got == {f'{{listener="peer",cn="{ward.name}"}}': crt.not_valid_after_utc.timestamp()}
        assert got[f'{{listener="peer",cn="{ward.name}"}}'] > time.time() + 300 * 86400
    finally:
        ward.stop()
