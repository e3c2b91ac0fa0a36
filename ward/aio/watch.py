"""Watches for the asyncio client, resumed after a lost connection without losing or
repeating an event (the bookkeeping is `ward.watch.WatchCursor`'s, as for the sync client).

    async with client.watch("config/", prefix=True) as watcher:
        async for resp in watcher:
            for event in resp.events:
                ...
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc

from ward.aio.stream import TaskStream
from ward.watch import WATCH, StreamEnded, WatchCursor, Watching
from wardpb.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from ward.aio.client import Client
    from ward.channels import Stubs

__all__ = ["Watcher"]


class Watcher(Watching, TaskStream[rpc_pb2.WatchResponse]):
    """One watch; `async for` it for `WatchResponse`s (the creation answer is not passed on)."""

    def __init__(self, client: Client, request: rpc_pb2.WatchCreateRequest) -> None:
        self._cursor = WatchCursor(request)
        self._created = asyncio.Event()
        super().__init__(client, WATCH)

    async def wait_created(self, timeout: float | None = None) -> bool:
        """Wait until the server has answered the watch's creation: events after this are
        seen, or (when it refused the watch) the next read raises the refusal."""
        try:
            await asyncio.wait_for(self._created.wait(), timeout)
        except TimeoutError:
            return False
        return True

    cancel = TaskStream.close

    async def _stream(self, conn: Stubs) -> bool:
        call = await self._open(conn.watch.Watch)
        try:
            await call.write(self._cursor.open_request())
            while (resp := await call.read()) is not grpc.aio.EOF:
                if self._cursor.deliver(resp, self._put, self._created.set):
                    return True
        finally:
            call.cancel()
        raise StreamEnded()
