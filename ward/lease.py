"""Keeping a lease alive from a background thread, as etcd's Go client's KeepAlive does.

    lease = client.lease_grant(10)
    with client.keep_alive(lease.ID):
        ...  # the lease (and every key attached to it) lives until the block ends

The thread renews the lease a third of its TTL after each renewal over one LeaseKeepAlive
stream, and opens a new stream (on a live endpoint) when one breaks. It stops when the lease is
gone (the server answers TTL <= 0) or the object is closed; iterating the object yields each
renewal's answer, for callers that report them (`wardctl lease keep-alive`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from ward.errors import EtcdError, LeaseNotFoundError
from wardpb.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from ward.client import Client

__all__ = ["KeepAlive"]

_RETRY_S = 0.5
_END = object()


class KeepAlive:
    """Renews one lease until closed or until it expires; iterate for the renewals."""

    def __init__(self, client: Client, lease_id: int) -> None:
        self._client = client
        self.lease_id = lease_id
        self._closed = threading.Event()
        self._queue: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()
        self._call: grpc.Future | None = None
        self.ttl = 0
        self._thread = threading.Thread(target=self._run, name="ward-keepalive", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop renewing (the lease then expires after its TTL unless revoked)."""
        self._closed.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def __enter__(self) -> KeepAlive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[rpc_pb2.LeaseKeepAliveResponse]:
        while True:
            item = self._queue.get()
            if item is _END:
                self._queue.put(_END)
                return
            if isinstance(item, EtcdError):
                self._queue.put(_END)
                raise item
            assert isinstance(item, rpc_pb2.LeaseKeepAliveResponse)
            yield item

    def _requests(self, renewed: threading.Event) -> Iterator[rpc_pb2.LeaseKeepAliveRequest]:
        request = rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id)
        while not self._closed.is_set():
            renewed.clear()
            yield request
            renewed.wait()
            # A third of the TTL, as clientv3: two more tries fit before the lease runs out.
            if self._closed.wait(max(self.ttl / 3.0, 0.5)):
                return

    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                try:
                    if self._stream_once():
                        return
                except grpc.RpcError as exc:
                    if self._closed.is_set():
                        return
                    err = self._client._translate(exc, None)
                    if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
                        self._queue.put(err)
                        return
                    with self._client._lock:
                        self._client._active = None
                except EtcdError:
                    if self._closed.is_set():
                        return
                self._closed.wait(_RETRY_S)
        finally:
            self._queue.put(_END)

    def _stream_once(self) -> bool:
        client = self._client
        deadline = client._deadline(client.dial_timeout)
        conn = client._connection(None, deadline)
        renewed = threading.Event()
        call = conn.lease.LeaseKeepAlive(
            self._requests(renewed),
            metadata=client._metadata(deadline),
            wait_for_ready=len(client._endpoints) == 1,
        )
        with self._lock:
            self._call = call
        if self._closed.is_set():
            call.cancel()
            return True
        try:
            for resp in call:
                if resp.TTL <= 0:
                    self._queue.put(LeaseNotFoundError(LeaseNotFoundError.MESSAGE))
                    return True
                self.ttl = resp.TTL
                self._queue.put(resp)
                renewed.set()
        finally:
            renewed.set()
        return self._closed.is_set()
