"""The Lease service: grants and revocations go through Raft; keep-alives and TTLs ask the lessor.

Only the core process holds the lessor (server/lessor.py), so worker processes forward the unary
calls to it, and answer a keep-alive stream themselves by forwarding each request as one call to
the core's private `KEEPALIVE_ONCE` method: a stream cannot be forwarded over the link as such.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from server import errors
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
    ) -> None:
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
        return await self._s.proposer.propose(ENTRY_LEASE_GRANT, request)

    async def revoke(self, request: bytes, call: CallInfo) -> bytes:
        await self._s.storage_open()
        return await self._s.proposer.propose(ENTRY_LEASE_REVOKE, request)

    async def keep_alive_once(self, request: bytes, call: CallInfo) -> bytes:
        """One LeaseKeepAliveResponse: the TTL, or 0 when the lease is unknown or expired."""
        r = rpc_pb2.LeaseKeepAliveRequest.FromString(request)
        # etcd takes the header before renewing, so that a client never sees a keep-alive
        # succeed at a revision after the one that revoked the lease.
        header = self._s.header.header(self._clock.current)
        self._expirer.sync_role()
        try:
            ttl = self._lessor.renew(r.ID)
        except NotPrimary:
            # etcd forwards a keep-alive to the leader over the peer port; Ward has no peer
            # forwarding yet, and clients retry an Unavailable elsewhere.
            raise errors.NO_LEADER from None
        return field_message(1, header) + field_varint(2, r.ID) + field_varint(3, ttl or 0)

    async def time_to_live(self, request: bytes, call: CallInfo) -> bytes:
        r = rpc_pb2.LeaseTimeToLiveRequest.FromString(request)
        self._primary()
        header = field_message(1, self._s.header.header(self._clock.current))
        found = self._lessor.lookup(r.ID)
        if found is None:
            # etcd answers an unknown lease with TTL -1 rather than an error.
            return header + field_varint(2, r.ID) + field_varint(3, -1)
        granted, remaining = found
        keys: list[bytes] = []
        if r.keys:
            await self._s.storage_open()
            with self._s.backend.read() as txn:
                keys = self._s.reader.lease_keys(txn, r.ID)
        return (
            header
            + field_varint(2, r.ID)
            # etcd truncates the remaining duration to whole seconds, toward zero.
            + field_varint(3, int(remaining))
            + field_varint(4, granted)
            + b"".join(field_bytes(5, k) for k in keys)
        )

    async def leases(self, request: bytes, call: CallInfo) -> bytes:
        header = field_message(1, self._s.header.header(self._clock.current))
        return header + b"".join(
            field_message(2, field_varint(1, lid)) for lid in self._lessor.leases()
        )

    def _primary(self) -> None:
        """Remaining TTLs are the leader's to answer (only its lessor has deadlines)."""
        self._expirer.sync_role()
        if not self._lessor.primary:
            raise errors.NO_LEADER
