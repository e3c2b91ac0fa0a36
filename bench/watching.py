"""Watch workloads in one client process: watchers on a prefix, and (process 0 of ``watch``) a
writer putting keys under it at a steady rate.

Delivery latency is event receipt time minus the writer's put acknowledgement time, both
``time.time()`` on the same machine; the parent joins them by revision. An event can reach a
watcher before the writer sees its acknowledgement, so single samples may be slightly negative.
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from collections import Counter
from typing import Any

import grpc

from bench import wire
from bench.config import ProcPlan
from bench.worker import call_kwargs
from wardpb.etcdserverpb import rpc_pb2

WATCH_PREFIX = b"bench-watch/"
# How long watchers keep listening after the writer's last put, for late events.
_GRACE = 1.0


class WatchDriver:
    """``plan.watchers`` watchers over ``plan.streams`` streams, and the writer in process 0."""

    def __init__(self, plan: ProcPlan, channels: list[grpc.aio.Channel]) -> None:
        self.plan = plan
        self.channels = channels
        self._kwargs = call_kwargs(plan)
        self._calls: list[Any] = []
        self.event_revs = array("q")
        self.event_times = array("d")
        self.ack_revs = array("q")
        self.ack_times = array("d")
        self.put_latencies = array("d")
        self.errors: Counter[str] = Counter()
        self.first_error = ""
        self.streams_lost = 0

    async def _open_stream(self, index: int, watchers: int) -> Any:
        channel = self.channels[index % len(self.channels)]
        metadata = self._kwargs.get("metadata")
        call = channel.stream_stream(wire.WATCH)(metadata=metadata)
        request = wire.watch_create(WATCH_PREFIX)
        created = 0
        try:
            for _ in range(watchers):
                await call.write(request)
            while created < watchers:
                message = await asyncio.wait_for(call.read(), self.plan.config.timeout)
                if message is grpc.aio.EOF:
                    break
                response = rpc_pb2.WatchResponse.FromString(message)
                if response.canceled:
                    raise ConnectionError(f"watch refused: {response.cancel_reason}")
                created += response.created
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the stream ended; its status says why, below
        if created < watchers:
            code, details = await call.code(), await call.details()
            raise ConnectionError(f"watch stream ended creating watchers: {code.name} {details}")
        return call

    async def prepare(self) -> None:
        """Open the streams and create every watcher before the start signal."""
        self._calls = list(
            await asyncio.gather(
                *(self._open_stream(i, n) for i, n in enumerate(self.plan.per_stream))
            )
        )

    async def _listen(self, call: Any) -> None:
        revs, times = self.event_revs, self.event_times
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    self.streams_lost += 1
                    return
                now = time.time()
                for event in rpc_pb2.WatchResponse.FromString(message).events:
                    revs.append(event.kv.mod_revision)
                    times.append(now)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                self.streams_lost += 1
                self._note_error(err)

    def _note_error(self, err: grpc.aio.AioRpcError) -> None:
        self.errors[err.code().name] += 1
        self.first_error = self.first_error or f"{err.code().name}: {err.details()}"

    async def _write(self, start: float, end: float) -> None:
        config = self.plan.config
        put = self.channels[0].unary_unary(wire.KV_PUT)
        value = random.Random(config.seed).randbytes(config.val_size)
        template = wire.put_template(value, key_size=len(WATCH_PREFIX) + wire.KEY_SIZE)
        interval = 1.0 / config.rate
        clock = time.perf_counter
        for i in range(int(config.window * config.rate) + 1):
            due = start + i * interval
            if due >= end:
                break
            await asyncio.sleep(max(0.0, due - clock()))
            request = template.render(wire.key_bytes(i % config.key_space, WATCH_PREFIX))
            began = clock()
            try:
                response = await put(request, **self._kwargs)
            except grpc.aio.AioRpcError as err:
                self._note_error(err)
                continue
            acked = time.time()
            self.put_latencies.append(clock() - began)
            self.ack_revs.append(wire.header_revision(response))
            self.ack_times.append(acked)

    async def run(self, start_wall: float) -> dict[str, Any]:
        """Listen (and write, in the writer process) for the window, then a short grace."""
        config = self.plan.config
        offset = time.perf_counter() - time.time()
        start = start_wall + offset
        end = start + config.window
        listeners = [asyncio.create_task(self._listen(call)) for call in self._calls]
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        if self.plan.writer:
            await self._write(start, end)
            await asyncio.sleep(_GRACE)
        else:
            await asyncio.sleep(max(0.0, end - time.perf_counter()) + _GRACE)
        for call in self._calls:
            call.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        return {
            "watchers": self.plan.watchers,
            "event_revs": self.event_revs.tobytes(),
            "event_times": self.event_times.tobytes(),
            "ack_revs": self.ack_revs.tobytes(),
            "ack_times": self.ack_times.tobytes(),
            "put_latencies": self.put_latencies.tobytes(),
            "errors": dict(self.errors),
            "first_error": self.first_error,
            "streams_lost": self.streams_lost,
            "measure_start": start_wall,
            "last_end": start_wall + config.window,
        }
