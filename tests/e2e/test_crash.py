"""Acknowledged means durable: writes answered before `kill -9` are there after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from tests.e2e.ward_process import free_port
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'proto'}"}


def _start(data_dir: Path, port: int, peer: int) -> subprocess.Popen[bytes]:
    url = f"http://127.0.0.1:{port}"
    purl = f"http://127.0.0.1:{peer}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.main",
            "--name",
            "c",
            "--data-dir",
            str(data_dir),
            "--listen-client-urls",
            url,
            "--advertise-client-urls",
            url,
            "--listen-peer-urls",
            purl,
            "--initial-advertise-peer-urls",
            purl,
            "--initial-cluster",
            f"c={purl}",
            "--workers",
            "2",
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"ready to serve client requests" in line:
            break
        if time.monotonic() > deadline:
            break
    # Keep draining stderr so the server never blocks on a full pipe.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc


@pytest.mark.slow
def test_writes_acknowledged_before_kill9_survive_restart(tmp_path: Path) -> None:
    port, peer = free_port(), free_port()
    data = tmp_path / "data"
    proc = _start(data, port, peer)
    acked: dict[bytes, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        kv = rpc_pb2_grpc.KVStub(ch)
        i = 0
        while not stop.is_set() and i < 5000:
            key, value = b"w%d/%d" % (n, i % 200), b"v%d" % i
            try:
                kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=2)
            except grpc.RpcError:
                return  # the server is gone: nothing after this was acknowledged
            with lock:
                acked[key] = value
            i += 1
        ch.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)
        os.killpg(proc.pid, signal.SIGKILL)  # core and workers alike, mid-load
        proc.wait(timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert len(acked) > 100, "the load should have had time to write"

    proc = _start(data, port, peer)
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        kv = rpc_pb2_grpc.KVStub(ch)
        resp = kv.Range(rpc_pb2.RangeRequest(key=b"w", range_end=b"x"), timeout=10)
        stored = {kv_.key: kv_.value for kv_ in resp.kvs}
        lost = {k: v for k, v in acked.items() if k not in stored}
        assert not lost, f"{len(lost)} acknowledged keys lost"
        # A later version may exist (written, not yet acknowledged): never an older one.
        older = [k for k, v in acked.items() if int(stored[k][1:]) < int(v[1:])]
        assert not older, f"acknowledged values rolled back for {older[:5]}"
        ch.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
