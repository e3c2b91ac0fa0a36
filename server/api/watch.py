"""The Watch service: many watches on one bidirectional stream, with etcd's semantics.

A tenant user's watchers count against its tenant's `quota_watchers` for the whole member
(`server.watch_quota`): past it, a WatchCreateRequest is refused as etcd refuses a watch it may not
create (created and canceled, with a cancel reason), and the stream and its other watches go on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from collections.abc import AsyncIterator

import lmdb

from auth.model import TokenInfo
from auth.tenants import Tenant
from server.api.rpc import CallInfo
from server.errors import EtcdError
from server.state import ServerState
from server.watch import EventReader, RevisionClock, Watcher, watch_response
from server.watch_quota import TENANT_WATCH_QUOTA_REASON, LocalQuota, WatcherCounts, WatcherQuota
from wardpb.etcdserverpb import rpc_pb2

DUPLICATE_ID = "mvcc: duplicate watch ID"
# What etcd puts in a denied watch's cancel reason: the text of its gRPC permission error.
INVALID_WATCH_ID = -1
PERMISSION_DENIED_REASON = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
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
        # Who created each watch (None: auth was off), and the auth state they were last
        # checked at: a change re-checks every watch of the stream.
        self.users: dict[int, str | None] = {}
        self.auth_seen: tuple[bool, int] | None = None
        # The tenant each tenant user's watch counts against (server.watch_quota).
        self.tenants: dict[int, str] = {}


class WatchService:
    def __init__(
        self,
        state: ServerState,
        clock: RevisionClock,
        *,
        progress_interval: float = PROGRESS_INTERVAL,
        quota: WatcherQuota | None = None,
    ) -> None:
        self._s = state
        self._clock = clock
        self._events = EventReader(state.backend, state.kv)
        self._progress = progress_interval
        # The member's count of tenants' watchers; alone, this service counts its own.
        self._quota = quota if quota is not None else LocalQuota(WatcherCounts())

    def methods(self) -> dict[str, object]:
        return {"Watch": self.watch}

    def _header(self, rev: int) -> bytes:
        return self._s.header.header(rev)

    async def watch(self, requests: AsyncIterator[bytes], call: CallInfo) -> AsyncIterator[bytes]:
        st = _Stream()
        reader = asyncio.create_task(self._read_requests(requests, st, call))
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
            self._release_all(st)

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
                self._drop(st, w.id)
        live = [w for w in ready if w.id in st.watchers]
        now = time.monotonic()
        headers: dict[int, bytes] = {}
        admit = functools.partial(self._admit, st)
        for w, rev, evs in self._events.read(live, self._clock.current, admit=admit):
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

    def _admit(self, st: _Stream, txn: lmdb.Transaction, ready: list[Watcher]) -> list[Watcher]:
        """Cancel the stream's watches their creators may no longer read, in the transaction
        that reads their events; the ready watchers still allowed."""
        access = self._s.auth
        with access.checker(txn, None) as state:
            seen = (state.enabled, state.revision)
            if seen == st.auth_seen:
                return ready
            st.auth_seen = seen
            if not state.enabled:
                return ready
            for wid, w in list(st.watchers.items()):
                user = st.users.get(wid)
                with access.checker(txn, TokenInfo(user, state.revision) if user else None) as chk:
                    allowed = chk.can_read(w.key or b"\x00", w.end)
                if not allowed:
                    self._drop(st, wid)
                    st.control.append(
                        watch_response(
                            self._header(self._clock.current),
                            wid,
                            canceled=True,
                            cancel_reason=PERMISSION_DENIED_REASON,
                        )
                    )
        return [w for w in ready if w.id in st.watchers]

    def _drop(self, st: _Stream, wid: int) -> None:
        st.watchers.pop(wid, None)
        st.users.pop(wid, None)
        st.last_sent.pop(wid, None)
        tenant = st.tenants.pop(wid, None)
        if tenant is not None:
            self._quota.release(tenant)

    def _release_all(self, st: _Stream) -> None:
        """The stream ended: its tenants' watchers end with it."""
        held: dict[str, int] = {}
        for tenant in st.tenants.values():
            held[tenant] = held.get(tenant, 0) + 1
        st.tenants.clear()
        for tenant, n in held.items():
            self._quota.release(tenant, n)

    async def _read_requests(
        self, requests: AsyncIterator[bytes], st: _Stream, call: CallInfo
    ) -> None:
        try:
            async for raw in requests:
                req = rpc_pb2.WatchRequest.FromString(raw)
                if req.WhichOneof("request_union") == "create_request":
                    # Checked once, at create; the watch then outlives the token (clients
                    # cannot refresh a stream's token), but not a revocation (see _admit).
                    allowed, user, tenant = await self._permitted(req.create_request, call)
                    if not allowed:
                        self._deny(st, PERMISSION_DENIED_REASON)
                    elif tenant is None:
                        self._handle(req, st, user)
                    elif await self._quota.reserve(tenant):
                        wid = self._handle(req, st, user)
                        if wid is None:
                            self._quota.release(tenant.name)
                        else:
                            st.tenants[wid] = tenant.name
                    else:
                        # Only this tenant is held back: other tenants' watches go on.
                        self._deny(st, TENANT_WATCH_QUOTA_REASON)
                else:
                    self._handle(req, st, None)
                st.wake.set()
        except Exception:
            # A broken or undecodable request stream ends the watch stream.
            st.closed = True
            st.wake.set()
            raise
        # The client closed its sending side only: as etcd, keep sending events until it
        # cancels the call.

    async def _permitted(
        self, c: rpc_pb2.WatchCreateRequest, call: CallInfo
    ) -> tuple[bool, str | None, Tenant | None]:
        """Whether the caller may watch the range, its name (None with auth off), and the
        tenant whose watchers it counts among (None: none). A tenant's watchers are counted
        whether or not it has a quota, so that a quota a policy sets later counts those open.

        The range is checked as asked: a from-key watch (range end `\\0`) needs a from-key
        grant, not one on its first key (SECURITY 3). An empty key means the smallest key.
        """
        s = self._s
        try:
            info = await s.auth.identify(call)
            await s.storage_open()
            with s.backend.read() as txn, s.auth.checker(txn, info) as chk:
                chk.read(c.key or b"\x00", c.range_end)
                user = info.username if chk.enabled and info is not None else None
                return True, user, chk.tenant()[1]
        except EtcdError:
            return False, None, None

    def _deny(self, st: _Stream, reason: str) -> None:
        """etcd's answer to a watch it may not create; the stream and its other watches go on
        (SECURITY 4)."""
        st.control.append(
            watch_response(
                self._header(self._clock.current),
                # etcd 3.4 names no watch: the one asked for was never created.
                INVALID_WATCH_ID,
                created=True,
                canceled=True,
                cancel_reason=reason,
            )
        )

    def _handle(self, req: rpc_pb2.WatchRequest, st: _Stream, user: str | None) -> int | None:
        """Answer one request of the stream; for a create, the new watch's ID (None: refused)."""
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
                    return None
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
            st.users[wid] = user
            st.last_sent[wid] = time.monotonic()
            st.control.append(watch_response(self._header(current), wid, created=True))
            return wid
        elif which == "cancel_request":
            wid = req.cancel_request.watch_id
            if wid in st.watchers:
                self._drop(st, wid)
                st.control.append(watch_response(self._header(current), wid, canceled=True))
        elif which == "progress_request":
            # Not tied to one watch: etcd answers with watch ID -1.
            st.control.append(watch_response(self._header(current), -1))
        return None
