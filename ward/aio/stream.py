"""A long-lived stream kept open by an asyncio task: `Watcher` and `KeepAlive` are two.

The task opens the stream on the client's current endpoint, hands each response to the reader
through a queue, and reopens the stream after a transport failure (or a refused token) with a
backoff, as the sync client's threads (`ward.stream`) do, by the same `StreamPolicy`. It ends
when the subclass says so, when the server answers with an error (handed to the reader, who
gets it raised), or when it is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar

import grpc

from ward.errors import ClientConfigError, EtcdError
from ward.handoff import END
from ward.retry import StreamPolicy
from ward.stream import StreamBase

if TYPE_CHECKING:
    from ward.aio.client import Client
    from ward.channels import Stubs

__all__ = ["TaskStream"]

T = TypeVar("T")


class TaskStream(StreamBase[T]):
    """Runs `_stream` in a task until it returns True; `async for` it for its responses."""

    _client: Client

    def __init__(self, client: Client, policy: StreamPolicy) -> None:
        super().__init__(client, policy)
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        # Needs a running loop: streams are started from coroutines.
        self._task = asyncio.get_running_loop().create_task(self._run(), name=policy.name)
        client._track(self)

    async def close(self) -> None:
        """Stop; iteration ends after the responses already received."""
        self._task.cancel()
        # wait() rather than await: a cancellation of the caller itself must still propagate.
        await asyncio.wait([self._task])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        resp = self._unpack(await self._queue.get())
        if resp is None:
            raise StopAsyncIteration
        return resp

    async def get(self, timeout: float | None = None) -> T | None:
        """The next response, or None after `timeout` seconds or once the stream ended."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        return self._unpack(item)

    def _put(self, item: object) -> None:
        self._queue.put_nowait(item)

    async def _open(self, method: Callable[..., Any]) -> Any:
        """Open the stream call `method`; the caller writes its requests."""
        client = self._client
        return method(
            metadata=await client._metadata(client._dial_deadline()),
            wait_for_ready=client._channels.single,
        )

    async def _stream(self, conn: Stubs) -> bool:
        """Run one stream on `conn`: True when done, a `grpc.RpcError` when it broke."""
        raise NotImplementedError

    async def _run(self) -> None:
        client = self._client
        delay = self._policy.retry_min_s
        try:
            while True:
                conn: Stubs | None = None
                try:
                    conn = await client._connection(None, client._dial_deadline())
                    if await self._stream(conn):
                        return
                except grpc.RpcError as exc:
                    if self._broken(exc, conn):
                        return
                except EtcdError:
                    pass  # no connection within the dial timeout: a member may come back
                except ClientConfigError:  # the client was closed
                    return
                self.reconnects += 1
                await asyncio.sleep(delay)
                delay = self._policy.next_delay(delay)
        except Exception as unexpected:
            # Not a silent end: the reader gets it raised.
            self._put(unexpected)
        finally:
            self._put(END)
            client._untrack(self)
