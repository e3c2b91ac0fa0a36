"""Coalescing a peer's queued messages: fewer messages, the same outcome at the receiver."""

from __future__ import annotations

from server.peer.transport import coalesce
from server.raft import Config, RawNode
from server.raft.storage import MemoryStorage
from server.raft.types import ConfState, Entry, Message, MessageType

APP, RESP = MessageType.APP, MessageType.APP_RESP
LIMIT = 1 << 20


def ents(first: int, last: int, term: int = 1) -> tuple[Entry, ...]:
    return tuple(Entry(term, i, data=b"x%d" % i) for i in range(first, last + 1))


def app(index: int, entries: tuple[Entry, ...], commit: int, log_term: int = 1) -> Message:
    return Message(
        APP, to=2, from_=1, term=1, index=index, log_term=log_term, entries=entries, commit=commit
    )


def follower(msgs: list[Message]) -> tuple[int, int, list[Message]]:
    """Feed a fresh follower (member 2 of 1, 2, 3) ``msgs``; its last index, commit index and
    the messages it sent back."""
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2, 3)))
    node = RawNode(Config(id=2), storage)
    sent: list[Message] = []
    for m in msgs:
        node.step(m)
        while node.has_ready():
            rd = node.ready()
            storage.append(list(rd.entries))
            if rd.hard_state is not None:
                storage.set_hard_state(rd.hard_state)
            sent.extend(rd.messages)
            node.advance(rd)
    return storage.last_index(), storage.hard_state.commit, sent


def test_contiguous_appends_and_commit_updates_become_one_append() -> None:
    msgs = [
        app(0, ents(1, 1), commit=0, log_term=0),
        app(1, ents(2, 3), commit=0),
        app(3, (), commit=2),  # a commit advance, no entries
        app(3, ents(4, 4), commit=3),
    ]
    out = coalesce(msgs, LIMIT)
    assert len(out) == 1
    merged = out[0]
    assert (merged.index, merged.log_term, merged.commit) == (0, 0, 3)
    assert [e.index for e in merged.entries] == [1, 2, 3, 4]
    last, commit, sent = follower(out)
    assert (last, commit) == follower(msgs)[:2] == (4, 3)
    assert [(m.type, m.index, m.reject) for m in sent] == [(RESP, 4, False)]


def test_appends_that_do_not_follow_on_stay_apart() -> None:
    gap = [app(0, ents(1, 2), commit=0, log_term=0), app(3, ents(4, 4), commit=0)]
    assert coalesce(gap, LIMIT) == gap
    other_term = [
        app(0, ents(1, 2), commit=0, log_term=0),
        app(2, ents(3, 3), commit=0, log_term=2),
    ]
    assert coalesce(other_term, LIMIT) == other_term
    too_big = [app(0, ents(1, 2), commit=0, log_term=0), app(2, ents(3, 3), commit=0)]
    assert coalesce(too_big, 4) == too_big


def test_nothing_is_reordered_across_other_messages() -> None:
    beat = Message(MessageType.HEARTBEAT, to=2, from_=1, term=1, commit=1)
    msgs = [app(0, ents(1, 1), commit=0, log_term=0), beat, app(1, ents(2, 2), commit=1)]
    assert coalesce(msgs, LIMIT) == msgs


def test_a_later_acknowledgement_replaces_earlier_ones_but_not_rejections() -> None:
    def resp(index: int, reject: bool = False, term: int = 1) -> Message:
        return Message(RESP, to=1, from_=2, term=term, index=index, reject=reject)

    assert coalesce([resp(3), resp(5), resp(9)], LIMIT) == [resp(9)]
    kept = [resp(3), resp(5, reject=True), resp(9)]
    assert coalesce(kept, LIMIT) == kept
    assert coalesce([resp(3), resp(5, term=2)], LIMIT) == [resp(3), resp(5, term=2)]
    assert coalesce([resp(5), resp(3)], LIMIT) == [resp(5), resp(3)]
