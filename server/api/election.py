"""etcd's Election service (v3election): a server-side `concurrency.Election`.

A candidate puts `name/<lease hex>` with its value and waits until every key under `name/`
created before it is gone; the oldest key is the leader. Proclaim rewrites the leader's value,
Resign deletes its key, Leader reads the oldest key, and Observe streams the leader's key each
time it changes, following etcd's observe loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from server.api.rpc import CallInfo
from server.concurrency import (
    ELECTION_NO_LEADER,
    ELECTION_NOT_LEADER,
    MISSING_LEADER_KEY,
    Keyspace,
    create_is,
    first_created,
    lease_key,
    prefix_end,
    recipe_error,
)
from server.errors import EtcdError
from server.state import ServerState
from server.watch import RevisionClock
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2
from wardpb.v3electionpb import v3election_pb2 as epb


class ElectionService:
    def __init__(self, state: ServerState, clock: RevisionClock) -> None:
        self._ks = Keyspace(state, clock)

    def methods(self) -> dict[str, object]:
        return {
            "Campaign": self.campaign,
            "Proclaim": self.proclaim,
            "Leader": self.leader,
            "Observe": self.observe,
            "Resign": self.resign,
        }

    async def campaign(self, request: bytes, call: CallInfo) -> bytes:
        r = epb.CampaignRequest.FromString(request)
        try:
            ks = await self._ks.as_caller(call)
            return (await self._campaign(ks, r)).SerializeToString()
        except EtcdError as e:
            raise recipe_error(e.message) from None

    async def _campaign(self, ks: Keyspace, r: epb.CampaignRequest) -> epb.CampaignResponse:
        lease = await ks.session_lease(r.lease)
        prefix = r.name + b"/"
        key = lease_key(prefix, lease)
        resp = await ks.txn(
            rpc_pb2.TxnRequest(
                compare=[create_is(key, 0)],
                success=[
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(key=key, value=r.value, lease=lease)
                    )
                ],
                failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
            )
        )
        rev = resp.header.revision
        if not resp.succeeded:
            # This lease already campaigns: keep its place, update the value if it differs.
            kv = resp.responses[0].response_range.kvs[0]
            rev = kv.create_revision
            if kv.value != r.value:
                try:
                    await self._proclaim(ks, key, rev, lease, r.value)
                except EtcdError as e:
                    if e.message != ELECTION_NOT_LEADER:
                        # etcd resigns here, except when the key is no longer its own.
                        with contextlib.suppress(EtcdError):
                            await self._resign(ks, key, rev)
                    raise
        try:
            await ks.wait_deletes(prefix, rev - 1)
        except asyncio.CancelledError:
            ks.cleanup(self._resign(ks, key, rev))
            raise
        return epb.CampaignResponse(
            header=resp.header,
            leader=epb.LeaderKey(name=r.name, key=key, rev=rev, lease=lease),
        )

    async def proclaim(self, request: bytes, call: CallInfo) -> bytes:
        r = epb.ProclaimRequest.FromString(request)
        if not r.HasField("leader"):
            raise recipe_error(MISSING_LEADER_KEY)
        try:
            # etcd resumes the election in a session on the leader's lease, which grants a new
            # lease when that is 0; the proclaimed value is attached to it.
            ks = await self._ks.as_caller(call)
            lease = await ks.session_lease(r.leader.lease)
            header = await self._proclaim(ks, r.leader.key, r.leader.rev, lease, r.value)
        except EtcdError as e:
            raise recipe_error(e.message) from None
        return epb.ProclaimResponse(header=header).SerializeToString()

    async def _proclaim(
        self, ks: Keyspace, key: bytes, rev: int, lease: int, value: bytes
    ) -> rpc_pb2.ResponseHeader:
        resp = await ks.txn(
            rpc_pb2.TxnRequest(
                compare=[create_is(key, rev)],
                success=[
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease)
                    )
                ],
            )
        )
        if not resp.succeeded:
            raise recipe_error(ELECTION_NOT_LEADER)
        return resp.header

    async def resign(self, request: bytes, call: CallInfo) -> bytes:
        r = epb.ResignRequest.FromString(request)
        if not r.HasField("leader"):
            raise recipe_error(MISSING_LEADER_KEY)
        try:
            ks = await self._ks.as_caller(call)
            header = await self._resign(ks, r.leader.key, r.leader.rev)
        except EtcdError as e:
            raise recipe_error(e.message) from None
        return epb.ResignResponse(header=header).SerializeToString()

    async def _resign(self, ks: Keyspace, key: bytes, rev: int) -> rpc_pb2.ResponseHeader:
        """Delete the leader key if it is still this incarnation; not being leader is no error."""
        resp = await ks.txn(
            rpc_pb2.TxnRequest(
                compare=[create_is(key, rev)],
                success=[
                    rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))
                ],
            )
        )
        return resp.header

    async def leader(self, request: bytes, call: CallInfo) -> bytes:
        r = epb.LeaderRequest.FromString(request)
        try:
            ks = await self._ks.as_caller(call)
            resp = await ks.get(first_created(r.name + b"/"))
        except EtcdError as e:
            raise recipe_error(e.message) from None
        if not resp.kvs:
            raise recipe_error(ELECTION_NO_LEADER)
        return epb.LeaderResponse(header=resp.header, kv=resp.kvs[0]).SerializeToString()

    async def observe(self, request: bytes, call: CallInfo) -> AsyncIterator[bytes]:
        """concurrency.Election.observe: the current leader, then each of its new values; when
        its key goes, the next leader. Ends (status OK) if the history it follows is compacted."""
        r = epb.LeaderRequest.FromString(request)
        prefix = r.name + b"/"
        try:
            ks = await self._ks.as_caller(call)
            while True:
                resp = await ks.get(first_created(prefix))
                if resp.kvs:
                    header, kv = resp.header, resp.kvs[0]
                else:
                    # No leader yet: the first key put under the prefix is the next one.
                    found = await self._first_put(ks, prefix, resp.header.revision)
                    if found is None:
                        return
                    header, kv = found
                yield epb.LeaderResponse(header=header, kv=kv).SerializeToString()
                deleted = False
                async with contextlib.aclosing(
                    ks.watch(kv.key, b"", header.revision + 1)
                ) as events:
                    async for wheader, evs in events:
                        for ev in evs:
                            if ev.type == kv_pb2.Event.DELETE:
                                deleted = True
                                break
                            yield epb.LeaderResponse(header=wheader, kv=ev.kv).SerializeToString()
                        if deleted:
                            break
                if not deleted:
                    return
        except EtcdError as e:
            raise recipe_error(e.message) from None

    async def _first_put(
        self, ks: Keyspace, prefix: bytes, rev: int
    ) -> tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue] | None:
        async with contextlib.aclosing(ks.watch(prefix, prefix_end(prefix), rev)) as events:
            async for header, evs in events:
                for ev in evs:
                    # Only a put names a leader; deletes under the prefix are passed over.
                    if ev.type == kv_pb2.Event.PUT:
                        header.revision = ev.kv.mod_revision
                        return header, ev.kv
        return None
