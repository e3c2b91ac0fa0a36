"""The stable storage Raft reads from (``Storage``) and an in-memory implementation for tests.

The core only ever *reads* through ``Storage``; writing is the driver's job (it persists what a
``Ready`` hands out), so the Protocol has no mutators.

Snapshots travel in chunks, and the image bytes never need to be in memory at once:

* Leader side. When a follower needs entries that were compacted away, the core asks
  ``Storage.snapshot()`` for the *metadata* of an image the storage can serve (index, term and
  membership as of that index; the index must be at least ``first_index() - 1`` and the
  membership must include the follower, else the core waits for a newer image). It then reads
  the image piecewise, at most ``Config.max_snapshot_chunk`` bytes at a time, through
  ``SnapshotReader.read_snapshot`` when the storage implements it (an image kept in a file),
  or by slicing ``snapshot().data`` otherwise (an image small enough for memory). An image that
  is replaced mid-transfer (``read_snapshot`` raises ``SnapshotTemporarilyUnavailable``) makes
  the core start over with the new one.
* Follower side. The core checks every chunk (order, transfer, running CRC-32) and hands the
  accepted ones to the driver in ``Ready.snapshot_chunks`` for staging, then, once the last
  chunk checks out, hands out ``Ready.snapshot`` (metadata only) to install the staged image.
  ``MemoryStorage.stage_snapshot_chunk`` / ``apply_snapshot`` are the in-memory version.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from server.raft.errors import (
    InvariantViolation,
    LogCompacted,
    LogUnavailable,
    SnapshotTemporarilyUnavailable,
)
from server.raft.types import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotChunk,
    SnapshotMetadata,
)


class Storage(Protocol):
    """Read access to the persisted log, hard state and snapshot.

    Indexes: the log holds entries ``first_index() .. last_index()``; ``term(first_index() - 1)``
    must also answer (the term of the last compacted entry, i.e. of the snapshot). An empty log
    has ``last_index() == first_index() - 1``.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state, and the membership as of the applied index."""
        ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries ``[lo, hi)``, cut after ``max_size`` bytes of data but never empty.

        Raises ``LogCompacted`` when ``lo < first_index()``, ``LogUnavailable`` when
        ``hi > last_index() + 1``.
        """
        ...

    def term(self, index: int) -> int:
        """Term of entry ``index``, for ``first_index() - 1 <= index <= last_index()``.

        Raises ``LogCompacted`` below that range and ``LogUnavailable`` above it.
        """
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot; may raise ``SnapshotTemporarilyUnavailable``.

        Only ``metadata`` is needed when the storage is also a :class:`SnapshotReader`.
        """
        ...


@runtime_checkable
class SnapshotReader(Protocol):
    """Optional for a ``Storage``: serves a snapshot image piecewise (an image in a file)."""

    def read_snapshot(
        self, metadata: SnapshotMetadata, offset: int, max_size: int
    ) -> tuple[bytes, bool]:
        """Bytes ``[offset, offset + n)`` of the image described by ``metadata``, with
        ``0 < n <= max_size`` (``n == 0`` only for an empty image), and whether they end it.

        Raises ``SnapshotTemporarilyUnavailable`` when that image is no longer available
        (replaced by a newer one): the core starts the transfer over.
        """
        ...


def limit_size(entries: list[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix of ``entries`` within ``max_size`` data bytes, but at least one."""
    if max_size is None or len(entries) <= 1:
        return entries
    size = len(entries[0].data)
    for i in range(1, len(entries)):
        size += len(entries[i].data)
        if size > max_size:
            return entries[:i]
    return entries


class MemoryStorage:
    """A ``Storage`` kept in lists, with the mutators a driver would have (tests use it)."""

    def __init__(self, *, conf_state: ConfState | None = None) -> None:
        self.hard_state = HardState()
        self._snapshot = Snapshot(metadata=SnapshotMetadata(conf_state=conf_state or ConfState()))
        self.conf_state = conf_state or ConfState()
        # _ents[0] is a dummy standing for the last compacted entry (the snapshot's index/term).
        self._ents: list[Entry] = [Entry(term=0, index=0)]
        # The image being received: its metadata and the bytes staged so far.
        self._staged_meta: SnapshotMetadata | None = None
        self._staged = bytearray()

    # -- Storage -----------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self.conf_state

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise LogCompacted(f"index {lo} is compacted (first is {offset + 1})")
        if hi > self.last_index() + 1:
            raise LogUnavailable(f"entries up to {hi - 1} requested, last is {self.last_index()}")
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise LogCompacted(f"index {index} is compacted")
        if index - offset >= len(self._ents):
            raise LogUnavailable(f"index {index} is past the last entry")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- SnapshotReader ----------------------------------------------------------------------

    def read_snapshot(
        self, metadata: SnapshotMetadata, offset: int, max_size: int
    ) -> tuple[bytes, bool]:
        if metadata != self._snapshot.metadata:
            raise SnapshotTemporarilyUnavailable("that snapshot was replaced")
        data = self._snapshot.data
        piece = data[offset : offset + max_size]
        return piece, offset + len(piece) >= len(data)

    # -- mutators (what a driver does with a Ready) ------------------------------------------

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def set_conf_state(self, cs: ConfState) -> None:
        self.conf_state = cs

    def append(self, entries: list[Entry]) -> None:
        """Persist entries, replacing any existing entries from ``entries[0].index`` on."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return  # all already compacted
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        if offset > len(self._ents):
            raise InvariantViolation(
                f"gap: appending index {entries[0].index} after last {self.last_index()}"
            )
        del self._ents[offset:]
        self._ents.extend(entries)

    def stage_snapshot_chunk(self, chunk: SnapshotChunk) -> None:
        """Write one received chunk (``Ready.snapshot_chunks``) into the staging area."""
        if chunk.offset == 0:
            self._staged_meta = chunk.metadata
            self._staged = bytearray()
        if chunk.metadata != self._staged_meta or chunk.offset != len(self._staged):
            raise InvariantViolation(f"snapshot chunk at {chunk.offset} out of order")
        self._staged += chunk.data

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by ``snap`` (a follower receiving a snapshot).

        When ``snap.data`` is empty (as ``Ready.snapshot`` hands it out) the image staged for
        its metadata is installed.
        """
        if snap.metadata.index <= self._snapshot.metadata.index:
            return
        if not snap.data and self._staged_meta == snap.metadata:
            snap = Snapshot(data=bytes(self._staged), metadata=snap.metadata)
            self._staged_meta = None
            self._staged = bytearray()
        self._snapshot = snap
        self.conf_state = snap.metadata.conf_state
        self._ents = [Entry(term=snap.metadata.term, index=snap.metadata.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine as of applied ``index``."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotTemporarilyUnavailable("snapshot out of date")
        if index > self.last_index():
            raise InvariantViolation(f"snapshot index {index} past last {self.last_index()}")
        meta = SnapshotMetadata(conf_state=conf_state, index=index, term=self.term(index))
        self._snapshot = Snapshot(data=data, metadata=meta)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard entries before ``index`` (``index`` becomes the dummy entry)."""
        offset = self._ents[0].index
        if index <= offset:
            raise LogCompacted(f"index {index} already compacted")
        if index > self.last_index():
            raise InvariantViolation(f"compact {index} past last {self.last_index()}")
        kept = self._ents[index - offset :]
        self._ents = [Entry(term=kept[0].term, index=kept[0].index), *kept[1:]]
