"""The `ward` process: its data directory, its flags and environment, signals and crashes."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import grpc
import pytest

from tests.e2e.ward_process import WardProcess, etcdctl, start_ward
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

CALL_TIMEOUT_S = 5.0


def _group(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the parenthesised command name: state, ppid, pgrp, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _member_names(ward: WardProcess) -> list[str]:
    """Member names as `etcdctl member list` prints them."""
    res = etcdctl(ward.endpoint, "member", "list")
    assert res.returncode == 0, res
    return [line.split(", ")[2] for line in res.stdout.splitlines()]


def _put_get(endpoint: str) -> None:
    """A write and a read of it succeed."""
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), timeout=CALL_TIMEOUT_S)
        got = kv.Range(rpc_pb2.RangeRequest(key=b"k"), timeout=CALL_TIMEOUT_S)
        assert [kv.value for kv in got.kvs] == [b"v"]


# ---- the data directory ----


def test_new_data_dir_is_created_0700(ward: WardProcess) -> None:
    assert stat.S_IMODE(ward.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((ward.data_dir / "member").stat().st_mode) == 0o700


def test_data_dir_readable_by_others_is_refused(tmp_path: Path) -> None:
    ward = WardProcess(tmp_path)
    ward.data_dir.mkdir(mode=0o755)
    os.chmod(ward.data_dir, 0o755)  # whatever the umask
    try:
        ward.start(wait=False)
        assert ward.wait_exit() == 1
    finally:
        ward.kill9()
    log = ward.log_text()
    assert f"data directory {ward.data_dir} has permissions 0755" in log
    assert "requires 0700" in log and f"chmod 700 {ward.data_dir}" in log
    assert "Traceback" not in log
    # Nothing was created in a directory Ward would not use.
    assert list(ward.data_dir.iterdir()) == []
    assert stat.S_IMODE(ward.data_dir.stat().st_mode) == 0o755


def test_second_ward_on_the_same_data_dir_is_refused(ward: WardProcess, tmp_path: Path) -> None:
    second = WardProcess(tmp_path / "second")
    (tmp_path / "second").mkdir()
    second.data_dir = ward.data_dir
    try:
        second.start(wait=False)
        assert second.wait_exit() == 1
    finally:
        second.kill9()
    assert f"data directory {ward.data_dir} is in use by another ward process" in (
        second.log_text()
    )
    _put_get(ward.endpoint)  # the first one is unharmed


# ---- signals and crashes ----


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    ward = start_ward(tmp_path)
    try:
        ward.wait_listening(2)  # the worker serves too, not only the core
        _put_get(ward.endpoint)
        group = ward.pid
        ward.send_signal(sig)
        assert ward.wait_exit() == 0
        deadline = time.monotonic() + 2.0
        while _group(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group(group) == []  # the worker went with it
    finally:
        ward.kill9()
    log = ward.log_text()
    assert '"msg":"stopped"' in log
    assert "Traceback" not in log


def test_stop_right_after_ready_is_clean(tmp_path: Path) -> None:
    """A service manager may stop a member the moment it reports ready: exit 0, no traceback."""
    ward = start_ward(tmp_path)
    try:
        ward.send_signal(signal.SIGTERM)
        assert ward.wait_exit() == 0
        time.sleep(0.5)  # let a late worker write whatever it writes
    finally:
        ward.kill9()
    assert "Traceback" not in ward.log_text()


def test_sigterm_stops_promptly(ward: WardProcess) -> None:
    """An idle member stops within 1.5 s of SIGTERM (etcd: well under 0.1 s), its worker
    leaving on its own rather than being killed after a timeout. Ward takes 2.0 s."""
    ward.wait_listening(2)
    _put_get(ward.endpoint)
    started = time.monotonic()
    ward.send_signal(signal.SIGTERM)
    assert ward.wait_exit() == 0
    assert time.monotonic() - started < 1.5


def test_restart_keeps_the_data(ward: WardProcess) -> None:
    _put_get(ward.endpoint)
    ward.restart()
    with grpc.insecure_channel(ward.endpoint) as channel:
        got = rpc_pb2_grpc.KVStub(channel).Range(
            rpc_pb2.RangeRequest(key=b"k"), timeout=CALL_TIMEOUT_S, wait_for_ready=True
        )
    assert [kv.value for kv in got.kvs] == [b"v"]


def test_ready_after_restart_means_writes_work(ward: WardProcess) -> None:
    """etcd logs "ready to serve client requests" only once its member has published itself
    through Raft, so a single member takes writes as soon as it says it is ready."""
    _put_get(ward.endpoint)
    ward.restart()
    with grpc.insecure_channel(ward.endpoint) as channel:
        try:
            rpc_pb2_grpc.KVStub(channel).Put(
                rpc_pb2.PutRequest(key=b"k", value=b"again"), timeout=CALL_TIMEOUT_S
            )
        except grpc.RpcError as err:
            raise AssertionError(f"first write after ready: {err.details()}") from None  # type: ignore[attr-defined]


def test_worker_exits_when_the_core_is_killed(ward: WardProcess) -> None:
    ward.wait_listening(2)
    _put_get(ward.endpoint)
    group = ward.pid
    assert len(_group(group)) >= 2  # the core and its worker (and multiprocessing's helper)
    os.kill(ward.pid, signal.SIGKILL)  # the core only, as the OOM killer would
    ward.wait_exit()
    time.sleep(1.0)
    assert _group(group) == []


# ---- configuration ----


def test_misspelled_flag_exits_2(tmp_path: Path) -> None:
    ward = WardProcess(tmp_path)
    try:
        ward.start("--lissten-client-urls", "http://127.0.0.1:1", base_flags=False, wait=False)
        assert ward.wait_exit() == 2
    finally:
        ward.kill9()
    assert ward.log_text().splitlines()[0] == "flag provided but not defined: -lissten-client-urls"
    assert not ward.data_dir.exists()


def test_etcd_environment_variables_are_honoured(tmp_path: Path) -> None:
    """ETCD_NAME names the member (without it the name would be "default", which
    --initial-cluster does not know), and ETCD_MAX_TXN_OPS limits txns."""
    ward = WardProcess(tmp_path)
    flags = ward.base_flags()
    at = flags.index("--name")
    del flags[at : at + 2]
    try:
        ward.start(*flags, base_flags=False, env={"ETCD_NAME": "w", "ETCD_MAX_TXN_OPS": "2"})
        assert _member_names(ward) == ["w"]
        with grpc.insecure_channel(ward.endpoint) as channel:
            ops = [rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"k"))] * 3
            with pytest.raises(grpc.RpcError) as info:
                rpc_pb2_grpc.KVStub(channel).Txn(
                    rpc_pb2.TxnRequest(success=ops), timeout=CALL_TIMEOUT_S
                )
        assert info.value.details() == "etcdserver: too many operations in txn request"  # type: ignore[attr-defined]
    finally:
        ward.stop()


def test_config_file(tmp_path: Path) -> None:
    ward = WardProcess(tmp_path)
    ward.name = "from-file"
    config = tmp_path / "ward.yaml"
    config.write_text(
        f"name: {ward.name}\n"
        f"data-dir: {ward.data_dir}\n"
        f"listen-client-urls: {ward.client_url}\n"
        f"advertise-client-urls: {ward.client_url}\n"
        f"listen-peer-urls: {ward.peer_url}\n"
        f"initial-advertise-peer-urls: {ward.peer_url}\n"
        f"initial-cluster: {ward.name}={ward.peer_url}\n"
        "max-txn-ops: 2\n"
        "workers: 1\n"
    )
    try:
        ward.start("--config-file", str(config), base_flags=False)
        assert _member_names(ward) == ["from-file"]
        assert stat.S_IMODE(ward.data_dir.stat().st_mode) == 0o700
        _put_get(ward.endpoint)
        with grpc.insecure_channel(ward.endpoint) as channel:
            ops = [rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"k"))] * 3
            with pytest.raises(grpc.RpcError) as info:
                rpc_pb2_grpc.KVStub(channel).Txn(
                    rpc_pb2.TxnRequest(success=ops), timeout=CALL_TIMEOUT_S
                )
        assert info.value.details() == "etcdserver: too many operations in txn request"  # type: ignore[attr-defined]
        assert len(_group(ward.pid)) == 1  # workers: 1 came from the file too
    finally:
        ward.stop()
