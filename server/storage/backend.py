"""The one lmdb environment that holds all of a member's state.

The MVCC keyspace, leases, the auth tables, the Raft log and the member's metadata live in named
databases of a single environment, so one fsync'd commit makes a whole Raft `Ready` durable: new
log entries, the hard state and the effects of the committed entries together.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lmdb

# lmdb's compiled-in limit on key length; etcd allows longer keys, Ward refuses them clearly.
MAX_KEY_SIZE = 511

DB_NAMES = ("meta", "hist", "cur", "keyrev", "lease", "leasekeys", "auth", "raftlog", "members")


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """How the environment is opened."""

    map_size: int = 8 << 30
    readonly: bool = False  # open existing databases only (worker processes)
    sync: bool = True
    max_readers: int = 1024


class Backend:
    """An open lmdb environment with Ward's named databases."""

    def __init__(self, path: str | os.PathLike[str], options: BackendOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or BackendOptions()
        # Threads using the environment outside the owner's control (a snapshot image being
        # copied); `close` waits for them, see `hold`.
        self._holders = 0
        self._released = threading.Condition()
        self._open()

    def _open(self) -> None:
        opts = self.options
        if not opts.readonly:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Workers open the environment writable but never write: py-lmdb recycles read-only
        # transactions (reset, not commit), which would discard handles opened inside one.
        self.env = lmdb.open(
            str(self.path),
            map_size=opts.map_size,
            max_dbs=len(DB_NAMES) + 2,
            readonly=False,
            sync=opts.sync,
            metasync=opts.sync,
            lock=True,
            readahead=False,
            max_readers=opts.max_readers,
            subdir=True,
        )
        dbs = {
            name: self.env.open_db(
                name.encode(), dupsort=(name == "keyrev"), create=not opts.readonly
            )
            for name in DB_NAMES
        }
        self.meta = dbs["meta"]
        self.hist = dbs["hist"]
        self.cur = dbs["cur"]
        self.keyrev = dbs["keyrev"]
        self.lease = dbs["lease"]
        self.leasekeys = dbs["leasekeys"]
        self.auth = dbs["auth"]
        self.raftlog = dbs["raftlog"]
        self.members = dbs["members"]

    def read(self) -> lmdb.Transaction:
        """A read transaction: a consistent view of the last commit."""
        return self.env.begin(buffers=False)

    def write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)

    def size(self) -> int:
        """Bytes of the database file that are allocated (etcd's db size)."""
        info = self.env.info()
        return (info["last_pgno"] + 1) * self.env.stat()["psize"]

    def size_in_use(self) -> int:
        """Bytes held by live pages of all databases (etcd's dbSizeInUse)."""
        with self.env.begin() as txn:
            main = txn.stat()  # the main database holds the names of the others
            pages = 2 + main["branch_pages"] + main["leaf_pages"] + main["overflow_pages"]
            return pages * self.env.stat()["psize"] + self._live_bytes(self._all_dbs(), txn)

    def _all_dbs(self) -> list[object]:
        return [
            self.meta,
            self.hist,
            self.cur,
            self.keyrev,
            self.lease,
            self.leasekeys,
            self.auth,
            self.raftlog,
            self.members,
        ]

    def _live_bytes(self, dbs: list[object], txn: lmdb.Transaction | None = None) -> int:
        """Bytes of the branch, leaf and overflow pages of `dbs` (seen by `txn`, if given)."""
        if txn is None:
            with self.env.begin() as own:
                return self._live_bytes(dbs, own)
        pages = 0
        for db in dbs:
            st = txn.stat(db)
            pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return pages * self.env.stat()["psize"]

    @contextmanager
    def hold(self) -> Iterator[lmdb.Environment]:
        """The environment, kept open until the block ends: `close` (and so `defragment`)
        waits for every holder, since closing it under a running lmdb call (a copy in another
        thread) crashes the process."""
        with self._released:
            self._holders += 1
        try:
            yield self.env
        finally:
            with self._released:
                self._holders -= 1
                self._released.notify_all()

    def reopen(self) -> None:
        """Open the environment again (after `close`), e.g. once a defragmented file is in place.

        Everything holding this Backend sees the new handles: they are looked up on each use.
        """
        self._open()

    def defragment(self) -> None:
        """Replace the file with a compacted copy. Nothing else may use the environment now.

        The copy is written beside the file and renamed over it, so a crash leaves either the
        old or the new file, both whole.
        """
        tmp = self.path / "defrag.tmp"
        tmp.mkdir(mode=0o700, exist_ok=True)
        (tmp / "data.mdb").unlink(missing_ok=True)
        self.env.copy(str(tmp), compact=True)
        self.close()
        os.replace(tmp / "data.mdb", self.path / "data.mdb")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.rmdir()
        self._open()

    def quota_used(self) -> int:
        """Bytes the quota counts: live pages of the keyspace, leases and auth tables.

        Unlike etcd's file size, pages freed by compaction stop counting at once (no
        defragmentation needed to get under the quota again), and the Raft log, which etcd
        keeps outside its database, does not count.
        """
        return self._live_bytes([db for db in self._all_dbs() if db is not self.raftlog])

    def raftlog_bytes(self, txn: lmdb.Transaction) -> int:
        """Bytes of the Raft log as `txn` sees it (the driver asks inside its write)."""
        return self._live_bytes([self.raftlog], txn)

    def sync(self) -> None:
        self.env.sync(True)

    def close(self) -> None:
        """Close the environment, once no `hold` is in force."""
        with self._released:
            self._released.wait_for(lambda: self._holders == 0)
            self.env.close()
