"""Watches that survive a lost connection without losing or repeating an event.

    with client.watch("config/", prefix=True) as watcher:
        for resp in watcher:
            for event in resp.events:
                ...

A `Watcher` runs one Watch stream on a background thread (`ward.stream`) and hands its
responses to the iterating thread. It remembers the revision after the last event it delivered;
when the stream breaks (a member restarts or is killed), it opens a new one on a live endpoint
starting from that revision, as etcd's Go client does. Each revision's events arrive in one
response (fragmenting is never asked for), so resuming after the last delivered revision repeats
nothing and skips nothing. A watch the server cancels (its start revision was compacted,
permission was revoked) ends the iteration with the matching `EtcdError`. The bookkeeping is
`WatchCursor`'s, which the asyncio client's `ward.aio.Watcher` shares.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypedDict

import grpc

from ward.errors import CompactedError, EtcdError
from ward.requests import Key, key_range
from ward.retry import WATCH_TRANSIENT, StreamPolicy
from ward.stream import ThreadStream
from wardpb.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from ward.channels import Stubs
    from ward.client import Client

__all__ = [
    "WATCH",
    "StreamEnded",
    "WatchCursor",
    "WatchOptions",
    "Watcher",
    "Watching",
    "watch_create_request",
]

# How a watch's stream is kept open (by either client).
WATCH = StreamPolicy(
    kind=rpc_pb2.WatchResponse,
    retry_min_s=0.05,
    retry_max_s=1.0,
    transient=WATCH_TRANSIENT,
    name="ward-watch",
)


class WatchOptions(TypedDict, total=False):
    """What a watch may ask for besides its key (the keyword arguments of `watch`)."""

    prefix: bool
    from_key: bool
    start_revision: int
    prev_kv: bool
    progress_notify: bool
    no_put: bool
    no_delete: bool


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


class WatchCursor:
    """Where a watch stands: the revision its next stream starts from, and what each response
    of a stream means for the reader."""

    def __init__(self, request: rpc_pb2.WatchCreateRequest) -> None:
        self._request = request
        # The revision the next (re)opened stream starts from; 0 until the server names "now".
        self.next_revision = request.start_revision

    def open_request(self) -> rpc_pb2.WatchRequest:
        """The first message of a new stream: the watch, from where the last one stopped."""
        create = rpc_pb2.WatchCreateRequest()
        create.CopyFrom(self._request)
        create.start_revision = self.next_revision
        return rpc_pb2.WatchRequest(create_request=create)

    def accept(self, resp: rpc_pb2.WatchResponse) -> rpc_pb2.WatchResponse | EtcdError | None:
        """What `resp` gives the reader: itself, the error that ends the watch, or nothing
        (a creation answer without events)."""
        if resp.canceled:
            if resp.compact_revision:
                return CompactedError(CompactedError.MESSAGE)
            return EtcdError(resp.cancel_reason or "watch canceled")
        if resp.created:
            if self.next_revision == 0:
                # From now on: a resumed stream must start right after this revision.
                self.next_revision = resp.header.revision + 1
            if not resp.events:
                return None
        if resp.events:
            self.next_revision = resp.events[-1].kv.mod_revision + 1
        elif resp.header.revision >= self.next_revision:
            # A progress notification: nothing up to this revision is left to deliver.
            self.next_revision = resp.header.revision + 1
        return resp

    def deliver(
        self,
        resp: rpc_pb2.WatchResponse,
        put: Callable[[object], None],
        created: Callable[[], None],
    ) -> bool:
        """Hand `resp` to the reader through `put` (calling `created` when it answers the
        watch's creation, a refusal included); True when the watch is over."""
        item = self.accept(resp)
        if resp.created:
            created()
        if item is not None:
            put(item)
        return isinstance(item, EtcdError)


class StreamEnded(grpc.RpcError):
    """The server ended a stream without a status (it is stopping): open it again."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "watch stream ended"


class Watching:
    """What both clients' `Watcher` share besides their stream (a mixin): the cursor."""

    _cursor: WatchCursor

    @property
    def next_revision(self) -> int:
        """The revision a resumed stream would start from."""
        return self._cursor.next_revision


class Watcher(Watching, ThreadStream[rpc_pb2.WatchResponse]):
    """One watch; iterate it for `WatchResponse`s (the creation answer is not passed on)."""

    def __init__(self, client: Client, request: rpc_pb2.WatchCreateRequest) -> None:
        self._cursor = WatchCursor(request)
        self._created = threading.Event()
        super().__init__(client, WATCH)

    def wait_created(self, timeout: float | None = None) -> bool:
        """Block until the server has answered the watch's creation: events after this are
        seen, or (when it refused the watch) the next read raises the refusal."""
        return self._created.wait(timeout)

    cancel = ThreadStream.close

    def _requests(self, first: rpc_pb2.WatchRequest) -> Iterator[rpc_pb2.WatchRequest]:
        yield first
        # Keep the request side open until the watch is canceled; ending it ends the stream.
        self._closed.wait()

    def _stream(self, conn: Stubs) -> bool:
        """Run one stream until it breaks (raises) or the watch ends (returns True)."""
        call = self._open(conn.watch.Watch, self._requests(self._cursor.open_request()))
        if call is None:
            return True
        for resp in call:
            if self._cursor.deliver(resp, self._put, self._created.set):
                return True
        raise StreamEnded()
