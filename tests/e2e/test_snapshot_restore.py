"""`wardctl snapshot status|restore`: a snapshot saved from a running ward becomes the data
directory of a new cluster that serves the same keys, revisions, leases and users.

etcdctl cannot read Ward's snapshot files (lmdb, not bbolt) nor Ward etcd's, so the output
shapes of `snapshot status` are pinned against etcdctl's on an etcd snapshot, and the restore
errors (which do not depend on the file format) are compared with etcdctl's directly.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cluster import ELECTION_MS, HEARTBEAT_MS
from tests.e2e.ward_process import (
    ETCDCTL,
    REPO,
    WardProcess,
    etcdctl,
    start_etcd,
)

TIMEOUT_S = 60.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_", "GRPC_"))}
    env["PYTHONPATH"] = os.pathsep.join((str(REPO), str(REPO / "proto")))
    return env


def wardctl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ward.cli", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=TIMEOUT_S,
        check=False,
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _fill(endpoint: str) -> tuple[int, str]:
    """Keys (one overwritten, one deleted), a lease with a key and a user; the revision and the
    lease ID."""
    ep = ["--endpoints", endpoint]
    for i in range(5):
        _ok(wardctl(*ep, "put", f"k{i}", f"v{i}"))
    _ok(wardctl(*ep, "put", "k0", "again"))
    _ok(wardctl(*ep, "del", "k4"))
    lease = _ok(wardctl(*ep, "lease", "grant", "600")).split()[1]
    _ok(wardctl(*ep, "put", "leased", "x", "--lease", lease))
    _ok(wardctl(*ep, "user", "add", "alice:secret-pass"))
    rev = json.loads(_ok(wardctl(*ep, "get", "k0", "-w", "json")))["header"]["revision"]
    return int(rev), lease


def _check_data(endpoint: str, rev: int, lease: str) -> None:
    ep = ["--endpoints", endpoint]
    got = json.loads(_ok(wardctl(*ep, "get", "k", "--prefix", "-w", "json")))
    assert got["header"]["revision"] == rev
    kvs = {base64.b64decode(kv["key"]).decode(): kv for kv in got.get("kvs", [])}
    assert sorted(kvs) == ["k0", "k1", "k2", "k3"]
    assert kvs["k0"]["version"] == 2 and kvs["k0"]["create_revision"] == 2
    # History before the snapshot is there too.
    assert _ok(wardctl(*ep, "get", "k0", "--rev", str(kvs["k0"]["create_revision"]))) == (
        "k0\nv0\n"
    )
    assert lease in _ok(wardctl(*ep, "lease", "list"))
    assert _ok(wardctl(*ep, "get", "leased", "--print-value-only")) == "x\n"
    assert "alice" in _ok(wardctl(*ep, "user", "list"))
    # And it takes writes.
    _ok(wardctl(*ep, "put", "after", "restore"))
    after = json.loads(_ok(wardctl(*ep, "get", "after", "-w", "json")))
    assert after["header"]["revision"] == rev + 1


def _hash_kv(endpoint: str) -> int:
    out = json.loads(_ok(wardctl("--endpoints", endpoint, "endpoint", "hashkv", "-w", "json")))
    return int(out[0]["HashKV"]["hash"])


def _save(ward: WardProcess, path: Path) -> None:
    _ok(wardctl("--endpoints", ward.endpoint, "snapshot", "save", str(path)))


def _restored_ward(tmp: Path, snap: Path, *, name: str = "r1") -> WardProcess:
    w = WardProcess(tmp, workers=1, name=name)
    _ok(
        wardctl(
            "snapshot",
            "restore",
            str(snap),
            "--name",
            name,
            "--data-dir",
            str(w.data_dir),
            "--initial-cluster",
            f"{name}={w.peer_url}",
            "--initial-advertise-peer-urls",
            w.peer_url,
        )
    )
    return w


def test_status_reports_revision_keys_size_and_the_members_hash(
    ward: WardProcess, tmp_path: Path
) -> None:
    rev, _ = _fill(ward.endpoint)
    snap = tmp_path / "s.db"
    _save(ward, snap)
    st = json.loads(_ok(wardctl("snapshot", "status", str(snap), "-w", "json")))
    assert st["revision"] == rev
    # The hash is the member's HashKV at the snapshot's revision.
    assert st["hash"] == _hash_kv(ward.endpoint)
    # lmdb image without the appended SHA-256.
    assert st["totalSize"] == snap.stat().st_size - 32
    assert st["totalKey"] > rev  # every version, plus leases, users and metadata
    simple = _ok(wardctl("snapshot", "status", str(snap)))
    assert re.fullmatch(rf"{st['hash']:x}, {rev}, {st['totalKey']}, \d+ [kM]B\n", simple)


@pytest.mark.skipif(not ETCDCTL.exists(), reason="etcd-client is not installed")
def test_status_formats_have_etcdctls_shapes(ward: WardProcess, tmp_path: Path) -> None:
    _fill(ward.endpoint)
    ours = tmp_path / "ward.db"
    _save(ward, ours)
    etcd = start_etcd(tmp_path)
    try:
        assert etcdctl(etcd.endpoint, "put", "a", "1").returncode == 0
        theirs = tmp_path / "etcd.db"
        assert etcdctl(etcd.endpoint, "snapshot", "save", str(theirs)).returncode == 0
    finally:
        etcd.stop()

    def shape(text: str) -> str:
        # Numbers and sizes differ, and with them the padding of table cells.
        text = re.sub(r"[0-9a-f]*\d[0-9a-f]*(\.\d+)?( [kM]?B)?", "N", text)
        return re.sub(r" +", " ", re.sub(r"-+", "-", text))

    for fmt in ("simple", "table", "json", "fields", "protobuf"):
        e = subprocess.run(
            [str(ETCDCTL), "snapshot", "status", str(theirs), "-w", fmt],
            capture_output=True,
            text=True,
            env={**_env(), "ETCDCTL_API": "3"},
            check=False,
        )
        w = wardctl("snapshot", "status", str(ours), "-w", fmt)
        assert w.returncode == e.returncode, fmt
        assert shape(w.stdout) == shape(e.stdout), fmt
        assert w.stderr == e.stderr, fmt
    # etcdctl cannot read Ward's files (lmdb, not bbolt): it fails, as wardctl does on etcd's.
    assert wardctl("snapshot", "status", str(theirs)).returncode == 1


@pytest.mark.skipif(not ETCDCTL.exists(), reason="etcd-client is not installed")
def test_restore_errors_match_etcdctl(ward: WardProcess, tmp_path: Path) -> None:
    _fill(ward.endpoint)
    snap = tmp_path / "s.db"
    _save(ward, snap)
    # Each tool in a directory of its own: etcdctl leaves a partial data dir behind on errors.
    dirs = {side: tmp_path / side for side in ("etcdctl", "wardctl")}
    for d in dirs.values():
        (d / "used").mkdir(parents=True)
        (d / "used" / "x").write_text("")
        (d / "s.db").write_bytes(snap.read_bytes())
        (d / "nohash.db").write_bytes(snap.read_bytes()[:-32])
    cases = [
        [],
        ["missing.db"],
        ["nohash.db", "--data-dir", "d1"],
        ["s.db", "--name", "zz", "--data-dir", "d2"],
        ["s.db", "--data-dir", "used"],
    ]
    for args in cases:
        e = subprocess.run(
            [str(ETCDCTL), "snapshot", "restore", *args],
            capture_output=True,
            text=True,
            cwd=dirs["etcdctl"],
            env={**_env(), "ETCDCTL_API": "3"},
            check=False,
        )
        w = wardctl("snapshot", "restore", *args, cwd=dirs["wardctl"])
        assert w.returncode == e.returncode, args
        # Only the last stderr line: etcdctl's zap log lines (times, callers) come before it.
        assert w.stderr.splitlines()[-1] == e.stderr.splitlines()[-1], args
    bad = tmp_path / "bad.db"
    data = bytearray(snap.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    # A changed byte fails the hash check (the digests differ, so only the message's start).
    w = wardctl("snapshot", "restore", "bad.db", "--data-dir", "d3", cwd=tmp_path)
    assert w.returncode == 1 and "Error: expected sha256 [" in w.stderr
    assert not (tmp_path / "d3" / "member" / "db").exists()
    # --skip-hash-check restores a file without a hash.
    _ok(
        wardctl(
            "snapshot",
            "restore",
            "nohash.db",
            "--skip-hash-check",
            "--data-dir",
            "d4",
            cwd=dirs["wardctl"],
        )
    )
    assert (dirs["wardctl"] / "d4" / "member" / "db" / "data.mdb").exists()


def test_restored_member_serves_the_snapshot(ward: WardProcess, tmp_path: Path) -> None:
    rev, lease = _fill(ward.endpoint)
    snap = tmp_path / "s.db"
    _save(ward, snap)
    hash_before = _hash_kv(ward.endpoint)
    ward.stop()
    new = tmp_path / "new"
    new.mkdir()
    w = _restored_ward(new, snap)
    try:
        w.start()
        _check_data(w.endpoint, rev, lease)
        members = json.loads(
            _ok(wardctl("--endpoints", w.endpoint, "member", "list", "-w", "json"))
        )
        assert [m["name"] for m in members["members"]] == ["r1"]
        assert [m["peerURLs"] for m in members["members"]] == [[w.peer_url]]
        # A new cluster: the old member's ID does not come back.
        assert _hash_kv(w.endpoint) != hash_before  # a write happened in _check_data
    finally:
        w.stop()


@pytest.mark.slow
def test_three_restores_start_a_three_member_cluster(ward: WardProcess, tmp_path: Path) -> None:
    rev, lease = _fill(ward.endpoint)
    snap = tmp_path / "s.db"
    _save(ward, snap)
    old_cluster = json.loads(
        _ok(wardctl("--endpoints", ward.endpoint, "member", "list", "-w", "json"))
    )
    ward.stop()
    procs = []
    for i in range(3):
        d = tmp_path / f"m{i}"
        d.mkdir()
        procs.append(WardProcess(d, workers=1, name=f"m{i}"))
    ic = ",".join(f"{p.name}={p.peer_url}" for p in procs)
    for p in procs:
        _ok(
            wardctl(
                "snapshot",
                "restore",
                str(snap),
                "--name",
                p.name,
                "--data-dir",
                str(p.data_dir),
                "--initial-cluster",
                ic,
                "--initial-cluster-token",
                "restored",
                "--initial-advertise-peer-urls",
                p.peer_url,
            )
        )
    try:
        for p in procs:
            flags = [*p.base_flags(), "--initial-cluster-token", "restored"]
            flags[flags.index("--initial-cluster") + 1] = ic
            flags += ["--heartbeat-interval", str(HEARTBEAT_MS)]
            flags += ["--election-timeout", str(ELECTION_MS)]
            p.start(*flags, base_flags=False, wait=False)
        for p in procs:
            p.wait_ready()
        _check_data(procs[1].endpoint, rev, lease)
        # Every member applies the write made after the restore.
        for p in procs:
            deadline = time.monotonic() + 10
            while True:
                got = wardctl(
                    "--endpoints",
                    p.endpoint,
                    "get",
                    "after",
                    "--consistency",
                    "s",
                    "--print-value-only",
                )
                if got.stdout == "restore\n" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert got.stdout == "restore\n", p.name
        members = json.loads(
            _ok(wardctl("--endpoints", procs[0].endpoint, "member", "list", "-w", "json"))
        )
        assert sorted(m["name"] for m in members["members"]) == ["m0", "m1", "m2"]
        assert members["header"]["cluster_id"] != old_cluster["header"]["cluster_id"]
    finally:
        for p in procs:
            p.stop()
