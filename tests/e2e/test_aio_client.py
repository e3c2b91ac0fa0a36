"""`ward.aio.Client` against real servers: the same answers as `ward.Client`, watch resume
across a restart, failover when a member dies, token refresh after expiry, mutual TLS with the
credentials in a data directory, lease keep-alive, lock exclusion and etcd's errors.

Each test drives its coroutine with `asyncio.run`; every client is closed (`async with`) before
its loop ends, since a `grpc.aio` channel left open can wedge later gRPC calls in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from tests.e2e.cluster import running_cluster
from tests.e2e.tls_helpers import start_tls_ward
from tests.e2e.ward_process import WardProcess, free_port, start_ward
from ward import Client, SortOrder, SortTarget, txn
from ward import aio as ward_aio
from ward.credentials import local_credentials
from ward.errors import (
    CompactedError,
    DeadlineExceededError,
    EmptyKeyError,
    EtcdError,
    FutureRevisionError,
    LeaseNotFoundError,
    RoleNotFoundError,
    UserNotFoundError,
)
from wardpb.etcdserverpb import rpc_pb2

AsyncClient = ward_aio.Client


def _comparable(msg: Message) -> bytes:
    """`msg` without what differs between two servers given the same requests (their IDs and
    Raft terms), as bytes; revisions stay."""
    copy = type(msg)()
    copy.CopyFrom(msg)
    _strip_identity(copy)
    return copy.SerializeToString(deterministic=True)


def _strip_identity(msg: Message) -> None:
    if isinstance(msg, rpc_pb2.ResponseHeader):
        msg.cluster_id = msg.member_id = msg.raft_term = 0
        return
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated:
            for item in value:
                _strip_identity(item)
        else:
            _strip_identity(value)


# Every KV operation with its options, run in order on both clients (each on its own server).
_KV_SCRIPT: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("put", ("a", "1"), {}),
    ("put", ("b", b"\x00\xff"), {"prev_kv": True}),
    ("put", ("a", "2"), {"prev_kv": True}),
    ("put", ("c/1", "x"), {}),
    ("put", ("c/2", "y"), {}),
    ("put", ("c/3", "z"), {}),
    ("get", ("a",), {}),
    ("get", ("a", "c"), {}),
    ("get", ("c/",), {"prefix": True, "limit": 2}),
    ("get", ("b",), {"from_key": True, "keys_only": True}),
    ("get", ("",), {"prefix": True, "count_only": True}),
    ("get", ("c/",), {"prefix": True, "sort_order": SortOrder.DESCEND}),
    ("get", ("",), {"from_key": True, "sort_target": SortTarget.VALUE}),
    ("get", ("",), {"from_key": True, "sort_target": SortTarget.MOD, "sort_order": 1}),
    ("get", ("a",), {"revision": 2}),
    ("get", ("",), {"from_key": True, "min_mod_revision": 4, "max_mod_revision": 5}),
    ("get", ("",), {"from_key": True, "min_create_revision": 3, "max_create_revision": 6}),
    ("get", ("a",), {"serializable": True}),
    ("get", ("missing",), {}),
    (
        "txn",
        ([txn.value("a").eq("2")], [txn.put("a", "3", prev_kv=True), txn.get("c/", prefix=True)]),
        {"failure": [txn.get("a")]},
    ),
    (
        "txn",
        ([txn.version("a").gt(5)], [txn.put("never", "x")], [txn.get("a"), txn.delete("b")]),
        {},
    ),
    (
        "txn",
        (
            [txn.mod_revision("c/1").lt(100)],
            [txn.txn([txn.create_revision("c/2").ne(0)], [txn.delete("c/", prefix=True)])],
        ),
        {},
    ),
    ("request", (rpc_pb2.RangeRequest(key=b"a"),), {}),
    ("request", (rpc_pb2.PutRequest(key=b"r", value=b"v", prev_kv=True),), {}),
    ("delete", ("a",), {"prev_kv": True}),
    ("delete", ("",), {"from_key": True}),
    ("put", ("z", "last"), {}),
    ("compact", (5,), {"physical": True}),
    ("get", ("z",), {}),
]


def test_kv_and_txn_answers_are_those_of_the_sync_client(tmp_path: Path) -> None:
    # Two servers given the same requests in the same order answer alike (revisions too).
    for name in ("sync", "async"):
        (tmp_path / name).mkdir()
    with (
        start_ward(tmp_path / "sync", workers=1) as sync_server,
        start_ward(tmp_path / "async", workers=1) as async_server,
    ):
        with Client(sync_server.endpoint) as c:
            expected = [_comparable(getattr(c, m)(*a, **kw)) for m, a, kw in _KV_SCRIPT]

        async def run() -> list[Any]:
            async with AsyncClient(async_server.endpoint) as ac:
                return [await getattr(ac, m)(*a, **kw) for m, a, kw in _KV_SCRIPT]

        answers = asyncio.run(run())
    for (method, args, kwargs), want, have in zip(_KV_SCRIPT, expected, answers, strict=True):
        assert _comparable(have) == want, (method, args, kwargs)
    # And the answers are the ones asked for, not merely alike.
    by_call = dict(zip((f"{m}{a}{kw}" for m, a, kw in _KV_SCRIPT), answers, strict=False))
    assert by_call["get('a',){}"].kvs[0].value == b"2"
    assert [kv.key for kv in by_call["get('c/',){'prefix': True, 'limit': 2}"].kvs] == [
        b"c/1",
        b"c/2",
    ]
    assert [a.succeeded for a in answers if isinstance(a, rpc_pb2.TxnResponse)] == [
        True,
        False,
        True,
    ]
    assert answers[-1].kvs[0].value == b"last"


def test_other_calls_answer_as_the_sync_client_does(ward: WardProcess) -> None:
    """Maintenance, cluster, lease, election and auth calls: each works, and reads agree."""

    async def run() -> None:
        async with AsyncClient(ward.endpoint) as ac, _in_thread(Client(ward.endpoint)) as c:
            # Reads of the same state: the same answer from both clients.
            for method, args in (
                ("member_list", ()),
                ("alarm_list", ()),
                ("hash_kv", ()),
                ("user_list", ()),
                ("role_list", ()),
                ("lease_leases", ()),
            ):
                assert _comparable(await getattr(ac, method)(*args)) == _comparable(
                    await asyncio.to_thread(getattr(c, method), *args)
                ), method
            assert (await ac.status()).version == (await asyncio.to_thread(c.status)).version
            assert (await ac.status(ward.endpoint)).header.member_id
            await ac.defragment()
            assert list((await ac.alarm_disarm()).alarms) == []

            async with contextlib.aclosing(ac.snapshot()) as snapshot:
                chunks = [chunk async for chunk in snapshot]
            assert sum(map(len, chunks)) > 0

            lease = await ac.lease_grant(30)
            assert (await ac.lease_keep_alive_once(lease.ID)).TTL == 30
            await ac.put("leased", "v", lease=lease.ID)
            ttl = await ac.lease_time_to_live(lease.ID, keys=True)
            assert list(ttl.keys) == [b"leased"]

            # An election: campaign, observe, proclaim, resign.
            won = await ac.campaign("e", "first", lease.ID)
            observed: list[bytes] = []

            async def observe() -> None:
                async with contextlib.aclosing(ac.observe("e")) as leaders:
                    async for resp in leaders:
                        observed.append(resp.kv.value)
                        if len(observed) == 2:
                            return

            watching = asyncio.create_task(observe())
            while not observed:  # the current leader comes first: the stream is open
                await asyncio.sleep(0.05)
            await ac.proclaim(won.leader, "second")
            await asyncio.wait_for(watching, 10)
            assert observed == [b"first", b"second"]
            assert (await ac.election_leader("e")).kv.value == b"second"
            await ac.resign(won.leader)
            await ac.lease_revoke(lease.ID)
            assert (await ac.get("leased")).count == 0

            # Auth administration, then a token-carrying client.
            await ac.role_add("reader")
            await ac.role_grant_permission("reader", 0, "pub/", "pub0")
            assert len((await ac.role_get("reader")).perm) == 1
            await ac.role_revoke_permission("reader", "pub/", "pub0")
            await ac.user_add("alice", "alice-password")
            await ac.user_grant_role("alice", "reader")
            assert list((await ac.user_get("alice")).roles) == ["reader"]
            await ac.user_revoke_role("alice", "reader")
            await ac.user_change_password("alice", "alice-password-2")
            await ac.user_add("root", "root-password")
            await ac.user_grant_role("root", "root")
            await ac.auth_enable()
            async with AsyncClient(ward.endpoint, user="root", password="root-password") as root:
                await root.put("as-root", "yes")
                await root.auth_disable()
            await ac.user_delete("alice")
            await ac.role_delete("reader")
            assert [m.name for m in (await ac.member_list()).members] == ["w"]

    asyncio.run(run())


@contextlib.asynccontextmanager
async def _in_thread(client: Client) -> Any:
    # A sync client used from a coroutine (through to_thread), closed on the way out.
    try:
        yield client
    finally:
        client.close()


async def _await_leader(c: ward_aio.Client, timeout: float = 10.0) -> None:
    # A restarted single member leads after an election timeout; writes before fail at once.
    deadline = time.monotonic() + timeout
    while True:
        try:
            await c.get("any", timeout=1)
            return
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _collect(watcher: ward_aio.Watcher, count: int, timeout: float = 30.0) -> list[int]:
    """The mod revisions of the next `count` events, then of any that come within a second
    more (there should be none: repeats would show up there)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        resp = await watcher.get(timeout=1)
        if resp is not None:
            seen.extend(ev.kv.mod_revision for ev in resp.events)
    while (resp := await watcher.get(timeout=1)) is not None:
        seen.extend(ev.kv.mod_revision for ev in resp.events)
    return seen


def test_watch_resumes_across_a_server_restart_without_lost_or_repeated_events(
    tmp_path: Path,
) -> None:
    ward = start_ward(tmp_path, workers=1)

    async def run() -> None:
        async with AsyncClient(ward.endpoint, command_timeout=20) as c:
            first = (await c.put("w/0", "0")).header.revision
            async with c.watch("w/", prefix=True, start_revision=first) as watcher:
                for i in range(1, 5):
                    await c.put(f"w/{i}", str(i))
                await asyncio.to_thread(ward.restart)  # the loop keeps running meanwhile
                await _await_leader(c)
                for i in range(5, 10):
                    await c.put(f"w/{i}", str(i))
                seen = await _collect(watcher, 10)
            assert seen == list(range(first, first + 10))
            assert watcher.reconnects >= 1
            assert watcher.next_revision == first + 10

    try:
        asyncio.run(run())
    finally:
        ward.stop()


@pytest.mark.slow
def test_calls_and_a_watch_fail_over_when_a_member_is_killed(tmp_path: Path) -> None:
    with running_cluster(tmp_path, 3) as cluster:
        leader = cluster.leader()
        # Followers first: the member the client uses, and kills, is not the leader (writes in
        # flight when a leader dies have an unknown outcome, and no client retries them).
        order = [m for m in cluster.members if m is not leader] + [leader]

        async def run() -> None:
            async with AsyncClient([m.endpoint for m in order], command_timeout=10) as c:
                first = (await c.put("before", "1")).header.revision
                async with c.watch("after/", prefix=True) as watcher:
                    assert await watcher.wait_created(10)
                    active = c._active
                    assert active is not None
                    victim = next(m for m in cluster.members if m.endpoint in active.endpoint.raw)
                    victim.proc.kill9()
                    # Let the channel see the closed socket: a put caught on the wire as it
                    # closes has an unknown outcome and is rightly not retried.
                    await asyncio.sleep(1.0)
                    for i in range(20):
                        await c.put(f"after/{i}", str(i))
                    got = await c.get("after/", prefix=True)
                    assert [kv.value for kv in got.kvs] == sorted(
                        str(i).encode() for i in range(20)
                    )
                    assert (await c.get("before")).kvs[0].value == b"1"
                    assert c._active is not None and c._active is not active
                    seen = await _collect(watcher, 20)
                # Every put after the kill, once each, in order.
                assert seen == list(range(first + 1, first + 21))
                assert watcher.reconnects >= 1

        asyncio.run(run())


def test_an_expired_token_is_refreshed_for_concurrent_calls(tmp_path: Path) -> None:
    ward = start_ward(
        tmp_path, "--bcrypt-cost", "4", "--auth-token", "simple", "--auth-token-ttl", "2"
    )

    async def run() -> None:
        async with AsyncClient(ward.endpoint) as admin:
            await admin.user_add("root", "root-password")
            await admin.user_grant_role("root", "root")
            await admin.auth_enable()
        async with AsyncClient(ward.endpoint, user="root", password="root-password") as c:
            await c.put("t", "1")
            token = c._token
            assert token
            await asyncio.sleep(4)  # the simple token expires after 2 s without use
            await asyncio.gather(*(c.put(f"t/{i}", str(i)) for i in range(5)))
            assert (await c.get("t/", prefix=True)).count == 5
            assert c._token and c._token != token
        # A wrong password is etcd's error, not a retry loop.
        async with AsyncClient(ward.endpoint, user="root", password="wrong") as bad:
            with pytest.raises(EtcdError, match="authentication failed"):
                await bad.get("t")

    try:
        asyncio.run(run())
    finally:
        ward.stop()


def test_mutual_tls_with_the_credentials_of_a_data_directory(tmp_path: Path) -> None:
    ward = start_tls_ward(tmp_path / "tls", workers=1)
    creds = local_credentials({"WARD_DATA_DIR": str(ward.data_dir)})
    assert set(creds) == {"cacert", "cert", "key"}
    url = f"https://{ward.endpoint}"

    async def run() -> None:
        async with AsyncClient(url, **creds) as c:
            await c.put("secure", "yes")
            assert (await c.get("secure")).kvs[0].value == b"yes"
        # Trusting whatever certificate the server shows (fetched off the loop) also works.
        async with AsyncClient(
            url, cert=creds["cert"], key=creds["key"], insecure_skip_verify=True
        ) as c:
            assert (await c.get("secure")).kvs[0].value == b"yes"
        # Without a client certificate the handshake is refused.
        async with AsyncClient(url, cacert=creds["cacert"], dial_timeout=2) as c:
            with pytest.raises(EtcdError):
                await c.get("secure", timeout=3)

    try:
        asyncio.run(run())
    finally:
        ward.stop()


def test_keep_alive_keeps_a_lease_past_its_ttl_and_a_restart(tmp_path: Path) -> None:
    ward = start_ward(tmp_path, workers=1)

    async def run() -> None:
        async with AsyncClient(ward.endpoint, command_timeout=20) as c:
            lease = await c.lease_grant(2)
            await c.put("kept", "v", lease=lease.ID)
            async with c.keep_alive(lease.ID) as keeper:
                await asyncio.sleep(5)  # more than twice the TTL
                assert (await c.get("kept")).count == 1
                assert (await c.lease_time_to_live(lease.ID)).TTL > 0
                renewal = await keeper.get(timeout=5)
                assert renewal is not None and renewal.ID == lease.ID
                assert keeper.ttl == 2
                # The stream breaks with the server; renewals go on over a new one.
                await asyncio.to_thread(ward.restart)
                await _await_leader(c)
                await asyncio.sleep(5)
                assert (await c.lease_time_to_live(lease.ID)).TTL > 0
                assert keeper.reconnects >= 1
                while await keeper.get(timeout=0.1) is not None:
                    pass  # renewals from before the restart
                assert await keeper.get(timeout=5) is not None
            # Without renewals the lease runs out, and its key with it.
            deadline = time.monotonic() + 10
            while (await c.get("kept")).count and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
            assert (await c.get("kept")).count == 0
            assert (await c.lease_time_to_live(lease.ID)).TTL == -1

            # A keep-alive of a lease that is gone ends with etcd's error.
            gone = await c.lease_grant(30)
            await c.lease_revoke(gone.ID)
            with pytest.raises(LeaseNotFoundError):
                async with c.keep_alive(gone.ID) as keeper:
                    async for _renewal in keeper:
                        pytest.fail("a revoked lease was renewed")

    try:
        asyncio.run(run())
    finally:
        ward.stop()


def test_lock_excludes_between_two_clients(ward: WardProcess) -> None:
    async def run() -> None:
        async with AsyncClient(ward.endpoint) as a, AsyncClient(ward.endpoint) as b:
            lease_a = (await a.lease_grant(30)).ID
            lease_b = (await b.lease_grant(30)).ID
            held = await a.lock("L", lease_a)
            waiting = asyncio.create_task(b.lock("L", lease_b))
            await asyncio.sleep(1.0)
            assert not waiting.done()  # b waits while a holds the lock
            await a.unlock(held.key)
            got = await asyncio.wait_for(waiting, 10)
            assert got.key != held.key
            await b.unlock(got.key)

            # Both take turns at a read-modify-write: no two are ever inside at once, so no
            # increment is lost.
            await a.put("counter", "0")
            inside = 0

            async def worker(client: ward_aio.Client, lease_id: int) -> None:
                nonlocal inside
                for _ in range(8):
                    lock = await client.lock("counter-lock", lease_id, timeout=30)
                    inside += 1
                    assert inside == 1
                    value = int((await client.get("counter")).kvs[0].value)
                    await asyncio.sleep(0.01)
                    await client.put("counter", str(value + 1))
                    inside -= 1
                    await client.unlock(lock.key)

            await asyncio.gather(worker(a, lease_a), worker(b, lease_b))
            assert (await a.get("counter")).kvs[0].value == b"16"

    asyncio.run(run())


def test_errors_are_etcds_exceptions(ward: WardProcess) -> None:
    async def run() -> None:
        async with AsyncClient(ward.endpoint) as c:
            with pytest.raises(EmptyKeyError):
                await c.put("", "v")
            rev = (await c.put("k", "1")).header.revision
            await c.put("k", "2")
            with pytest.raises(FutureRevisionError):
                await c.get("k", revision=rev + 100)
            await c.compact(rev + 1)
            with pytest.raises(CompactedError):
                await c.get("k", revision=rev)
            with pytest.raises(LeaseNotFoundError):
                await c.lease_revoke(12345)
            with pytest.raises(LeaseNotFoundError):
                await c.lease_keep_alive_once(12345)
            with pytest.raises(UserNotFoundError):
                await c.user_get("nobody")
            with pytest.raises(RoleNotFoundError):
                await c.role_get("nothing")
            # A watch from a compacted revision ends with CompactedError.
            with pytest.raises(CompactedError):
                async with c.watch("k", start_revision=rev) as watcher:
                    async for _resp in watcher:
                        pytest.fail("a compacted watch delivered events")
            with pytest.raises(TypeError):
                await c.request(rpc_pb2.CompactionRequest(revision=1))  # type: ignore[call-overload]
        # Nobody listens: the call waits for a connection until its deadline.
        async with AsyncClient(f"127.0.0.1:{free_port()}") as nowhere:
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                await nowhere.get("k", timeout=1)
            assert time.monotonic() - started < 5

    asyncio.run(run())


def test_a_closed_client_refuses_calls_and_stops_its_watches(ward: WardProcess) -> None:
    async def run() -> None:
        c = AsyncClient(ward.endpoint)
        try:
            watcher = c.watch("x")
            assert await watcher.wait_created(10)
        finally:
            await c.close()
        # The watch ended with the client; later calls are refused, not hung.
        assert await watcher.get(timeout=5) is None
        with pytest.raises(ValueError, match="closed"):
            await c.get("x")

    asyncio.run(run())
