"""A long-lived stream kept open by a thread: the sync client's `Watcher` and `KeepAlive`.

The thread opens the stream on the client's current endpoint, hands each response to the reader
through a queue, and reopens the stream after a transport failure (or a refused token) with a
backoff, on a live endpoint. It ends when the subclass says so, when the server answers with an
error (handed to the reader, who gets it raised), or when it is closed. The asyncio client's
`ward.aio.stream` does the same from a task; what differs between kinds of stream is in their
`StreamPolicy`, what does not depend on how they run in `StreamBase`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import grpc

from ward.errors import ClientConfigError, EtcdError
from ward.handoff import END, unpack
from ward.retry import StreamPolicy

if TYPE_CHECKING:
    from ward.channels import Stubs
    from ward.client import Client

__all__ = ["StreamBase", "ThreadStream"]

T = TypeVar("T")


class StreamBase(Generic[T]):
    """What a background stream is, however it runs: its client, its `StreamPolicy`, how often
    it was reopened, and the responses (type `T`) it hands on through `_put`."""

    def __init__(self, client: Any, policy: StreamPolicy) -> None:
        self._client = client
        self._policy = policy
        self.reconnects = 0

    def _put(self, item: object) -> None:
        """Hand `item` (a response, the exception that ended the stream, or `END`) on."""
        raise NotImplementedError

    def _unpack(self, item: object) -> T | None:
        return unpack(item, self._policy.kind, self._put)  # type: ignore[no-any-return]

    def _broken(self, exc: grpc.RpcError, conn: Stubs | None) -> bool:
        """After the stream on `conn` broke with `exc`: False to reopen it, True when it is
        over (the server's error is handed on)."""
        err = self._client._stream_broken(exc, conn, self._policy.transient)
        if err is not None:
            self._put(err)
        return err is not None


class ThreadStream(StreamBase[T]):
    """Runs `_stream` in a thread until it returns True; iterate it for its responses."""

    _client: Client

    def __init__(self, client: Client, policy: StreamPolicy) -> None:
        super().__init__(client, policy)
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._thread = threading.Thread(target=self._run, name=policy.name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop; iteration ends after the responses already received."""
        self._closed.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        while (resp := self._unpack(self._queue.get())) is not None:
            yield resp

    def get(self, timeout: float | None = None) -> T | None:
        """The next response, or None after `timeout` seconds or once the stream ended."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        return self._unpack(item)

    def _put(self, item: object) -> None:
        self._queue.put(item)

    def _open(self, method: Callable[..., Any], requests: Iterator[Any]) -> Any | None:
        """Open the stream call `method` sending `requests`, kept for `close` to cancel (None
        when the stream was closed meanwhile)."""
        client = self._client
        call = method(
            requests,
            metadata=client._metadata(client._dial_deadline()),
            wait_for_ready=client._channels.single,
        )
        with self._lock:
            self._call = call
        if self._closed.is_set():
            call.cancel()
            return None
        return call

    def _stream(self, conn: Stubs) -> bool:
        """Run one stream on `conn`: True when done, a `grpc.RpcError` when it broke."""
        raise NotImplementedError

    def _run(self) -> None:
        client = self._client
        delay = self._policy.retry_min_s
        try:
            while not self._closed.is_set():
                conn: Stubs | None = None
                try:
                    conn = client._connection(None, client._dial_deadline())
                    if self._stream(conn):
                        return
                except grpc.RpcError as exc:
                    if self._closed.is_set() or self._broken(exc, conn):
                        return
                except EtcdError:
                    # No connection within the dial timeout: try again, a member may come back.
                    if self._closed.is_set():
                        return
                except ClientConfigError:  # the client was closed
                    return
                self.reconnects += 1
                self._closed.wait(delay)
                delay = self._policy.next_delay(delay)
        finally:
            self._put(END)
