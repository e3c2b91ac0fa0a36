"""Ward's Raft core: a pure, deterministic state machine (standard library only).

Drive a :class:`RawNode` with ``tick()``, ``step()`` and proposals; drain its work with
``has_ready()`` / ``ready()`` / ``advance()``. Nothing here does I/O, threads or real time.

Snapshots stream in chunks the driver stages and installs; see :mod:`server.raft.storage` for
what storage must serve and :class:`Ready` for what the driver does with each piece.
"""

from server.raft.config import Config
from server.raft.errors import (
    ConfigError,
    InvalidConfChange,
    InvariantViolation,
    LeaderTransferInProgress,
    LogCompacted,
    LogUnavailable,
    MessageRejected,
    ProposalDropped,
    RaftError,
    SnapshotTemporarilyUnavailable,
    UncommittedSizeExceeded,
)
from server.raft.rawnode import RawNode
from server.raft.storage import MemoryStorage, SnapshotReader, Storage
from server.raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProgressStatus,
    ReadState,
    Ready,
    Snapshot,
    SnapshotChunk,
    SnapshotMetadata,
    SoftState,
    StateType,
    Status,
)

__all__ = [
    "NONE",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "ConfigError",
    "Entry",
    "EntryType",
    "HardState",
    "InvalidConfChange",
    "InvariantViolation",
    "LeaderTransferInProgress",
    "LogCompacted",
    "LogUnavailable",
    "MemoryStorage",
    "Message",
    "MessageRejected",
    "MessageType",
    "ProgressStatus",
    "ProposalDropped",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "Snapshot",
    "SnapshotChunk",
    "SnapshotMetadata",
    "SnapshotReader",
    "SnapshotTemporarilyUnavailable",
    "SoftState",
    "StateType",
    "Status",
    "Storage",
    "UncommittedSizeExceeded",
]
