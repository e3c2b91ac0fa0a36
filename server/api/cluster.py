"""The Cluster service: the member list, and membership changes through Raft.

Changes are decided by the leader (it alone knows which members are connected, for the strict
reconfiguration checks); a follower forwards them over the peer transport, as etcd does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

from server import errors
from server.api.rpc import CallInfo
from server.membership import Membership, added_member_id
from server.raft import ConfChangeType, Status
from server.state import ServerState
from server.wire import field_message
from wardpb.etcdserverpb import rpc_pb2

# etcd 3.4 allows one learner at a time.
MAX_LEARNERS = 1
# A learner may be promoted once it holds this share of the leader's log (etcd's rule).
LEARNER_READY_PERCENT = 0.9
# How long a peer must have been connected to count for the strict reconfiguration checks.
HEALTH_INTERVAL_S = 5.0

Forward = Callable[[str, bytes], Awaitable[bytes]]


class RaftView(Protocol):
    """What the Cluster service needs of the driver."""

    leader: int

    @property
    def member_id(self) -> int: ...

    @property
    def is_leader(self) -> bool: ...

    def status(self) -> Status: ...

    def submit_conf_change(
        self, cc_type: ConfChangeType, member: rpc_pb2.Member
    ) -> Awaitable[bytes]: ...


class ClusterService:
    def __init__(
        self,
        state: ServerState,
        membership: Membership,
        raft: RaftView,
        forward: Forward,
        active_since: Callable[[int], float | None],
        *,
        strict_reconfig: bool = True,
    ) -> None:
        self._active_since = active_since
        self._s = state
        self._m = membership
        self._raft = raft
        self._forward = forward
        self._strict = strict_reconfig

    def methods(self) -> dict[str, object]:
        return {
            "MemberList": self.member_list,
            "MemberAdd": self.member_add,
            "MemberRemove": self.member_remove,
            "MemberUpdate": self.member_update,
            "MemberPromote": self.member_promote,
        }

    async def _check(self, call: CallInfo, *, admin: bool) -> None:
        """Auth (SECURITY 6, decided per call): changing the membership is for admins, checked
        here before a follower forwards it; the member list is for any known user (clients
        refresh their endpoints from it, so it cannot be admin-only, but it is not for anyone
        who can reach the port)."""
        await self._s.storage_open()
        if admin:
            await self._s.auth.check_call(call, lambda chk: chk.admin())
        else:
            await self._s.auth.check_call(call, lambda chk: chk.user(fresh=False))

    async def member_list(self, request: bytes, call: CallInfo) -> bytes:
        await self._check(call, admin=False)
        return self._header() + self._members()

    async def member_add(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.MemberAddRequest.FromString(request)
        await self._check(call, admin=True)
        if not self._raft.is_leader:
            return await self._forward("/etcdserverpb.Cluster/MemberAdd", request)
        urls = _check_urls(r.peerURLs)
        members = self._m.members()
        _check_urls_free(urls, members, own=0)
        if r.isLearner:
            if sum(m.isLearner for m in members) >= MAX_LEARNERS:
                raise errors.TOO_MANY_LEARNERS
        elif self._strict:
            voters = [m for m in members if not m.isLearner]
            # Quorum of the new membership among members that have started (published).
            if not _enough_started(voters, extra=1):
                raise errors.NOT_ENOUGH_STARTED_MEMBERS
            # And every voter connected for a while: a new voter that never starts would
            # otherwise cost the cluster its only spare member.
            if not all(self._active(m.ID) for m in voters):
                raise errors.UNHEALTHY
        new = rpc_pb2.Member(
            ID=added_member_id(urls, time.time()),
            peerURLs=urls,
            isLearner=r.isLearner,
        )
        # IDs hash the URLs and the second: re-adding a just-removed member's URLs within the
        # same second gives its old ID back, which etcd refuses as an unknown member.
        if self._m.is_removed(new.ID):
            raise errors.MEMBER_NOT_FOUND
        if any(m.ID == new.ID for m in members):
            raise errors.MEMBER_EXIST
        kind = ConfChangeType.ADD_LEARNER_NODE if r.isLearner else ConfChangeType.ADD_NODE
        await self._raft.submit_conf_change(kind, new)
        return self._header() + field_message(2, new.SerializeToString()) + self._members(3)

    async def member_remove(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.MemberRemoveRequest.FromString(request)
        await self._check(call, admin=True)
        if not self._raft.is_leader:
            return await self._forward("/etcdserverpb.Cluster/MemberRemove", request)
        members = self._m.members()
        target = _member(members, r.ID)
        if self._strict and not target.isLearner:
            voters = [m for m in members if not m.isLearner]
            if not _enough_started([m for m in voters if r.ID != m.ID], extra=0):
                raise errors.NOT_ENOUGH_STARTED_MEMBERS
            # A member that is down already may go; else the rest must keep a quorum.
            if self._raft.member_id == r.ID or self._active(r.ID):
                active = sum(self._active(m.ID) for m in voters)
                if active - 1 < 1 + (len(voters) - 1) // 2:
                    raise errors.UNHEALTHY
        await self._raft.submit_conf_change(ConfChangeType.REMOVE_NODE, target)
        return self._header() + self._members()

    async def member_update(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.MemberUpdateRequest.FromString(request)
        await self._check(call, admin=True)
        if not self._raft.is_leader:
            return await self._forward("/etcdserverpb.Cluster/MemberUpdate", request)
        urls = _check_urls(r.peerURLs)
        members = self._m.members()
        target = _member(members, r.ID)
        _check_urls_free(urls, members, own=r.ID)
        updated = rpc_pb2.Member(ID=r.ID, peerURLs=urls, isLearner=target.isLearner)
        await self._raft.submit_conf_change(ConfChangeType.UPDATE_NODE, updated)
        return self._header() + self._members()

    async def member_promote(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.MemberPromoteRequest.FromString(request)
        await self._check(call, admin=True)
        if not self._raft.is_leader:
            return await self._forward("/etcdserverpb.Cluster/MemberPromote", request)
        members = self._m.members()
        target = _member(members, r.ID)
        if not target.isLearner:
            raise errors.MEMBER_NOT_LEARNER
        st = self._raft.status()
        pr = st.progress.get(r.ID)
        own = st.progress.get(st.id)
        if pr is None or own is None or pr.match < own.match * LEARNER_READY_PERCENT:
            raise errors.LEARNER_NOT_READY
        if self._strict:
            voters = [m for m in members if not m.isLearner]
            if not _enough_started([*voters, target], extra=0):
                raise errors.NOT_ENOUGH_STARTED_MEMBERS
        promoted = rpc_pb2.Member(ID=r.ID, peerURLs=target.peerURLs, isLearner=False)
        await self._raft.submit_conf_change(ConfChangeType.ADD_NODE, promoted)
        return self._header() + self._members()

    # ---- helpers ----

    def _active(self, mid: int) -> bool:
        """Connected to this member for the last HEALTH_INTERVAL_S (itself always is)."""
        if mid == self._raft.member_id:
            return True
        since = self._active_since(mid)
        return since is not None and since <= time.monotonic() - HEALTH_INTERVAL_S

    def _header(self) -> bytes:
        s = self._s
        with s.backend.read() as txn:
            rev = s.kv.current_revision(txn)
        return field_message(1, s.header.header(rev))

    def _members(self, field: int = 2) -> bytes:
        return b"".join(field_message(field, m.SerializeToString()) for m in self._m.members())


def _member(members: list[rpc_pb2.Member], mid: int) -> rpc_pb2.Member:
    for m in members:
        if mid == m.ID:
            return m
    raise errors.MEMBER_NOT_FOUND


def _enough_started(voters: list[rpc_pb2.Member], *, extra: int) -> bool:
    """etcd's IsReadyTo…VotingMember: members that published their name (started) make a
    quorum of the voting membership, `extra` new voters included."""
    n = len(voters) + extra
    started = sum(1 for m in voters if m.name)
    if extra and started == 1 and n == 2:
        return True  # a single member may always add a second one
    return started >= n // 2 + 1


def _check_urls(urls: list[str]) -> list[str]:
    """etcd refuses URLs that are not absolute http(s) URLs with a host and port."""
    out = []
    for u in urls:
        try:
            p = urlsplit(u)
            port = p.port
        except ValueError:
            raise errors.MEMBER_BAD_URLS from None
        if p.scheme not in ("http", "https") or not p.hostname or port is None:
            raise errors.MEMBER_BAD_URLS
        if p.path or p.query or p.fragment:
            raise errors.MEMBER_BAD_URLS
        out.append(u)
    if not out:
        raise errors.MEMBER_BAD_URLS
    return out


def _check_urls_free(urls: list[str], members: list[rpc_pb2.Member], *, own: int) -> None:
    taken = {u for m in members if own != m.ID for u in m.peerURLs}
    if any(u in taken for u in urls):
        raise errors.PEER_URL_EXIST
