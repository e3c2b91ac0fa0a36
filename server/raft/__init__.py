"""Ward's Raft core: a pure, deterministic state machine (standard library only).

Drive a :class:`RawNode` with ``tick()``, ``step()`` and proposals; drain its work with
``has_ready()`` / ``ready()`` / ``advance()``. Nothing here does I/O, threads or real time.
"""

from server.raft.config import Config
from server.raft.errors import (
    ConfigError,
    InvalidConfChange,
    InvariantViolation,
    LogCompacted,
    LogUnavailable,
    MessageRejected,
    ProposalDropped,
    RaftError,
    SnapshotTemporarilyUnavailable,
)
from server.raft.rawnode import RawNode
from server.raft.storage import MemoryStorage, Storage
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
    "SnapshotMetadata",
    "SnapshotTemporarilyUnavailable",
    "SoftState",
    "StateType",
    "Status",
    "Storage",
]
