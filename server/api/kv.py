"""The KV service: validate, then read from lmdb or propose through Raft."""

from __future__ import annotations

from server import errors
from server.api.rpc import CallInfo, Unary
from server.api.validate import check_delete, check_put, check_range, check_txn
from server.state import (
    ENTRY_ALARM,
    ENTRY_COMPACTION,
    ENTRY_DELETE_RANGE,
    ENTRY_PUT,
    ENTRY_TXN,
    ServerState,
)
from wardpb.etcdserverpb import rpc_pb2


class KVService:
    def __init__(self, state: ServerState) -> None:
        self._s = state

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
        with s.backend.read() as txn:
            return s.reader.range(txn, r)

    async def put(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        check_put(rpc_pb2.PutRequest.FromString(request))
        await self._check_quota(len(request))
        return await self._s.proposer.propose(ENTRY_PUT, request)

    async def delete_range(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        check_delete(rpc_pb2.DeleteRangeRequest.FromString(request))
        return await self._s.proposer.propose(ENTRY_DELETE_RANGE, request)

    async def txn(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        r = rpc_pb2.TxnRequest.FromString(request)
        check_txn(r, self._s.max_txn_ops)
        if not _writes(r):
            # A read-only txn is answered from a consistent read, as etcd does, without Raft.
            s = self._s
            with s.backend.read() as txn:
                return s.reader.read_txn(txn, r)
        await self._check_quota(len(request))
        return await self._s.proposer.propose(ENTRY_TXN, request)

    async def compact(self, request: bytes, call: CallInfo) -> bytes:
        return await self._s.proposer.propose(ENTRY_COMPACTION, request)

    async def _check_quota(self, cost: int) -> None:
        """etcd's quota: past it, raise the NOSPACE alarm and refuse the write."""
        s = self._s
        if s.backend.size() + cost <= s.quota_bytes:
            return
        alarm = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=s.member_id, alarm=rpc_pb2.NOSPACE
        )
        await s.proposer.propose(ENTRY_ALARM, alarm.SerializeToString())
        raise errors.NO_SPACE


def _writes(r: rpc_pb2.TxnRequest) -> bool:
    for ops in (r.success, r.failure):
        for op in ops:
            which = op.WhichOneof("request")
            if which in ("request_put", "request_delete_range"):
                return True
            if which == "request_txn" and _writes(op.request_txn):
                return True
    return False
