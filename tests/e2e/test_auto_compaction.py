"""Auto compaction on a real `ward`: old revisions become compacted without a Compact call."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from tests.e2e.auth_client import Client, authenticate
from tests.e2e.ward_process import WardProcess, start_ward
from wardpb.etcdserverpb import rpc_pb2

DEADLINE_S = 15.0
RETAINED = 10


def _start(tmp_path: Path) -> WardProcess:
    return start_ward(
        tmp_path,
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        str(RETAINED),
        workers=1,
        env={"WARD_AUTO_COMPACTION_INTERVAL": "0.2"},  # instead of etcd's 5 minutes
    )


def _await_compaction(c: Client, current: int) -> None:
    """Revision `current - RETAINED` stays readable; the one before it gets compacted."""
    kept = rpc_pb2.RangeRequest(key=b"k", revision=current - RETAINED)
    dropped = rpc_pb2.RangeRequest(key=b"k", revision=current - RETAINED - 1)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            c.call(c.kv.Range, kept)
        except grpc.RpcError as e:
            pytest.fail(f"revision {current - RETAINED} must stay readable: {e}")
        try:
            c.call(c.kv.Range, dropped)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.OUT_OF_RANGE
            assert "compacted" in (e.details() or "")
            return
        assert time.monotonic() < deadline, "no auto compaction in time"
        time.sleep(0.1)


def test_revision_mode_compacts_all_but_the_last_revisions(tmp_path: Path) -> None:
    ward = _start(tmp_path)
    try:
        with Client(ward.endpoint) as c:
            for i in range(30):
                c.put(b"k", str(i).encode())
            _await_compaction(c, current=31)  # 30 puts after revision 1
        assert "starting auto compaction at revision 21" in ward.log_text()
    finally:
        ward.stop()


def test_auto_compaction_runs_with_auth_enabled(tmp_path: Path) -> None:
    # The compactor is the server itself, with no user to check: as etcd's, it compacts
    # whatever the auth store holds (a Compact from a client still needs root).
    ward = _start(tmp_path)
    try:
        with Client(ward.endpoint) as anyone:
            anyone.call(
                anyone.auth.UserAdd,
                rpc_pb2.AuthUserAddRequest(name="root", password="root-password"),
            )
            anyone.call(
                anyone.auth.UserGrantRole,
                rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"),
            )
            anyone.call(anyone.auth.AuthEnable, rpc_pb2.AuthEnableRequest())
        with Client(ward.endpoint, authenticate(ward.endpoint, "root", "root-password")) as root:
            first = root.put(b"k", b"0").header.revision
            for i in range(1, 30):
                root.put(b"k", str(i).encode())
            _await_compaction(root, current=first + 29)
    finally:
        ward.stop()
