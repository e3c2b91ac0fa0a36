"""``RawNode``: the Raft state machine behind the Ready/Advance contract the driver follows.

The driver's loop::

    if node.has_ready():
        rd = node.ready()
        stage rd.snapshot_chunks (image pieces received from the leader)
        persist rd.hard_state, rd.snapshot (install the staged image), rd.entries
            (fsync when rd.must_sync)
        send rd.messages
        apply rd.committed_entries (calling apply_conf_change for CONF_CHANGE entries)
        node.advance(rd)

Nothing may be stepped, ticked or proposed between ``ready()`` and ``advance()`` that the driver
expects to see in the same Ready; it shows up in the next one.
"""

from __future__ import annotations

from server.raft.config import Config
from server.raft.errors import InvariantViolation, MessageRejected, ProposalDropped
from server.raft.raft import Raft
from server.raft.storage import Storage
from server.raft.types import (
    LOCAL_MESSAGES,
    NONE,
    RESPONSE_MESSAGES,
    ConfChange,
    ConfState,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    SoftState,
    StateType,
    Status,
)


class RawNode:
    """A Raft member driven synchronously: feed it ticks, messages and proposals; drain Readies."""

    def __init__(self, config: Config, storage: Storage) -> None:
        """Build the node from what ``storage`` holds; ``config.applied`` says what was applied."""
        self._raft = Raft(config, storage)
        self._prev_soft: SoftState = self._raft.soft_state()
        self._prev_hard: HardState = self._raft.hard_state()
        self._awaiting_advance = False

    # -- inputs ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance the logical clock by one tick (elections, heartbeats, check-quorum)."""
        self._raft.tick()

    def campaign(self) -> None:
        """Start an election now (a pre-vote first when enabled). A sole voter wins at once."""
        self._raft.step(Message(type=MessageType.HUP, from_=self._raft.id))

    def propose(self, data: bytes) -> None:
        """Append ``data`` as a new entry; raises ``ProposalDropped`` unless this node leads."""
        self._raft.propose([data])

    def propose_many(self, payloads: list[bytes]) -> None:
        """Append several entries at once (one replication message per follower for all)."""
        self._raft.propose(payloads)

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change; raises ``ProposalDropped`` while another is in flight
        and ``InvalidConfChange`` when it would leave no voter."""
        self._raft.propose_conf_change(cc)

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change (call it when applying its entry); returns the
        membership the driver must persist along with the applied index."""
        return self._raft.apply_conf_change(cc)

    def step(self, msg: Message) -> None:
        """Feed a message received from a peer.

        Raises ``MessageRejected`` for a local-only message type or a response from a node that
        is not a member (when this node leads).
        """
        if msg.type in LOCAL_MESSAGES:
            raise MessageRejected(f"{msg.type.name} may not come from the network")
        if msg.from_ == NONE:
            raise MessageRejected("message without sender")
        r = self._raft
        if (
            msg.type in RESPONSE_MESSAGES
            and r.state == StateType.LEADER
            and msg.from_ not in r.trk.progress
        ):
            raise MessageRejected(f"response from non-member {msg.from_}")
        if msg.type == MessageType.PROP:
            check_forwarded_proposal(msg)
        _check_shape(msg)
        r.step(msg)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point; the answer comes as a ``ReadState`` carrying
        ``ctx`` (which must be non-empty and unique among pending requests)."""
        if not ctx:
            raise ProposalDropped("read index context must not be empty")
        self._raft.step(Message(type=MessageType.READ_INDEX, from_=self._raft.id, context=ctx))

    def transfer_leader(self, transferee: int) -> None:
        """Hand leadership to ``transferee`` once it has caught up; leader only.

        Proposals raise ``LeaderTransferInProgress`` until the transfer completes or, after an
        election timeout, is abandoned. Asking again for the same member does not extend that
        deadline; asking for another member replaces the transfer; asking for this node itself
        cancels it. Raises ``ProposalDropped`` when not leading, or when ``transferee`` is a
        learner or not a member (neither can lead).
        """
        r = self._raft
        if r.state != StateType.LEADER:
            raise ProposalDropped("only the leader can transfer leadership")
        if transferee != r.id:
            pr = r.trk.progress.get(transferee)
            if pr is None:
                raise ProposalDropped(f"cannot transfer leadership to non-member {transferee}")
            if pr.is_learner:
                raise ProposalDropped(f"cannot transfer leadership to learner {transferee}")
        r.step(Message(type=MessageType.TRANSFER_LEADER, from_=transferee))

    def report_unreachable(self, node_id: int) -> None:
        """Tell the leader that a message to ``node_id`` could not be delivered."""
        self._raft.step(Message(type=MessageType.UNREACHABLE, from_=node_id))

    def report_snapshot(self, node_id: int, *, failed: bool) -> None:
        """Tell the leader how a snapshot transfer to ``node_id`` went (optional).

        The core drives chunked transfers itself from the follower's acknowledgements and
        restarts one that stalls for an election timeout; a driver whose transport to
        ``node_id`` broke may report ``failed=True`` to give up the transfer at once (it starts
        over when the follower next answers a heartbeat). ``failed=False`` is heeded only once
        every chunk was sent: the leader then probes past the snapshot, as in etcd.
        """
        self._raft.step(Message(type=MessageType.SNAP_STATUS, from_=node_id, reject=failed))

    # -- outputs -----------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether ``ready()`` has anything to hand out."""
        r = self._raft
        log = r.log
        return bool(
            r.msgs
            or r.snapshot_chunks
            or log.unstable.entries
            or log.unstable.snapshot is not None
            or log.has_next_committed_entries()
            or r.read_states
            or r.soft_state() != self._prev_soft
            or r.hard_state() != self._prev_hard
        )

    def ready(self) -> Ready:
        """Take the outstanding work; hand the Ready back through ``advance`` once done."""
        if self._awaiting_advance:
            raise InvariantViolation("ready() called twice without advance()")
        r = self._raft
        log = r.log
        soft = r.soft_state()
        hard = r.hard_state()
        entries = list(log.unstable.entries)
        snap = log.unstable.snapshot
        committed = log.next_committed_entries()
        prev = self._prev_hard
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != prev else None,
            entries=entries,
            snapshot=snap,
            committed_entries=committed,
            messages=r.msgs,
            read_states=r.read_states,
            must_sync=bool(entries)
            or snap is not None
            or hard.term != prev.term
            or hard.vote != prev.vote,
            snapshot_chunks=r.snapshot_chunks,
        )
        self._prev_soft = soft
        self._prev_hard = hard
        r.msgs = []
        r.read_states = []
        r.snapshot_chunks = []
        if committed:
            log.applying = committed[-1].index
        self._awaiting_advance = True
        return rd

    def advance(self, rd: Ready) -> None:
        """Acknowledge that ``rd`` was persisted, sent and applied."""
        log = self._raft.log
        if rd.snapshot is not None:
            log.unstable.stable_snap_to(rd.snapshot.metadata.index)
            log.applied_to(rd.snapshot.metadata.index)
        if rd.entries:
            last = rd.entries[-1]
            log.unstable.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
            self._raft.reduce_uncommitted_size(rd.committed_entries)
        self._awaiting_advance = False

    def status(self) -> Status:
        """A snapshot of this node's state (progress of each member when leading)."""
        r = self._raft
        progress = {}
        if r.state == StateType.LEADER:
            progress = {nid: pr.status() for nid, pr in r.trk.progress.items()}
        return Status(
            id=r.id,
            hard_state=r.hard_state(),
            soft_state=r.soft_state(),
            applied=r.log.applied,
            progress=progress,
            lead_transferee=r.lead_transferee,
        )


def check_forwarded_proposal(msg: Message) -> None:
    """Refuse a proposal forwarded by a follower (as etcd's followers forward their clients'
    proposals) unless it is well formed: no term, a sender, and only normal entries (a
    membership change from the network would bypass the one-at-a-time rule that
    ``propose_conf_change`` enforces)."""
    if msg.term != 0 or msg.from_ == NONE or not msg.entries:
        raise MessageRejected(f"malformed proposal from {msg.from_}")
    if any(e.type != EntryType.NORMAL for e in msg.entries):
        raise MessageRejected(f"proposal from {msg.from_} carries a non-normal entry")


def _check_shape(msg: Message) -> None:
    """Refuse messages whose contents could corrupt the log (a buggy or hostile peer)."""
    if msg.type == MessageType.APP:
        expected = msg.index + 1
        for e in msg.entries:
            if e.index != expected or e.term > msg.term or e.term < msg.log_term:
                raise MessageRejected(f"append from {msg.from_} carries malformed entry {e.index}")
            expected += 1
    elif msg.type == MessageType.SNAP:
        c = msg.chunk
        if c is not None:
            if c.metadata.index == 0 or c.offset < 0:
                raise MessageRejected(f"snapshot chunk from {msg.from_} is malformed")
        elif msg.snapshot is None or msg.snapshot.is_empty:
            raise MessageRejected(f"snapshot message from {msg.from_} without snapshot")
    elif msg.type == MessageType.SNAP_RESP and msg.chunk is None:
        raise MessageRejected(f"snapshot response from {msg.from_} without chunk")
