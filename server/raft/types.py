"""Value types of the Raft core: log entries, persistent state, messages and what Ready reports.

Every type here is a frozen, slotted dataclass or an ``IntEnum``, so values can be shared between
the core, the driver and the transport without defensive copies. Enum numbers follow etcd's
``raftpb`` so a wire encoding can map them one to one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from server.raft.errors import InvalidConfChange

NONE = 0
"""The node id meaning "nobody" (no leader, no vote)."""


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``data`` is opaque to Raft except for ``CONF_CHANGE`` entries."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """The state that must be on stable storage before any message of the same Ready is sent."""

    term: int = 0
    vote: int = 0
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """The cluster membership: voting members and learners (which replicate but do not vote)."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    conf_state: ConfState = ConfState()
    index: int = 0
    term: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state-machine image covering the log up to ``metadata.index``. ``data`` is opaque.

    Where the core hands a snapshot *out* (``Ready.snapshot``) ``data`` is empty: the image
    arrived piecewise in ``Ready.snapshot_chunks`` and was staged by the driver.
    """

    data: bytes = b""
    metadata: SnapshotMetadata = SnapshotMetadata()

    @property
    def is_empty(self) -> bool:
        return self.metadata.index == 0


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """One piece of a snapshot image in transit (a Ward extension: etcd ships images whole).

    A leader streams an image to a follower as ``SNAP`` messages each carrying one chunk of at
    most ``Config.max_snapshot_chunk`` bytes, in order. ``checksum`` is the CRC-32
    (``zlib.crc32``) of the image bytes ``[0, offset + len(data))``, so the receiver detects a
    chunk spliced in from another image or transfer as soon as it arrives. ``transfer`` names
    the leader's attempt: a lost or reordered chunk makes the follower refuse the rest of that
    attempt and the leader restart from offset 0 under a new ``transfer`` id.

    The same type reports the follower's acknowledgement (``SNAP_RESP``: ``offset`` is the
    number of bytes held, ``data`` empty) and hands received pieces to the driver
    (``Ready.snapshot_chunks``).
    """

    metadata: SnapshotMetadata
    offset: int = 0
    data: bytes = b""
    done: bool = True
    checksum: int = 0
    transfer: int = 0


class MessageType(IntEnum):
    HUP = 0  # local: start an election
    BEAT = 1  # local: leader sends heartbeats
    PROP = 2  # local: propose entries
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    SNAP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10  # local: the transport could not reach a peer
    SNAP_STATUS = 11  # local: the transport reports a snapshot's delivery
    CHECK_QUORUM = 12  # local
    TRANSFER_LEADER = 13
    TIMEOUT_NOW = 14
    READ_INDEX = 15
    READ_INDEX_RESP = 16
    PRE_VOTE = 17
    PRE_VOTE_RESP = 18
    # Ward extension (not in raftpb, hence far from its numbers): a follower acknowledges or
    # refuses one snapshot chunk.
    SNAP_RESP = 100


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
        MessageType.CHECK_QUORUM,
        # Leadership transfers are requested of the leader by its own driver, never relayed.
        MessageType.TRANSFER_LEADER,
    }
)
"""Types only the node itself may step; a peer sending one is refused."""

RESPONSE_MESSAGES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.UNREACHABLE,
        MessageType.READ_INDEX_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.SNAP_RESP,
    }
)


def vote_response_type(t: MessageType) -> MessageType:
    """The response type matching a (pre-)vote request type."""
    if t == MessageType.VOTE:
        return MessageType.VOTE_RESP
    if t == MessageType.PRE_VOTE:
        return MessageType.PRE_VOTE_RESP
    raise ValueError(f"not a vote message: {t!r}")


@dataclass(frozen=True, slots=True)
class Message:
    """A message between Raft peers (or a local input stepped by the node itself).

    ``from_`` carries the sender because ``from`` is a Python keyword. ``context`` carries the
    read-index request context on heartbeats and read-index messages, and the campaign kind on
    forced (leader-transfer) votes.

    ``SNAP`` messages sent by the core carry the image piecewise in ``chunk``; a ``SNAP`` with
    ``snapshot`` set and no ``chunk`` (a whole image in one message, as etcd sends it) is
    accepted too. ``SNAP_RESP`` carries ``chunk`` without data as the acknowledgement.
    """

    type: MessageType
    to: int = NONE
    from_: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    chunk: SnapshotChunk | None = None


class StateType(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting (not persisted): who leads, and this node's role."""

    lead: int = NONE
    raft_state: StateType = StateType.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """Answer to ``read_index(ctx)``: reads are linearizable once ``index`` is applied."""

    index: int
    request_ctx: bytes


class ConfChangeType(IntEnum):
    ADD_NODE = 0  # add a voter, or promote a learner
    REMOVE_NODE = 1
    UPDATE_NODE = 2  # no change to membership; carries context for the application
    ADD_LEARNER_NODE = 3  # add a learner, or demote a voter


_CONF_CHANGE_HEADER = struct.Struct(">BQ")


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change. ``context`` is opaque to Raft (the member's URLs, say)."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def __post_init__(self) -> None:
        if not 0 < self.node_id < 1 << 64:
            raise InvalidConfChange(f"node id out of range: {self.node_id}")

    def encode(self) -> bytes:
        """The bytes stored as the data of a ``CONF_CHANGE`` log entry."""
        return _CONF_CHANGE_HEADER.pack(self.type, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        """Parse :meth:`encode`'s output; raises :class:`InvalidConfChange` on malformed bytes."""
        if len(data) < _CONF_CHANGE_HEADER.size:
            raise InvalidConfChange("conf change entry too short")
        raw_type, node_id = _CONF_CHANGE_HEADER.unpack_from(data)
        try:
            cc_type = ConfChangeType(raw_type)
        except ValueError:
            raise InvalidConfChange(f"unknown conf change type {raw_type}") from None
        return cls(type=cc_type, node_id=node_id, context=bytes(data[_CONF_CHANGE_HEADER.size :]))


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    """A leader's view of one follower, as reported by ``status()``."""

    match: int
    next: int
    state: str
    recent_active: bool
    is_learner: bool
    pending_snapshot: int = 0
    inflight_bytes: int = 0  # entry bytes sent and not yet acknowledged
    snapshot_acked: int = 0  # image bytes the follower holds, while a snapshot streams


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    progress: dict[int, ProgressStatus] = field(default_factory=dict)
    lead_transferee: int = NONE


@dataclass(frozen=True, slots=True)
class Ready:
    """The work the driver must do, in this order, then hand back through ``advance``.

    1. Stage ``snapshot_chunks`` in order: write each chunk's ``data`` at its ``offset`` into
       the staging area of its ``metadata`` (a chunk at offset 0 discards whatever was staged
       before). No fsync is needed: a crash mid-transfer makes the leader start over.
    2. Persist ``hard_state`` (when not None), ``snapshot`` (when not None: install the image
       staged for ``snapshot.metadata``, complete and checksummed; ``snapshot.data`` is empty)
       and ``entries``; fsync when ``must_sync``.
    3. Send ``messages`` (only after steps 1-2: they may promise what was just persisted).
    4. Apply ``committed_entries`` in order (they may include entries of step 2).
    5. Serve ``read_states`` once their index is applied.
    """

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: list[Entry]
    snapshot: Snapshot | None
    committed_entries: list[Entry]
    messages: list[Message]
    read_states: list[ReadState]
    must_sync: bool
    snapshot_chunks: list[SnapshotChunk] = field(default_factory=list)
