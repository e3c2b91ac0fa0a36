"""Raft messages to and from the peer wire format (`wardpeerpb.MessageBatch` bytes).

Every replicated write crosses this module twice (leader encodes, follower decodes), so both
directions build and read the protobuf objects (upb, in C) in as few Python steps as possible.

Decoding trusts nothing: a peer running another version, or a corrupted stream, must cost the
stream, never the member. Every malformed input raises ``ValueError``.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from server.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotChunk,
    SnapshotMetadata,
)
from wardpb.peerpb import raft_pb2

__all__ = ["decode_batch", "encode_batch"]

_MessageBatch = raft_pb2.MessageBatch

# Proto3 enums are open (an unknown number parses fine), so decoding looks each number up here.
_ENTRY_TYPES: dict[int, EntryType] = {t.value: t for t in EntryType}
_MESSAGE_TYPES: dict[int, MessageType] = {t.value: t for t in MessageType}

# Most decoded metadata (every SNAP_RESP's) has no membership: share one empty value.
_EMPTY_CONF_STATE = ConfState()


def _fill_metadata(pb: raft_pb2.SnapshotMetadata, md: SnapshotMetadata) -> None:
    cs = md.conf_state
    pb.conf_state.voters.extend(cs.voters)
    pb.conf_state.learners.extend(cs.learners)
    pb.index = md.index
    pb.term = md.term


def _fill_message(pb: raft_pb2.RaftMessage, m: Message) -> None:
    # Fields are set in place on the object the batch owns (the `add()` of a repeated field):
    # building a message first and then appending it would copy it, entries and all. Zero
    # values are skipped because most fields of most messages are zero.
    pb.type = m.type  # type: ignore[assignment]  # same numbers as the wire enum, by design
    pb.to = m.to
    # `from` is a Python keyword, so it cannot be written as an attribute.
    setattr(pb, "from", m.from_)
    if m.term:
        pb.term = m.term
    if m.log_term:
        pb.log_term = m.log_term
    if m.index:
        pb.index = m.index
    if m.commit:
        pb.commit = m.commit
    if m.reject:
        pb.reject = True
    if m.reject_hint:
        pb.reject_hint = m.reject_hint
    if m.context:
        pb.context = m.context
    if m.entries:
        add = pb.entries.add
        for e in m.entries:
            x = add()
            x.term = e.term
            x.index = e.index
            if e.type:
                x.type = e.type  # type: ignore[assignment]
            x.data = e.data
    if m.snapshot is not None:
        s = m.snapshot
        pb.snapshot.data = s.data
        _fill_metadata(pb.snapshot.metadata, s.metadata)
        # Presence must survive an all-default snapshot (None and Snapshot() differ).
        pb.snapshot.SetInParent()
    if m.chunk is not None:
        c = m.chunk
        pc = pb.chunk
        _fill_metadata(pc.metadata, c.metadata)
        pc.offset = c.offset
        pc.data = c.data
        pc.done = c.done
        pc.checksum = c.checksum
        pc.transfer = c.transfer
        pc.SetInParent()


def encode_batch(cluster_id: int, sender: int, to: int, msgs: list[Message]) -> bytes:
    """Serialize ``msgs`` (all from ``sender`` to ``to``) as one ``MessageBatch``.

    Raises ``ValueError`` (or ``TypeError``) when a field does not fit its wire type, e.g. a
    negative term or an index of 2**64.
    """
    batch = _MessageBatch(cluster_id=cluster_id, to=to)
    setattr(batch, "from", sender)
    add = batch.messages.add
    for m in msgs:
        _fill_message(add(), m)
    return batch.SerializeToString()


def _conf_state(pb: raft_pb2.ConfState) -> ConfState:
    voters, learners = pb.voters, pb.learners
    if not voters and not learners:
        return _EMPTY_CONF_STATE
    return ConfState(voters=tuple(voters), learners=tuple(learners))


def _metadata(pb: raft_pb2.SnapshotMetadata) -> SnapshotMetadata:
    return SnapshotMetadata(conf_state=_conf_state(pb.conf_state), index=pb.index, term=pb.term)


# A frozen dataclass's __init__ sets each field through object.__setattr__, twice as slow as
# setting the slots directly, and followers build an Entry per replicated write. Entry has no
# validation to skip (checked here, so that adding some breaks the import, not correctness).
if "__post_init__" in vars(Entry):
    raise ImportError("server.peer.codec._entry would bypass Entry.__post_init__")
_new = object.__new__
_slots = vars(Entry)
_set_term = _slots["term"].__set__
_set_index = _slots["index"].__set__
_set_type = _slots["type"].__set__
_set_data = _slots["data"].__set__
_NORMAL = EntryType.NORMAL


def _entry(term: int, index: int, type_: int, data: bytes) -> Entry:
    e = _new(Entry)
    _set_term(e, term)
    _set_index(e, index)
    if type_ == 0:
        _set_type(e, _NORMAL)
    else:
        t = _ENTRY_TYPES.get(type_)
        if t is None:
            raise ValueError(f"unknown entry type {type_}")
        _set_type(e, t)
    _set_data(e, data)
    return e


def _message(pb: raft_pb2.RaftMessage, sender: int, to: int) -> Message:
    mtype = _MESSAGE_TYPES.get(pb.type)
    if mtype is None:
        raise ValueError(f"unknown message type {pb.type}")
    if pb.to != to or getattr(pb, "from") != sender:
        raise ValueError(
            f"message from {getattr(pb, 'from'):x} to {pb.to:x} in a batch from {sender:x} "
            f"to {to:x}"
        )
    entries: tuple[Entry, ...] = ()
    if pb.entries:
        entries = tuple([_entry(e.term, e.index, e.type, e.data) for e in pb.entries])
    snapshot = None
    if pb.HasField("snapshot"):
        s = pb.snapshot
        snapshot = Snapshot(data=s.data, metadata=_metadata(s.metadata))
    chunk = None
    if pb.HasField("chunk"):
        c = pb.chunk
        chunk = SnapshotChunk(
            metadata=_metadata(c.metadata),
            offset=c.offset,
            data=c.data,
            done=c.done,
            checksum=c.checksum,
            transfer=c.transfer,
        )
    return Message(
        type=mtype,
        to=to,
        from_=sender,
        term=pb.term,
        log_term=pb.log_term,
        index=pb.index,
        entries=entries,
        commit=pb.commit,
        snapshot=snapshot,
        reject=pb.reject,
        reject_hint=pb.reject_hint,
        context=pb.context,
        chunk=chunk,
    )


def decode_batch(data: bytes) -> tuple[int, int, int, list[Message]]:
    """Parse :func:`encode_batch`'s output into ``(cluster_id, sender, to, messages)``.

    Raises ``ValueError`` on anything that is not a well-formed batch: bytes that do not parse,
    unknown message or entry types, a message whose sender or receiver differs from the batch's.
    (Numbers cannot exceed 64 bits: the protobuf parser refuses such varints.)
    """
    try:
        batch = _MessageBatch.FromString(data)
    except DecodeError as e:
        raise ValueError(f"malformed message batch: {e}") from None
    sender = getattr(batch, "from")
    to = batch.to
    return batch.cluster_id, sender, to, [_message(m, sender, to) for m in batch.messages]
