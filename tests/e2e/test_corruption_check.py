"""etcd's corruption checks on a 3-member cluster of real `ward` processes:
`--experimental-initial-corrupt-check` refuses to start a member whose data differs from its
peers', `--experimental-corrupt-check-time` makes the leader raise CORRUPT for it, and a healthy
cluster passes both. One member's data is made to differ by rewriting a value in its lmdb
keyspace while it is stopped (the revision stays: only the hash can tell)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import PUT, KVStore
from tests.e2e.auth_client import Client
from tests.e2e.ward_process import eventually
from wardpb.mvccpb import kv_pb2

pytestmark = pytest.mark.slow

CHECK_EVERY = ["--experimental-corrupt-check-time", "1s"]
INITIAL = ["--experimental-initial-corrupt-check"]


def _tamper(db_path: Path, key: bytes, value: bytes) -> None:
    """Rewrite the live version of `key` in place: same revision, other value."""
    backend = Backend(db_path, BackendOptions(map_size=3 << 30))
    try:
        with backend.write() as txn:
            item = KVStore(backend).get(txn, key)
            assert item is not None, f"{key!r} is not in {db_path}"
            rev = item.rev
            record = txn.get(rev, db=backend.hist)
            assert record[:1] == PUT
            kv = kv_pb2.KeyValue.FromString(record[1:])
            kv.value = value
            txn.put(rev, PUT + kv.SerializeToString(), db=backend.hist)
    finally:
        backend.close()


def _member_id(member: object) -> int:
    out = member.etcdctl("endpoint", "status", "-w", "json").stdout  # type: ignore[attr-defined]
    return int(json.loads(out)[0]["Status"]["header"]["member_id"])


def _json_lines(text: str, msg: str) -> list[dict[str, object]]:
    out = []
    for line in text.splitlines():
        if f'"msg":"{msg}"' in line:
            out.append(json.loads(line))
    return out


def test_a_healthy_cluster_passes_both_checks(tmp_path: Path) -> None:
    from cluster import Cluster

    c = Cluster(tmp_path, 3, extra_flags=[*CHECK_EVERY, *INITIAL])
    c.start()
    try:
        leader = c.leader()
        for i in range(20):
            leader.etcdctl("put", f"k{i}", f"v{i}")
        follower = next(m for m in c.members if m is not leader)
        # A restarted member has data: the start check compares it with the peers'.
        c.restart(follower)
        assert _json_lines(
            follower.proc.log_text(), "initial corruption checking passed; no corruption"
        )
        leader = c.leader()

        def passes(peers: int | None = None) -> int:
            lines = _json_lines(leader.proc.log_text(), "finished peer corruption check")
            return sum(
                1 for x in lines if peers is None or x.get("number-of-peers-checked") == peers
            )

        # Passes while every member takes writes: followers a little behind are skipped, none
        # is taken for corrupt.
        stop = threading.Event()

        def write(m: object) -> None:
            with Client(m.endpoint) as client:  # type: ignore[attr-defined]
                i = 0
                while not stop.is_set():
                    client.put(f"load/{i % 50}".encode(), str(i).encode())
                    i += 1

        writers = [threading.Thread(target=write, args=(m,)) for m in c.members]
        for t in writers:
            t.start()
        try:
            start = passes()
            eventually(lambda: passes() >= start + 3, what="three passes under writes")
        finally:
            stop.set()
            for t in writers:
                t.join()
        done = passes(2)
        eventually(lambda: passes(2) >= done + 2, what="two passes over both peers")
        assert leader.etcdctl("alarm", "list").stdout.strip() == ""
        for m in c.members:
            assert "found hash mismatch" not in m.proc.log_text()
            assert "hashes must match" not in m.proc.log_text()
        leader.etcdctl("put", "after", "checks")
    finally:
        c.stop()


def test_a_member_whose_data_differs_is_refused_at_start_and_alarmed_by_the_leader(
    tmp_path: Path,
) -> None:
    from cluster import Cluster

    c = Cluster(tmp_path, 3, extra_flags=CHECK_EVERY)
    c.start()
    try:
        leader = c.leader()
        for i in range(10):
            leader.etcdctl("put", f"k{i}", f"v{i}")
        victim = next(m for m in c.members if m is not leader)
        eventually(
            lambda: (
                victim.etcdctl("get", "k9", "--consistency=s", "--print-value-only").stdout
                == "v9\n"
            ),
            what="the victim applied every put",
        )
        victim_id = _member_id(victim)
        victim.proc.stop()
        _tamper(victim.data_dir / "member" / "db", b"k3", b"tampered")
        flags = victim.flags(c.initial_cluster, "new", c.token)

        # At start: refused, with etcd's message, before it serves anything.
        victim.launch([*flags, *CHECK_EVERY, *INITIAL])
        assert victim.proc.wait_exit() != 0
        log = victim.proc.log_text()
        assert f"{victim_id:x} found data inconsistency with peers" in log
        assert "found different hash values from remote peer" in log
        assert "ready to serve client requests" not in log.split("starting initial corruption")[-1]

        # Started without the start check: the leader's next pass finds it.
        victim.launch([*flags, *CHECK_EVERY])
        victim.proc.wait_ready()
        alarm = f"memberID:{victim_id} alarm:CORRUPT"
        eventually(
            lambda: alarm in leader.etcdctl("alarm", "list").stdout, what="the CORRUPT alarm"
        )
        assert "same compact revision then hashes must match" in leader.proc.log_text()
        # Writes are refused cluster-wide, reads still served; /health-style status says why.
        for m in c.members:
            put = m.etcdctl("put", "k3", "new", check=False)
            assert put.returncode != 0
            assert "etcdserver: corrupt cluster" in put.stderr
        assert leader.etcdctl("get", "k3", "--print-value-only").stdout == "v3\n"
        status = json.loads(leader.etcdctl("endpoint", "status", "-w", "json").stdout)
        assert "alarm:CORRUPT" in " ".join(status[0]["Status"].get("errors", []))
    finally:
        c.stop()
