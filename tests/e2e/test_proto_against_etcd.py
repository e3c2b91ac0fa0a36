"""Our stubs talk to a real etcd: same service paths, same field numbers, same semantics.

Skipped when the Debian etcd-server package (/usr/bin/etcd) is not installed.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.ward_process import free_port
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from wardpb.mvccpb import kv_pb2
from wardpb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from wardpb.v3lockpb import v3lock_pb2, v3lock_pb2_grpc

ETCD = Path("/usr/bin/etcd")

pytestmark = pytest.mark.skipif(not ETCD.exists(), reason="etcd-server is not installed")

STARTUP_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def etcd_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    tmp = tmp_path_factory.mktemp("etcd")
    client_url = f"http://127.0.0.1:{free_port()}"
    peer_url = f"http://127.0.0.1:{free_port()}"
    log = (tmp / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [
            str(ETCD),
            "--name=ward-e2e",
            f"--data-dir={tmp / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=ward-e2e={peer_url}",
            "--log-level=error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    channel = grpc.insecure_channel(client_url.removeprefix("http://"))
    try:
        _wait_ready(channel, proc, tmp / "etcd.log")
        yield channel
    finally:
        channel.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(channel: grpc.Channel, proc: subprocess.Popen[bytes], log: Path) -> None:
    maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"etcd exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(grpc.RpcError):
            status = maintenance.Status(rpc_pb2.StatusRequest(), timeout=1)
            if status.leader:
                return
        time.sleep(0.1)
    pytest.fail(f"etcd did not become ready: {log.read_text()[-2000:]}")


def test_put_then_range_returns_the_stored_key_value(etcd_channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(etcd_channel)
    put = kv.Put(rpc_pb2.PutRequest(key=b"e2e/a", value=b"1"), timeout=CALL_TIMEOUT_S)
    assert put.header.revision > 1
    assert put.header.cluster_id != 0

    got = kv.Range(rpc_pb2.RangeRequest(key=b"e2e/a"), timeout=CALL_TIMEOUT_S)
    assert got.count == 1
    (item,) = got.kvs
    assert (item.key, item.value, item.version) == (b"e2e/a", b"1", 1)
    assert item.create_revision == item.mod_revision == put.header.revision


def test_range_over_a_prefix_honours_limit_and_keys_only(etcd_channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(etcd_channel)
    for name in (b"p/1", b"p/2", b"p/3"):
        kv.Put(rpc_pb2.PutRequest(key=name, value=b"v"), timeout=CALL_TIMEOUT_S)
    got = kv.Range(
        rpc_pb2.RangeRequest(
            key=b"p/",
            range_end=b"p0",
            limit=2,
            keys_only=True,
            sort_order=rpc_pb2.RangeRequest.DESCEND,
        ),
        timeout=CALL_TIMEOUT_S,
    )
    assert [i.key for i in got.kvs] == [b"p/3", b"p/2"]
    assert all(i.value == b"" for i in got.kvs)
    assert got.more is True
    assert got.count == 3


def test_txn_compare_selects_the_success_or_failure_branch(etcd_channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(etcd_channel)
    kv.Put(rpc_pb2.PutRequest(key=b"txn/k", value=b"old"), timeout=CALL_TIMEOUT_S)

    def swap(expected: bytes) -> rpc_pb2.TxnResponse:
        return kv.Txn(
            rpc_pb2.TxnRequest(
                compare=[
                    rpc_pb2.Compare(
                        key=b"txn/k",
                        target=rpc_pb2.Compare.VALUE,
                        result=rpc_pb2.Compare.EQUAL,
                        value=expected,
                    )
                ],
                success=[
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(key=b"txn/k", value=b"new", prev_kv=True)
                    )
                ],
                failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"txn/k"))],
            ),
            timeout=CALL_TIMEOUT_S,
        )

    first = swap(b"old")
    assert first.succeeded is True
    assert first.responses[0].WhichOneof("response") == "response_put"
    assert first.responses[0].response_put.prev_kv.value == b"old"

    second = swap(b"old")
    assert second.succeeded is False
    assert second.responses[0].response_range.kvs[0].value == b"new"


def test_compare_version_zero_means_key_absent(etcd_channel: grpc.Channel) -> None:
    # Relies on a set-but-zero oneof member being encoded; etcd would reject a missing target.
    kv = rpc_pb2_grpc.KVStub(etcd_channel)
    resp = kv.Txn(
        rpc_pb2.TxnRequest(
            compare=[rpc_pb2.Compare(key=b"absent/k", target=rpc_pb2.Compare.VERSION, version=0)],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"absent/k"))],
        ),
        timeout=CALL_TIMEOUT_S,
    )
    assert resp.succeeded is True


def test_status_reports_fields_added_in_3_4(etcd_channel: grpc.Channel) -> None:
    status = rpc_pb2_grpc.MaintenanceStub(etcd_channel).Status(
        rpc_pb2.StatusRequest(), timeout=CALL_TIMEOUT_S
    )
    assert status.version.startswith("3.")
    assert status.leader == status.header.member_id
    assert status.raftAppliedIndex > 0
    assert status.dbSizeInUse > 0
    assert status.isLearner is False


def test_watch_delivers_put_and_delete_events_with_prev_kv(etcd_channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(etcd_channel)
    start = kv.Put(rpc_pb2.PutRequest(key=b"w/k", value=b"a"), timeout=CALL_TIMEOUT_S)
    kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"w/k"), timeout=CALL_TIMEOUT_S)

    request = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(
            key=b"w/k", start_revision=start.header.revision, prev_kv=True
        )
    )
    stream = rpc_pb2_grpc.WatchStub(etcd_channel).Watch(iter([request]), timeout=CALL_TIMEOUT_S)
    events: list[kv_pb2.Event] = []
    created = False
    try:
        for resp in stream:
            created = created or resp.created
            events.extend(resp.events)
            if len(events) >= 2:
                break
    finally:
        stream.cancel()

    assert created
    assert [e.type for e in events] == [kv_pb2.Event.PUT, kv_pb2.Event.DELETE]
    assert events[0].kv.value == b"a"
    assert events[1].prev_kv.value == b"a"


def test_lease_grant_keepalive_and_list(etcd_channel: grpc.Channel) -> None:
    lease = rpc_pb2_grpc.LeaseStub(etcd_channel)
    granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30), timeout=CALL_TIMEOUT_S)
    assert granted.ID != 0
    assert granted.TTL == 30

    stream = lease.LeaseKeepAlive(
        iter([rpc_pb2.LeaseKeepAliveRequest(ID=granted.ID)]), timeout=CALL_TIMEOUT_S
    )
    try:
        renewed = next(stream)
    finally:
        stream.cancel()
    assert (renewed.ID, renewed.TTL) == (granted.ID, 30)

    listed = lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=CALL_TIMEOUT_S)
    assert granted.ID in {s.ID for s in listed.leases}

    ttl = lease.LeaseTimeToLive(
        rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID), timeout=CALL_TIMEOUT_S
    )
    assert ttl.grantedTTL == 30


def test_member_list_names_the_single_member(etcd_channel: grpc.Channel) -> None:
    members = rpc_pb2_grpc.ClusterStub(etcd_channel).MemberList(
        rpc_pb2.MemberListRequest(), timeout=CALL_TIMEOUT_S
    )
    assert [m.name for m in members.members] == ["ward-e2e"]
    assert members.members[0].clientURLs


def test_lock_service_is_reachable_under_v3lockpb(etcd_channel: grpc.Channel) -> None:
    lease = rpc_pb2_grpc.LeaseStub(etcd_channel).LeaseGrant(
        rpc_pb2.LeaseGrantRequest(TTL=30), timeout=CALL_TIMEOUT_S
    )
    lock = v3lock_pb2_grpc.LockStub(etcd_channel)
    held = lock.Lock(v3lock_pb2.LockRequest(name=b"l", lease=lease.ID), timeout=CALL_TIMEOUT_S)
    assert held.key.startswith(b"l/")
    lock.Unlock(v3lock_pb2.UnlockRequest(key=held.key), timeout=CALL_TIMEOUT_S)


def test_election_service_is_reachable_under_v3electionpb(etcd_channel: grpc.Channel) -> None:
    lease = rpc_pb2_grpc.LeaseStub(etcd_channel).LeaseGrant(
        rpc_pb2.LeaseGrantRequest(TTL=30), timeout=CALL_TIMEOUT_S
    )
    election = v3election_pb2_grpc.ElectionStub(etcd_channel)
    won = election.Campaign(
        v3election_pb2.CampaignRequest(name=b"e", lease=lease.ID, value=b"me"),
        timeout=CALL_TIMEOUT_S,
    )
    assert (won.leader.name, won.leader.lease) == (b"e", lease.ID)
    assert won.leader.rev > 0

    current = election.Leader(v3election_pb2.LeaderRequest(name=b"e"), timeout=CALL_TIMEOUT_S)
    assert (current.kv.key, current.kv.value) == (won.leader.key, b"me")

    election.Resign(v3election_pb2.ResignRequest(leader=won.leader), timeout=CALL_TIMEOUT_S)
