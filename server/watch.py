"""Watches served from storage: every stream reads new revisions from lmdb's history itself.

Nothing is buffered per watcher: a stream that is slow to drain simply reads its next events
later, from `hist`, so writers never wait for watchers and memory does not grow with a backlog.
A watch whose next revision has been compacted away is told so and canceled, as etcd does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import lmdb

from server.storage.backend import Backend
from server.storage.mvcc import FROM_KEY, KVStore
from server.storage.revision import rev_bytes, rev_main
from server.wire import field_bool, field_message, field_varint, varint

NOPUT = 0
NODELETE = 1
# Events of at most this many revisions are read per pass, so one stream never holds a read
# transaction (and with it lmdb's free pages) for long.
REVISIONS_PER_PASS = 1000


# Picks, inside the read transaction, the watchers that may still receive events.
Admit = Callable[[lmdb.Transaction, list["Watcher"]], list["Watcher"]]


class RevisionClock:
    """The newest applied revision this process knows, and who to wake when it moves."""

    def __init__(self, current: int = 0) -> None:
        self.current = current
        self._subscribers: set[asyncio.Event] = set()

    def advance(self, rev: int) -> None:
        if rev > self.current:
            self.current = rev
            for ev in self._subscribers:
                ev.set()

    def subscribe(self, ev: asyncio.Event) -> None:
        self._subscribers.add(ev)

    def unsubscribe(self, ev: asyncio.Event) -> None:
        self._subscribers.discard(ev)


@dataclass(slots=True)
class Watcher:
    id: int
    key: bytes
    end: bytes  # empty: the single key; b"\0": every key from `key`
    next_rev: int
    prev_kv: bool = False
    filters: frozenset[int] = frozenset()
    fragment: bool = False
    progress_notify: bool = False

    def matches(self, key: bytes) -> bool:
        if not self.end:
            return key == self.key
        if self.end == FROM_KEY:
            return key >= self.key
        return self.key <= key < self.end


def kv_key(kv: bytes) -> bytes:
    """The key of an encoded KeyValue (field 1 comes first in Ward's encoding)."""
    if not kv or kv[0] != 0x0A:
        return b""
    n, shift, i = 0, 0, 1
    while True:
        b = kv[i]
        n |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            break
        shift += 7
    return kv[i : i + n]


class EventReader:
    """Reads events for a set of watchers out of `hist`."""

    def __init__(self, backend: Backend, kv: KVStore) -> None:
        self._b = backend
        self._kv = kv

    def compacted(self) -> int:
        with self._b.read() as txn:
            return self._kv.compact_revision(txn)

    def read(
        self, watchers: list[Watcher], upto: int, *, admit: Admit | None = None
    ) -> list[tuple[Watcher, int, list[bytes]]]:
        """Per watcher and revision, the encoded events in [next_rev, upto]; advances them.

        All events of one revision for one watcher come out together, in revision order.
        `admit`, if given, picks the watchers that may still see events, inside the transaction
        the events are read in (so a permission revoked before that read stops them).
        """
        if not watchers:
            return []
        out: list[tuple[Watcher, int, list[bytes]]] = []
        by_watcher: dict[int, list[bytes]] = {}
        at = 0
        with self._b.read() as txn:
            if admit is not None:
                watchers = admit(txn, watchers)
                if not watchers:
                    return []
            start = min(w.next_rev for w in watchers)
            upto = min(upto, start + REVISIONS_PER_PASS - 1)
            cur = txn.cursor(db=self._b.hist)
            if cur.set_range(rev_bytes(start, 0)):
                for rk, rec in cur.iternext():
                    main = rev_main(rk)
                    if main > upto:
                        break
                    if main != at:
                        _emit(watchers, by_watcher, at, out)
                        at = main
                    deleted = rec[:1] == b"\x01"
                    kv = rec[1:]
                    key = kv_key(kv)
                    skip = NODELETE if deleted else NOPUT
                    # Each event is encoded once, as the field of a WatchResponse, and shared
                    # by every watcher that gets it.
                    plain = b""
                    with_prev = b""
                    for i, w in enumerate(watchers):
                        if main < w.next_rev or not w.matches(key) or skip in w.filters:
                            continue
                        if w.prev_kv:
                            if not with_prev:
                                ev = field_varint(1, 1 if deleted else 0) + field_message(2, kv)
                                prev = self._prev(txn, key, main)
                                if prev:
                                    ev += field_message(3, prev)
                                with_prev = field_message(11, ev)
                            encoded = with_prev
                        else:
                            if not plain:
                                ev = field_varint(1, 1 if deleted else 0) + field_message(2, kv)
                                plain = field_message(11, ev)
                            encoded = plain
                        by_watcher.setdefault(i, []).append(encoded)
                _emit(watchers, by_watcher, at, out)
        for w in watchers:
            w.next_rev = max(w.next_rev, upto + 1)
        return out

    def _prev(self, txn: object, key: bytes, rev: int) -> bytes:
        """The version of `key` just before revision `rev`, encoded; empty if none."""
        cur = txn.cursor(db=self._b.keyrev)  # type: ignore[attr-defined]
        if not cur.set_key(key):
            return b""
        has = cur.prev_dup() if cur.set_range_dup(key, rev_bytes(rev, 0)) else cur.last_dup()
        if not has:
            return b""
        rec = txn.get(cur.value(), db=self._b.hist)  # type: ignore[attr-defined]
        if rec is None or rec[:1] == b"\x01":
            return b""
        return rec[1:]


def _emit(
    watchers: list[Watcher],
    by_watcher: dict[int, list[bytes]],
    rev: int,
    out: list[tuple[Watcher, int, list[bytes]]],
) -> None:
    for i, evs in by_watcher.items():
        out.append((watchers[i], rev, evs))
    by_watcher.clear()


def watch_response(
    header: bytes,
    watch_id: int,
    *,
    created: bool = False,
    canceled: bool = False,
    compact_revision: int = 0,
    cancel_reason: str = "",
    fragment: bool = False,
    events: list[bytes] = (),  # type: ignore[assignment]
) -> bytes:
    """An encoded `etcdserverpb.WatchResponse`; `events` are encoded `events` fields (11)."""
    parts = [
        field_message(1, header),
        # watch_id is int64: 0 is omitted, -1 (progress responses) takes ten bytes.
        varint(2 << 3) + varint(watch_id) if watch_id else b"",
        field_bool(3, created),
        field_bool(4, canceled),
        field_varint(5, compact_revision),
        field_message(6, cancel_reason.encode()) if cancel_reason else b"",
        field_bool(7, fragment),
    ]
    parts.extend(events)
    return b"".join(parts)
