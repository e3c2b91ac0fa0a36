"""The cluster's membership in the member's lmdb environment (the `members` database).

Written only by the apply path (membership changes are Raft entries), so every member holds the
same table at the same applied index. Removed member IDs are kept for good: a removed member
must never be let back in under its old ID, and its peers refuse its messages.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import lmdb

from server.storage.backend import Backend
from wardpb.etcdserverpb import rpc_pb2

_ID = struct.Struct(">Q")
_MEMBER = b"m"
_REMOVED = b"r"


class MemberTable:
    def __init__(self, backend: Backend) -> None:
        self._b = backend

    def list(self, txn: lmdb.Transaction) -> list[rpc_pb2.Member]:
        out = []
        cur = txn.cursor(db=self._b.members)
        if cur.set_range(_MEMBER):
            for k, v in cur:
                if not k.startswith(_MEMBER):
                    break
                out.append(rpc_pb2.Member.FromString(v))
        return out

    def get(self, txn: lmdb.Transaction, member_id: int) -> rpc_pb2.Member | None:
        raw = txn.get(_MEMBER + _ID.pack(member_id), db=self._b.members)
        return None if raw is None else rpc_pb2.Member.FromString(raw)

    def put(self, txn: lmdb.Transaction, member: rpc_pb2.Member) -> None:
        txn.put(_MEMBER + _ID.pack(member.ID), member.SerializeToString(), db=self._b.members)

    def replace_all(self, txn: lmdb.Transaction, members: Iterable[rpc_pb2.Member]) -> None:
        """Bootstrap: the table is exactly `members` (a new cluster, or a member joining one)."""
        for m in self.list(txn):
            txn.delete(_MEMBER + _ID.pack(m.ID), db=self._b.members)
        for m in members:
            self.put(txn, m)

    def remove(self, txn: lmdb.Transaction, member_id: int) -> None:
        txn.delete(_MEMBER + _ID.pack(member_id), db=self._b.members)
        txn.put(_REMOVED + _ID.pack(member_id), b"", db=self._b.members)

    def is_removed(self, txn: lmdb.Transaction, member_id: int) -> bool:
        return txn.get(_REMOVED + _ID.pack(member_id), db=self._b.members) is not None
