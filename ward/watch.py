"""Watches that survive a lost connection without losing or repeating an event.

    with client.watch("config/", prefix=True) as watcher:
        for resp in watcher:
            for event in resp.events:
                ...

A `Watcher` runs one Watch stream on a background thread and hands its responses to the
iterating thread. It remembers the revision after the last event it delivered; when the stream
breaks (a member restarts or is killed), it opens a new one on a live endpoint starting from that
revision, as etcd's Go client does. Each revision's events arrive in one response (fragmenting is
never asked for), so resuming after the last delivered revision repeats nothing and skips nothing.
A watch the server cancels (its start revision was compacted, permission was revoked) ends the
iteration with the matching `EtcdError`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from ward.errors import CompactedError, EtcdError, InvalidAuthTokenError
from ward.requests import Key, key_range
from wardpb.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from ward.client import Client

__all__ = ["Watcher", "watch_create_request"]

_RETRY_MIN_S = 0.05
_RETRY_MAX_S = 1.0
# Statuses of a stream broken by the transport or a stopping server, after which the watch is
# opened again; anything else is the server's answer and ends it.
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


def watch_create_request(
    key: Key,
    range_end: Key | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    start_revision: int = 0,
    prev_kv: bool = False,
    progress_notify: bool = False,
    no_put: bool = False,
    no_delete: bool = False,
) -> rpc_pb2.WatchCreateRequest:
    """The create request for a key, a range, a prefix or every key from `key`."""
    raw, end = key_range(key, range_end, prefix=prefix, from_key=from_key)
    filters = []
    if no_put:
        filters.append(rpc_pb2.WatchCreateRequest.NOPUT)
    if no_delete:
        filters.append(rpc_pb2.WatchCreateRequest.NODELETE)
    return rpc_pb2.WatchCreateRequest(
        key=raw,
        range_end=end,
        start_revision=start_revision,
        prev_kv=prev_kv,
        progress_notify=progress_notify,
        filters=filters,
    )


_END = object()


class Watcher:
    """One watch; iterate it for `WatchResponse`s (the creation answer is not passed on)."""

    def __init__(self, client: Client, request: rpc_pb2.WatchCreateRequest) -> None:
        self._client = client
        self._request = request
        # The revision the next (re)opened stream starts from; 0 until the server names "now".
        self._next_revision = request.start_revision
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = threading.Event()
        self._created = threading.Event()
        self._lock = threading.Lock()
        self._call: grpc.Future | None = None
        self.reconnects = 0
        self._thread = threading.Thread(target=self._run, name="ward-watch", daemon=True)
        self._thread.start()

    @property
    def next_revision(self) -> int:
        """The revision a resumed stream would start from."""
        return self._next_revision

    def wait_created(self, timeout: float | None = None) -> bool:
        """Block until the server has created the watch (events after this are seen)."""
        return self._created.wait(timeout)

    def cancel(self) -> None:
        """Stop watching; iteration ends after the responses already received."""
        self._closed.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    close = cancel

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def __iter__(self) -> Iterator[rpc_pb2.WatchResponse]:
        while True:
            item = self._queue.get()
            if item is _END:
                self._queue.put(_END)  # later iterations end too
                return
            if isinstance(item, EtcdError):
                self._queue.put(_END)
                raise item
            assert isinstance(item, rpc_pb2.WatchResponse)
            yield item

    def get(self, timeout: float | None = None) -> rpc_pb2.WatchResponse | None:
        """The next response, or None after `timeout` seconds or once the watch ended."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._queue.put(_END)
            return None
        if isinstance(item, EtcdError):
            self._queue.put(_END)
            raise item
        assert isinstance(item, rpc_pb2.WatchResponse)
        return item

    # -- the stream thread ----------------------------------------------------------------------

    def _requests(self, create: rpc_pb2.WatchRequest) -> Iterator[rpc_pb2.WatchRequest]:
        yield create
        # Keep the request side open until the watch is canceled; ending it ends the stream.
        self._closed.wait()

    def _run(self) -> None:
        delay = _RETRY_MIN_S
        try:
            while not self._closed.is_set():
                try:
                    if self._stream_once():
                        return
                    delay = _RETRY_MIN_S
                except grpc.RpcError as exc:
                    if self._closed.is_set():
                        return
                    err = self._client._translate(exc, None)
                    if isinstance(err, InvalidAuthTokenError):
                        with self._client._lock:
                            self._client._authenticated = False
                    elif exc.code() not in _TRANSIENT:
                        self._queue.put(err)
                        return
                    with self._client._lock:
                        self._client._active = None
                except EtcdError as err:
                    # No connection within the retry (the client's dial path gave up): try
                    # again, a member may come back.
                    if self._closed.is_set():
                        return
                    del err
                self.reconnects += 1
                self._closed.wait(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
        finally:
            self._queue.put(_END)

    def _stream_once(self) -> bool:
        """Run one stream until it breaks (raises) or the watch ends (returns True)."""
        create = rpc_pb2.WatchCreateRequest()
        create.CopyFrom(self._request)
        create.start_revision = self._next_revision
        client = self._client
        conn = client._connection(None, client._deadline(client.dial_timeout))
        metadata = client._metadata(client._deadline(client.dial_timeout))
        call = conn.watch.Watch(
            self._requests(rpc_pb2.WatchRequest(create_request=create)),
            metadata=metadata,
            wait_for_ready=len(client._endpoints) == 1,
        )
        with self._lock:
            self._call = call
        if self._closed.is_set():
            call.cancel()
            return True
        for resp in call:
            if resp.canceled:
                if resp.compact_revision:
                    self._queue.put(CompactedError(CompactedError.MESSAGE))
                else:
                    self._queue.put(EtcdError(resp.cancel_reason or "watch canceled"))
                return True
            if resp.created:
                if self._next_revision == 0:
                    # From now on: a resumed stream must start right after this revision.
                    self._next_revision = resp.header.revision + 1
                self._created.set()
                if not resp.events:
                    continue
            if resp.events:
                self._next_revision = resp.events[-1].kv.mod_revision + 1
            elif resp.header.revision >= self._next_revision:
                # A progress notification: nothing up to this revision is left to deliver.
                self._next_revision = resp.header.revision + 1
            self._queue.put(resp)
        # The server ended the stream without an error (it is stopping): open it again.
        raise _StreamEnded()


class _StreamEnded(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "watch stream ended"
