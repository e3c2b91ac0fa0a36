"""`ward.Client` against real servers: failover when a member dies, watch resume across a
restart, token refresh after expiry, mutual TLS with the credentials in a data directory."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, running_cluster
from tests.e2e.tls_helpers import start_tls_ward
from tests.e2e.ward_process import WardProcess, start_ward
from ward import Client
from ward.credentials import local_credentials
from ward.errors import EtcdError


@pytest.mark.slow
def test_reads_and_writes_fail_over_when_a_member_is_killed(tmp_path: Path) -> None:
    with running_cluster(tmp_path, 3) as cluster:
        leader = cluster.leader()
        # Followers first: the member the client uses, and kills, is not the leader. (When the
        # leader dies, writes in flight fail with etcd's "request timed out, possibly due to
        # previous leader failure": their outcome is unknown, so no client retries them.)
        order = [m for m in cluster.members if m is not leader] + [leader]
        c = Client([m.endpoint for m in order], command_timeout=10)
        with c:
            _fail_over(cluster, c)


def _fail_over(cluster: Cluster, c: Client) -> None:
    c.put("before", "1")
    assert c.get("before").kvs[0].value == b"1"
    # The client talks to the first endpoint that answered: kill it.
    active = c._active
    assert active is not None
    victim = next(m for m in cluster.members if m.endpoint in active.endpoint.raw)
    victim.proc.kill9()
    # Let the client's channel see the closed socket: a put caught on the wire as it closes
    # ends "Stream removed", outcome unknown, and is rightly not retried (as in etcd's client).
    time.sleep(1.0)
    for i in range(20):
        c.put(f"after/{i}", str(i))
    got = c.get("after/", prefix=True)
    assert [kv.value for kv in got.kvs] == sorted(str(i).encode() for i in range(20))
    assert c.get("before").kvs[0].value == b"1"
    assert c._active is not None and c._active is not active


def _await_leader(c: Client, timeout: float = 10.0) -> None:
    # A restarted single member leads after an election timeout; writes before fail at once.
    deadline = time.monotonic() + timeout
    while True:
        try:
            c.get("any", timeout=1)
            return
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_watch_resumes_across_a_server_restart_without_lost_or_repeated_events(
    tmp_path: Path,
) -> None:
    ward = start_ward(tmp_path, workers=1)
    try:
        with Client(ward.endpoint, command_timeout=20) as c:
            first = c.put("w/0", "0").header.revision
            watcher = c.watch("w/", prefix=True, start_revision=first)
            with watcher:
                for i in range(1, 5):
                    c.put(f"w/{i}", str(i))
                ward.restart()
                _await_leader(c)
                for i in range(5, 10):
                    c.put(f"w/{i}", str(i))
                seen: list[int] = []
                deadline = time.monotonic() + 30
                while len(seen) < 10 and time.monotonic() < deadline:
                    resp = watcher.get(timeout=1)
                    if resp is not None:
                        seen.extend(ev.kv.mod_revision for ev in resp.events)
            assert seen == list(range(first, first + 10))
            assert watcher.reconnects >= 1
    finally:
        ward.stop()


def test_an_expired_token_is_refreshed(tmp_path: Path) -> None:
    ward = start_ward(
        tmp_path, "--bcrypt-cost", "4", "--auth-token", "simple", "--auth-token-ttl", "2"
    )
    try:
        with Client(ward.endpoint) as admin:
            admin.user_add("root", "root-password")
            admin.user_grant_role("root", "root")
            admin.auth_enable()
        with Client(ward.endpoint, user="root", password="root-password") as c:
            c.put("t", "1")
            token = c._token
            assert token
            time.sleep(4)  # the simple token expires after 2 s without use
            c.put("t", "2")
            assert c.get("t").kvs[0].value == b"2"
            assert c._token and c._token != token
    finally:
        ward.stop()


def test_mutual_tls_with_the_credentials_of_a_data_directory(tmp_path: Path) -> None:
    ward: WardProcess = start_tls_ward(tmp_path / "tls", workers=1)
    try:
        creds = local_credentials({"WARD_DATA_DIR": str(ward.data_dir)})
        assert set(creds) == {"cacert", "cert", "key"}
        with Client(f"https://{ward.endpoint}", **creds) as c:
            c.put("secure", "yes")
            assert c.get("secure").kvs[0].value == b"yes"
        # Without a client certificate the handshake is refused.
        with (
            Client(f"https://{ward.endpoint}", cacert=creds["cacert"], dial_timeout=2) as c,
            pytest.raises(EtcdError),
        ):
            c.get("secure", timeout=3)
    finally:
        ward.stop()
