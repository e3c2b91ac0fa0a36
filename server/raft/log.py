"""The Raft log: what ``Storage`` holds, plus the unstable tail not yet handed out for persisting.

Indexes below ``Unstable.offset`` are read from storage, the rest from the unstable tail (or its
pending snapshot). ``committed`` and ``applied`` track Raft's progress over the whole log.
"""

from __future__ import annotations

from server.raft.errors import (
    InvariantViolation,
    LogCompacted,
    LogUnavailable,
    SnapshotTemporarilyUnavailable,
)
from server.raft.storage import SnapshotReader, Storage, limit_size
from server.raft.types import Entry, Snapshot, SnapshotMetadata


class Unstable:
    """Entries (and possibly one incoming snapshot) not yet written to storage."""

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.offset = offset  # index of entries[0]
        self.entries: list[Entry] = []
        self.snapshot: Snapshot | None = None

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == index:
                return self.snapshot.metadata.term
            return None
        pos = index - self.offset
        if pos >= len(self.entries):
            return None
        return self.entries[pos].term

    def stable_to(self, index: int, term: int) -> None:
        """Drop entries up to ``index`` once persisted, unless they were replaced meanwhile."""
        if self.maybe_term(index) == term and index >= self.offset:
            del self.entries[: index + 1 - self.offset]
            self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.offset = snap.metadata.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, entries: list[Entry]) -> None:
        after = entries[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif after <= self.offset:
            # Replaces the whole unstable tail; storage entries from ``after`` on are superseded
            # and the driver overwrites them when it persists these.
            self.offset = after
            self.entries = list(entries)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(entries)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    """The log as Raft sees it: storage plus unstable tail, with commit and apply cursors."""

    def __init__(
        self, storage: Storage, *, max_size_per_msg: int, max_committed_size_per_ready: int = 0
    ) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the first index was compacted, hence committed and applied.
        self.committed = first - 1
        self.applied = first - 1
        # Committed entries handed out by a Ready but not yet acknowledged by advance().
        self.applying = first - 1
        self.max_size_per_msg = max_size_per_msg
        # Bytes of committed entries one Ready hands out (None: no limit).
        self.max_committed_size: int | None = max_committed_size_per_ready or None

    # -- bounds and terms --------------------------------------------------------------------

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, index: int) -> int:
        """Term of ``index``; raises ``LogCompacted`` / ``LogUnavailable`` outside the log."""
        t = self.unstable.maybe_term(index)
        if t is not None:
            return t
        if index < self.first_index() - 1:
            raise LogCompacted(f"index {index} is compacted")
        if index > self.last_index():
            raise LogUnavailable(f"index {index} is past the last entry")
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (LogCompacted, LogUnavailable):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (LogCompacted, LogUnavailable):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Whether a log ending at (``last_index``, ``term``) is at least as current as ours."""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    # -- appending ---------------------------------------------------------------------------

    def append(self, entries: list[Entry]) -> int:
        if not entries:
            return self.last_index()
        if entries[0].index - 1 < self.committed:
            raise InvariantViolation(
                f"append at {entries[0].index} would overwrite committed {self.committed}"
            )
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """Index of the first entry whose term differs from ours (or is new); 0 if none."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= ``index`` whose term is <= ``term``, with that term.

        Lets a rejection skip a whole term of divergent entries at once (fast backtracking).
        """
        while index > 0:
            try:
                t = self.term(index)
            except (LogCompacted, LogUnavailable):
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Append a leader's entries following (``index``, ``log_term``).

        Returns the index of the last new entry, or None when our log does not contain
        (``index``, ``log_term``) (the log matching check failed).
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise InvariantViolation(
                    f"entry {conflict} conflicts with committed entry (committed {self.committed})"
                )
            self.append(list(entries[conflict - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    # -- commit / apply ----------------------------------------------------------------------

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise InvariantViolation(
                    f"commit {index} past last index {self.last_index()} (log lost or corrupt)"
                )
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to ``index`` if it is from ``term`` (Raft commits only current-term entries
        by counting replicas; earlier ones become committed with them)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise InvariantViolation(
                f"applied {index} outside [{self.applied}, committed {self.committed}]"
            )
        self.applied = index
        self.applying = max(self.applying, index)

    def has_next_committed_entries(self) -> bool:
        return self.committed > self.applying and self.unstable.snapshot is None

    def next_committed_entries(self) -> list[Entry]:
        if not self.has_next_committed_entries():
            return []
        return self.slice(self.applying + 1, self.committed + 1, self.max_committed_size)

    def has_unstable(self) -> bool:
        return bool(self.unstable.entries)

    # -- reading -----------------------------------------------------------------------------

    def entries_from(self, index: int, max_size: int | None) -> list[Entry]:
        last = self.last_index()
        if index > last:
            return []
        return self.slice(index, last + 1, max_size)

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries ``[lo, hi)`` from storage and the unstable tail; may raise ``LogCompacted``."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise LogCompacted(f"index {lo} is compacted")
        if hi > self.last_index() + 1:
            raise InvariantViolation(f"slice [{lo}, {hi}) past last {self.last_index()}")
        off = self.unstable.offset
        if hi <= off:
            return self.storage.entries(lo, hi, max_size)
        if lo >= off:
            return limit_size(self.unstable.slice(lo, hi), max_size)
        stored = self.storage.entries(lo, off, max_size)
        if len(stored) < off - lo:
            return stored  # size limit reached inside storage
        return limit_size(stored + self.unstable.slice(off, hi), max_size)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def stored_snapshot_metadata(self) -> SnapshotMetadata:
        """Metadata of the image storage can serve to a follower.

        Only storage is asked: a snapshot still in the unstable tail has its image in the
        driver's staging area, not yet where the storage serves images from.
        """
        return self.storage.snapshot().metadata

    def snapshot_chunk(
        self, metadata: SnapshotMetadata, offset: int, max_size: int
    ) -> tuple[bytes, bool]:
        """Up to ``max_size`` image bytes from ``offset`` and whether they end the image."""
        storage = self.storage
        if isinstance(storage, SnapshotReader):
            data, last = storage.read_snapshot(metadata, offset, max_size)
        else:
            snap = storage.snapshot()
            if snap.metadata != metadata:
                raise SnapshotTemporarilyUnavailable("that snapshot was replaced")
            data = snap.data[offset : offset + max_size]
            last = offset + len(data) >= len(snap.data)
        if len(data) > max_size or (not data and not last):
            raise InvariantViolation(
                f"storage served {len(data)} snapshot bytes at {offset} (max {max_size})"
            )
        return data, last

    def restore(self, snap: Snapshot) -> None:
        """Replace the log by a snapshot received from the leader."""
        self.committed = snap.metadata.index
        self.unstable.restore(snap)
