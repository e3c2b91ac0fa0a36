"""Closed-loop clients (one request outstanding each) for put, range, txn-put, lease and load.

Requests are pre-serialized bytes sent through generic unary calls with no serializers, so the
per-request Python cost is a byte concatenation and the gRPC call itself.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from bench import wire
from bench.config import ProcPlan
from bench.worker import call_kwargs, open_channel

Op = Callable[[], Awaitable[None]]

# After a failed call, pause before the next one so a dead server is not hammered in a hot loop.
_ERROR_BACKOFF = 0.005


class ClosedLoop:
    """``plan.clients`` closed loops spread over the process's channels."""

    def __init__(self, plan: ProcPlan, channels: list[grpc.aio.Channel]) -> None:
        self.plan = plan
        config = plan.config
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.first_error = ""
        self.remaining = plan.quota
        self.items = 0
        self.last_end = 0.0
        self._kwargs = call_kwargs(plan)
        self._value = random.Random(config.seed).randbytes(config.val_size)
        self._next_key = self._key_source()
        self._next_batch = plan.offset
        self._ops = [self._make_op(channels[c % len(channels)]) for c in range(plan.clients)]

    async def prepare(self) -> None:
        """Nothing to set up: keys for ``range`` are preloaded by the parent."""

    def _key_source(self) -> Callable[[], bytes]:
        config = self.plan.config
        space = config.key_space
        if config.key_order == "random":
            # Seeded per process, so etcd and Ward runs of a comparison see the same keys.
            rng = random.Random(config.seed * 1000 + self.plan.index)
            return lambda: b"%08d" % rng.randrange(space)
        counter = itertools.count(self.plan.offset)
        return lambda: b"%08d" % (next(counter) % space)

    def _make_op(self, channel: grpc.aio.Channel) -> Op:
        workload = self.plan.config.workload
        if workload == "put":
            return self._put_op(channel)
        if workload == "range":
            return self._range_op(channel)
        if workload == "txn-put":
            return self._txn_put_op(channel)
        if workload == "lease":
            return self._lease_op(channel)
        if workload == "load":
            return self._load_op(channel)
        if workload == "connect":
            return self._connect_op()
        if workload == "authenticate":
            return self._authenticate_op(channel)
        raise ValueError(f"not a closed-loop workload: {workload}")

    def _put_op(self, channel: grpc.aio.Channel) -> Op:
        call = channel.unary_unary(wire.KV_PUT)
        render = wire.put_template(self._value).render
        next_key, kwargs = self._next_key, self._kwargs

        async def op() -> None:
            await call(render(next_key()), **kwargs)

        return op

    def _range_op(self, channel: grpc.aio.Channel) -> Op:
        call = channel.unary_unary(wire.KV_RANGE)
        serializable = self.plan.config.consistency == "s"
        render = wire.range_template(serializable=serializable).render
        next_key, kwargs = self._next_key, self._kwargs

        async def op() -> None:
            await call(render(next_key()), **kwargs)

        return op

    def _txn_put_op(self, channel: grpc.aio.Channel) -> Op:
        call = channel.unary_unary(wire.KV_TXN)
        render = wire.txn_put_template(self._value).render
        next_key, kwargs = self._next_key, self._kwargs

        async def op() -> None:
            await call(render(next_key()), **kwargs)

        return op

    def _lease_op(self, channel: grpc.aio.Channel) -> Op:
        grant = channel.unary_unary(wire.LEASE_GRANT)
        put = channel.unary_unary(wire.KV_PUT)
        grant_request = wire.lease_grant(self.plan.config.lease_ttl)
        render = wire.put_template(self._value).render
        next_key, kwargs = self._next_key, self._kwargs

        async def op() -> None:
            lease = wire.lease_id(await grant(grant_request, **kwargs))
            await put(wire.with_lease(render(next_key()), lease), **kwargs)

        return op

    def _load_op(self, channel: grpc.aio.Channel) -> Op:
        call = channel.unary_unary(wire.KV_TXN)
        template = wire.put_template(self._value)
        config, kwargs = self.plan.config, self._kwargs

        async def op() -> None:
            # The quota (this process's batch count) was taken before the call, so the batch
            # numbers handed out here stay within this process's range.
            batch = self._next_batch
            self._next_batch += 1
            low = batch * config.txn_ops
            high = min(low + config.txn_ops, config.keys)
            keys = [b"%08d" % i for i in range(low, high)]
            await call(wire.multi_put_txn(template, keys), **kwargs)
            self.items += high - low

        return op

    def _connect_op(self) -> Op:
        # A new connection per op (TCP, then TLS with a client certificate when the target has
        # TLS files), one serializable Range on it, then close: the cost of a new connection.
        target = self.plan.target
        endpoint = target.endpoints[self.plan.first_conn % len(target.endpoints)]
        request = wire.range_template(serializable=True).render(wire.key_bytes(0))
        kwargs = self._kwargs

        async def op() -> None:
            channel = open_channel(endpoint, target)
            try:
                await channel.unary_unary(wire.KV_RANGE)(request, **kwargs)
            finally:
                await channel.close()

        return op

    def _authenticate_op(self, channel: grpc.aio.Channel) -> Op:
        # Every op checks the password again: what a login costs the server (hashing included).
        credentials = self.plan.target.credentials
        if credentials is None:
            raise ValueError("the authenticate workload needs --user NAME:PASSWORD")
        call = channel.unary_unary(wire.AUTHENTICATE)
        request = wire.authenticate(*credentials)
        timeout = self.plan.config.timeout

        async def op() -> None:
            await call(request, timeout=timeout)

        return op

    async def _client(self, op: Op, measure_start: float, end: float) -> None:
        latencies, clock = self.latencies, time.perf_counter
        while True:
            now = clock()
            if now >= end:
                return
            measuring = now >= measure_start
            if measuring and self.remaining is not None:
                if self.remaining <= 0:
                    return
                self.remaining -= 1
            try:
                began = clock()
                await op()
                finished = clock()
            except grpc.aio.AioRpcError as err:
                if measuring:
                    self.errors[err.code().name] += 1
                    self.first_error = self.first_error or f"{err.code().name}: {err.details()}"
                    self.last_end = clock()
                await asyncio.sleep(_ERROR_BACKOFF)
                continue
            if measuring:
                latencies.append(finished - began)
                self.last_end = finished

    async def run(self, start_wall: float) -> dict[str, Any]:
        """Warm up, then measure until the quota is spent or the window closes."""
        config = self.plan.config
        # perf_counter is per-process; translate the shared wall-clock start into it once.
        offset = time.perf_counter() - time.time()
        start = start_wall + offset
        warmup = 0.0 if config.workload == "load" else config.warmup
        measure_start = start + warmup
        end = measure_start + config.window
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        cpu, began = time.process_time(), time.perf_counter()
        await asyncio.gather(*(self._client(op, measure_start, end) for op in self._ops))
        return {
            "cpu": time.process_time() - cpu,
            "busy": time.perf_counter() - began,
            "latencies": array("d", self.latencies).tobytes(),
            "errors": dict(self.errors),
            "first_error": self.first_error,
            "measure_start": measure_start - offset,
            "last_end": (self.last_end - offset) if self.last_end else 0.0,
            "items": self.items,
            "hit_time_limit": bool(self.remaining),
        }
