"""Snapshot files (`Maintenance.Snapshot`, `wardctl snapshot save`) read offline: their status,
and their restoration into the data directory of a new cluster's member.

A snapshot file is a compact lmdb copy of a member's whole environment followed, as etcd does
it, by the SHA-256 of that copy (32 bytes; the lmdb part is a whole number of 4 KiB pages, so
`size % 512 == 32` tells that the hash is there, as etcd tells it).

Restoring keeps the replicated state machine (keyspace and revisions, leases, auth, alarms) and
replaces everything that belongs to the old cluster or member, as etcd's restore does:

* the member and cluster IDs (`meta`), derived from the new cluster's flags as etcd derives
  them (`server.membership.member_id`, `cluster_id`);
* the members table (removed IDs included) and the Raft membership: every member of
  `--initial-cluster` is a voter;
* the Raft log: emptied and compacted up to the image's applied index at term 1; the applied
  index stays that index, and the hard state is term 1, no vote, committed up to it. Every
  member restored from the same file thus starts from the same Raft state, like members that
  installed the same Raft snapshot;
* the members' published JWT verification keys: tokens signed by the old cluster's members
  must not be accepted by the new one (each new member publishes its own key when it starts).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import lmdb

from server.membership import cluster_id, member_id
from server.raft import ConfState, HardState, SnapshotMetadata
from server.storage import raftmeta
from server.storage.backend import DB_NAMES, Backend, BackendOptions
from server.storage.members import MemberTable
from server.storage.snapshot import K_CLUSTER_ID, K_MEMBER_ID
from wardpb.etcdserverpb import rpc_pb2

__all__ = [
    "RestoreError",
    "RestorePlan",
    "SnapshotStatus",
    "plan_restore",
    "restore",
    "snapshot_status",
]

HASH_SIZE = 32  # SHA-256, appended by the Snapshot RPC
_U64 = struct.Struct(">Q")
_META_REV = b"rev"  # server.storage.mvcc.META_REV
_JWT_KEY_PREFIX = b"jwtkey/"  # server.storage.authdb.KEY_PREFIX
_RESTORED_TERM = 1


class RestoreError(Exception):
    """The snapshot cannot be read or restored; the message says why (etcdctl's wording where
    etcdctl has one)."""


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    """What `snapshot status` reports.

    `hash` is Ward's own: the CRC-32 of every stored key version (the `Hash`/`HashKV` of the
    member at the snapshot's revision, so it can be checked against a running member), where
    etcd's is a CRC-32C of every bbolt bucket. `total_keys` counts the entries of every
    database but the Raft log (etcd counts every bbolt key, and keeps no Raft log there);
    `total_size` is the lmdb image's size, without the appended hash.
    """

    hash: int
    revision: int
    total_keys: int
    total_size: int


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """The new member's identity, as derived from the restore flags."""

    name: str
    member_id: int
    cluster_id: int
    members: tuple[rpc_pb2.Member, ...]


def _has_hash(size: int) -> bool:
    return size % 512 == HASH_SIZE


def _open_image(path: Path) -> lmdb.Environment:
    if not path.exists():
        raise RestoreError(f"stat {path}: no such file or directory")
    try:
        return lmdb.open(
            str(path), subdir=False, readonly=True, lock=False, max_dbs=len(DB_NAMES) + 2
        )
    except lmdb.Error as exc:
        raise RestoreError(f"{path} is not a Ward snapshot (an lmdb image): {exc}") from None


def snapshot_status(path: str | os.PathLike[str]) -> SnapshotStatus:
    """Hash, revision, key count and size of a snapshot file, read without changing it."""
    p = Path(path)
    size = p.stat().st_size if p.exists() else 0
    env = _open_image(p)
    try:
        dbs = {name: env.open_db(name.encode(), create=False) for name in DB_NAMES}
        with env.begin() as txn:
            raw = txn.get(_META_REV, db=dbs["meta"])
            rev = _U64.unpack(raw)[0] if raw else 0
            h = 0
            cur = txn.cursor(db=dbs["hist"])
            for r, rec in cur.iternext():
                if _U64.unpack_from(r)[0] > rev:
                    break
                h = zlib.crc32(rec, zlib.crc32(r, h))
            keys = sum(
                txn.stat(db)["entries"] for name, db in dbs.items() if name != "raftlog"
            )
    except lmdb.Error as exc:
        raise RestoreError(f"{p} is not a Ward snapshot: {exc}") from None
    finally:
        env.close()
    return SnapshotStatus(
        hash=h,
        revision=rev,
        total_keys=keys,
        total_size=size - HASH_SIZE if _has_hash(size) else size,
    )


def plan_restore(
    name: str,
    initial_cluster: Mapping[str, Sequence[str]],
    token: str,
    advertise_peer_urls: Sequence[str],
) -> RestorePlan:
    """The member and cluster IDs and the members table of the new cluster (etcd's checks:
    the name is in `initial_cluster`, with exactly the advertised peer URLs)."""
    if name not in initial_cluster:
        raise RestoreError(
            f'couldn\'t find local name "{name}" in the initial cluster configuration'
        )
    if sorted(initial_cluster[name]) != sorted(advertise_peer_urls):
        raise RestoreError(
            f"--initial-cluster has {name}={','.join(initial_cluster[name])} but missing from "
            f"--initial-advertise-peer-urls={','.join(advertise_peer_urls)}"
        )
    ids = {n: member_id(list(urls), token) for n, urls in initial_cluster.items()}
    members = tuple(
        rpc_pb2.Member(ID=ids[n], name=n, peerURLs=list(urls))
        for n, urls in initial_cluster.items()
    )
    return RestorePlan(name, ids[name], cluster_id(list(ids.values())), members)


def _go_bytes(data: bytes) -> str:
    # Go's %v of a byte slice.
    return "[" + " ".join(str(b) for b in data) + "]"


def _verify_hash(path: Path, skip_hash_check: bool) -> int:
    """The size of the lmdb part of the file, after checking the appended hash."""
    size = path.stat().st_size
    if not _has_hash(size):
        if not skip_hash_check:
            raise RestoreError("snapshot missing hash but --skip-hash-check=false")
        return size
    body = size - HASH_SIZE
    if skip_hash_check:
        return body
    digest = hashlib.sha256()
    with path.open("rb") as f:
        left = body
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
        want = f.read(HASH_SIZE)
    got = digest.digest()
    if got != want:
        raise RestoreError(f"expected sha256 {_go_bytes(want)}, got {_go_bytes(got)}")
    return body


def restore(
    snapshot: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    plan: RestorePlan,
    *,
    skip_hash_check: bool = False,
) -> SnapshotMetadata:
    """Write the data directory of `plan`'s member from `snapshot`; returns the Raft snapshot
    the member starts from. The data directory must not exist or be empty."""
    src = Path(snapshot)
    dest = Path(data_dir)
    if not src.exists():
        raise RestoreError(f"open {src}: no such file or directory")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RestoreError(f'data-dir "{dest}" exists')
    body = _verify_hash(src, skip_hash_check)
    _open_image(src).close()  # refuses a file that is not lmdb before anything is written
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    member = dest / "member"
    work = member / "restore.tmp"
    work.mkdir(mode=0o700, parents=True)
    try:
        with src.open("rb") as fin, (work / "data.mdb").open("wb") as fout:
            left = body
            while left:
                chunk = fin.read(min(left, 1 << 20))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
        os.chmod(work / "data.mdb", 0o600)
        image = Backend(work, BackendOptions(sync=False))
        try:
            with image.write() as txn:
                meta = _rewrite(image, txn, plan)
            db = member / "db"
            db.mkdir(mode=0o700)
            fd = os.open(db / "data.mdb", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                # Compacting: the old log's pages are not carried into the new cluster.
                image.env.copyfd(fd, compact=True)
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            image.close()
    except lmdb.Error as exc:
        shutil.rmtree(member, ignore_errors=True)
        raise RestoreError(f"{src} is not a Ward snapshot: {exc}") from None
    except BaseException:
        shutil.rmtree(member, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return meta


def _rewrite(image: Backend, txn: lmdb.Transaction, plan: RestorePlan) -> SnapshotMetadata:
    index = max(raftmeta.applied(txn, image.meta), 1)
    txn.put(K_MEMBER_ID, _U64.pack(plan.member_id), db=image.meta)
    txn.put(K_CLUSTER_ID, _U64.pack(plan.cluster_id), db=image.meta)
    txn.drop(image.members, delete=False)
    table = MemberTable(image)
    for m in plan.members:
        table.put(txn, m)
    cur = txn.cursor(db=image.auth)
    while cur.set_range(_JWT_KEY_PREFIX) and bytes(cur.key()).startswith(_JWT_KEY_PREFIX):
        cur.delete()
    conf = ConfState(voters=tuple(sorted(m.ID for m in plan.members)), learners=())
    meta = SnapshotMetadata(conf_state=conf, index=index, term=_RESTORED_TERM)
    raftmeta.put_hard_state(txn, image.meta, HardState(term=_RESTORED_TERM, vote=0, commit=index))
    raftmeta.reset_log(txn, image.meta, image.raftlog, meta)
    return meta
