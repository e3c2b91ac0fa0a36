"""The Lease service: grants and revocations go through Raft; keep-alives and TTLs ask the lessor.

Only the core process holds the lessor (server/lessor.py), so worker processes forward the unary
calls to it, and answer a keep-alive stream themselves by forwarding each request as one call to
the core's private `KEEPALIVE_ONCE` method: a stream cannot be forwarded over the link as such.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from server import errors
from server.access import Checker
from server.api.rpc import CallInfo, Unary
from server.lessor import LeaseExpirer, Lessor, NotPrimary
from server.state import ENTRY_LEASE_GRANT, ENTRY_LEASE_REVOKE, ServerState
from server.watch import RevisionClock
from server.wire import field_bytes, field_message, field_varint
from wardpb.etcdserverpb import rpc_pb2

# Not part of etcd's API: served only on the link between worker processes and the core.
INTERNAL_SERVICE = "ward.internal"
KEEPALIVE_ONCE = f"/{INTERNAL_SERVICE}/LeaseKeepAliveOnce"


def keep_alive_stream(
    renew: Unary,
) -> Callable[[AsyncIterator[bytes], CallInfo], AsyncIterator[bytes]]:
    """A LeaseKeepAlive handler answering each request, in order, with `renew`."""

    async def keep_alive(requests: AsyncIterator[bytes], call: CallInfo) -> AsyncIterator[bytes]:
        async for raw in requests:
            yield await renew(raw, call)

    return keep_alive


class LeaseService:
    """The core process's Lease service."""

    def __init__(
        self,
        state: ServerState,
        lessor: Lessor,
        expirer: LeaseExpirer,
        clock: RevisionClock,
        *,
        forward: Callable[[str, bytes], Awaitable[bytes]] | None = None,
    ) -> None:
        self._forward = forward
        self._s = state
        self._lessor = lessor
        self._expirer = expirer
        self._clock = clock

    def methods(self) -> dict[str, object]:
        return {
            "LeaseGrant": self.grant,
            "LeaseRevoke": self.revoke,
            "LeaseKeepAlive": keep_alive_stream(self.keep_alive_once),
            "LeaseTimeToLive": self.time_to_live,
            "LeaseLeases": self.leases,
        }

    def internal_methods(self) -> dict[str, Unary]:
        """Methods for worker processes only (see KEEPALIVE_ONCE)."""
        return {"LeaseKeepAliveOnce": self.keep_alive_once}

    async def grant(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        # Checked where it applies: a known user (grant) or write on every attached key (revoke).
        header = await self._s.auth.header(call)
        return await self._s.proposer.propose(ENTRY_LEASE_GRANT, request, header=header)

    async def revoke(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        header = await self._s.auth.header(call)
        return await self._s.proposer.propose(ENTRY_LEASE_REVOKE, request, header=header)

    async def _check(self, call: CallInfo, check: Callable[[Checker], None]) -> None:
        await self._s.storage_open()
        await self._s.auth.check_call(call, check)

    async def keep_alive_once(self, request: bytes, call: CallInfo) -> bytes:
        """One LeaseKeepAliveResponse: the TTL, or 0 when the lease is unknown or expired."""
        r = rpc_pb2.LeaseKeepAliveRequest.FromString(request)
        # Every keep-alive, not just the stream's first: a token that expired, or whose user was
        # deleted, stops renewing (SECURITY 6).
        await self._check(call, lambda chk: chk.user(fresh=False))
        # etcd takes the header before renewing, so that a client never sees a keep-alive
        # succeed at a revision after the one that revoked the lease.
        header = self._s.header.header(self._clock.current)
        self._expirer.sync_role()
        try:
            ttl = self._lessor.renew(r.ID)
        except NotPrimary:
            # Only the leader's lessor keeps deadlines: forward, as etcd does over its peers.
            if self._forward is None:
                raise errors.NO_LEADER from None
            return await self._forward(KEEPALIVE_ONCE, request)
        return field_message(1, header) + field_varint(2, r.ID) + field_varint(3, ttl or 0)

    async def time_to_live(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.LeaseTimeToLiveRequest.FromString(request)
        await self._check(call, lambda chk: chk.user())
        self._expirer.sync_role()
        if not self._lessor.primary:
            if self._forward is None:
                raise errors.NO_LEADER
            resp = await self._forward("/etcdserverpb.Lease/LeaseTimeToLive", request)
            return await self._readable_keys(resp, call)
        header = field_message(1, self._s.header.header(self._clock.current))
        found = self._lessor.lookup(r.ID)
        if found is None:
            # etcd answers an unknown lease with TTL -1 rather than an error.
            return header + field_varint(2, r.ID) + field_varint(3, -1)
        granted, remaining = found
        keys: list[bytes] = []
        if r.keys:
            await self._s.storage_open()
            info = None if call.trusted else await self._s.auth.identify(call)
            with self._s.backend.read() as txn:
                keys = self._s.reader.lease_keys(txn, r.ID)
                if not call.trusted:
                    # Only the keys the caller may read (SECURITY 5).
                    with self._s.auth.checker(txn, info) as chk:
                        keys = chk.readable(keys)
        return (
            header
            + field_varint(2, r.ID)
            # etcd truncates the remaining duration to whole seconds, toward zero.
            + field_varint(3, int(remaining))
            + field_varint(4, granted)
            + b"".join(field_bytes(5, k) for k in keys)
        )

    async def _readable_keys(self, response: bytes, call: CallInfo) -> bytes:
        """The leader's answer with only the keys this member's caller may read."""
        resp = rpc_pb2.LeaseTimeToLiveResponse.FromString(response)
        if not resp.keys or call.trusted:
            return response
        s = self._s
        info = await s.auth.identify(call)
        with s.backend.read() as txn, s.auth.checker(txn, info) as chk:
            readable = chk.readable(list(resp.keys))
        del resp.keys[:]
        resp.keys.extend(readable)
        return resp.SerializeToString()

    async def leases(self, request: bytes, call: CallInfo) -> bytes:
        # Every lease of every user, and a lease ID is all a keep-alive needs: admins only.
        await self._check(call, lambda chk: chk.admin())
        header = field_message(1, self._s.header.header(self._clock.current))
        return header + b"".join(
            field_message(2, field_varint(1, lid)) for lid in self._lessor.leases()
        )
