"""The Watch service: many watches on one bidirectional stream, with etcd's semantics."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator

from server.api.rpc import CallInfo
from server.state import ServerState
from server.watch import EventReader, RevisionClock, Watcher, watch_response
from wardpb.etcdserverpb import rpc_pb2

DUPLICATE_ID = "mvcc: duplicate watch ID"
# etcd's default --experimental-watch-progress-notify-interval.
PROGRESS_INTERVAL = 600.0


class _Stream:
    def __init__(self) -> None:
        self.watchers: dict[int, Watcher] = {}
        self.control: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.next_id = 0
        self.last_sent: dict[int, float] = {}


class WatchService:
    def __init__(
        self,
        state: ServerState,
        clock: RevisionClock,
        *,
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self._s = state
        self._clock = clock
        self._events = EventReader(state.backend, state.kv)
        self._progress = progress_interval

    def methods(self) -> dict[str, object]:
        return {"Watch": self.watch}

    def _header(self, rev: int) -> bytes:
        return self._s.header.header(rev)

    async def watch(self, requests: AsyncIterator[bytes], call: CallInfo) -> AsyncIterator[bytes]:
        st = _Stream()
        reader = asyncio.create_task(self._read_requests(requests, st))
        self._clock.subscribe(st.wake)
        try:
            while True:
                while st.control:
                    yield st.control.popleft()
                if st.closed:
                    return
                ready = [w for w in st.watchers.values() if w.next_rev <= self._clock.current]
                if ready:
                    await self._s.storage_open()
                    for resp in self._catch_up(st, ready):
                        yield resp
                    continue
                st.wake.clear()
                if self._progress and any(w.progress_notify for w in st.watchers.values()):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(st.wake.wait(), self._progress / 4)
                    for resp in self._progress_due(st):
                        yield resp
                else:
                    await st.wake.wait()
        finally:
            self._clock.unsubscribe(st.wake)
            reader.cancel()

    def _catch_up(self, st: _Stream, ready: list[Watcher]) -> list[bytes]:
        out = []
        compacted = self._events.compacted()
        for w in ready:
            if w.next_rev < compacted:
                # Its history is gone: say where it went, and cancel it, as etcd does.
                out.append(
                    watch_response(
                        self._header(self._clock.current),
                        w.id,
                        canceled=True,
                        compact_revision=compacted,
                    )
                )
                st.watchers.pop(w.id, None)
        live = [w for w in ready if w.id in st.watchers]
        now = time.monotonic()
        headers: dict[int, bytes] = {}
        for w, rev, evs in self._events.read(live, self._clock.current):
            header = headers.get(rev)
            if header is None:
                header = headers[rev] = self._header(rev)
            out.extend(self._event_responses(w, header, evs))
            st.last_sent[w.id] = now
        return out

    def _event_responses(self, w: Watcher, header: bytes, evs: list[bytes]) -> list[bytes]:
        if not w.fragment:
            return [watch_response(header, w.id, events=evs)]
        limit = self._s.max_request_bytes
        chunks: list[list[bytes]] = [[]]
        size = 0
        for ev in evs:
            if chunks[-1] and size + len(ev) > limit:
                chunks.append([])
                size = 0
            chunks[-1].append(ev)
            size += len(ev)
        return [
            watch_response(header, w.id, events=c, fragment=i < len(chunks) - 1)
            for i, c in enumerate(chunks)
        ]

    def _progress_due(self, st: _Stream) -> list[bytes]:
        now = time.monotonic()
        out = []
        for w in st.watchers.values():
            if w.progress_notify and now - st.last_sent.get(w.id, 0.0) >= self._progress:
                st.last_sent[w.id] = now
                out.append(watch_response(self._header(self._clock.current), w.id))
        return out

    async def _read_requests(self, requests: AsyncIterator[bytes], st: _Stream) -> None:
        try:
            async for raw in requests:
                self._handle(rpc_pb2.WatchRequest.FromString(raw), st)
                st.wake.set()
        finally:
            st.closed = True
            st.wake.set()

    def _handle(self, req: rpc_pb2.WatchRequest, st: _Stream) -> None:
        which = req.WhichOneof("request_union")
        current = self._clock.current
        if which == "create_request":
            c = req.create_request
            wid = c.watch_id
            if wid:
                if wid in st.watchers:
                    st.control.append(
                        watch_response(
                            self._header(current),
                            wid,
                            created=True,
                            canceled=True,
                            cancel_reason=DUPLICATE_ID,
                        )
                    )
                    return
            else:
                while st.next_id in st.watchers:
                    st.next_id += 1
                wid = st.next_id
                st.next_id += 1
            w = Watcher(
                id=wid,
                key=c.key,
                end=c.range_end,
                next_rev=c.start_revision or current + 1,
                prev_kv=c.prev_kv,
                filters=frozenset(c.filters),
                fragment=c.fragment,
                progress_notify=c.progress_notify,
            )
            st.watchers[wid] = w
            st.last_sent[wid] = time.monotonic()
            st.control.append(watch_response(self._header(current), wid, created=True))
        elif which == "cancel_request":
            wid = req.cancel_request.watch_id
            if st.watchers.pop(wid, None) is not None:
                st.control.append(watch_response(self._header(current), wid, canceled=True))
        elif which == "progress_request":
            # Not tied to one watch: etcd answers with watch ID -1.
            st.control.append(watch_response(self._header(current), -1))
