"""Options of one Raft node."""

from __future__ import annotations

import random
from dataclasses import dataclass

from server.raft.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Config:
    """How a node behaves; times are in ticks (the driver decides how long a tick is).

    ``applied`` is the last index the state machine has applied (persisted by the driver), so a
    restarted node does not hand those entries out again. ``rng`` is the only source of
    randomness (election timeouts); inject a seeded one to replay a run exactly.

    Flow control (sizes count entry ``data`` bytes; 0 means no limit):

    * ``max_size_per_msg``: bytes of entries per append message (at least one entry is sent).
    * ``max_inflight_msgs`` / ``max_inflight_bytes``: a follower being replicated to may have
      at most this many append messages, and this many entry bytes, unacknowledged.
      ``max_inflight_bytes`` must be at least ``max_size_per_msg``.
    * ``max_committed_size_per_ready``: bytes of committed entries one ``Ready`` hands out (at
      least one entry); the rest follow in the next Readies.
    * ``max_uncommitted_entries_size``: bytes of entries a leader holds appended but not yet
      applied; a proposal past it raises ``UncommittedSizeExceeded`` (a ``ProposalDropped``).
      A proposal is always accepted when nothing is outstanding, however large.
    * ``max_snapshot_chunk``: bytes of snapshot image per ``SNAP`` message.
    * ``max_inflight_snapshot_chunks``: chunks of a snapshot transfer unacknowledged at once
      (also bounded by ``max_inflight_bytes``).
    """

    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    applied: int = 0
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    rng: random.Random | None = None
    max_inflight_bytes: int = 0
    max_committed_size_per_ready: int = 0
    max_uncommitted_entries_size: int = 0
    max_snapshot_chunk: int = 1 << 20
    max_inflight_snapshot_chunks: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.id < 1 << 64:
            raise ConfigError(f"id must be in [1, 2**64): {self.id}")
        if self.heartbeat_tick <= 0:
            raise ConfigError("heartbeat_tick must be positive")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError("election_tick must be greater than heartbeat_tick")
        if self.applied < 0:
            raise ConfigError("applied must not be negative")
        if self.max_size_per_msg <= 0:
            raise ConfigError("max_size_per_msg must be positive")
        if self.max_inflight_msgs <= 0:
            raise ConfigError("max_inflight_msgs must be positive")
        if self.max_inflight_bytes < 0:
            raise ConfigError("max_inflight_bytes must not be negative")
        if 0 < self.max_inflight_bytes < self.max_size_per_msg:
            # Otherwise one full-size message would exceed the window on its own.
            raise ConfigError("max_inflight_bytes must be at least max_size_per_msg")
        if self.max_committed_size_per_ready < 0:
            raise ConfigError("max_committed_size_per_ready must not be negative")
        if self.max_uncommitted_entries_size < 0:
            raise ConfigError("max_uncommitted_entries_size must not be negative")
        if self.max_snapshot_chunk <= 0:
            raise ConfigError("max_snapshot_chunk must be positive")
        if self.max_inflight_snapshot_chunks <= 0:
            raise ConfigError("max_inflight_snapshot_chunks must be positive")
