"""The Lock and Election services against a real `ward`: through the stubs, compared with the real
etcd 3.4, and etcdctl's own lock and elect recipes (which use leases, txns and watches)."""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.line_process import LineProcess
from tests.e2e.ward_process import ETCD, ETCDCTL, WardProcess, start_etcd
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from wardpb.v3electionpb import v3election_pb2 as epb
from wardpb.v3electionpb import v3election_pb2_grpc as epb_grpc
from wardpb.v3lockpb import v3lock_pb2 as lpb
from wardpb.v3lockpb import v3lock_pb2_grpc as lpb_grpc

UNKNOWN = grpc.StatusCode.UNKNOWN


class Ctl(LineProcess):
    """A long-running etcdctl (lock, elect) in its own process group; stdout lines on a queue."""

    def __init__(self, endpoint: str, *args: str) -> None:
        super().__init__(
            [str(ETCDCTL), "--endpoints", endpoint, *args], capture_stderr=False, line_timeout=10.0
        )


@pytest.fixture
def ctls() -> Iterator[list[Ctl]]:
    """Every etcdctl a test starts; all of them are killed at the end."""
    started: list[Ctl] = []
    try:
        yield started
    finally:
        for c in started:
            c.kill()


@pytest.fixture
def chan(ward: WardProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(ward.endpoint) as ch:
        yield ch


def grant(ch: grpc.Channel, ttl: int = 30) -> int:
    return rpc_pb2_grpc.LeaseStub(ch).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl)).ID


def keys_under(ch: grpc.Channel, prefix: bytes) -> list[bytes]:
    end = prefix[:-1] + bytes((prefix[-1] + 1,))
    resp = rpc_pb2_grpc.KVStub(ch).Range(
        rpc_pb2.RangeRequest(key=prefix, range_end=end, keys_only=True)
    )
    return [kv.key for kv in resp.kvs]


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def rpc_error(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()


# ---- etcdctl lock / elect ----


def test_etcdctl_lock_second_locker_waits_until_the_first_releases(
    ward: WardProcess, ctls: list[Ctl]
) -> None:
    first = Ctl(ward.endpoint, "lock", "mylock")
    ctls.append(first)
    assert first.line().startswith("mylock/")
    second = Ctl(ward.endpoint, "lock", "mylock", "echo", "second-got-it")
    ctls.append(second)
    assert second.quiet_for(1.5)
    first.signal(signal.SIGTERM)  # etcdctl unlocks and revokes its session on a signal
    assert second.line() == "second-got-it"
    assert second.proc.wait(timeout=10) == 0


def test_etcdctl_lock_of_a_killed_holder_passes_on_when_its_lease_expires(
    ward: WardProcess, ctls: list[Ctl]
) -> None:
    first = Ctl(ward.endpoint, "lock", "--ttl", "2", "klock")
    ctls.append(first)
    assert first.line().startswith("klock/")
    second = Ctl(ward.endpoint, "lock", "klock", "echo", "got-it")
    ctls.append(second)
    assert second.quiet_for(0.5)
    first.kill()  # no unlock, no revoke: only the lease's expiry frees the lock
    start = time.monotonic()
    assert second.line(timeout=10) == "got-it"
    assert time.monotonic() - start <= 5.0


def test_etcdctl_elect_one_leader_at_a_time_and_the_observer_sees_each(
    ward: WardProcess, ctls: list[Ctl]
) -> None:
    observer = Ctl(ward.endpoint, "elect", "-l", "myelect")
    ctls.append(observer)
    alice = Ctl(ward.endpoint, "elect", "myelect", "alice")
    ctls.append(alice)
    key = alice.line()
    assert key.startswith("myelect/") and alice.line() == "alice"
    assert (observer.line(), observer.line()) == (key, "alice")
    bob = Ctl(ward.endpoint, "elect", "myelect", "bob")
    ctls.append(bob)
    assert bob.quiet_for(1.0)
    alice.signal(signal.SIGINT)  # resigns
    bob_key = bob.line()
    assert bob_key.startswith("myelect/") and bob_key != key and bob.line() == "bob"
    assert (observer.line(), observer.line()) == (bob_key, "bob")


# ---- the Lock service ----


def test_lock_is_taken_in_creation_order_and_unlock_passes_it_on(chan: grpc.Channel) -> None:
    lock = lpb_grpc.LockStub(chan)
    l1, l2 = grant(chan), grant(chan)
    first = lock.Lock(lpb.LockRequest(name=b"lk", lease=l1), timeout=5)
    assert first.key == b"lk/" + f"{l1:x}".encode()
    # The same lease asks again: it holds the lock already, nothing is written.
    again = lock.Lock(lpb.LockRequest(name=b"lk", lease=l1), timeout=5)
    assert (again.key, again.header.revision) == (first.key, first.header.revision)
    waiting = lock.Lock.future(lpb.LockRequest(name=b"lk", lease=l2), timeout=15)
    time.sleep(1.0)
    assert not waiting.done()
    unlocked = lock.Unlock(lpb.UnlockRequest(key=first.key), timeout=5)
    second = waiting.result(timeout=10)
    assert second.key == b"lk/" + f"{l2:x}".encode()
    assert second.header.revision >= unlocked.header.revision
    assert keys_under(chan, b"lk/") == [second.key]


def test_lock_without_a_lease_takes_a_new_sixty_second_one(chan: grpc.Channel) -> None:
    resp = lpb_grpc.LockStub(chan).Lock(lpb.LockRequest(name=b"nolease"), timeout=5)
    lease = int(resp.key.removeprefix(b"nolease/"), 16)
    ttl = rpc_pb2_grpc.LeaseStub(chan).LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease))
    assert ttl.grantedTTL == 60


def test_a_canceled_lock_removes_its_claim(chan: grpc.Channel) -> None:
    lock = lpb_grpc.LockStub(chan)
    l1, l2 = grant(chan), grant(chan)
    held = lock.Lock(lpb.LockRequest(name=b"cl", lease=l1), timeout=5)
    code, _ = rpc_error(lambda: lock.Lock(lpb.LockRequest(name=b"cl", lease=l2), timeout=1))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert eventually(lambda: keys_under(chan, b"cl/") == [held.key])


def test_a_waiter_whose_lease_expired_is_told_its_session_expired(chan: grpc.Channel) -> None:
    lock = lpb_grpc.LockStub(chan)
    holder = lock.Lock(lpb.LockRequest(name=b"ex", lease=grant(chan)), timeout=5)
    short = grant(chan, 2)
    waiting = lock.Lock.future(lpb.LockRequest(name=b"ex", lease=short), timeout=20)
    # First the waiter's key must be there (else "one key" would be the holder's alone) ...
    assert eventually(lambda: len(keys_under(chan, b"ex/")) == 2, timeout=6)
    # ... then its lease expires and takes the key with it.
    assert eventually(lambda: len(keys_under(chan, b"ex/")) == 1, timeout=6)
    lock.Unlock(lpb.UnlockRequest(key=holder.key), timeout=5)
    with pytest.raises(grpc.RpcError) as e:
        waiting.result(timeout=10)
    assert (e.value.code(), e.value.details()) == (UNKNOWN, "mutex: session is expired")


# ---- the Election service ----


def test_campaign_proclaim_leader_resign(chan: grpc.Channel) -> None:
    el = epb_grpc.ElectionStub(chan)
    lease = grant(chan)
    won = el.Campaign(epb.CampaignRequest(name=b"e", lease=lease, value=b"v1"), timeout=5)
    leader = won.leader
    assert (leader.name, leader.key, leader.lease) == (b"e", b"e/" + f"{lease:x}".encode(), lease)
    assert leader.rev == won.header.revision
    now = el.Leader(epb.LeaderRequest(name=b"e"))
    assert (now.kv.key, now.kv.value, now.kv.create_revision) == (leader.key, b"v1", leader.rev)

    el.Proclaim(epb.ProclaimRequest(leader=leader, value=b"v2"))
    assert el.Leader(epb.LeaderRequest(name=b"e")).kv.value == b"v2"
    stale = epb.LeaderKey(name=leader.name, key=leader.key, rev=leader.rev + 100, lease=lease)
    assert rpc_error(lambda: el.Proclaim(epb.ProclaimRequest(leader=stale, value=b"x"))) == (
        UNKNOWN,
        "election: not leader",
    )
    # Resigning with a stale key is no error, and changes nothing.
    el.Resign(epb.ResignRequest(leader=stale))
    assert el.Leader(epb.LeaderRequest(name=b"e")).kv.value == b"v2"

    el.Resign(epb.ResignRequest(leader=leader))
    assert rpc_error(lambda: el.Leader(epb.LeaderRequest(name=b"e"))) == (
        UNKNOWN,
        "election: no leader",
    )


def test_campaigning_again_with_the_same_lease_keeps_the_place_and_updates_the_value(
    chan: grpc.Channel,
) -> None:
    el = epb_grpc.ElectionStub(chan)
    lease = grant(chan)
    first = el.Campaign(epb.CampaignRequest(name=b"re", lease=lease, value=b"a"), timeout=5)
    again = el.Campaign(epb.CampaignRequest(name=b"re", lease=lease, value=b"b"), timeout=5)
    assert again.leader == first.leader
    assert again.header.revision == first.header.revision  # etcd answers the txn's header
    assert el.Leader(epb.LeaderRequest(name=b"re")).kv.value == b"b"


def test_a_second_candidate_waits_for_the_leader_to_resign(chan: grpc.Channel) -> None:
    el = epb_grpc.ElectionStub(chan)
    l1, l2 = grant(chan), grant(chan)
    first = el.Campaign(epb.CampaignRequest(name=b"w", lease=l1, value=b"one"), timeout=5)
    waiting = el.Campaign.future(epb.CampaignRequest(name=b"w", lease=l2, value=b"two"), timeout=15)
    time.sleep(1.0)
    assert not waiting.done()
    el.Resign(epb.ResignRequest(leader=first.leader))
    second = waiting.result(timeout=10)
    assert second.leader.key == b"w/" + f"{l2:x}".encode()
    assert el.Leader(epb.LeaderRequest(name=b"w")).kv.value == b"two"


def test_a_canceled_campaign_withdraws_its_candidate(chan: grpc.Channel) -> None:
    el = epb_grpc.ElectionStub(chan)
    first = el.Campaign(epb.CampaignRequest(name=b"c", lease=grant(chan), value=b"1"), timeout=5)
    code, _ = rpc_error(
        lambda: el.Campaign(
            epb.CampaignRequest(name=b"c", lease=grant(chan), value=b"2"), timeout=1
        )
    )
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert eventually(lambda: keys_under(chan, b"c/") == [first.leader.key])


def test_observe_streams_the_leader_its_new_values_and_the_next_leader(chan: grpc.Channel) -> None:
    el = epb_grpc.ElectionStub(chan)
    seen: queue.Queue[epb.LeaderResponse] = queue.Queue()
    stream = el.Observe(epb.LeaderRequest(name=b"o"), timeout=30)

    def pump() -> None:
        with contextlib.suppress(grpc.RpcError):
            for resp in stream:
                seen.put(resp)

    threading.Thread(target=pump, daemon=True).start()
    try:
        time.sleep(0.3)
        assert seen.empty()  # nobody leads yet: the observer waits for the first put
        l1, l2 = grant(chan), grant(chan)
        first = el.Campaign(epb.CampaignRequest(name=b"o", lease=l1, value=b"a"), timeout=5)
        got = seen.get(timeout=5)
        assert (got.kv.key, got.kv.value) == (first.leader.key, b"a")
        assert got.header.revision == got.kv.mod_revision
        proclaimed = el.Proclaim(epb.ProclaimRequest(leader=first.leader, value=b"b"))
        got = seen.get(timeout=5)
        assert (got.kv.value, got.header.revision) == (b"b", proclaimed.header.revision)
        waiting = el.Campaign.future(
            epb.CampaignRequest(name=b"o", lease=l2, value=b"c"), timeout=15
        )
        el.Resign(epb.ResignRequest(leader=first.leader))
        second = waiting.result(timeout=10)
        got = seen.get(timeout=5)
        assert (got.kv.key, got.kv.value) == (second.leader.key, b"c")
    finally:
        stream.cancel()


# ---- errors, compared with the real etcd ----


def _error_table(ch: grpc.Channel) -> list[tuple[str, str]]:
    """What each misuse of Lock and Election answers: (status code, message)."""
    lock = lpb_grpc.LockStub(ch)
    el = epb_grpc.ElectionStub(ch)
    calls: list[Callable[[], object]] = [
        lambda: lock.Lock(lpb.LockRequest(name=b"l", lease=4242), timeout=5),
        lambda: lock.Unlock(lpb.UnlockRequest(), timeout=5),
        lambda: el.Leader(epb.LeaderRequest(name=b"none"), timeout=5),
        lambda: el.Proclaim(epb.ProclaimRequest(value=b"x"), timeout=5),
        lambda: el.Resign(epb.ResignRequest(), timeout=5),
        lambda: el.Campaign(epb.CampaignRequest(name=b"e", lease=4242, value=b"v"), timeout=5),
    ]
    out = []
    for call in calls:
        code, details = rpc_error(call)
        out.append((code.name, details))
    return out


@pytest.mark.skipif(not ETCD.exists(), reason="etcd-server is not installed")
def test_lock_and_election_errors_are_etcds(chan: grpc.Channel, tmp_path: Path) -> None:
    etcd = start_etcd(tmp_path)
    try:
        with grpc.insecure_channel(etcd.endpoint) as etcd_chan:
            expected = _error_table(etcd_chan)
    finally:
        etcd.stop()
    assert expected[0] == ("UNKNOWN", "etcdserver: requested lease not found")
    assert _error_table(chan) == expected
