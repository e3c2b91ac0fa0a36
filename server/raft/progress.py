"""The leader's view of each member (``Progress``) and of the membership (``ProgressTracker``).

A follower is probed (one append in flight until it answers) until its match index is known, then
replicated to in a pipeline bounded by ``Inflights`` (a count of messages and a byte budget); a
follower whose next entry was compacted away is in the snapshot state while an image streams to
it (``SnapshotTransfer``).
"""

from __future__ import annotations

from collections import deque
from enum import Enum

from server.raft.types import NONE, ConfState, ProgressStatus, SnapshotMetadata


class ProgressState(Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """The append messages sent but not yet acknowledged, oldest first: their last index and
    their bytes. Full at ``capacity`` messages or ``max_bytes`` bytes (0: no byte limit)."""

    __slots__ = ("_queue", "bytes", "capacity", "max_bytes")

    def __init__(self, capacity: int, max_bytes: int = 0) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0
        self._queue: deque[tuple[int, int]] = deque()

    def add(self, last_index: int, size: int = 0) -> None:
        self._queue.append((last_index, size))
        self.bytes += size

    def free_le(self, index: int) -> None:
        q = self._queue
        while q and q[0][0] <= index:
            self.bytes -= q.popleft()[1]

    def full(self) -> bool:
        if len(self._queue) >= self.capacity:
            return True
        return self.max_bytes > 0 and self.bytes >= self.max_bytes

    def reset(self) -> None:
        self._queue.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._queue)


class SnapshotTransfer:
    """A leader's state of streaming one snapshot image to one follower, chunk by chunk.

    ``sent`` bytes went out, ``acked`` came back acknowledged; ``checksum`` is the running CRC-32
    of the bytes sent. ``unacked`` holds the end offset of each chunk not yet acknowledged (the
    window). ``idle_ticks`` counts leader ticks without progress: a transfer that stalls for an
    election timeout (a chunk or acknowledgement lost) is abandoned and started over.
    """

    __slots__ = ("acked", "checksum", "done", "id", "idle_ticks", "metadata", "sent", "unacked")

    def __init__(self, metadata: SnapshotMetadata, transfer_id: int) -> None:
        self.metadata = metadata
        self.id = transfer_id
        self.sent = 0
        self.acked = 0
        self.checksum = 0
        self.done = False  # the last chunk was sent
        self.idle_ticks = 0
        self.unacked: deque[int] = deque()

    def window_open(self, max_chunks: int, max_bytes: int) -> bool:
        if self.done or len(self.unacked) >= max_chunks:
            return False
        return max_bytes <= 0 or self.sent - self.acked < max_bytes

    def ack(self, offset: int) -> bool:
        """Record that the follower holds ``offset`` bytes; False when that is not news."""
        if offset <= self.acked or offset > self.sent:
            return False
        self.acked = offset
        while self.unacked and self.unacked[0] <= offset:
            self.unacked.popleft()
        self.idle_ticks = 0
        return True


class Progress:
    """Replication state of one member, kept by the leader."""

    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "snapshot",
        "state",
    )

    def __init__(
        self,
        *,
        next_index: int,
        max_inflight: int,
        is_learner: bool = False,
        match: int = 0,
        max_inflight_bytes: int = 0,
    ) -> None:
        self.match = match
        self.next = next_index
        self.state = ProgressState.PROBE
        # In PROBE, one append is outstanding until the follower answers or a heartbeat returns.
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.is_learner = is_learner
        self.inflights = Inflights(max_inflight, max_inflight_bytes)
        # The image being streamed while in SNAPSHOT state.
        self.snapshot: SnapshotTransfer | None = None

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot = None
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(
        self, snapshot_index: int, transfer: SnapshotTransfer | None = None
    ) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index
        self.snapshot = transfer

    def maybe_update(self, index: int) -> bool:
        """Record an acknowledgement up to ``index``; False when it tells nothing new."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        if self.next < index + 1:
            self.next = index + 1
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Step ``next`` back after the follower rejected an append at ``rejected``.

        ``match_hint`` is the follower's guess of the last matching index. False when the
        rejection is stale (answers an append we already moved past).
        """
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent_entries(self, count: int, last_index: int, size: int = 0) -> None:
        """Account for an append message carrying ``count`` entries (``size`` data bytes) up to
        ``last_index``."""
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index, size)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def status(self) -> ProgressStatus:
        return ProgressStatus(
            match=self.match,
            next=self.next,
            state=self.state.value,
            recent_active=self.recent_active,
            is_learner=self.is_learner,
            pending_snapshot=self.pending_snapshot,
            inflight_bytes=self.inflights.bytes,
            snapshot_acked=self.snapshot.acked if self.snapshot is not None else 0,
        )


class VoteResult(Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


class ProgressTracker:
    """Membership (voters and learners), each member's ``Progress`` and the votes of a campaign."""

    def __init__(self, max_inflight: int, max_inflight_bytes: int = 0) -> None:
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}

    def conf_state(self) -> ConfState:
        return ConfState(voters=tuple(sorted(self.voters)), learners=tuple(sorted(self.learners)))

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def committed(self) -> int:
        """The largest index replicated on a quorum of voters (0 when there are no voters)."""
        if not self.voters:
            return 0
        prs = self.progress
        if len(self.voters) == 1:
            (only,) = self.voters
            return prs[only].match
        matches = sorted((prs[v].match for v in self.voters), reverse=True)
        return matches[self.quorum() - 1]

    def quorum_active(self) -> bool:
        active = sum(1 for v in self.voters if self.progress[v].recent_active)
        return active >= self.quorum()

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node_id: int, granted: bool) -> None:
        self.votes.setdefault(node_id, granted)

    def tally(self) -> tuple[int, int, VoteResult]:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        q = self.quorum()
        if granted >= q:
            return granted, rejected, VoteResult.WON
        if len(self.voters) - rejected < q:
            return granted, rejected, VoteResult.LOST
        return granted, rejected, VoteResult.PENDING

    def vote_result(self, acks: set[int]) -> VoteResult:
        if sum(1 for v in self.voters if v in acks) >= self.quorum():
            return VoteResult.WON
        return VoteResult.PENDING

    def ids(self) -> list[int]:
        """Every member (voters and learners) in a fixed order, so output is deterministic."""
        return sorted(self.progress)

    def add(self, node_id: int, *, is_learner: bool, next_index: int) -> None:
        if node_id == NONE:
            return
        pr = Progress(
            next_index=next_index,
            max_inflight=self.max_inflight,
            is_learner=is_learner,
            max_inflight_bytes=self.max_inflight_bytes,
        )
        # A new member counts as active so the next check-quorum does not depose the leader.
        pr.recent_active = True
        self.progress[node_id] = pr
        (self.learners if is_learner else self.voters).add(node_id)
