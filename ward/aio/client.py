"""The asyncio client: every `ward.Client` call as a coroutine, over `grpc.aio` channels.

What each unary method sends, its retries, failover and token refresh are the sync client's
(`ward.calls`, `ward.base`); this module only awaits them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack, overload

import grpc
from google.protobuf.message import Message

from ward import calls
from ward.aio.lease import KeepAlive
from ward.aio.stream import TaskStream
from ward.aio.watch import Watcher
from ward.base import ClientBase
from ward.channels import ChannelRecipe, Stubs
from ward.deadline import Deadline
from ward.endpoints import Endpoint
from ward.errors import ClientConfigError, EtcdError
from ward.requests import Key
from ward.retry import Attempts
from ward.rpc import Call, Op, PlanRun, copy_identity
from ward.tokens import Metadata
from ward.watch import WatchOptions, watch_create_request
from wardpb.etcdserverpb import rpc_pb2
from wardpb.v3electionpb import v3election_pb2

__all__ = ["Client"]

P = ParamSpec("P")
R = TypeVar("R")


def _coroutine(
    build: Callable[P, Op[R]],
) -> Callable[Concatenate[Client, P], Coroutine[Any, Any, R]]:
    """The `Client` coroutine method that runs what `build` describes (see `ward.calls`)."""

    async def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._perform(build(*args, **kwargs))

    copy_identity(method, build, "Client")
    return method


class Client(ClientBase):
    """An asyncio connection to a Ward or etcd cluster through one or more of its client
    endpoints (the arguments are `ClientBase.__init__`'s, as for `ward.Client`).

    Every method of `ward.Client` is here as a coroutine, except the streams: `watch` and
    `keep_alive` return objects run by a task (`async with`, `async for`), `snapshot` and
    `observe` are async iterators. Use a client from one event loop, and close it there.
    """

    def _init_io(self) -> None:
        # One token fetch at a time: concurrent calls that find none wait for it.
        self._auth_lock = asyncio.Lock()
        self._background: set[TaskStream[Any]] = set()

    async def close(self) -> None:
        """Stop the client's watches and keep-alives and close every channel."""
        try:
            for stream in list(self._background):
                await stream.close()
        finally:
            connections = self._channels.close()
            await asyncio.gather(*(c.channel.close() for c in connections), return_exceptions=True)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- unary calls, as described in ward.calls ------------------------------------------------

    get = _coroutine(calls.get)
    put = _coroutine(calls.put)
    delete = _coroutine(calls.delete)
    txn = _coroutine(calls.txn)
    compact = _coroutine(calls.compact)

    status = _coroutine(calls.status)
    hash_kv = _coroutine(calls.hash_kv)
    defragment = _coroutine(calls.defragment)
    alarm_list = _coroutine(calls.alarm_list)
    alarm_disarm = _coroutine(calls.alarm_disarm)
    move_leader = _coroutine(calls.move_leader)

    member_list = _coroutine(calls.member_list)
    member_add = _coroutine(calls.member_add)
    member_remove = _coroutine(calls.member_remove)
    member_update = _coroutine(calls.member_update)
    member_promote = _coroutine(calls.member_promote)

    lease_grant = _coroutine(calls.lease_grant)
    lease_revoke = _coroutine(calls.lease_revoke)
    lease_time_to_live = _coroutine(calls.lease_time_to_live)
    lease_leases = _coroutine(calls.lease_leases)
    lease_keep_alive_once = _coroutine(calls.lease_keep_alive_once)

    lock = _coroutine(calls.lock)
    unlock = _coroutine(calls.unlock)
    campaign = _coroutine(calls.campaign)
    proclaim = _coroutine(calls.proclaim)
    election_leader = _coroutine(calls.election_leader)
    resign = _coroutine(calls.resign)

    auth_enable = _coroutine(calls.auth_enable)
    auth_disable = _coroutine(calls.auth_disable)
    user_add = _coroutine(calls.user_add)
    user_get = _coroutine(calls.user_get)
    user_list = _coroutine(calls.user_list)
    user_delete = _coroutine(calls.user_delete)
    user_change_password = _coroutine(calls.user_change_password)
    user_grant_role = _coroutine(calls.user_grant_role)
    user_revoke_role = _coroutine(calls.user_revoke_role)
    role_add = _coroutine(calls.role_add)
    role_get = _coroutine(calls.role_get)
    role_list = _coroutine(calls.role_list)
    role_delete = _coroutine(calls.role_delete)
    role_grant_permission = _coroutine(calls.role_grant_permission)
    role_revoke_permission = _coroutine(calls.role_revoke_permission)

    @overload
    async def request(
        self, request: rpc_pb2.RangeRequest, *, timeout: float | None = None
    ) -> rpc_pb2.RangeResponse: ...
    @overload
    async def request(
        self, request: rpc_pb2.PutRequest, *, timeout: float | None = None
    ) -> rpc_pb2.PutResponse: ...
    @overload
    async def request(
        self, request: rpc_pb2.DeleteRangeRequest, *, timeout: float | None = None
    ) -> rpc_pb2.DeleteRangeResponse: ...
    @overload
    async def request(
        self, request: rpc_pb2.TxnRequest, *, timeout: float | None = None
    ) -> rpc_pb2.TxnResponse: ...

    async def request(self, request: Message, *, timeout: float | None = None) -> Message:
        """Send a prepared KV request (Range, Put, DeleteRange or Txn) as it is."""
        return await self._perform(calls.kv_request(request, timeout=timeout))  # type: ignore[no-any-return]

    # -- streams --------------------------------------------------------------------------------

    async def snapshot(
        self, endpoint: str | None = None, *, timeout: float | None = math.inf
    ) -> AsyncIterator[bytes]:
        """One member's backend snapshot, chunk by chunk (`async for chunk in ...`).

        There is no deadline unless `timeout` is given: a large database takes as long as it
        takes. Leaving the loop early cancels the stream once the iterator is closed (use
        `contextlib.aclosing` to make that immediate).
        """
        deadline = self._deadline(timeout)
        conn = await self._connection(endpoint, deadline)
        stream = conn.maintenance.Snapshot(
            rpc_pb2.SnapshotRequest(),
            timeout=deadline.remaining(),
            metadata=await self._metadata(deadline),
            wait_for_ready=True,
        )
        try:
            with deadline.translating():
                async for chunk in stream:
                    yield chunk.blob
        finally:
            stream.cancel()

    def keep_alive(self, lease_id: int) -> KeepAlive:
        """Keep a lease alive from a task until the returned object is closed (`async with`
        it; `async for` it for each renewal's answer). Call it from a coroutine."""
        return KeepAlive(self, lease_id)

    def watch(
        self, key: Key, range_end: Key | None = None, **options: Unpack[WatchOptions]
    ) -> Watcher:
        """Watch a key or range (options: `prefix`, `from_key`, `start_revision` (0: from
        now), `prev_kv`, `progress_notify`, `no_put`, `no_delete`); `async for` the result for
        `WatchResponse`s. The watch resumes after a lost connection from the revision after
        the last event delivered, so no event is lost or repeated. Call it from a coroutine."""
        return Watcher(self, watch_create_request(key, range_end, **options))

    async def observe(self, name: Key) -> AsyncIterator[v3election_pb2.LeaderResponse]:
        """Each leader of election `name`, as it is elected (the current one first)."""
        never = Deadline(None)
        conn = await self._connection(None, never)
        stream = conn.election.Observe(
            calls.observe_request(name),
            metadata=await self._metadata(never),
            wait_for_ready=True,
        )
        try:
            with never.translating(cancel_ends=True):
                async for resp in stream:
                    yield resp
        finally:
            stream.cancel()

    # -- auth ----------------------------------------------------------------------------------

    async def authenticate(self, *, timeout: float | None = None) -> None:
        """Fetch an auth token for `user` now (otherwise done on first use), within `timeout`
        (default: the dial timeout).

        A server with authentication disabled is fine: calls then go without a token.
        """
        plan = self._tokens.authenticate(self.dial_timeout if timeout is None else timeout)
        await self._perform(plan)

    # -- plumbing ------------------------------------------------------------------------------

    def _track(self, stream: TaskStream[Any]) -> None:
        self._background.add(stream)

    def _untrack(self, stream: TaskStream[Any]) -> None:
        self._background.discard(stream)

    async def _perform(self, op: Op[R]) -> R:
        if isinstance(op, Call):
            return await self._run(op)
        plan = PlanRun(op, self._deadline(op.timeout))
        while (call := plan.next_call()) is not None:
            try:
                plan.answer(await self._run(call))
            except EtcdError as err:
                plan.fail(err)
        return plan.result  # type: ignore[return-value]

    async def _run(self, call: Call[R]) -> R:
        """One call, with a fresh token when it was refused and failover until its deadline."""
        deadline = self._deadline(call.timeout)
        attempts = self._attempts(call, deadline)
        while True:
            conn = await self._connection(call.endpoint, deadline)
            metadata = None if call.anonymous else await self._metadata(deadline)
            try:
                return call.finish(await self._send(conn, call, attempts, metadata))
            except grpc.RpcError as exc:
                await asyncio.sleep(self._retry_delay(attempts, exc, conn))

    @staticmethod
    async def _send(
        conn: Stubs, call: Call[Any], attempts: Attempts, metadata: Metadata | None
    ) -> Any:
        rpc = call.pick(conn)
        options = attempts.grpc_options(metadata)
        if not call.streamed:
            return await rpc(call.request, **options)
        stream = rpc(iter([call.request]), **options)
        try:
            async for resp in stream:
                return resp
            return None
        finally:
            stream.cancel()

    async def _metadata(self, deadline: Deadline) -> Metadata | None:
        if self._tokens.needed:
            async with self._auth_lock:
                if self._tokens.needed:  # unless fetched while this call waited
                    await self.authenticate(timeout=deadline.remaining_or_inf())
        return self._tokens.metadata()

    async def _connection(self, endpoint: str | None, deadline: Deadline) -> Stubs:
        route = self._channels.route(endpoint)
        if isinstance(route, Endpoint):
            return await self._connection_for(route, deadline)
        return route or self._channels.activate(await self._first_ready(deadline))

    async def _connection_for(self, endpoint: Endpoint, deadline: Deadline) -> Stubs:
        conn = self._channels.cached(endpoint)
        if conn is not None:
            return conn
        recipe = await self._recipe(endpoint, deadline)
        # Look again, for a channel opened (or the client closed) while the recipe took a
        # thread's time; nothing is awaited from here on, so the new channel is the only one.
        return self._channels.cached(endpoint) or self._channels.adopt(endpoint, self._open(recipe))

    async def _recipe(self, endpoint: Endpoint, deadline: Deadline) -> ChannelRecipe:
        fetch_timeout = self._fetch_timeout(deadline)
        if self._channels.needs_io(endpoint):
            # Fetching the certificate to trust blocks on a socket: off the event loop.
            return await asyncio.to_thread(self._channels.recipe, endpoint, fetch_timeout)
        return self._channels.recipe(endpoint, fetch_timeout)

    @staticmethod
    def _open(recipe: ChannelRecipe) -> grpc.aio.Channel:
        if recipe.credentials is None:
            return grpc.aio.insecure_channel(recipe.target, options=recipe.options)
        return grpc.aio.secure_channel(recipe.target, recipe.credentials, options=recipe.options)

    async def _first_ready(self, deadline: Deadline) -> Stubs:
        """Connect to every endpoint and take the first (in list order) that is ready."""
        connections = [await self._connection_for(e, deadline) for e in self._channels.endpoints]
        waits = [asyncio.ensure_future(c.channel.channel_ready()) for c in connections]
        try:
            while True:
                for conn, wait in zip(connections, waits, strict=True):
                    if wait.done() and not wait.cancelled() and wait.exception() is None:
                        return conn
                pending = [w for w in waits if not w.done()]
                if not pending:  # every channel failed: they were closed under us
                    raise ClientConfigError("the client is closed")
                await asyncio.wait(
                    pending, timeout=deadline.left(), return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            for wait in waits:
                wait.cancel()
