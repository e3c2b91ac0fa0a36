"""Keeping a lease alive from an asyncio task, as the sync client's `ward.lease.KeepAlive`
does from a thread (same interval, same end when the lease is gone).

    lease = await client.lease_grant(10)
    async with client.keep_alive(lease.ID):
        ...  # the lease (and every key attached to it) lives until the block ends
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc

from ward.aio.stream import TaskStream
from ward.lease import KEEPALIVE, LeaseKeeping, renew_interval
from wardpb.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from ward.aio.client import Client
    from ward.channels import Stubs

__all__ = ["KeepAlive"]


class KeepAlive(LeaseKeeping, TaskStream[rpc_pb2.LeaseKeepAliveResponse]):
    """Renews one lease until closed or until it expires; `async for` it for the renewals."""

    def __init__(self, client: Client, lease_id: int) -> None:
        self._keep(lease_id)
        super().__init__(client, KEEPALIVE)

    async def _stream(self, conn: Stubs) -> bool:
        call = await self._open(conn.lease.LeaseKeepAlive)
        request = self._renewal()
        try:
            while True:
                # The stream may have ended during the pause: writing would then raise
                # InvalidStateError, while reading raises its status (or gives EOF).
                if not call.done():
                    await call.write(request)
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    return False
                if self._deliver(resp, self._put):
                    return True
                await asyncio.sleep(renew_interval(self.ttl))
        finally:
            call.cancel()
