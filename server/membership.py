"""Cluster membership: member and cluster IDs derived as etcd derives them, and the replicated
members table with the rules for changing it."""

from __future__ import annotations

import hashlib
import struct

import lmdb

from server.raft import ConfChange, ConfChangeType, ConfState
from server.storage.backend import Backend
from server.storage.members import MemberTable
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2


def member_id(peer_urls: list[str], cluster_token: str) -> int:
    """etcd's computeMemberID: SHA-1 of the sorted peer URLs and the cluster token."""
    data = "".join(sorted(peer_urls)).encode() + cluster_token.encode()
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]


def cluster_id(member_ids: list[int]) -> int:
    """etcd's genID: SHA-1 of the sorted member IDs."""
    data = b"".join(struct.pack(">Q", m) for m in sorted(member_ids))
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]


def added_member_id(peer_urls: list[str], now: float) -> int:
    """etcd's ID for a member added at run time: no cluster token, but the time (in seconds)
    goes into the hash, so the same URLs added again later get a new ID (within the same
    second they give the old one back: the Cluster service refuses a removed ID)."""
    return member_id(peer_urls, str(int(now)))


def next_conf_state(cs: ConfState, cc: ConfChange) -> ConfState:
    """The membership after `cc`, computed as the Raft core computes it (the apply path persists
    it in the same transaction as the entry, without touching the core from its thread)."""
    voters, learners = set(cs.voters), set(cs.learners)
    nid = cc.node_id
    if cc.type == ConfChangeType.ADD_NODE:
        learners.discard(nid)
        voters.add(nid)
    elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
        voters.discard(nid)
        learners.add(nid)
    elif cc.type == ConfChangeType.REMOVE_NODE:
        voters.discard(nid)
        learners.discard(nid)
    return ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))


def encode_change(request_id: int, member: rpc_pb2.Member) -> bytes:
    return peer_pb2.MemberChange(request_id=request_id, member=member).SerializeToString()


class Membership:
    """The members table and the rules for changing it (etcd's RaftCluster).

    The propose side (the Cluster service) validates a change against the table; the apply side
    runs inside the apply transaction, so the table and Raft's membership always move together.
    """

    def __init__(self, backend: Backend, member_id: int, cluster_id: int) -> None:
        self._b = backend
        self.table = MemberTable(backend)
        self.member_id = member_id
        self.cluster_id = cluster_id

    def members(self) -> list[rpc_pb2.Member]:
        with self._b.read() as txn:
            return self.table.list(txn)

    def get(self, mid: int) -> rpc_pb2.Member | None:
        with self._b.read() as txn:
            return self.table.get(txn, mid)

    def is_removed(self, mid: int) -> bool:
        with self._b.read() as txn:
            return self.table.is_removed(txn, mid)

    def peers(self) -> dict[int, tuple[str, ...]]:
        """Every other member's peer URLs: where the transport sends."""
        return {m.ID: tuple(m.peerURLs) for m in self.members() if self.member_id != m.ID}

    def bootstrap(self, members: list[rpc_pb2.Member]) -> None:
        """First start: the table holds the initial cluster (or what a joined cluster told us)."""
        with self._b.write() as txn:
            if not self.table.list(txn):
                self.table.replace_all(txn, members)

    # ---- apply side (inside the apply transaction, on the writer thread) ----

    def apply_change(self, txn: lmdb.Transaction, cc: ConfChange, cs: ConfState) -> ConfState:
        """Record one committed membership change; returns the new Raft membership."""
        change = peer_pb2.MemberChange.FromString(cc.context) if cc.context else None
        t = self.table
        if cc.type == ConfChangeType.REMOVE_NODE:
            t.remove(txn, cc.node_id)
        elif change is not None:
            old = t.get(txn, cc.node_id)
            m = rpc_pb2.Member()
            if old is not None:
                m.CopyFrom(old)
            m.ID = cc.node_id
            del m.peerURLs[:]
            m.peerURLs.extend(change.member.peerURLs)
            if cc.type == ConfChangeType.ADD_NODE:
                m.isLearner = False
            elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
                m.isLearner = True
            t.put(txn, m)
        return next_conf_state(cs, cc)

    def apply_attributes(self, txn: lmdb.Transaction, _w: object, m: rpc_pb2.Member) -> bytes:
        """A member published its name and client URLs (ignored once it is removed)."""
        cur = self.table.get(txn, m.ID)
        if cur is not None:
            cur.name = m.name
            del cur.clientURLs[:]
            cur.clientURLs.extend(m.clientURLs)
            self.table.put(txn, cur)
        return b""
