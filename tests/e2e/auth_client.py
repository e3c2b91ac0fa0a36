"""A small etcd client for the auth end-to-end tests: stubs that send a user's token.

etcd's clients send the token as `token` metadata on every call; so does `Client`. Each
`Client` opens its own channel: with several serving processes on one port (SO_REUSEPORT), fresh
channels land on different processes, which is how a test reaches the core and the workers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc

from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from wardpb.v3lockpb import v3lock_pb2_grpc

CALL_TIMEOUT_S = 10.0


def authenticate(endpoint: str, name: str, password: str) -> str:
    """A token for the user (raises grpc.RpcError when refused)."""
    with grpc.insecure_channel(endpoint) as ch:
        resp = rpc_pb2_grpc.AuthStub(ch).Authenticate(
            rpc_pb2.AuthenticateRequest(name=name, password=password), timeout=CALL_TIMEOUT_S
        )
    return str(resp.token)


def status_of(e: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return e.code(), e.details()  # type: ignore[attr-defined]


class Client:
    """Stubs on one channel, sending `token` (if any) with every call."""

    def __init__(self, endpoint: str, token: str = "") -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.metadata = (("token", token),) if token else ()
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.auth = rpc_pb2_grpc.AuthStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(self.channel)
        self.lock = v3lock_pb2_grpc.LockStub(self.channel)

    def call(self, method: object, request: object) -> object:
        """`method(request)` with this client's token."""
        return method(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)  # type: ignore[operator]

    def refused(self, method: object, request: object) -> tuple[grpc.StatusCode, str]:
        """The status of a call that must fail."""
        try:
            self.call(method, request)
        except grpc.RpcError as e:
            return status_of(e)
        raise AssertionError("the call succeeded")

    def get(self, key: bytes, end: bytes = b"") -> list[bytes]:
        resp = self.call(self.kv.Range, rpc_pb2.RangeRequest(key=key, range_end=end))
        return [kv.key for kv in resp.kvs]  # type: ignore[attr-defined]

    def put(self, key: bytes, value: bytes = b"v", **kw: object) -> rpc_pb2.PutResponse:
        return self.call(  # type: ignore[return-value]
            self.kv.Put,
            rpc_pb2.PutRequest(key=key, value=value, **kw),  # type: ignore[arg-type]
        )

    def watch(self) -> WatchStream:
        return WatchStream(self)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WatchStream:
    """One Watch stream: requests go in through a queue, responses come out of another."""

    def __init__(self, client: Client) -> None:
        self._requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        self.responses: queue.Queue[rpc_pb2.WatchResponse] = queue.Queue()
        self.error: grpc.RpcError | None = None
        stub = rpc_pb2_grpc.WatchStub(client.channel)
        self._call = stub.Watch(self._iter(), metadata=client.metadata)
        threading.Thread(target=self._pump, daemon=True).start()

    def _iter(self) -> Iterator[rpc_pb2.WatchRequest]:
        while (r := self._requests.get()) is not None:
            yield r

    def _pump(self) -> None:
        try:
            for resp in self._call:
                self.responses.put(resp)
        except grpc.RpcError as e:
            self.error = e

    def create(self, key: bytes, end: bytes = b"", **kw: object) -> rpc_pb2.WatchResponse:
        """Ask for a watch; the answer to the request (created, or created and canceled)."""
        req = rpc_pb2.WatchCreateRequest(key=key, range_end=end, **kw)  # type: ignore[arg-type]
        self._requests.put(rpc_pb2.WatchRequest(create_request=req))
        return self.next()

    def next(self, timeout: float = CALL_TIMEOUT_S) -> rpc_pb2.WatchResponse:
        return self.responses.get(timeout=timeout)

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
