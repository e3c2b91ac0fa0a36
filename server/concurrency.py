"""etcd's client concurrency recipes (`clientv3/concurrency`), run inside the server.

etcd's Lock and Election services are its client-side Mutex and Election driven by an in-process
client: a key `name/<lease in hex>` created in a txn, then a wait until no key under `name/`
with a smaller create revision remains. `Keyspace` is that client for Ward: txns, reads and
deletes go through the serving process's own write path and storage, and waiting for a deletion
sleeps on the revision clock and looks again after each new revision, instead of polling.

Both the core and the worker processes serve these recipes: everything they need (proposals,
reads, the clock) exists in each process, and a call canceled by its client must clean up its
key in the process that saw the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Coroutine
from typing import Any

import grpc
import lmdb

from auth.model import TokenInfo
from server.access import request_header
from server.api.rpc import CallInfo
from server.api.validate import check_delete, check_range, check_txn
from server.errors import EtcdError
from server.state import ENTRY_DELETE_RANGE, ENTRY_LEASE_GRANT, ENTRY_TXN, ServerState
from server.storage.mvcc import FROM_KEY
from server.watch import EventReader, RevisionClock, Watcher
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2

# concurrency.defaultSessionTTL: a session created without a lease grants one this long.
SESSION_TTL = 60

# The recipes' own errors. etcd's Lock and Election servers return plain Go errors (and the
# in-process client's errors, which are no gRPC statuses either), so every error of theirs
# reaches the client with status Unknown and etcd's message.
SESSION_EXPIRED = "mutex: session is expired"
ELECTION_NO_LEADER = "election: no leader"
ELECTION_NOT_LEADER = "election: not leader"
MISSING_LEADER_KEY = '"leader" field must be provided'


def recipe_error(message: str) -> EtcdError:
    return EtcdError(grpc.StatusCode.UNKNOWN, message)


def prefix_end(key: bytes) -> bytes:
    """The range end covering every key with this prefix (clientv3.GetPrefixRangeEnd)."""
    for i in range(len(key) - 1, -1, -1):
        if key[i] < 0xFF:
            return key[:i] + bytes((key[i] + 1,))
    return FROM_KEY


def lease_key(prefix: bytes, lease: int) -> bytes:
    """`prefix` + the lease ID in lower-case hex, as Go's `%x` prints an int64."""
    return prefix + f"{lease:x}".encode()


def first_created(prefix: bytes) -> rpc_pb2.RangeRequest:
    """clientv3.WithFirstCreate(): the key under the prefix with the smallest create revision."""
    return rpc_pb2.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_target=rpc_pb2.RangeRequest.CREATE,
        sort_order=rpc_pb2.RangeRequest.ASCEND,
        limit=1,
    )


def create_is(key: bytes, rev: int) -> rpc_pb2.Compare:
    """clientv3.Compare(clientv3.CreateRevision(key), "=", rev)."""
    return rpc_pb2.Compare(
        key=key,
        target=rpc_pb2.Compare.CREATE,
        result=rpc_pb2.Compare.EQUAL,
        create_revision=rev,
    )


class Keyspace:
    """What the recipes do through etcd's client, done through this process's own paths.

    As in etcd, whose recipes run on a client carrying the caller's token, everything runs as
    the caller (`as_caller`): reads are checked here, writes where they apply.
    """

    def __init__(
        self,
        state: ServerState,
        clock: RevisionClock,
        *,
        caller: TokenInfo | None = None,
        cleanups: set[asyncio.Task[Any]] | None = None,
    ) -> None:
        self._s = state
        self._clock = clock
        self._caller = caller
        self._events = EventReader(state.backend, state.kv)
        self._cleanups: set[asyncio.Task[Any]] = set() if cleanups is None else cleanups

    async def as_caller(self, call: CallInfo) -> Keyspace:
        """This keyspace as the caller of `call` sees it."""
        caller = await self._s.auth.identify(call)
        return Keyspace(self._s, self._clock, caller=caller, cleanups=self._cleanups)

    def _header_bytes(self) -> bytes:
        return request_header(self._caller)

    def header(self, rev: int) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader.FromString(self._s.header.header(rev))

    async def txn(self, r: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        check_txn(r, self._s.max_txn_ops)
        await self._s.storage_open()
        raw = await self._s.proposer.propose(
            ENTRY_TXN, r.SerializeToString(), header=self._header_bytes()
        )
        return rpc_pb2.TxnResponse.FromString(raw)

    async def get(self, r: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        check_range(r)
        await self._s.storage_open()
        with self._s.backend.read() as txn, self._s.auth.checker(txn, self._caller) as chk:
            chk.range(r)
            return rpc_pb2.RangeResponse.FromString(self._s.reader.range(txn, r))

    async def delete(self, key: bytes) -> rpc_pb2.DeleteRangeResponse:
        r = rpc_pb2.DeleteRangeRequest(key=key)
        check_delete(r)
        await self._s.storage_open()
        raw = await self._s.proposer.propose(
            ENTRY_DELETE_RANGE, r.SerializeToString(), header=self._header_bytes()
        )
        return rpc_pb2.DeleteRangeResponse.FromString(raw)

    async def session_lease(self, lease: int) -> int:
        """concurrency.NewSession: the given lease, or a new one of SESSION_TTL if 0.

        The servers orphan the session at once (no keep-alive), so a lease granted here simply
        expires after SESSION_TTL, as in etcd.
        """
        if lease:
            return lease
        req = rpc_pb2.LeaseGrantRequest(TTL=SESSION_TTL)
        await self._s.storage_open()
        raw = await self._s.proposer.propose(
            ENTRY_LEASE_GRANT, req.SerializeToString(), header=self._header_bytes()
        )
        return rpc_pb2.LeaseGrantResponse.FromString(raw).ID

    def cleanup(self, work: Coroutine[Any, Any, object]) -> None:
        """Run `work` to its end even though the call that needs it was canceled."""

        async def run() -> None:
            with contextlib.suppress(Exception):
                await work

        task = asyncio.get_running_loop().create_task(run())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def wait_deletes(self, prefix: bytes, max_create_rev: int) -> rpc_pb2.ResponseHeader:
        """concurrency's waitDeletes: until no key under `prefix` was created at or before
        `max_create_rev`; returns the header of the read that found none.

        Like etcd, it waits for the newest such key to go, then looks again.
        """
        last_created = rpc_pb2.RangeRequest(
            key=prefix,
            range_end=prefix_end(prefix),
            sort_target=rpc_pb2.RangeRequest.CREATE,
            sort_order=rpc_pb2.RangeRequest.DESCEND,
            limit=1,
            max_create_revision=max_create_rev,
        )
        wake = asyncio.Event()
        # Subscribed before the first read, so no revision after it can pass unnoticed.
        self._clock.subscribe(wake)
        try:
            while True:
                wake.clear()
                resp = await self.get(last_created)
                if not resp.kvs:
                    return resp.header
                kv = resp.kvs[0]
                while await self._exists(kv.key, kv.create_revision):
                    await wake.wait()
                    wake.clear()
        finally:
            self._clock.unsubscribe(wake)

    async def _exists(self, key: bytes, create_rev: int) -> bool:
        """Whether this incarnation of `key` is still there (a deleted and re-created key has a
        new create revision, so it counts as deleted, as etcd's watch would report it)."""
        await self._s.storage_open()
        with self._s.backend.read() as txn, self._s.auth.checker(txn, self._caller) as chk:
            chk.read(key)
            item = self._s.kv.get(txn, key)
        return item is not None and item.create == create_rev

    def _admit(self, txn: lmdb.Transaction, watchers: list[Watcher]) -> list[Watcher]:
        """A watch stops (with etcd's permission error) once the caller may not read its range;
        checked in the transaction its events are read in."""
        with self._s.auth.checker(txn, self._caller) as chk:
            for w in watchers:
                chk.read(w.key, w.end)
        return watchers

    async def watch(
        self, key: bytes, end: bytes, start_rev: int
    ) -> AsyncGenerator[tuple[rpc_pb2.ResponseHeader, list[kv_pb2.Event]], None]:
        """Events on [key, end) from `start_rev` on, one revision at a time, as a watch sends
        them. Ends when the history it needs has been compacted (etcd cancels such a watch)."""
        watcher = Watcher(id=0, key=key, end=end, next_rev=start_rev)
        wake = asyncio.Event()
        self._clock.subscribe(wake)
        try:
            while True:
                wake.clear()
                if watcher.next_rev > self._clock.current:
                    await wake.wait()
                    continue
                await self._s.storage_open()
                if watcher.next_rev < self._events.compacted():
                    return
                reading = self._events.read([watcher], self._clock.current, admit=self._admit)
                for _w, rev, evs in reading:
                    # The reader hands out `events` fields of a WatchResponse, ready to send.
                    events = rpc_pb2.WatchResponse.FromString(b"".join(evs)).events
                    yield self.header(rev), list(events)
        finally:
            self._clock.unsubscribe(wake)
