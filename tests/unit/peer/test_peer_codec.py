"""The peer codec: every Raft message survives the wire unchanged; bad bytes raise ValueError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.peer.codec import decode_batch, encode_batch
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

U64 = st.integers(min_value=0, max_value=2**64 - 1)
IDS = st.integers(min_value=1, max_value=2**64 - 1)
SMALL_BYTES = st.binary(max_size=64)

conf_states = st.builds(
    ConfState,
    voters=st.lists(IDS, max_size=5).map(tuple),
    learners=st.lists(IDS, max_size=3).map(tuple),
)
metadata = st.builds(SnapshotMetadata, conf_state=conf_states, index=U64, term=U64)
snapshots = st.builds(Snapshot, data=SMALL_BYTES, metadata=metadata)
chunks = st.builds(
    SnapshotChunk,
    metadata=metadata,
    offset=U64,
    data=SMALL_BYTES,
    done=st.booleans(),
    checksum=st.integers(min_value=0, max_value=2**32 - 1),
    transfer=U64,
)
entries = st.builds(Entry, term=U64, index=U64, type=st.sampled_from(EntryType), data=SMALL_BYTES)


def messages(sender: int, to: int) -> st.SearchStrategy[Message]:
    return st.builds(
        Message,
        type=st.sampled_from(MessageType),
        to=st.just(to),
        from_=st.just(sender),
        term=U64,
        log_term=U64,
        index=U64,
        entries=st.lists(entries, max_size=4).map(tuple),
        commit=U64,
        snapshot=st.none() | snapshots,
        reject=st.booleans(),
        reject_hint=U64,
        context=SMALL_BYTES,
        chunk=st.none() | chunks,
    )


@st.composite
def batches(draw: st.DrawFn) -> tuple[int, int, int, list[Message]]:
    cluster, sender, to = draw(U64), draw(IDS), draw(IDS)
    return cluster, sender, to, draw(st.lists(messages(sender, to), max_size=4))


@settings(max_examples=300, deadline=None)
@given(batches())
def test_every_batch_round_trips_unchanged(batch: tuple[int, int, int, list[Message]]) -> None:
    assert decode_batch(encode_batch(*batch)) == batch


def test_absent_and_empty_snapshot_stay_distinct() -> None:
    # The core tells "no snapshot" (None) from an image of nothing; the wire must too.
    msgs = [
        Message(MessageType.SNAP, to=2, from_=1, snapshot=Snapshot()),
        Message(MessageType.SNAP_RESP, to=2, from_=1, chunk=SnapshotChunk(SnapshotMetadata())),
        Message(MessageType.HEARTBEAT, to=2, from_=1),
    ]
    _, _, _, out = decode_batch(encode_batch(9, 1, 2, msgs))
    assert out == msgs
    assert out[0].snapshot is not None and out[0].chunk is None
    assert out[1].chunk is not None and out[1].snapshot is None
    assert out[2].snapshot is None and out[2].chunk is None


def test_a_one_mebibyte_chunk_round_trips() -> None:
    data = bytes(range(256)) * 4096
    chunk = SnapshotChunk(
        SnapshotMetadata(ConfState(voters=(1, 2, 3)), index=10, term=2),
        offset=1 << 20,
        data=data,
        done=False,
        checksum=0xDEADBEEF,
        transfer=7,
    )
    msg = Message(MessageType.SNAP, to=3, from_=1, term=2, chunk=chunk)
    assert decode_batch(encode_batch(5, 1, 3, [msg]))[3] == [msg]


def test_decoded_entries_equal_constructed_ones() -> None:
    # The decoder builds entries without Entry.__init__; they must be indistinguishable.
    e = Entry(term=3, index=4, type=EntryType.CONF_CHANGE, data=b"cc")
    msg = Message(MessageType.APP, to=2, from_=1, entries=(e, Entry(3, 5)))
    got = decode_batch(encode_batch(1, 1, 2, [msg]))[3][0].entries
    assert got == (e, Entry(3, 5))
    assert type(got[0].type) is EntryType and hash(got[0]) == hash(e)


@pytest.mark.parametrize(
    "field,value", [("term", -1), ("index", 2**64), ("commit", -5), ("reject_hint", 2**70)]
)
def test_encode_refuses_numbers_outside_u64(field: str, value: int) -> None:
    msg = Message(MessageType.APP, to=2, from_=1, **{field: value})
    with pytest.raises(ValueError):
        encode_batch(1, 1, 2, [msg])


def _raw(**fields: object) -> raft_pb2.MessageBatch:
    batch = raft_pb2.MessageBatch(cluster_id=1, to=2)
    setattr(batch, "from", 1)
    m = batch.messages.add(type=raft_pb2.MSG_APP, to=2)
    setattr(m, "from", 1)
    for k, v in fields.items():
        setattr(m, k, v)
    return batch


def test_decode_refuses_unknown_message_type() -> None:
    with pytest.raises(ValueError, match="unknown message type 42"):
        decode_batch(_raw(type=42).SerializeToString())


def test_decode_refuses_unknown_entry_type() -> None:
    batch = _raw()
    batch.messages[0].entries.add(term=1, index=1, type=7)
    with pytest.raises(ValueError, match="unknown entry type 7"):
        decode_batch(batch.SerializeToString())


def test_decode_refuses_a_message_addressed_apart_from_its_batch() -> None:
    with pytest.raises(ValueError, match="in a batch from"):
        decode_batch(_raw(to=3).SerializeToString())


def test_decode_refuses_a_varint_wider_than_64_bits() -> None:
    # Field 1 (cluster_id), varint of eleven bytes: no u64 has that many.
    with pytest.raises(ValueError):
        decode_batch(b"\x08" + b"\xff" * 10 + b"\x01")


@pytest.mark.parametrize(
    "data",
    [b"\x22", b"\x22\x05ab", b"\x22\xff\xff\xff\xff\x0f", b"\x0b", b"\x07", b"\xff" * 12],
)
def test_decode_refuses_truncated_or_invalid_bytes(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_batch(data)


def _decode_or_value_error(data: bytes) -> None:
    try:
        cluster, sender, to, msgs = decode_batch(data)
    except ValueError:
        return
    # Whatever decodes must be valid values of the Python types, ready for the Raft core.
    for m in msgs:
        assert isinstance(m.type, MessageType)
        assert (m.from_, m.to) == (sender, to)
        assert all(isinstance(e.type, EntryType) for e in m.entries)
    assert 0 <= cluster < 2**64


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_decode_of_random_bytes_returns_or_raises_value_error(data: bytes) -> None:
    _decode_or_value_error(data)


@settings(max_examples=500, deadline=None)
@given(batches(), st.data())
def test_decode_of_corrupted_batches_returns_or_raises_value_error(
    batch: tuple[int, int, int, list[Message]], data: st.DataObject
) -> None:
    raw = bytearray(encode_batch(*batch))
    if not raw:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _decode_or_value_error(bytes(raw[:cut]))
