"""Raft snapshot images of the member's lmdb environment: built, served, staged and installed.

An image is a compacted lmdb copy of the whole environment as of one commit, so the state
machine it holds (keyspace, leases, auth, alarms) is exactly the one at its applied index. It
is scrubbed before it is served: the Raft log is emptied (compacted up to the image's index) and
the keys that belong to the member rather than to the cluster (`LOCAL_KEYS`) are removed, so an
image never carries another member's identity, vote or log.

Leader side (`ImageStore`). Images live in the member's `snap/` directory as
`<index>-<term>.snap` (hex, as etcd names its snapshots); only the newest is kept. A build runs
in a thread of its own: lmdb copies inside a read transaction of their own and release the GIL,
so neither the event loop nor the writer waits for it. `read` serves the current image by
offset; an image replaced meanwhile raises `SnapshotTemporarilyUnavailable` and the core starts
the transfer over.

Follower side (`ImageReceiver`). Chunks are written at their offsets into a staging copy
(`snap/recv.tmp/data.mdb`), without fsync: a crash mid-transfer makes the leader start over.
`install` turns the staged copy into this member's database. Its order is what makes a
`kill -9` (or a power cut) at any point leave a usable database, the old or the new one:

1. fsync the staged file, then, *in the staged file*, write this member's identity and hard
   state, the empty log compacted to the image, the applied index and the membership, in one
   committed (fsync'd) lmdb transaction. Until the rename below the old database is untouched;
   a crash leaves a stray `*.tmp` that the next start deletes.
2. Close the environment and rename the staged file over `data.mdb` (atomic), then fsync the
   database directory so the rename itself is durable. Before the directory fsync, either name
   may survive a power cut; both are whole databases of this member.
3. Reopen.

Rewriting the member's state after the rename instead would leave a window in which the data
file is the leader's image: a crash there would restart the member with the leader's ID, vote
and log.

Around install, the driver (with `Ready.snapshot` in hand):

* pauses the worker processes (`WorkerHub.pause_all`, as `Member.defragment` does) and runs
  `RaftLog.install(rd.snapshot.metadata, hard_state=rd.hard_state)` with no other write in
  flight and no transaction open in its process (as in `Driver.exclusive`); then persists the
  rest of the Ready as usual (its entries follow the image's index) and resumes the workers;
* reloads what caches the store: `Driver.applied_index` (= `RaftLog.applied`); the current
  revision (`KVStore.current_revision`), handed to the revision listeners (revision clock,
  workers' `PUSH_REV`), which may jump forward: watches read the gap from `hist`, or are
  canceled as compacted; the lessor (`Lessor.reset(applier.leases(txn))`, after clearing
  `Applier.lease_changes`, which describe the replaced state); the auth store
  (`AuthStore.reload`) once it is wired in; the membership, from `RaftLog.initial_state()`.
  The term is unchanged (the hard state is kept); alarms, quota and reads need nothing.

A build holds the environment open (`Backend.hold`): `Backend.close`, hence defragmentation,
waits for it. To keep the event loop free meanwhile, wait for `ImageStore.wait` in an executor
before entering `Driver.exclusive`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import lmdb

from server.raft import HardState, SnapshotChunk, SnapshotMetadata
from server.raft.errors import InvariantViolation, SnapshotTemporarilyUnavailable
from server.storage import raftmeta
from server.storage.backend import DB_NAMES, Backend, BackendOptions

log = logging.getLogger("ward.snapshot")

IMAGE_SUFFIX = ".snap"
TEMP_SUFFIX = ".tmp"  # anything so named in snap/ is a leftover of a crash, deleted at start

# Keys of `meta` that describe this member, not the replicated state: never taken from an
# image, never shipped in one. (`member_id` and `cluster_id` are written by the server.)
K_MEMBER_ID = b"member_id"
K_CLUSTER_ID = b"cluster_id"
LOCAL_KEYS = (K_MEMBER_ID, K_CLUSTER_ID, raftmeta.K_HARDSTATE)

# A failed build (disk full, say) is not retried sooner than this: the core asks again on
# every heartbeat response.
BUILD_RETRY_S = 5.0


class ImageError(Exception):
    """A received image cannot be installed (it does not describe what Raft said it does)."""


@dataclass(frozen=True, slots=True)
class Image:
    """One image file: what it is an image of, where it is, how many bytes it has."""

    metadata: SnapshotMetadata
    path: Path
    size: int


def image_name(metadata: SnapshotMetadata) -> str:
    return f"{metadata.index:016x}-{metadata.term:016x}{IMAGE_SUFFIX}"


def snap_dir_of(backend: Backend) -> Path:
    """The default image directory: `snap/` beside the database directory (`member/snap`)."""
    return backend.path.parent / "snap"


class ImageStore:
    """The member's images: the newest is served; one is built at a time, in a thread."""

    def __init__(self, backend: Backend, directory: str | os.PathLike[str]) -> None:
        self._b = backend
        self.dir = Path(directory)
        self._lock = threading.Lock()  # guards _image, _fd and _thread
        self._image: Image | None = None
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        self._failed_at = -BUILD_RETRY_S
        self.last_error: BaseException | None = None
        self._load()

    def _load(self) -> None:
        """Drop crash leftovers and older images; adopt the newest image, if it reads back."""
        if not self.dir.is_dir():
            return
        images: list[tuple[int, int, Path]] = []
        for p in self.dir.iterdir():
            if p.name.endswith(TEMP_SUFFIX):
                _remove(p)
            elif p.name.endswith(IMAGE_SUFFIX):
                try:
                    idx, term = (int(x, 16) for x in p.name[: -len(IMAGE_SUFFIX)].split("-"))
                except ValueError:
                    continue
                images.append((idx, term, p))
        images.sort()
        while images:
            _idx, _term, p = images.pop()
            meta = _read_image_metadata(p) if not self._image else None
            if meta is not None and image_name(meta) == p.name:
                self._image = Image(meta, p, p.stat().st_size)
            else:
                _remove(p)

    # ---- queries ----

    @property
    def image(self) -> Image | None:
        """The image being served, if any."""
        return self._image

    @property
    def building(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    # ---- building ----

    def build_async(self) -> bool:
        """Start building an image of the current state in a thread, unless one is running or
        the last attempt failed less than `BUILD_RETRY_S` ago. True when one was started."""
        with self._lock:
            if self.building or time.monotonic() - self._failed_at < BUILD_RETRY_S:
                return False
            # Held from here, not from inside the thread: a `close` (defragmentation) that
            # starts before the thread gets going must wait for it too.
            stack = contextlib.ExitStack()
            env = stack.enter_context(self._b.hold())
            t = threading.Thread(
                target=self._run_build, args=(env, stack), name="ward-snapshot", daemon=True
            )
            self._thread = t
        try:
            t.start()
        except BaseException:
            stack.close()
            raise
        return True

    def _run_build(self, env: lmdb.Environment, stack: contextlib.ExitStack) -> None:
        try:
            with stack:
                start = time.monotonic()
                img = self._build(env)
            log.info(
                "built snapshot image",
                extra={
                    "index": img.metadata.index,
                    "term": img.metadata.term,
                    "bytes": img.size,
                    "took_s": round(time.monotonic() - start, 3),
                },
            )
        except Exception as e:
            self.last_error = e
            self._failed_at = time.monotonic()
            log.exception("could not build a snapshot image")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running build to finish; False if it still runs after `timeout`."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    def _build(self, env: lmdb.Environment) -> Image:
        b = self._b
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = self.dir / f"build{TEMP_SUFFIX}"
        _remove(work)
        work.mkdir(mode=0o700)
        try:
            # One read transaction both describes the image and is copied, so the metadata
            # is exactly that of the copied state. (`copyfd`, not `copy`: lmdb writes a copy
            # to a path with O_DIRECT, and the scrub and second copy would read it from disk.)
            with env.begin() as txn:
                meta = raftmeta.applied_metadata(txn, b.meta, b.raftlog)
                _copy_to(env, work / "data.mdb", txn=txn)
            if meta.index == 0:
                raise InvariantViolation("no entry applied yet: nothing to take an image of")
            part = self.dir / (image_name(meta) + TEMP_SUFFIX)
            copy = Backend(work, BackendOptions(map_size=b.options.map_size, sync=False))
            try:
                with copy.write() as txn:
                    for k in LOCAL_KEYS:
                        txn.delete(k, db=copy.meta)
                    raftmeta.reset_log(txn, copy.meta, copy.raftlog, meta)
                # Copy again, compacting: the scrubbed log's pages (up to LOG_MAX_BYTES of
                # them) would otherwise travel to every follower as free pages.
                _copy_to(copy.env, part, fsync=b.options.sync)
            finally:
                copy.close()
        finally:
            _remove(work)
        path = self.dir / image_name(meta)
        os.replace(part, path)
        if b.options.sync:
            _fsync_dir(self.dir)
        img = Image(meta, path, path.stat().st_size)
        self._adopt(img)
        return img

    def _adopt(self, img: Image) -> None:
        """Serve `img` from now on; the image it replaces is deleted."""
        with self._lock:
            old, self._image = self._image, img
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if old is not None and old.path != img.path:
            old.path.unlink(missing_ok=True)

    # ---- serving ----

    def read(self, metadata: SnapshotMetadata, offset: int, max_size: int) -> tuple[bytes, bool]:
        """Bytes of the image of `metadata` from `offset` (at most `max_size`) and whether they
        end it; `SnapshotTemporarilyUnavailable` once that image was replaced."""
        with self._lock:
            img = self._image
            if img is None or img.metadata != metadata:
                raise SnapshotTemporarilyUnavailable("that snapshot image was replaced")
            if self._fd is None:
                self._fd = os.open(img.path, os.O_RDONLY)
            data = os.pread(self._fd, max_size, offset)
        return data, offset + len(data) >= img.size

    def close(self) -> None:
        """Wait for a running build, then let go of the served file."""
        self.wait()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class ImageReceiver:
    """The image being received from the leader, staged until Raft says to install it."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self._work = self.dir / f"recv{TEMP_SUFFIX}"  # an lmdb directory: data.mdb, lock.mdb
        self._fd: int | None = None
        self._meta: SnapshotMetadata | None = None
        self._size = 0
        self._done = False

    @property
    def staged(self) -> SnapshotMetadata | None:
        """Metadata of the image staged whole (its last chunk written), if any."""
        return self._meta if self._done else None

    def stage(self, chunk: SnapshotChunk) -> None:
        """Write a chunk accepted by the core (`Ready.snapshot_chunks`) at its offset; a chunk
        at offset 0 starts over. No fsync: a transfer cut by a crash is restarted anyway."""
        if chunk.offset == 0:
            self.discard()
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._work.mkdir(mode=0o700)
            self._fd = os.open(self._work / "data.mdb", os.O_WRONLY | os.O_CREAT, 0o600)
            self._meta = chunk.metadata
        elif self._fd is None or chunk.metadata != self._meta or chunk.offset != self._size:
            # The core checks order, transfer and checksum: this is a driver bug.
            raise InvariantViolation(f"snapshot chunk at {chunk.offset} does not follow")
        assert self._fd is not None
        view = memoryview(chunk.data)
        pos = chunk.offset
        while view:
            n = os.pwrite(self._fd, view, pos)
            view, pos = view[n:], pos + n
        self._size = pos
        self._done = chunk.done

    def discard(self) -> None:
        """Forget the staged image (if any) and delete its file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._meta = None
        self._size = 0
        self._done = False
        _remove(self._work)

    def install(
        self, backend: Backend, metadata: SnapshotMetadata, *, hard_state: HardState | None = None
    ) -> None:
        """Make the staged image of `metadata` this member's database (see the module doc).

        Keeps this member's identity (`LOCAL_KEYS`) and hard state (`hard_state` when given,
        e.g. the one of the Ready being persisted, else the persisted one), with the commit
        index raised to the image's. Closes and reopens `backend`: the caller guarantees that
        nothing else uses the environment meanwhile (no transaction open in this process,
        other processes' handles closed).
        """
        if self.staged != metadata:
            raise InvariantViolation(f"no complete image staged for snapshot {metadata.index}")
        try:
            self._prepare(backend, metadata, hard_state)
        except BaseException:
            # The old database is untouched: leave nothing half-installed behind either.
            self.discard()
            raise
        backend.close()
        try:
            _rename(self._work / "data.mdb", backend.path / "data.mdb")
            if backend.options.sync:
                _fsync_dir(backend.path)
        finally:
            backend.reopen()
        self.discard()

    def _prepare(
        self, backend: Backend, metadata: SnapshotMetadata, hard_state: HardState | None
    ) -> None:
        """Step 1 of `install`: the staged file, durable and made this member's."""
        assert self._fd is not None
        sync = backend.options.sync
        fd, self._fd = self._fd, None
        try:
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        with backend.read() as txn:
            local = {k: txn.get(k, db=backend.meta) for k in LOCAL_KEYS}
            ours = raftmeta.hard_state(txn, backend.meta)
        hs = hard_state if hard_state is not None else ours
        hs = replace(hs, commit=max(hs.commit, metadata.index))
        staged = Backend(self._work, BackendOptions(map_size=backend.options.map_size, sync=sync))
        try:
            with staged.read() as txn:
                got = raftmeta.applied_metadata(txn, staged.meta, staged.raftlog)
            if got != metadata:
                raise ImageError(f"the image received for {metadata} is one of {got}")
            with staged.write() as txn:
                for k, v in local.items():
                    if v is None:
                        txn.delete(k, db=staged.meta)
                    else:
                        txn.put(k, v, db=staged.meta)
                raftmeta.put_hard_state(txn, staged.meta, hs)
                raftmeta.reset_log(txn, staged.meta, staged.raftlog, metadata)
        finally:
            staged.close()


# ---- files ----


def _read_image_metadata(path: Path) -> SnapshotMetadata | None:
    """What an image file is an image of, or None when it does not read back."""
    try:
        env = lmdb.open(
            str(path), subdir=False, readonly=True, lock=False, max_dbs=len(DB_NAMES) + 2
        )
    except lmdb.Error:
        return None
    try:
        meta = env.open_db(b"meta", create=False)
        log_db = env.open_db(b"raftlog", create=False)
        with env.begin() as txn:
            return raftmeta.applied_metadata(txn, meta, log_db)
    except (lmdb.Error, LookupError):
        return None
    finally:
        env.close()


def _copy_to(
    env: lmdb.Environment, path: Path, *, txn: lmdb.Transaction | None = None, fsync: bool = False
) -> None:
    """A compacted copy of `env` (as `txn` sees it) written to the file `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        env.copyfd(fd, compact=True, txn=txn)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _rename(src: Path, dst: Path) -> None:
    os.replace(src, dst)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
