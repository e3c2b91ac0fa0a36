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
