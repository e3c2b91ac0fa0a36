"""Auto compaction on a real `ward`: old revisions become compacted without a Compact call."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from tests.e2e.ward_process import start_ward
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

DEADLINE_S = 15.0


def test_revision_mode_compacts_all_but_the_last_revisions(tmp_path: Path) -> None:
    ward = start_ward(
        tmp_path,
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "10",
        workers=1,
        env={"WARD_AUTO_COMPACTION_INTERVAL": "0.2"},  # instead of etcd's 5 minutes
    )
    try:
        with grpc.insecure_channel(ward.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            for i in range(30):
                kv.Put(rpc_pb2.PutRequest(key=b"k", value=str(i).encode()), timeout=5)
            current = 31  # 30 puts after revision 1
            deadline = time.monotonic() + DEADLINE_S
            while True:
                try:
                    kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=current - 10), timeout=5)
                except grpc.RpcError as e:
                    pytest.fail(f"revision {current - 10} must stay readable: {e}")
                try:
                    kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=current - 11), timeout=5)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.OUT_OF_RANGE
                    assert "compacted" in (e.details() or "")
                    break
                assert time.monotonic() < deadline, "no auto compaction in time"
                time.sleep(0.1)
            assert "starting auto compaction at revision 21" in ward.log_text()
    finally:
        ward.stop()
