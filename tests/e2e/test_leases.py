"""Leases against a real `ward`: the real etcdctl 3.4 and the stubs, with etcd's answers.

The expected outputs and errors are what etcd 3.4.23 answers to the same commands.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.ward_process import WardProcess, etcdctl, start_ward
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from wardpb.mvccpb import kv_pb2

GRANTED = re.compile(r"^lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)$")
TIME_TO_LIVE = re.compile(
    r"^lease ([0-9a-f]{16}) granted with TTL\((\d+)s\), remaining\((-?\d+)s\)(.*)$"
)


def ctl(ward: WardProcess, *args: str) -> str:
    """etcdctl's stdout; the command must succeed."""
    res = etcdctl(ward.endpoint, *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def grant(ward: WardProcess, ttl: int) -> tuple[str, int]:
    m = GRANTED.match(ctl(ward, "lease", "grant", str(ttl)))
    assert m, "unexpected grant output"
    return m.group(1), int(m.group(2))


def time_to_live(ward: WardProcess, lease: str, *flags: str) -> tuple[int, int, str]:
    """(granted TTL, remaining, the rest of the line) as etcdctl prints them."""
    out = ctl(ward, "lease", "timetolive", lease, *flags)
    m = TIME_TO_LIVE.match(out)
    assert m, out
    return int(m.group(2)), int(m.group(3)), m.group(4)


@pytest.fixture
def chan(ward: WardProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(ward.endpoint) as ch:
        yield ch


def lease_stub(ch: grpc.Channel) -> rpc_pb2_grpc.LeaseStub:
    return rpc_pb2_grpc.LeaseStub(ch)


def keys(ward: WardProcess, prefix: str) -> list[str]:
    out = ctl(ward, "get", "--prefix", prefix, "--keys-only")
    return [line for line in out.splitlines() if line]


# ---- etcdctl lease ... ----


def test_etcdctl_grant_then_timetolive_lists_the_granted_ttl_and_attached_keys(
    ward: WardProcess,
) -> None:
    lease, ttl = grant(ward, 60)
    assert ttl == 60
    assert ctl(ward, "put", "--lease", lease, "k2", "v") == "OK"
    assert ctl(ward, "put", "--lease", lease, "k1", "v") == "OK"
    granted, remaining, rest = time_to_live(ward, lease, "--keys")
    assert granted == 60 and 57 <= remaining <= 59
    assert rest == ", attached keys([k1 k2])"
    granted, _, rest = time_to_live(ward, lease)
    assert rest == ""


def test_etcdctl_timetolive_of_an_unknown_lease_says_it_expired(ward: WardProcess) -> None:
    assert ctl(ward, "lease", "timetolive", "1234") == "lease 0000000000001234 already expired"


def test_a_ttl_below_the_minimum_is_raised_to_etcds_two_seconds(ward: WardProcess) -> None:
    assert grant(ward, 1)[1] == 2


def test_a_ttl_above_the_maximum_is_refused_with_etcds_error(ward: WardProcess) -> None:
    res = etcdctl(ward.endpoint, "lease", "grant", "9000000001")
    assert res.returncode != 0
    assert "Error: failed to grant lease (etcdserver: too large lease TTL)" in res.stderr
    assert grant(ward, 9_000_000_000)[1] == 9_000_000_000


def test_etcdctl_lease_list_shows_every_lease_until_revoked(ward: WardProcess) -> None:
    a, _ = grant(ward, 60)
    b, _ = grant(ward, 30)
    out = ctl(ward, "lease", "list").splitlines()
    assert out[0] == "found 2 leases"
    assert out[1:] == [b, a]  # soonest expiry first, as etcd lists them
    ctl(ward, "lease", "revoke", b)
    assert ctl(ward, "lease", "list").splitlines() == ["found 1 leases", a]


def test_etcdctl_revoke_deletes_the_keys_and_a_second_revoke_is_not_found(
    ward: WardProcess,
) -> None:
    lease, _ = grant(ward, 60)
    for k in ("r/a", "r/b"):
        ctl(ward, "put", "--lease", lease, k, "v")
    ctl(ward, "put", "r/keep", "v")
    assert ctl(ward, "lease", "revoke", lease) == f"lease {lease} revoked"
    assert keys(ward, "r/") == ["r/keep"]
    res = etcdctl(ward.endpoint, "lease", "revoke", lease)
    assert res.returncode != 0
    assert "Error: failed to revoke lease (etcdserver: requested lease not found)" in res.stderr


def test_etcdctl_put_with_an_unknown_lease_is_refused(ward: WardProcess) -> None:
    res = etcdctl(ward.endpoint, "put", "--lease", "1234", "k", "v")
    assert res.returncode != 0
    assert "etcdserver: requested lease not found" in res.stderr


def test_etcdctl_keep_alive_once_answers_the_ttl_and_fails_for_an_unknown_lease(
    ward: WardProcess,
) -> None:
    lease, _ = grant(ward, 30)
    assert ctl(ward, "lease", "keep-alive", "--once", lease) == (
        f"lease {lease} keepalived with TTL(30)"
    )
    res = etcdctl(ward.endpoint, "lease", "keep-alive", "--once", "1234")
    assert res.returncode != 0
    assert "etcdserver: requested lease not found" in res.stderr


# ---- the stubs ----


def test_a_requested_id_is_kept_and_one_in_use_is_refused(chan: grpc.Channel) -> None:
    stub = lease_stub(chan)
    assert stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=10, ID=77)).ID == 77
    with pytest.raises(grpc.RpcError) as e:
        stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=10, ID=77))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details() == "etcdserver: lease already exists"


def test_server_chosen_ids_are_positive_and_distinct(chan: grpc.Channel) -> None:
    stub = lease_stub(chan)
    ids = [stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=10)).ID for _ in range(20)]
    assert all(i > 0 for i in ids)
    assert len(set(ids)) == 20


def test_time_to_live_of_an_unknown_lease_is_ttl_minus_one(chan: grpc.Channel) -> None:
    resp = lease_stub(chan).LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=12345, keys=True))
    assert (resp.ID, resp.TTL, resp.grantedTTL, list(resp.keys)) == (12345, -1, 0, [])
    assert resp.header.revision >= 1 and resp.header.cluster_id


def test_revoke_answers_with_the_revision_that_deleted_the_keys(chan: grpc.Channel) -> None:
    stub = lease_stub(chan)
    kv = rpc_pb2_grpc.KVStub(chan)
    lid = stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)).ID
    put = kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"1", lease=lid))
    resp = stub.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lid))
    assert resp.header.revision == put.header.revision + 1
    # No keys: nothing deleted, no new revision.
    lid = stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)).ID
    assert stub.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lid)).header.revision == (
        resp.header.revision
    )


def test_one_keep_alive_stream_answers_each_request_in_order(chan: grpc.Channel) -> None:
    stub = lease_stub(chan)
    lid = stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID
    reqs = [rpc_pb2.LeaseKeepAliveRequest(ID=i) for i in (lid, 999, lid)]
    resps = list(stub.LeaseKeepAlive(iter(reqs), timeout=10))
    assert [(r.ID, r.TTL) for r in resps] == [(lid, 30), (999, 0), (lid, 30)]
    assert all(r.header.revision >= 1 and r.header.member_id for r in resps)


def test_keep_alives_on_many_connections_reach_the_lessor(ward: WardProcess) -> None:
    # Each connection lands on the core or on a worker (SO_REUSEPORT); from a worker every
    # keep-alive is forwarded to the core's lessor.
    with grpc.insecure_channel(ward.endpoint) as ch:
        lid = lease_stub(ch).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30)).ID
    for _ in range(8):
        with grpc.insecure_channel(ward.endpoint) as ch:
            req = iter([rpc_pb2.LeaseKeepAliveRequest(ID=lid)])
            resps = list(lease_stub(ch).LeaseKeepAlive(req, timeout=10))
            assert [(r.ID, r.TTL) for r in resps] == [(lid, 30)]


# ---- expiry ----


class WatchStream:
    """A Watch on a prefix, read on a thread."""

    def __init__(self, ch: grpc.Channel, prefix: bytes) -> None:
        self.responses: queue.Queue[rpc_pb2.WatchResponse] = queue.Queue()
        end = prefix[:-1] + bytes((prefix[-1] + 1,))
        create = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=prefix, range_end=end)
        )
        self._done = threading.Event()
        self._call = rpc_pb2_grpc.WatchStub(ch).Watch(self._requests(create))
        threading.Thread(target=self._pump, daemon=True).start()
        assert self.next().created

    def _requests(self, first: rpc_pb2.WatchRequest) -> Iterator[rpc_pb2.WatchRequest]:
        yield first
        self._done.wait()

    def _pump(self) -> None:
        try:
            for resp in self._call:
                self.responses.put(resp)
        except grpc.RpcError:
            pass

    def next(self, timeout: float = 10.0) -> rpc_pb2.WatchResponse:
        return self.responses.get(timeout=timeout)

    def close(self) -> None:
        self._done.set()
        self._call.cancel()


def test_expired_lease_deletes_its_keys_in_one_revision_under_a_running_watch(
    ward: WardProcess, chan: grpc.Channel
) -> None:
    lease, _ = grant(ward, 2)
    for k in ("x/3", "x/1", "x/2"):
        ctl(ward, "put", "--lease", lease, k, "v")
    ctl(ward, "put", "x/stays", "v")
    watch = WatchStream(chan, b"x/")
    try:
        start = time.monotonic()
        resp = watch.next(timeout=10)
        waited = time.monotonic() - start
        assert [(e.type, e.kv.key) for e in resp.events] == [
            (kv_pb2.Event.DELETE, b"x/1"),
            (kv_pb2.Event.DELETE, b"x/2"),
            (kv_pb2.Event.DELETE, b"x/3"),
        ]
        assert {e.kv.mod_revision for e in resp.events} == {resp.header.revision}
        assert waited < 3.0
        with pytest.raises(queue.Empty):
            watch.next(timeout=0.5)  # expired once: no second deletion
    finally:
        watch.close()
    assert keys(ward, "x/") == ["x/stays"]
    assert ctl(ward, "lease", "timetolive", lease) == f"lease {lease} already expired"
    assert ctl(ward, "lease", "list") == "found 0 leases"


@pytest.mark.slow
def test_keep_alive_keeps_a_lease_past_its_ttl_and_it_expires_once_they_stop(
    ward: WardProcess,
) -> None:
    lease, _ = grant(ward, 2)
    ctl(ward, "put", "--lease", lease, "alive", "v")
    for _ in range(4):  # 3 s in all, more than the TTL
        time.sleep(0.75)
        ctl(ward, "lease", "keep-alive", "--once", lease)
    assert keys(ward, "alive") == ["alive"]
    deadline = time.monotonic() + 5
    while keys(ward, "alive") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert keys(ward, "alive") == []


@pytest.mark.slow
def test_a_lease_survives_a_restart_with_its_remaining_ttl_refreshed(ward: WardProcess) -> None:
    lease, _ = grant(ward, 20)
    ctl(ward, "put", "--lease", lease, "durable", "v")
    time.sleep(3)
    assert time_to_live(ward, lease)[1] <= 17
    ward.restart()
    # etcd's Promote: the full TTL again plus an election timeout (1 s), not 17 s minus downtime.
    granted, remaining, rest = time_to_live(ward, lease, "--keys")
    assert granted == 20 and 18 <= remaining <= 21
    assert rest == ", attached keys([durable])"


@pytest.mark.slow
def test_a_lease_that_ran_out_while_the_server_was_down_is_not_expired_at_start(
    tmp_path: Path,
) -> None:
    ward = start_ward(tmp_path)
    try:
        lease, _ = grant(ward, 3)
        ctl(ward, "put", "--lease", lease, "k", "v")
        ward.stop()
        time.sleep(4)  # longer than the TTL
        ward.start()
        assert keys(ward, "k") == ["k"]
        start = time.monotonic()
        while keys(ward, "k") and time.monotonic() - start < 10:
            time.sleep(0.1)
        # It gets its TTL again (3 s) plus an election timeout (1 s) from the restart on.
        assert keys(ward, "k") == []
        assert time.monotonic() - start >= 2.0
    finally:
        ward.stop()
