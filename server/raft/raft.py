"""The Raft state machine: one input (``step``), a logical clock (``tick``), outputs in lists.

Each role installs its own step function (``_step_follower``, ``_step_candidate``,
``_step_leader``); ``step`` first applies the rules common to every role (terms, votes).
Messages to send accumulate in ``msgs`` and read answers in ``read_states``; ``RawNode`` hands
them to the driver through ``Ready``.

Unlike newer etcd/raft, the leader counts its own copy of an entry as soon as it is appended (as
etcd/raft 3.4 did). That is safe under the Ready contract: the driver persists a Ready's entries
before sending its messages or applying its committed entries, so no follower can acknowledge
and no client can observe an entry the leader has not persisted. It is what lets a single member
commit a proposal in the very Ready that persists it.

A follower whose next entry was compacted away gets a snapshot, streamed in chunks: the leader
reads the image from storage ``max_snapshot_chunk`` bytes at a time and keeps up to
``max_inflight_snapshot_chunks`` unacknowledged (``SNAP`` / ``SNAP_RESP``). Each chunk names its
transfer attempt and carries the running CRC-32 of the image; the follower accepts only the
next chunk of the current attempt, hands it to the driver to stage, and installs the image
(``Ready.snapshot``) once the last chunk checks out. A missing, reordered or corrupt chunk makes
the follower refuse the attempt, and the leader starts a new one from offset 0; an attempt that
makes no progress for an election timeout is abandoned and restarted when the follower next
answers a heartbeat. See :mod:`server.raft.storage` for the storage side.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from server.raft.config import Config
from server.raft.errors import (
    InvalidConfChange,
    InvariantViolation,
    LeaderTransferInProgress,
    LogCompacted,
    ProposalDropped,
    SnapshotTemporarilyUnavailable,
    UncommittedSizeExceeded,
)
from server.raft.log import RaftLog
from server.raft.progress import (
    Progress,
    ProgressState,
    ProgressTracker,
    SnapshotTransfer,
    VoteResult,
)
from server.raft.read_only import ReadOnly
from server.raft.storage import Storage
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
    ReadState,
    Snapshot,
    SnapshotChunk,
    SnapshotMetadata,
    SoftState,
    StateType,
    vote_response_type,
)

MT = MessageType

CAMPAIGN_TRANSFER = b"CampaignTransfer"
"""Context of vote requests caused by a leader transfer: they override the leader lease."""


class CampaignType(Enum):
    PRE_ELECTION = "pre-election"
    ELECTION = "election"
    TRANSFER = "transfer"


@dataclass(slots=True)
class _SnapshotReceipt:
    """A follower's state of one incoming snapshot transfer: what it accepted so far."""

    term: int
    metadata: SnapshotMetadata
    transfer: int
    received: int = 0  # bytes accepted, i.e. the offset the next chunk must start at
    checksum: int = 0  # CRC-32 of the bytes accepted


def payload_size(entries: Iterable[Entry]) -> int:
    """Bytes of entry data, the unit of every size limit."""
    return sum(len(e.data) for e in entries)


class Raft:
    """One member's Raft state. Use it through :class:`~server.raft.RawNode`."""

    def __init__(self, config: Config, storage: Storage) -> None:
        self.id = config.id
        self.log = RaftLog(
            storage,
            max_size_per_msg=config.max_size_per_msg,
            max_committed_size_per_ready=config.max_committed_size_per_ready,
        )
        self.trk = ProgressTracker(config.max_inflight_msgs, config.max_inflight_bytes)
        self.rng = config.rng if config.rng is not None else random.Random()
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.max_size_per_msg = config.max_size_per_msg
        self.max_uncommitted_size = config.max_uncommitted_entries_size
        self.max_snapshot_chunk = config.max_snapshot_chunk
        self.max_inflight_snapshot_chunks = config.max_inflight_snapshot_chunks

        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.state = StateType.FOLLOWER
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        # Snapshot chunks accepted from the leader, for the driver to stage (Ready).
        self.snapshot_chunks: list[SnapshotChunk] = []
        self._receipt: _SnapshotReceipt | None = None
        # Ids of this leader's snapshot transfers; a restarted transfer gets a fresh one.
        self._snapshot_transfers = 0
        # Leader: data bytes appended in this term and not yet applied (an estimate, as etcd's).
        self.uncommitted_size = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout
        # Index of the newest conf change appended; another waits until it is applied.
        self.pending_conf_index = 0
        self.lead_transferee = NONE
        self.read_only = ReadOnly()
        # Read requests that arrived before this leader committed an entry of its own term.
        self.pending_read_index: list[Message] = []
        self._step_role: Callable[[Message], None] = self._step_follower

        hs, cs = storage.initial_state()
        self._load_conf_state(cs)
        if hs != HardState():
            self._load_state(hs)
        if config.applied > 0:
            self.log.applied_to(config.applied)
        self.become_follower(self.term, NONE)

    # -- state reporting ---------------------------------------------------------------------

    def soft_state(self) -> SoftState:
        return SoftState(lead=self.lead, raft_state=self.state)

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def _load_state(self, hs: HardState) -> None:
        if hs.commit < self.log.committed or hs.commit > self.log.last_index():
            raise InvariantViolation(
                f"hard state commit {hs.commit} outside [{self.log.committed}, "
                f"{self.log.last_index()}]: storage lost entries"
            )
        self.log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def _load_conf_state(self, cs: ConfState) -> None:
        self.trk = ProgressTracker(self.trk.max_inflight, self.trk.max_inflight_bytes)
        nxt = self.log.last_index() + 1
        for v in cs.voters:
            self.trk.add(v, is_learner=False, next_index=nxt)
        for learner in cs.learners:
            self.trk.add(learner, is_learner=True, next_index=nxt)

    def promotable(self) -> bool:
        """Whether this node may campaign: only voters can."""
        return self.id in self.trk.voters

    # -- role transitions --------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )
        self.lead_transferee = NONE
        self.trk.reset_votes()
        last = self.log.last_index()
        for node_id, old in self.trk.progress.items():
            pr = Progress(
                next_index=last + 1,
                max_inflight=self.trk.max_inflight,
                is_learner=old.is_learner,
                max_inflight_bytes=self.trk.max_inflight_bytes,
            )
            if node_id == self.id:
                pr.match = last
            self.trk.progress[node_id] = pr
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index = []
        self.uncommitted_size = 0
        self._receipt = None

    def become_follower(self, term: int, lead: int) -> None:
        self._step_role = self._step_follower
        self._reset(term)
        self.lead = lead
        self.state = StateType.FOLLOWER

    def _become_candidate(self) -> None:
        if self.state == StateType.LEADER:
            raise InvariantViolation("leader cannot become candidate")
        self._step_role = self._step_candidate
        self._reset(self.term + 1)
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def _become_pre_candidate(self) -> None:
        if self.state == StateType.LEADER:
            raise InvariantViolation("leader cannot become pre-candidate")
        # A pre-candidate changes neither term nor vote: a failed pre-election leaves no trace.
        self._step_role = self._step_candidate
        self.trk.reset_votes()
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE

    def _become_leader(self) -> None:
        if self.state == StateType.FOLLOWER:
            raise InvariantViolation("follower cannot become leader")
        self._step_role = self._step_leader
        self._reset(self.term)
        self.lead = self.id
        self.state = StateType.LEADER
        pr = self.trk.progress[self.id]
        pr.become_replicate()
        pr.recent_active = True
        # Conf changes in the uncommitted tail are not known to be applied yet; hold new ones.
        self.pending_conf_index = self.log.last_index()
        # The empty entry of the new term lets earlier-term entries commit (Raft §5.4.2).
        self._append_entries([b""], EntryType.NORMAL)

    # -- clock -------------------------------------------------------------------------------

    def tick(self) -> None:
        if self.state == StateType.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.step(Message(type=MT.HUP, from_=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(type=MT.CHECK_QUORUM, from_=self.id))
            if self.state == StateType.LEADER and self.lead_transferee != NONE:
                self.lead_transferee = NONE  # the transfer did not finish in time
        if self.state != StateType.LEADER:
            return
        self._tick_snapshot_transfers()
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(type=MT.BEAT, from_=self.id))

    def _tick_snapshot_transfers(self) -> None:
        for pr in self.trk.progress.values():
            t = pr.snapshot
            if t is None:
                continue
            t.idle_ticks += 1
            if t.idle_ticks >= self.election_timeout:
                # A chunk or its acknowledgement was lost (or the follower is gone): start over
                # once the follower answers a heartbeat.
                self._abort_snapshot(pr, pause=True)

    # -- sending -----------------------------------------------------------------------------

    def _send(
        self,
        t: MessageType,
        to: int,
        *,
        term: int | None = None,
        log_term: int = 0,
        index: int = 0,
        entries: tuple[Entry, ...] = (),
        commit: int = 0,
        snapshot: Snapshot | None = None,
        reject: bool = False,
        reject_hint: int = 0,
        context: bytes = b"",
        chunk: SnapshotChunk | None = None,
    ) -> None:
        if term is None:
            # Forwarded read requests carry no term: they are not bound to one.
            term = 0 if t == MT.READ_INDEX else self.term
        self.msgs.append(
            Message(
                type=t,
                to=to,
                from_=self.id,
                term=term,
                log_term=log_term,
                index=index,
                entries=entries,
                commit=commit,
                snapshot=snapshot,
                reject=reject,
                reject_hint=reject_hint,
                context=context,
                chunk=chunk,
            )
        )

    def _maybe_send_append(
        self, to: int, *, send_if_empty: bool = True, keepalive: bool = False
    ) -> bool:
        """Send ``to`` the entries it lacks (or snapshot chunks); False when nothing was sent.

        ``keepalive`` (a heartbeat response arrived) lets a follower whose inflight window is
        full get one append without entries: if every message of the window was lost, its
        answer (an acknowledgement or a rejection) is what frees the window again.
        """
        pr = self.trk.progress[to]
        if pr.state == ProgressState.SNAPSHOT:
            return self._send_snapshot_chunks(to, pr)
        throttled = pr.state == ProgressState.REPLICATE and pr.inflights.full()
        if pr.is_paused() and not (keepalive and throttled):
            return False
        prev_index = pr.next - 1
        try:
            prev_term = self.log.term(prev_index)
            ents = [] if throttled else self.log.entries_from(pr.next, self.max_size_per_msg)
        except LogCompacted:
            return self._start_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self._send(
            MT.APP,
            to,
            index=prev_index,
            log_term=prev_term,
            entries=tuple(ents),
            commit=self.log.committed,
        )
        pr.sent_entries(len(ents), ents[-1].index if ents else 0, payload_size(ents))
        return True

    # -- snapshot streaming (leader) ---------------------------------------------------------

    def _start_snapshot(self, to: int, pr: Progress) -> bool:
        """Begin streaming the storage's image to ``to``, whose next entry was compacted."""
        if not pr.recent_active:
            return False  # do not ship a snapshot to a member that may be down
        try:
            meta = self.log.stored_snapshot_metadata()
        except SnapshotTemporarilyUnavailable:
            return False  # retried on the next heartbeat response or append
        if meta.index == 0:
            raise InvariantViolation("log compacted but storage has no snapshot")
        cs = meta.conf_state
        if to not in cs.voters and to not in cs.learners:
            # The follower would refuse an image from before it joined; wait for a newer one
            # (the storage should take images at its applied index, after the conf change).
            return False
        self._snapshot_transfers += 1
        pr.become_snapshot(meta.index, SnapshotTransfer(meta, self._snapshot_transfers))
        return self._send_snapshot_chunks(to, pr)

    def _send_snapshot_chunks(self, to: int, pr: Progress) -> bool:
        """Send the next chunks of ``to``'s transfer while its window allows; False if none."""
        t = pr.snapshot
        sent = False
        while t is not None and t.window_open(
            self.max_inflight_snapshot_chunks, self.trk.max_inflight_bytes
        ):
            try:
                data, last = self.log.snapshot_chunk(t.metadata, t.sent, self.max_snapshot_chunk)
            except SnapshotTemporarilyUnavailable:
                # The image was replaced: the next append attempt streams the newer one.
                self._abort_snapshot(pr, pause=False)
                return sent
            checksum = zlib.crc32(data, t.checksum)
            chunk = SnapshotChunk(
                metadata=t.metadata,
                offset=t.sent,
                data=data,
                done=last,
                checksum=checksum,
                transfer=t.id,
            )
            self._send(MT.SNAP, to, chunk=chunk)
            t.sent += len(data)
            t.checksum = checksum
            t.done = last
            t.unacked.append(t.sent)
            sent = True
        return sent

    def _abort_snapshot(self, pr: Progress, *, pause: bool) -> None:
        """Give up the transfer to ``pr``; probing finds out what the follower needs next.

        With ``pause`` the leader waits for the follower to answer a heartbeat first (it may be
        down); without, the next append attempt starts a new transfer at once.
        """
        pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = pause

    def _bcast_append(self) -> None:
        for node_id in self.trk.ids():
            if node_id != self.id:
                self._maybe_send_append(node_id)

    def _bcast_heartbeat(self, ctx: bytes | None = None) -> None:
        if ctx is None:
            # Resend the newest pending read context so a lost heartbeat does not stall reads.
            ctx = self.read_only.last_pending_ctx()
        committed = self.log.committed
        for node_id in self.trk.ids():
            if node_id == self.id:
                continue
            # Never tell a follower to commit past what it is known to hold.
            commit = min(self.trk.progress[node_id].match, committed)
            self._send(MT.HEARTBEAT, node_id, commit=commit, context=ctx)

    # -- appending and committing (leader) ---------------------------------------------------

    def _append_entries(self, payloads: Iterable[bytes], entry_type: EntryType) -> None:
        term = self.term
        index = self.log.last_index()
        ents = []
        for data in payloads:
            index += 1
            ents.append(Entry(term, index, entry_type, data))
        last = self.log.append(ents)
        self.trk.progress[self.id].maybe_update(last)
        self._maybe_commit()

    def _maybe_commit(self) -> bool:
        return self.log.maybe_commit(self.trk.committed(), self.term)

    def _check_can_propose(self) -> None:
        if self.state != StateType.LEADER:
            raise ProposalDropped("not the leader" if self.lead else "no leader")
        if self.id not in self.trk.progress:
            raise ProposalDropped("this member was removed from the cluster")
        if self.lead_transferee != NONE:
            raise LeaderTransferInProgress(f"leadership is moving to {self.lead_transferee}")

    def _increase_uncommitted_size(self, payloads: list[bytes]) -> None:
        """Count a proposal against ``max_uncommitted_entries_size`` or refuse it.

        As in etcd, a proposal is accepted whenever nothing is outstanding (so one entry larger
        than the limit still goes through) and entries without data always are.
        """
        size = sum(len(p) for p in payloads)
        limit = self.max_uncommitted_size
        if (
            limit
            and self.uncommitted_size > 0
            and size > 0
            and self.uncommitted_size + size > limit
        ):
            raise UncommittedSizeExceeded(
                f"{self.uncommitted_size} bytes uncommitted; limit {limit}"
            )
        self.uncommitted_size += size

    def reduce_uncommitted_size(self, entries: Iterable[Entry]) -> None:
        """Release the bytes of entries handed to the driver for applying."""
        self.uncommitted_size = max(0, self.uncommitted_size - payload_size(entries))

    def propose(self, payloads: list[bytes]) -> None:
        """Append normal entries and replicate them; raises ``ProposalDropped`` if not leader."""
        self._check_can_propose()
        if not payloads:
            return
        self._increase_uncommitted_size(payloads)
        self._append_entries(payloads, EntryType.NORMAL)
        if len(self.trk.progress) > 1:
            self._bcast_append()

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Append one membership change; only one may be in flight (appended, not applied)."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.applied:
            raise ProposalDropped(
                f"conf change at index {self.pending_conf_index} not applied yet "
                f"(applied {self.log.applied})"
            )
        self._validate_conf_change(cc)
        data = cc.encode()
        self._increase_uncommitted_size([data])
        self._append_entries([data], EntryType.CONF_CHANGE)
        self.pending_conf_index = self.log.last_index()
        self._bcast_append()

    # -- campaigning -------------------------------------------------------------------------

    def _has_unapplied_conf_changes(self) -> bool:
        if self.log.applied >= self.log.committed:
            return False
        try:
            ents = self.log.slice(self.log.applied + 1, self.log.committed + 1)
        except LogCompacted:
            return False
        return any(e.type == EntryType.CONF_CHANGE for e in ents)

    def _hup(self, kind: CampaignType) -> None:
        if self.state == StateType.LEADER or not self.promotable():
            return
        # Campaigning before applying a committed conf change could run with a stale membership.
        if self._has_unapplied_conf_changes():
            return
        self._campaign(kind)

    def _campaign(self, kind: CampaignType) -> None:
        if kind == CampaignType.PRE_ELECTION:
            self._become_pre_candidate()
            vote_type = MT.PRE_VOTE
            term = self.term + 1  # the term we would campaign at; ours stays unchanged
        else:
            self._become_candidate()
            vote_type = MT.VOTE
            term = self.term
        if self._poll(self.id, True) == VoteResult.WON:
            # A sole voter wins at once.
            if kind == CampaignType.PRE_ELECTION:
                self._campaign(CampaignType.ELECTION)
            else:
                self._become_leader()
            return
        last_index = self.log.last_index()
        last_term = self.log.last_term()
        ctx = CAMPAIGN_TRANSFER if kind == CampaignType.TRANSFER else b""
        for node_id in sorted(self.trk.voters):
            if node_id != self.id:
                self._send(
                    vote_type, node_id, term=term, index=last_index, log_term=last_term, context=ctx
                )

    def _poll(self, node_id: int, granted: bool) -> VoteResult:
        self.trk.record_vote(node_id, granted)
        return self.trk.tally()[2]

    # -- step: rules common to all roles -----------------------------------------------------

    def step(self, m: Message) -> None:
        """Advance the state machine with one message (from a peer or local)."""
        if m.term == 0:
            pass  # local message, or a forwarded read request
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.election_timeout
                )
                if in_lease and not force:
                    # We heard from a live leader within the minimum election timeout: a node
                    # asking for votes now is partitioned or misbehaving; ignore it.
                    return
            if m.type == MT.PRE_VOTE:
                pass  # never change our term for a pre-vote
            elif m.type == MT.PRE_VOTE_RESP and not m.reject:
                pass  # the granted term is our future one; we change term when we win
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.HEARTBEAT, MT.APP):
                # A stale leader cut off by a partition may never learn the new term otherwise
                # (our pre-votes and in-lease rules stop us from bumping its term): tell it.
                self._send(MT.APP_RESP, m.from_)
            elif m.type == MT.PRE_VOTE:
                self._send(MT.PRE_VOTE_RESP, m.from_, term=self.term, reject=True)
            return

        t = m.type
        if t == MT.HUP:
            self._hup(CampaignType.PRE_ELECTION if self.pre_vote else CampaignType.ELECTION)
        elif t in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        else:
            self._step_role(m)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.from_
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == MT.PRE_VOTE and m.term > self.term)
        )
        resp = vote_response_type(m.type)
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # The response carries the request's term: a pre-candidate has not bumped its own.
            self._send(resp, m.from_, term=m.term)
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self._send(resp, m.from_, term=self.term, reject=True)

    # -- step: per role ----------------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.PROP:
            raise ProposalDropped("not the leader" if self.lead else "no leader")
        if t == MT.APP:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_append_entries(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_heartbeat(m)
        elif t == MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_snapshot(m)
        elif t == MT.TIMEOUT_NOW:
            self._hup(CampaignType.TRANSFER)
        elif t == MT.READ_INDEX:
            if m.from_ not in (NONE, self.id):
                return  # only the leader serves a peer's read request; do not relay it
            if self.lead == NONE:
                raise ProposalDropped("no leader to serve the read index")
            self._send(MT.READ_INDEX, self.lead, context=m.context)
        elif t == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(index=m.index, request_ctx=m.context))

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = MT.PRE_VOTE_RESP if self.state == StateType.PRE_CANDIDATE else MT.VOTE_RESP
        if t == MT.PROP:
            raise ProposalDropped("no leader")
        if t == MT.READ_INDEX:
            if m.from_ in (NONE, self.id):
                raise ProposalDropped("no leader to serve the read index")
            return
        if t == MT.APP:
            self.become_follower(m.term, m.from_)
            self._handle_append_entries(m)
        elif t == MT.HEARTBEAT:
            self.become_follower(m.term, m.from_)
            self._handle_heartbeat(m)
        elif t == MT.SNAP:
            self.become_follower(m.term, m.from_)
            self._handle_snapshot(m)
        elif t == my_resp:
            result = self._poll(m.from_, not m.reject)
            if result == VoteResult.WON:
                if self.state == StateType.PRE_CANDIDATE:
                    self._campaign(CampaignType.ELECTION)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif result == VoteResult.LOST:
                self.become_follower(self.term, NONE)

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.BEAT:
            self._bcast_heartbeat()
            return
        if t == MT.CHECK_QUORUM:
            if not self.trk.quorum_active():
                self.become_follower(self.term, NONE)
            # Start the next check-quorum window from scratch.
            for node_id, member in self.trk.progress.items():
                if node_id != self.id:
                    member.recent_active = False
            return
        if t == MT.PROP:
            if m.entries:
                self.propose([e.data for e in m.entries])
            return
        if t == MT.READ_INDEX:
            self._handle_read_index(m)
            return
        if t == MT.TRANSFER_LEADER:
            self._handle_transfer_leader(m.from_)
            return

        pr = self.trk.progress.get(m.from_)
        if pr is None:
            return
        if t == MT.APP_RESP:
            self._handle_append_response(m, pr)
        elif t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.match < self.log.last_index() or pr.state == ProgressState.PROBE:
                self._maybe_send_append(m.from_, keepalive=True)
            if m.context:
                acks = self.read_only.recv_ack(m.from_, m.context)
                if acks is not None and self.trk.vote_result(acks) == VoteResult.WON:
                    for status in self.read_only.advance(m.context):
                        self._respond_read_index(status.request, status.index)
        elif t == MT.SNAP_RESP:
            self._handle_snapshot_response(m, pr)
        elif t == MT.SNAP_STATUS:
            self._handle_snapshot_status(m, pr)
        elif t == MT.UNREACHABLE and pr.state == ProgressState.REPLICATE:
            pr.become_probe()

    def _handle_snapshot_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        t = pr.snapshot
        c = m.chunk
        if t is None or c is None or c.transfer != t.id or c.metadata != t.metadata:
            return  # about a transfer given up already
        if m.reject:
            # A chunk was lost or reordered, or the follower lost its partial image: it
            # expects a new transfer from offset 0, and it is alive, so start one now.
            self._abort_snapshot(pr, pause=False)
            self._maybe_send_append(m.from_)
        elif t.ack(c.offset):
            self._send_snapshot_chunks(m.from_, pr)

    def _handle_snapshot_status(self, m: Message, pr: Progress) -> None:
        """The driver's word on a transfer (``RawNode.report_snapshot``)."""
        if pr.state != ProgressState.SNAPSHOT:
            return
        if m.reject:
            self._abort_snapshot(pr, pause=True)
        elif pr.snapshot is None or pr.snapshot.done:
            # Delivered (etcd semantics): probe past the snapshot once the follower answers.
            pr.become_probe()
            pr.probe_sent = True
        # A success report while chunks are still to be sent says nothing; the follower's own
        # acknowledgements drive the transfer.

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                # Skip every entry of ours whose term is above the follower's at the hint: none
                # of them can match (fast backtracking, one round trip per term).
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._maybe_send_append(m.from_)
            return
        was_paused = pr.is_paused()
        if not (
            pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE)
        ):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT:
            if pr.match + 1 >= self.log.first_index():
                # The follower installed the image (or never needed it): replicate from there.
                pr.become_probe()
                pr.become_replicate()
            elif pr.match >= pr.pending_snapshot:
                # Installed, but the log was compacted past it meanwhile: probe again, which
                # starts another transfer.
                pr.become_probe()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._release_pending_read_index()
            self._bcast_append()
        elif was_paused:
            self._maybe_send_append(m.from_)
        while self._maybe_send_append(m.from_, send_if_empty=False):
            pass
        if m.from_ == self.lead_transferee and pr.match == self.log.last_index():
            self._send(MT.TIMEOUT_NOW, m.from_)

    # -- follower handlers -------------------------------------------------------------------

    def _handle_append_entries(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(MT.APP_RESP, m.from_, index=self.log.committed)
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(MT.APP_RESP, m.from_, index=last_new)
            return
        # Hint the leader at the last index that may match, skipping our entries of terms above
        # the leader's probe term: they cannot match.
        hint_index = min(m.index, self.log.last_index())
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.log_term)
        self._send(
            MT.APP_RESP,
            m.from_,
            index=m.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self._send(MT.HEARTBEAT_RESP, m.from_, context=m.context)

    def _handle_snapshot(self, m: Message) -> None:
        c = m.chunk
        if c is None:
            if m.snapshot is None:
                return
            # A whole image in one message (etcd style): a transfer of a single chunk.
            data = m.snapshot.data
            c = SnapshotChunk(metadata=m.snapshot.metadata, data=data, checksum=zlib.crc32(data))
        meta = c.metadata
        rc = self._receipt
        if rc is not None and rc.term == m.term and c.transfer < rc.transfer:
            return  # a straggler from an attempt the leader already gave up
        if c.offset == 0:
            self._receipt = None
            if not self._wants_snapshot(meta):
                if self._is_member_of(meta):
                    # Tell the leader how far we are; it replicates entries from there.
                    self._send(MT.APP_RESP, m.from_, index=self.log.committed)
                return
            self._receipt = _SnapshotReceipt(term=m.term, metadata=meta, transfer=c.transfer)
        rc = self._receipt
        if (
            rc is None
            or rc.term != m.term
            or rc.transfer != c.transfer
            or rc.metadata != meta
            or rc.received != c.offset
            or zlib.crc32(c.data, rc.checksum) != c.checksum
        ):
            # A chunk is missing, out of order, from another transfer, or corrupt: drop what
            # was received and have the leader start over.
            self._receipt = None
            ack = SnapshotChunk(metadata=meta, offset=0, done=False, transfer=c.transfer)
            self._send(MT.SNAP_RESP, m.from_, index=meta.index, reject=True, chunk=ack)
            return
        rc.received += len(c.data)
        rc.checksum = c.checksum
        self.snapshot_chunks.append(c)
        if not c.done:
            ack = SnapshotChunk(metadata=meta, offset=rc.received, done=False, transfer=c.transfer)
            self._send(MT.SNAP_RESP, m.from_, index=meta.index, chunk=ack)
            return
        self._receipt = None
        if self._restore(Snapshot(metadata=meta)):
            self._send(MT.APP_RESP, m.from_, index=self.log.last_index())
        elif self._is_member_of(meta):
            self._send(MT.APP_RESP, m.from_, index=self.log.committed)

    def _is_member_of(self, meta: SnapshotMetadata) -> bool:
        cs = meta.conf_state
        return self.id in cs.voters or self.id in cs.learners

    def _wants_snapshot(self, meta: SnapshotMetadata) -> bool:
        """Whether an image at ``meta`` would move this follower forward.

        Fast-forwards the commit index when the log already holds the image's last entry.
        """
        if meta.index <= self.log.committed:
            return False
        if not self._is_member_of(meta):
            return False  # a snapshot from a configuration we are not part of; ignore it
        if self.log.match_term(meta.index, meta.term):
            # We already hold the snapshot's last entry: just fast-forward the commit index.
            self.log.commit_to(meta.index)
            return False
        return True

    def _restore(self, snap: Snapshot) -> bool:
        meta = snap.metadata
        if not self._wants_snapshot(meta):
            return False
        self.log.restore(snap)
        self._load_conf_state(meta.conf_state)
        self._reset_progress_after_config()
        return True

    def _reset_progress_after_config(self) -> None:
        last = self.log.last_index()
        for node_id, pr in self.trk.progress.items():
            pr.next = last + 1
            if node_id == self.id:
                pr.match = last

    # -- read index --------------------------------------------------------------------------

    def _handle_read_index(self, m: Message) -> None:
        if self.trk.is_singleton():
            self._respond_read_index(m, self.log.committed)
            return
        if self.log.term_or_zero(self.log.committed) != self.term:
            # Our commit index may lag the previous leader's until an entry of our term commits.
            self.pending_read_index.append(m)
            return
        self._start_read_index(m)

    def _start_read_index(self, m: Message) -> None:
        self.read_only.add_request(self.log.committed, m)
        acks = self.read_only.recv_ack(self.id, m.context)
        if acks is not None and self.trk.vote_result(acks) == VoteResult.WON:
            # Possible only with one voter, which is answered above; kept for safety.
            for status in self.read_only.advance(m.context):
                self._respond_read_index(status.request, status.index)
            return
        self._bcast_heartbeat(m.context)

    def _release_pending_read_index(self) -> None:
        if not self.pending_read_index:
            return
        if self.log.term_or_zero(self.log.committed) != self.term:
            return
        pending, self.pending_read_index = self.pending_read_index, []
        for m in pending:
            self._start_read_index(m)

    def _respond_read_index(self, request: Message, index: int) -> None:
        if request.from_ in (NONE, self.id):
            self.read_states.append(ReadState(index=index, request_ctx=request.context))
        else:
            self._send(MT.READ_INDEX_RESP, request.from_, index=index, context=request.context)

    # -- leader transfer ---------------------------------------------------------------------

    def _handle_transfer_leader(self, transferee: int) -> None:
        """Start moving leadership to ``transferee`` (Raft thesis §3.10).

        The leader first brings the transferee's log up to its own (appends, or a snapshot),
        refusing proposals meanwhile so the target stops moving, then sends ``TIMEOUT_NOW``:
        the transferee campaigns at once, and its vote requests override the leader lease.
        A transfer that does not finish within an election timeout is abandoned.
        """
        pr = self.trk.progress.get(transferee)
        if pr is not None and pr.is_learner:
            return  # a learner cannot lead (RawNode refuses before getting here)
        if self.lead_transferee != NONE:
            if self.lead_transferee == transferee:
                return  # already under way; a repeat must not extend its deadline
            self.lead_transferee = NONE  # a new request replaces the running one
        if transferee == self.id or pr is None:
            return  # to ourselves: nothing left to do once the old transfer is cancelled
        # Give the transfer one election timeout to finish; proposals are refused meanwhile.
        self.election_elapsed = 0
        self.lead_transferee = transferee
        if pr.match == self.log.last_index():
            self._send(MT.TIMEOUT_NOW, transferee)
        else:
            self._maybe_send_append(transferee)

    # -- membership --------------------------------------------------------------------------

    def _validate_conf_change(self, cc: ConfChange) -> None:
        removes_voter = cc.type in (ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER_NODE)
        if removes_voter and self.trk.voters == {cc.node_id}:
            raise InvalidConfChange(f"removing {cc.node_id} would leave no voter")

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed membership change; returns the new membership to persist."""
        self._validate_conf_change(cc)
        trk = self.trk
        nid = cc.node_id
        nxt = max(self.log.last_index(), 1)
        if cc.type == ConfChangeType.ADD_NODE:
            if nid in trk.learners:
                trk.learners.discard(nid)
                trk.voters.add(nid)
                trk.progress[nid].is_learner = False
            elif nid not in trk.voters:
                trk.add(nid, is_learner=False, next_index=nxt)
        elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
            if nid in trk.voters:
                trk.voters.discard(nid)
                trk.learners.add(nid)
                trk.progress[nid].is_learner = True
            elif nid not in trk.learners:
                trk.add(nid, is_learner=True, next_index=nxt)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            trk.voters.discard(nid)
            trk.learners.discard(nid)
            trk.progress.pop(nid, None)
            trk.votes.pop(nid, None)
        self._switch_to_config()
        return trk.conf_state()

    def _switch_to_config(self) -> None:
        is_voter = self.id in self.trk.voters
        if self.state == StateType.LEADER and not is_voter:
            # Removed or demoted: stop leading so the rest elect a leader among themselves.
            self.become_follower(self.term, NONE)
            return
        if self.state != StateType.LEADER or not self.trk.voters:
            return
        # The quorum may have shrunk: entries may commit now.
        if self._maybe_commit():
            self._release_pending_read_index()
            self._bcast_append()
        else:
            for node_id in self.trk.ids():
                if node_id != self.id:
                    self._maybe_send_append(node_id, send_if_empty=False)
        if self.lead_transferee != NONE and self.lead_transferee not in self.trk.voters:
            self.lead_transferee = NONE
