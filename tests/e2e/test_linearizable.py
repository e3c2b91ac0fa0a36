"""Linearizability of a 3-member cluster under faults, checked on recorded client histories.

Clients run random puts, gets, deletes and compare-and-set txns on a few keys against random
members while members are killed (`kill -9`) and restarted; the history of calls and returns
is then checked with the Wing-Gong/Porcupine search in tests/unit/raft/linearizability.py.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from cluster import Cluster
from faultproxy import FaultProxy

from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "raft"))
from linearizability import CAS, READ, WRITE, History, check

pytestmark = pytest.mark.slow

# Enough keys that no single register's history outgrows the checker's search budget.
KEYS = [b"k%d" % i for i in range(8)]
CLIENTS = 6
RUN_S = 12.0
OP_TIMEOUT_S = 3.0


def _client(n: int, c: Cluster, history: History, lock: threading.Lock, stop: threading.Event):
    rng = random.Random(n)
    stubs = {m.name: rpc_pb2_grpc.KVStub(grpc.insecure_channel(m.endpoint)) for m in c.members}
    seq = 0
    while not stop.is_set():
        stub = stubs[rng.choice(list(stubs))]
        key = rng.choice(KEYS)
        kind = rng.choice((READ, READ, READ, WRITE, WRITE, "delete", CAS))
        seq += 1
        value = f"c{n}-{seq}"
        with lock:
            if kind == READ:
                h = history.invoke(n, READ, key)
            elif kind == WRITE:
                h = history.invoke(n, WRITE, key, value)
            elif kind == "delete":
                h = history.invoke(n, WRITE, key, None)
            else:
                expected = f"c{rng.randrange(CLIENTS)}-{rng.randrange(1, seq + 1)}"
                if rng.random() < 0.5:
                    expected = value_seen.get(key, expected)
                h = history.invoke(n, CAS, key, (expected, value))
        try:
            if kind == READ:
                r = stub.Range(rpc_pb2.RangeRequest(key=key), timeout=OP_TIMEOUT_S)
                got = r.kvs[0].value.decode() if r.kvs else None
                with lock:
                    history.ok(h, got)
                    if got is not None:
                        value_seen[key] = got
            elif kind == WRITE:
                stub.Put(rpc_pb2.PutRequest(key=key, value=value.encode()), timeout=OP_TIMEOUT_S)
                with lock:
                    history.ok(h)
            elif kind == "delete":
                stub.DeleteRange(rpc_pb2.DeleteRangeRequest(key=key), timeout=OP_TIMEOUT_S)
                with lock:
                    history.ok(h)
            else:
                cmp = rpc_pb2.Compare(
                    key=key,
                    target=rpc_pb2.Compare.VALUE,
                    result=rpc_pb2.Compare.EQUAL,
                    value=expected.encode(),
                )
                put = rpc_pb2.RequestOp(
                    request_put=rpc_pb2.PutRequest(key=key, value=value.encode())
                )
                r = stub.Txn(rpc_pb2.TxnRequest(compare=[cmp], success=[put]), timeout=OP_TIMEOUT_S)
                with lock:
                    history.ok(h, r.succeeded)
        except grpc.RpcError:
            with lock:
                if kind == READ:
                    history.fail(h)  # a read that failed changed nothing
                else:
                    history.info(h)  # it may have been applied, or not


value_seen: dict[bytes, str] = {}


def _nemesis(c: Cluster, proxy: FaultProxy, stop: threading.Event, rng: random.Random) -> None:
    """One fault at a time: a member killed (`kill -9`) and restarted, or cut off and healed."""
    while not stop.is_set():
        time.sleep(rng.uniform(1.0, 2.5))
        victim = rng.choice(c.members)
        if rng.random() < 0.5:
            victim.proc.kill9()
            time.sleep(rng.uniform(0.5, 2.0))
            victim.proc._spawn()
            # No wait for readiness: clients keep hitting it while it rejoins.
        else:
            proxy.isolate(victim.name, mode=rng.choice(("drop", "reset")))
            time.sleep(rng.uniform(1.0, 3.0))
            proxy.heal()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_history_is_linearizable_under_kills_and_partitions(tmp_path: Path, seed: int) -> None:
    with FaultProxy() as proxy:
        c = Cluster(tmp_path)
        for m in c.members:
            proxy.add_member(m.name, [m.proc.peer_port])
            m.extra_env = proxy.env(m.name)
        c.start()
        history = History(clock=time.monotonic)
        lock = threading.Lock()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_client, args=(n, c, history, lock, stop))
            for n in range(CLIENTS)
        ]
        nemesis = threading.Thread(target=_nemesis, args=(c, proxy, stop, random.Random(seed)))
        try:
            for t in threads:
                t.start()
            nemesis.start()
            time.sleep(RUN_S)
        finally:
            stop.set()
            for t in [*threads, nemesis]:
                t.join()
            c.stop()
    ops = history.operations()
    done = [o for o in ops if o.ret is not None]
    assert len(done) > 200, f"only {len(done)} operations completed"
    result = check(ops)
    assert result.ok, result.violation.describe() if result.violation else result
