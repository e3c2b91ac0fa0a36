"""The Maintenance service: status, hashes, alarms, snapshot and defragmentation."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable

from server import errors
from server.access import Checker
from server.api.rpc import CallInfo
from server.state import API_VERSION, ENTRY_ALARM, ServerState
from server.wire import field_bool, field_bytes, field_message, field_varint
from wardpb.etcdserverpb import rpc_pb2

SNAPSHOT_CHUNK = 32 * 1024
_ALARM_NAMES = {rpc_pb2.NOSPACE: "NOSPACE", rpc_pb2.CORRUPT: "CORRUPT"}


class RaftInfo:
    """Raft facts for Status; the core process reads them from its driver."""

    leader: int = 0
    raft_index: int = 0
    applied_index: int = 0
    term: int = 0
    is_learner: bool = False


class MaintenanceService:
    def __init__(
        self,
        state: ServerState,
        raft_info: Callable[[], RaftInfo],
        defragment: Callable[[], Awaitable[None]] | None = None,
        move_leader: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._s = state
        self._raft = raft_info
        self._defrag = defragment
        self._move_leader = move_leader

    def methods(self) -> dict[str, object]:
        return {
            "Status": self.status,
            "Hash": self.hash,
            "HashKV": self.hash_kv,
            "Alarm": self.alarm,
            "Snapshot": self.snapshot,
            "Defragment": self.defragment,
            "MoveLeader": self.move_leader,
        }

    async def _admin(self, call: CallInfo) -> None:
        """Calls that read or change the whole member (hashes, snapshot, defragmentation,
        leadership, alarms) are for the `root` role only, as in etcd (SECURITY 6)."""
        await self._check(call, lambda chk: chk.admin())

    async def _check(self, call: CallInfo, check: Callable[[Checker], None]) -> None:
        await self._s.storage_open()
        try:
            await self._s.auth.check_call(call, check)
        except errors.AuthDenied as e:
            # As etcd's Maintenance service: the auth store's error, unmapped.
            raise errors.unmapped_auth(e) from None

    async def status(self, request: bytes, call: CallInfo) -> bytes:
        # Open to everyone, as in etcd: health checks and load balancers call it without
        # credentials, and it tells nothing of keys or users (SECURITY 6: decided, not forgotten).
        s = self._s
        info = self._raft()
        with s.backend.read() as txn:
            rev = s.kv.current_revision(txn)
            alarms = s.reader.alarms(txn)
        errs = b"".join(
            field_bytes(8, f"memberID:{m} alarm:{_ALARM_NAMES.get(a, a)} ".encode())
            for m, a in alarms
        )
        return b"".join(
            (
                field_message(1, s.header.header(rev)),
                field_bytes(2, API_VERSION.encode()),
                field_varint(3, s.backend.size()),
                field_varint(4, info.leader),
                field_varint(5, info.raft_index),
                field_varint(6, info.term),
                field_varint(7, info.applied_index),
                errs,
                field_varint(9, s.backend.size_in_use()),
                field_bool(10, info.is_learner),
            )
        )

    async def move_leader(self, request: bytes, call: CallInfo) -> bytes:
        """Hand leadership to another voting member; only the leader can (etcdctl finds it)."""
        r = rpc_pb2.MoveLeaderRequest.FromString(request)
        await self._admin(call)
        if self._move_leader is None:
            raise errors.UNIMPLEMENTED
        await self._move_leader(r.targetID)
        s = self._s
        with s.backend.read() as txn:
            rev = s.kv.current_revision(txn)
        return field_message(1, s.header.header(rev))

    async def hash(self, request: bytes, call: CallInfo) -> bytes:
        await self._admin(call)
        s = self._s
        with s.backend.read() as txn:
            rev = s.kv.current_revision(txn)
            h = s.kv.hash_kv(txn, rev)
        return field_message(1, s.header.header(rev)) + field_varint(2, h)

    async def hash_kv(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.HashKVRequest.FromString(request)
        await self._admin(call)
        s = self._s
        with s.backend.read() as txn:
            cur = s.kv.current_revision(txn)
            rev = r.revision or cur
            compacted = s.kv.compact_revision(txn)
            _check_rev(rev, cur, compacted)
            h = s.kv.hash_kv(txn, rev)
        return (
            field_message(1, s.header.header(cur))
            + field_varint(2, h)
            + field_varint(3, compacted)
            + field_varint(4, rev)
        )

    async def alarm(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.AlarmRequest.FromString(request)
        s = self._s
        if r.action == rpc_pb2.AlarmRequest.GET:
            # Any known user may look (clients check alarms); only admins may raise or clear.
            await self._check(call, lambda chk: chk.user(fresh=False))
        else:
            await self._admin(call)
        if r.action == rpc_pb2.AlarmRequest.GET:
            with s.backend.read() as txn:
                rev = s.kv.current_revision(txn)
                alarms = s.reader.alarms(txn)
            body = b"".join(
                field_message(2, field_varint(1, m) + field_varint(2, a)) for m, a in alarms
            )
            return field_message(1, s.header.header(rev)) + body
        return await s.proposer.propose(ENTRY_ALARM, request)

    async def snapshot(self, request: bytes, call: CallInfo) -> AsyncIterator[bytes]:
        """A consistent copy of the database, then its SHA-256 as etcd appends it."""
        s = self._s
        await self._admin(call)
        with s.backend.read() as txn:
            rev = s.kv.current_revision(txn)
        header = field_message(1, s.header.header(rev))
        with tempfile.TemporaryFile(dir=s.backend.path.parent) as f:
            s.backend.env.copyfd(f.fileno(), compact=True)
            size = f.seek(0, os.SEEK_END)
            f.seek(0)
            digest = hashlib.sha256()
            sent = 0
            while chunk := f.read(SNAPSHOT_CHUNK):
                digest.update(chunk)
                sent += len(chunk)
                yield header + field_varint(2, size - sent + 32) + field_bytes(3, chunk)
        yield header + field_bytes(3, digest.digest())

    async def defragment(self, request: bytes, call: CallInfo) -> bytes:
        await self._admin(call)
        s = self._s
        if self._defrag is not None:
            await self._defrag()
        with s.backend.read() as txn:
            rev = s.kv.current_revision(txn)
        return field_message(1, s.header.header(rev))


def _check_rev(rev: int, cur: int, compacted: int) -> None:
    if rev > cur:
        raise errors.FUTURE_REV
    if rev < compacted:
        raise errors.COMPACTED
