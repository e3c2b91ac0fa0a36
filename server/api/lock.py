"""etcd's Lock service (v3lock): a server-side `concurrency.Mutex` on a caller's lease.

Lock puts `name/<lease hex>` (attached to the lease) unless it exists, then waits until every
key under `name/` created before it is gone; whoever's key is oldest holds the lock. Unlock
deletes the key. A Lock canceled by its client (or failing) while waiting deletes its key, so
the waiters behind it are not held up by a lock nobody will take.
"""

from __future__ import annotations

import asyncio

from server.api.rpc import CallInfo, Unary
from server.concurrency import (
    SESSION_EXPIRED,
    Keyspace,
    create_is,
    first_created,
    lease_key,
    recipe_error,
)
from server.errors import EtcdError
from server.state import ServerState
from server.watch import RevisionClock
from wardpb.etcdserverpb import rpc_pb2
from wardpb.v3lockpb import v3lock_pb2


class LockService:
    def __init__(self, state: ServerState, clock: RevisionClock) -> None:
        self._ks = Keyspace(state, clock)

    def methods(self) -> dict[str, Unary]:
        return {"Lock": self.lock, "Unlock": self.unlock}

    async def lock(self, request: bytes, call: CallInfo) -> bytes:
        r = v3lock_pb2.LockRequest.FromString(request)
        try:
            ks = await self._ks.as_caller(call)
            header, key = await self._lock(ks, r.name, r.lease)
        except EtcdError as e:
            raise recipe_error(e.message) from None
        return v3lock_pb2.LockResponse(header=header, key=key).SerializeToString()

    async def _lock(
        self, ks: Keyspace, name: bytes, lease: int
    ) -> tuple[rpc_pb2.ResponseHeader, bytes]:
        """concurrency.Mutex.Lock (etcd 3.5), as the caller `ks` speaks for."""
        lease = await ks.session_lease(lease)
        prefix = name + b"/"
        my_key = lease_key(prefix, lease)
        owner = rpc_pb2.RequestOp(request_range=first_created(prefix))
        resp = await ks.txn(
            rpc_pb2.TxnRequest(
                compare=[create_is(my_key, 0)],
                success=[
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(key=my_key, value=b"", lease=lease)
                    ),
                    owner,
                ],
                # The key exists: this lease already holds the lock or waits for it.
                failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=my_key)), owner],
            )
        )
        my_rev = resp.header.revision
        if not resp.succeeded:
            my_rev = resp.responses[0].response_range.kvs[0].create_revision
        holder = resp.responses[1].response_range.kvs
        if not holder or holder[0].create_revision == my_rev:
            return resp.header, my_key
        try:
            await ks.wait_deletes(prefix, my_rev - 1)
            got = await ks.get(rpc_pb2.RangeRequest(key=my_key))
        except (EtcdError, asyncio.CancelledError):
            ks.cleanup(ks.delete(my_key))
            raise
        if not got.kvs:
            # The lease ended while waiting: the key is gone, and with it the claim.
            raise recipe_error(SESSION_EXPIRED)
        return got.header, my_key

    async def unlock(self, request: bytes, call: CallInfo) -> bytes:
        r = v3lock_pb2.UnlockRequest.FromString(request)
        try:
            ks = await self._ks.as_caller(call)
            resp = await ks.delete(r.key)
        except EtcdError as e:
            raise recipe_error(e.message) from None
        return v3lock_pb2.UnlockResponse(header=resp.header).SerializeToString()
