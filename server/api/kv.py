"""The KV service: validate, then read from lmdb or propose through Raft."""

from __future__ import annotations

import time

from server import errors
from server.access import request_header
from server.api.rpc import CallInfo, Unary
from server.api.validate import check_delete, check_put, check_range, check_txn
from server.apply import PUT_OPS, WRITE_OPS, has_op
from server.state import (
    ENTRY_ALARM,
    ENTRY_COMPACTION,
    ENTRY_DELETE_RANGE,
    ENTRY_PUT,
    ENTRY_TXN,
    ServerState,
)
from wardpb.etcdserverpb import rpc_pb2

# How stale the quota's view of used space may be; counting pages costs tens of microseconds.
QUOTA_RECHECK_S = 0.05


class KVService:
    def __init__(self, state: ServerState) -> None:
        self._s = state
        self._quota_used = 0
        self._quota_at = 0.0

    def methods(self) -> dict[str, Unary]:
        return {
            "Range": self.range,
            "Put": self.put,
            "DeleteRange": self.delete_range,
            "Txn": self.txn,
            "Compact": self.compact,
        }

    async def range(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        r = rpc_pb2.RangeRequest.FromString(request)
        check_range(r)
        s = self._s
        info = await s.auth.identify(call)
        if not r.serializable:
            wait = s.read_index()
            if wait is not None:
                await wait
        # Checked in the transaction that reads: the check and the read see one auth revision.
        with s.backend.read() as txn, s.auth.checker(txn, info) as chk:
            chk.range(r)
            return s.reader.range(txn, r)

    async def put(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        check_put(rpc_pb2.PutRequest.FromString(request))
        # Writes are checked where they apply, on every member, as the user named here.
        header = await self._s.auth.header(call)
        await self._check_quota(len(request))
        return await self._s.proposer.propose(ENTRY_PUT, request, header=header)

    async def delete_range(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        check_delete(rpc_pb2.DeleteRangeRequest.FromString(request))
        header = await self._s.auth.header(call)
        return await self._s.proposer.propose(ENTRY_DELETE_RANGE, request, header=header)

    async def txn(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        r = rpc_pb2.TxnRequest.FromString(request)
        check_txn(r, self._s.max_txn_ops)
        info = await self._s.auth.identify(call)
        if not (has_op(r.success, WRITE_OPS) or has_op(r.failure, WRITE_OPS)):
            # A read-only txn is answered from a consistent read, as etcd does, without Raft;
            # linearizable unless every range in it asks for a serializable read.
            s = self._s
            if not _all_serializable(r):
                wait = s.read_index()
                if wait is not None:
                    await wait
            with s.backend.read() as txn, s.auth.checker(txn, info) as chk:
                chk.txn(r)
                return s.reader.read_txn(txn, r)
        if has_op(r.success, PUT_OPS) or has_op(r.failure, PUT_OPS):
            # etcd's quota costs only puts: a delete-only txn can free space past the quota.
            await self._check_quota(len(request))
        return await self._s.proposer.propose(ENTRY_TXN, request, header=request_header(info))

    async def compact(self, request: bytes, call: CallInfo) -> bytes:
        # Decoded here so that bytes that are no request never reach the replicated log.
        rpc_pb2.CompactionRequest.FromString(request)
        header = await self._s.auth.header(call)
        return await self._s.proposer.propose(ENTRY_COMPACTION, request, header=header)

    async def _check_quota(self, cost: int) -> None:
        """etcd's quota: past it, raise the NOSPACE alarm and refuse the write."""
        s = self._s
        now = time.monotonic()
        if now - self._quota_at > QUOTA_RECHECK_S:
            self._quota_used = s.backend.quota_used()
            self._quota_at = now
        if self._quota_used + cost <= s.quota_bytes:
            return
        self._quota_at = 0.0  # look again next time: a compaction may have freed pages
        alarm = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=s.member_id, alarm=rpc_pb2.NOSPACE
        )
        await s.proposer.propose(ENTRY_ALARM, alarm.SerializeToString())
        raise errors.NO_SPACE


def _all_serializable(r: rpc_pb2.TxnRequest) -> bool:
    for op in (*r.success, *r.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range":
            if not op.request_range.serializable:
                return False
        elif kind == "request_txn" and not _all_serializable(op.request_txn):
            return False
    return True
