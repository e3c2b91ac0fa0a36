"""One client process of a run: its gRPC connections, its driver, and the pipe to the parent.

Protocol on the pipe (parent <-> child), one tuple per message:
  child -> ("ready",)            connections up, watchers created; waiting for the start signal
  parent -> ("go", start_wall)    start at ``start_wall`` (time.time()); every process shares it
  parent -> ("stop",)             abandon the run before it starts
  child -> ("result", dict)       the driver's samples, counters and timestamps
  child -> ("error", traceback)   anything went wrong
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import traceback
from multiprocessing.connection import Connection
from typing import Any, Protocol

import grpc

from bench.config import WATCH_WORKLOADS, ProcPlan, Target, TlsFiles

# Every channel gets its own subchannel pool; otherwise grpc would share one TCP connection
# between channels with the same target and arguments, and --conns would mean nothing.
_CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class Driver(Protocol):
    """What a workload does inside one client process."""

    async def prepare(self) -> None:
        """Set up whatever must exist before the start signal (watchers)."""

    async def run(self, start_wall: float) -> dict[str, Any]:
        """Run from ``start_wall`` to the end of the window; return the picklable result."""


def call_kwargs(plan: ProcPlan) -> dict[str, Any]:
    """Per-call keyword arguments: the deadline, and the auth token when there is one."""
    kwargs: dict[str, Any] = {"timeout": plan.config.timeout}
    if plan.target.token:
        kwargs["metadata"] = (("token", plan.target.token),)
    return kwargs


def read_file(path: str | None) -> bytes | None:
    """A PEM file's bytes, or None when no path is given."""
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


@functools.cache
def _credentials(tls: TlsFiles) -> grpc.ChannelCredentials:
    # Read once per process: the connect workload opens a channel per request.
    return grpc.ssl_channel_credentials(
        root_certificates=read_file(tls.cacert),
        private_key=read_file(tls.key),
        certificate_chain=read_file(tls.cert),
    )


def open_channel(endpoint: str, target: Target) -> grpc.aio.Channel:
    """A grpc.aio channel with its own TCP connection to ``endpoint`` (a full TLS handshake:
    no session is resumed, gRPC keeps no TLS session cache unless asked)."""
    if target.tls is None:
        return grpc.aio.insecure_channel(endpoint, options=_CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(endpoint, _credentials(target.tls), options=_CHANNEL_OPTIONS)


def make_driver(plan: ProcPlan, channels: list[grpc.aio.Channel]) -> Driver:
    """The driver for the plan's workload."""
    if plan.config.workload in WATCH_WORKLOADS:
        from bench.watching import WatchDriver

        return WatchDriver(plan, channels)
    from bench.closed_loop import ClosedLoop

    return ClosedLoop(plan, channels)


async def _drive(conn: Connection, plan: ProcPlan) -> dict[str, Any] | None:
    endpoints = plan.target.endpoints
    channels = [
        open_channel(endpoints[(plan.first_conn + i) % len(endpoints)], plan.target)
        for i in range(plan.conns)
    ]
    try:
        try:
            ready = asyncio.gather(*(c.channel_ready() for c in channels))
            await asyncio.wait_for(ready, plan.config.timeout)
        except TimeoutError:
            raise ConnectionError(
                f"no connection to {', '.join(endpoints)} within {plan.config.timeout} s"
            ) from None
        driver = make_driver(plan, channels)
        await driver.prepare()
        conn.send(("ready",))
        message = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        if message[0] != "go":
            return None
        return await driver.run(message[1])
    finally:
        await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)


def child_main(conn: Connection, plan: ProcPlan) -> None:
    """Entry point of a spawned client process."""
    try:
        result = asyncio.run(_drive(conn, plan))
    except ConnectionError as err:
        # An unreachable or refusing server: the message says it all, no traceback needed.
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(err).__name__}: {err}"))
    except BaseException:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
    else:
        if result is not None:
            conn.send(("result", result))
    finally:
        conn.close()
