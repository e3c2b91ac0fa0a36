"""The synchronous client for Ward and etcd (v3 API over gRPC).

    from ward import Client, txn

    with Client("127.0.0.1:2379") as client:
        client.put("greeting", "hello")
        resp = client.get("greeting")
        print(resp.kvs[0].value)

Every method takes `timeout` (seconds; None means the client's `command_timeout`, `math.inf`
means no deadline) and returns the server's protobuf response; failures raise `EtcdError`
subclasses from `ward.errors`. Keys and values are bytes, or str encoded as UTF-8.

Calls wait for a connection until their deadline, like etcd's Go client: an unreachable server
shows up as `DeadlineExceededError` when the timeout passes. With several endpoints the client
uses the first that connects and fails over as clientv3 does: a call that meets `Unavailable` goes
to the next ready endpoint, until its deadline, if it is safe to repeat (a read) or was never sent.
Watches (`ward.watch`) resume after a reconnect; leases keep alive with `ward.lease`.

What each unary method sends is described once in `ward.calls` and shared with the asyncio
client (`ward.aio`); this module only blocks on it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, Unpack, overload

import grpc
from google.protobuf.message import Message

from ward import calls
from ward.base import ClientBase
from ward.calls import AlarmType
from ward.channels import Stubs
from ward.deadline import Deadline
from ward.endpoints import Endpoint
from ward.errors import EtcdError
from ward.requests import Key
from ward.retry import Attempts
from ward.rpc import Call, Op, PlanRun, copy_identity
from ward.tokens import Metadata
from wardpb.etcdserverpb import rpc_pb2
from wardpb.v3electionpb import v3election_pb2

if TYPE_CHECKING:
    from ward.lease import KeepAlive
    from ward.watch import Watcher, WatchOptions

__all__ = ["AlarmType", "Client"]

P = ParamSpec("P")
R = TypeVar("R")


def _method(build: Callable[P, Op[R]]) -> Callable[Concatenate[Client, P], R]:
    """The `Client` method that runs what `build` describes (see `ward.calls`)."""

    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._perform(build(*args, **kwargs))

    copy_identity(method, build, "Client")
    return method


class Client(ClientBase):
    """A blocking connection to a Ward or etcd cluster through one or more of its client
    endpoints (the arguments are `ClientBase.__init__`'s).

    Safe to share between threads; close it (or use it as a context manager) when done.
    """

    def close(self) -> None:
        """Close every channel; the client cannot be used afterwards."""
        for conn in self._channels.close():
            conn.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- unary calls, as described in ward.calls ------------------------------------------------

    get = _method(calls.get)
    put = _method(calls.put)
    delete = _method(calls.delete)
    txn = _method(calls.txn)
    compact = _method(calls.compact)

    status = _method(calls.status)
    hash_kv = _method(calls.hash_kv)
    defragment = _method(calls.defragment)
    alarm_list = _method(calls.alarm_list)
    alarm_disarm = _method(calls.alarm_disarm)
    move_leader = _method(calls.move_leader)

    member_list = _method(calls.member_list)
    member_add = _method(calls.member_add)
    member_remove = _method(calls.member_remove)
    member_update = _method(calls.member_update)
    member_promote = _method(calls.member_promote)

    lease_grant = _method(calls.lease_grant)
    lease_revoke = _method(calls.lease_revoke)
    lease_time_to_live = _method(calls.lease_time_to_live)
    lease_leases = _method(calls.lease_leases)
    lease_keep_alive_once = _method(calls.lease_keep_alive_once)

    lock = _method(calls.lock)
    unlock = _method(calls.unlock)
    campaign = _method(calls.campaign)
    proclaim = _method(calls.proclaim)
    election_leader = _method(calls.election_leader)
    resign = _method(calls.resign)

    auth_enable = _method(calls.auth_enable)
    auth_disable = _method(calls.auth_disable)
    user_add = _method(calls.user_add)
    user_get = _method(calls.user_get)
    user_list = _method(calls.user_list)
    user_delete = _method(calls.user_delete)
    user_change_password = _method(calls.user_change_password)
    user_grant_role = _method(calls.user_grant_role)
    user_revoke_role = _method(calls.user_revoke_role)
    role_add = _method(calls.role_add)
    role_get = _method(calls.role_get)
    role_list = _method(calls.role_list)
    role_delete = _method(calls.role_delete)
    role_grant_permission = _method(calls.role_grant_permission)
    role_revoke_permission = _method(calls.role_revoke_permission)

    @overload
    def request(
        self, request: rpc_pb2.RangeRequest, *, timeout: float | None = None
    ) -> rpc_pb2.RangeResponse: ...
    @overload
    def request(
        self, request: rpc_pb2.PutRequest, *, timeout: float | None = None
    ) -> rpc_pb2.PutResponse: ...
    @overload
    def request(
        self, request: rpc_pb2.DeleteRangeRequest, *, timeout: float | None = None
    ) -> rpc_pb2.DeleteRangeResponse: ...
    @overload
    def request(
        self, request: rpc_pb2.TxnRequest, *, timeout: float | None = None
    ) -> rpc_pb2.TxnResponse: ...

    def request(self, request: Message, *, timeout: float | None = None) -> Message:
        """Send a prepared KV request (Range, Put, DeleteRange or Txn) as it is."""
        return self._perform(calls.kv_request(request, timeout=timeout))  # type: ignore[no-any-return]

    # -- streams --------------------------------------------------------------------------------

    def snapshot(
        self,
        out: IO[bytes],
        endpoint: str | None = None,
        *,
        timeout: float | None = math.inf,
    ) -> int:
        """Stream one member's backend snapshot into `out`; returns the bytes written.

        Unlike the other calls, there is no deadline unless `timeout` is given: a large
        database takes as long as it takes.
        """
        deadline = self._deadline(timeout)
        conn = self._connection(endpoint, deadline)
        metadata = self._metadata(deadline)
        written = 0
        with deadline.translating():
            stream = conn.maintenance.Snapshot(
                rpc_pb2.SnapshotRequest(),
                timeout=deadline.remaining(),
                metadata=metadata,
                wait_for_ready=True,
            )
            for chunk in stream:
                out.write(chunk.blob)
                written += len(chunk.blob)
        return written

    def keep_alive(self, lease_id: int) -> KeepAlive:
        """Keep a lease alive from a background thread until the returned object is closed
        (use it as a context manager; iterate it for each renewal's answer)."""
        from ward.lease import KeepAlive

        return KeepAlive(self, lease_id)

    def watch(
        self, key: Key, range_end: Key | None = None, **options: Unpack[WatchOptions]
    ) -> Watcher:
        """Watch a key or range (options: `prefix`, `from_key`, `start_revision` (0: from
        now), `prev_kv`, `progress_notify`, `no_put`, `no_delete`); iterate the result for
        `WatchResponse`s. The watch resumes after a lost connection from the revision after
        the last event delivered, so no event is lost or repeated."""
        from ward.watch import Watcher, watch_create_request

        return Watcher(self, watch_create_request(key, range_end, **options))

    def observe(self, name: Key) -> Iterator[v3election_pb2.LeaderResponse]:
        """Each leader of election `name`, as it is elected (the current one first)."""
        never = Deadline(None)
        conn = self._connection(None, never)
        stream = conn.election.Observe(
            calls.observe_request(name), metadata=self._metadata(never), wait_for_ready=True
        )
        try:
            with never.translating(cancel_ends=True):
                yield from stream
        finally:
            stream.cancel()

    # -- auth ----------------------------------------------------------------------------------

    def authenticate(self, *, timeout: float | None = None) -> None:
        """Fetch an auth token for `user` now (otherwise done on first use), within `timeout`
        (default: the dial timeout).

        A server with authentication disabled is fine: calls then go without a token.
        """
        self._perform(self._tokens.authenticate(self.dial_timeout if timeout is None else timeout))

    # -- plumbing ------------------------------------------------------------------------------

    def _call(
        self,
        pick: Callable[[Stubs], Callable[..., R]],
        request: object,
        timeout: float | None,
        endpoint: str | None = None,
        *,
        safe: bool = False,
    ) -> R:
        # One call of any service on the client's channels (wardctl's policy commands use it
        # for Ward's own Policy service), with the client's token, retries and failover.
        return self._run(Call(pick, request, timeout, endpoint, safe=safe))  # type: ignore[arg-type]

    def _perform(self, op: Op[R]) -> R:
        if isinstance(op, Call):
            return self._run(op)
        plan = PlanRun(op, self._deadline(op.timeout))
        while (call := plan.next_call()) is not None:
            try:
                plan.answer(self._run(call))
            except EtcdError as err:
                plan.fail(err)
        return plan.result  # type: ignore[return-value]

    def _run(self, call: Call[R]) -> R:
        """One call, with a fresh token when it was refused and failover until its deadline."""
        deadline = self._deadline(call.timeout)
        attempts = self._attempts(call, deadline)
        while True:
            conn = self._connection(call.endpoint, deadline)
            metadata = None if call.anonymous else self._metadata(deadline)
            try:
                return call.finish(self._send(conn, call, attempts, metadata))
            except grpc.RpcError as exc:
                time.sleep(self._retry_delay(attempts, exc, conn))

    @staticmethod
    def _send(conn: Stubs, call: Call[Any], attempts: Attempts, metadata: Metadata | None) -> Any:
        rpc = call.pick(conn)
        options = attempts.grpc_options(metadata)
        if not call.streamed:
            return rpc(call.request, **options)
        stream = rpc(iter([call.request]), **options)
        try:
            return next(stream, None)
        finally:
            stream.cancel()

    def _metadata(self, deadline: Deadline) -> Metadata | None:
        if self._tokens.needed:
            self.authenticate(timeout=deadline.remaining_or_inf())
        return self._tokens.metadata()

    def _connection(self, endpoint: str | None, deadline: Deadline) -> Stubs:
        route = self._channels.route(endpoint)
        if isinstance(route, Endpoint):
            return self._connection_for(route, deadline)
        return route or self._channels.activate(self._first_ready(deadline))

    def _connection_for(self, endpoint: Endpoint, deadline: Deadline) -> Stubs:
        conn = self._channels.cached(endpoint)
        if conn is not None:
            return conn
        recipe = self._channels.recipe(endpoint, self._fetch_timeout(deadline))
        if recipe.credentials is None:
            channel = grpc.insecure_channel(recipe.target, options=recipe.options)
        else:
            channel = grpc.secure_channel(recipe.target, recipe.credentials, options=recipe.options)
        adopted = None
        try:
            adopted = self._channels.adopt(endpoint, channel)
        finally:
            # Another channel was opened meanwhile, or the client was closed.
            if adopted is None or adopted.channel is not channel:
                channel.close()
        return adopted

    def _first_ready(self, deadline: Deadline) -> Stubs:
        """Connect to every endpoint and take the first (in list order) that is ready."""
        connections = [self._connection_for(e, deadline) for e in self._channels.endpoints]
        ready = threading.Event()
        futures = [grpc.channel_ready_future(c.channel) for c in connections]
        for future in futures:
            future.add_done_callback(lambda _f: ready.set())
        try:
            while True:
                for conn, future in zip(connections, futures, strict=True):
                    if future.done() and not future.cancelled():
                        return conn
                ready.wait(deadline.left())
                ready.clear()
        finally:
            for future in futures:
                future.cancel()
