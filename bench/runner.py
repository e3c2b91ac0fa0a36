"""One run: spawn the client processes, start them together, sample the server's memory, and
merge what they report into a ``RunResult``.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from bench import worker
from bench.config import ProcPlan, Target, WorkloadConfig, make_plans
from bench.proctree import Pids, tree_cpu_seconds
from bench.rss import RssSampler, tree_pss_bytes, tree_rss_bytes
from bench.stats import LatencySummary

MIB = 1024 * 1024
# Slack on top of a run's own bounds before the parent gives up on a client process: spawning and
# importing grpc takes a second or two, and a stuck call ends at its own deadline.
_SLACK = 30.0
# The start signal names a moment slightly ahead, so every process starts at the same time.
_START_DELAY = 0.05


class BenchError(RuntimeError):
    """A run could not be completed."""


@dataclass
class RunResult:
    """What one run measured. Latencies in ms, memory in bytes (None: no server PID known)."""

    server: str
    workload: str
    config: dict[str, Any]
    procs: int
    ok: int
    errors: int
    error_kinds: dict[str, int]
    first_error: str
    elapsed: float
    latency: LatencySummary
    rss_before: int | None = None
    rss_peak: int | None = None
    rss_after: int | None = None
    pss_after: int | None = None
    hit_time_limit: bool = False
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Successful operations per second of the measured window."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        """Flat figures for medians and ratios (NaN when not measured)."""

        def mib(value: int | None) -> float:
            return value / MIB if value is not None else math.nan

        figures = {
            "throughput": self.throughput,
            "p50_ms": self.latency.p50,
            "p90_ms": self.latency.p90,
            "p99_ms": self.latency.p99,
            "errors": float(self.errors),
            "rss_peak_mib": mib(self.rss_peak),
        }
        if self.workload in ("load", "watch-idle"):
            figures["rss_after_mib"] = mib(self.rss_after)
            figures["pss_after_mib"] = mib(self.pss_after)
        figures.update(self.extra)
        return figures

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of everything measured."""
        data = asdict(self)
        data["throughput"] = self.throughput
        data["metrics"] = self.metrics()
        return data


def run_workload(
    config: WorkloadConfig,
    target: Target,
    *,
    server: str = "external",
    server_pid: Pids | None = None,
) -> RunResult:
    """Run ``config`` against ``target``; a ``range`` run first loads the keys it reads (unless
    ``config.preload_keys`` is off, for a server that already holds them)."""
    if config.workload == "range" and config.preload_keys:
        preload = _run_phase(config.preload(), target, server, None)
        if preload.errors or preload.hit_time_limit:
            raise BenchError(f"preloading the keyspace failed: {preload.first_error or 'timeout'}")
    return _run_phase(config, target, server, server_pid)


def _spawn(plans: list[ProcPlan]) -> list[tuple[multiprocessing.process.BaseProcess, Connection]]:
    # spawn, not fork: grpc's threads and state do not survive a fork.
    context = multiprocessing.get_context("spawn")
    handles: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    for plan in plans:
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=worker.child_main,
            args=(child_end, plan),
            name=f"ward-bench-client-{plan.index}",
            daemon=True,
        )
        process.start()
        child_end.close()
        handles.append((process, parent_end))
    return handles


def _collect(conns: list[Connection], expected: str, timeout: float) -> list[Any]:
    """One message of kind ``expected`` from every process, in order; raise on errors or timeout."""
    deadline = time.monotonic() + timeout
    replies: dict[int, Any] = {}
    index_of = {id(c): i for i, c in enumerate(conns)}
    while len(replies) < len(conns):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"client processes did not report {expected!r} within {timeout:.0f} s")
        for ready in wait([c for i, c in enumerate(conns) if i not in replies], remaining):
            i = index_of[id(ready)]
            try:
                message = conns[i].recv()
            except EOFError:
                raise BenchError(f"client process {i} died before reporting {expected!r}") from None
            if message[0] == "error":
                raise BenchError(f"client process {i} failed:\n{message[1]}")
            if message[0] != expected:
                raise BenchError(f"client process {i} sent {message[0]!r}, expected {expected!r}")
            replies[i] = message[1] if len(message) > 1 else None
    return [replies[i] for i in range(len(conns))]


def _run_phase(
    config: WorkloadConfig, target: Target, server: str, server_pid: Pids | None
) -> RunResult:
    plans = make_plans(config, target)
    rss_before = tree_rss_bytes(server_pid) if server_pid else None
    sampler = RssSampler(server_pid) if server_pid else None
    handles = _spawn(plans)
    conns = [conn for _, conn in handles]
    try:
        _collect(conns, "ready", config.timeout + _SLACK)
        if sampler:
            sampler.start()
        start_wall = time.time() + _START_DELAY
        for conn in conns:
            conn.send(("go", start_wall))
        cpu_before = _server_cpu_at(server_pid, start_wall + _warmup(config))
        results = _collect(conns, "result", config.warmup + config.window + config.timeout + _SLACK)
        cpu_used = tree_cpu_seconds(server_pid) - cpu_before if server_pid else None
        for process, _ in handles:
            process.join(timeout=_SLACK)
    finally:
        rss_peak = sampler.stop() if sampler else None
        for process, conn in handles:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()
    # Read after the clients are gone, so the figure is the data's, not the connections'.
    rss_after = tree_rss_bytes(server_pid) if server_pid else None
    pss_after = tree_pss_bytes(server_pid) if server_pid else None
    result = merge_results(config, results, server)
    result.rss_before, result.rss_peak = rss_before, rss_peak
    result.rss_after, result.pss_after = rss_after, pss_after
    if cpu_used is not None and result.elapsed > 0:
        result.extra["server_cores"] = cpu_used / result.elapsed
        if result.ok:
            result.extra["server_cpu_us_per_op"] = cpu_used / result.ok * 1e6
    if config.workload == "watch-idle" and rss_before is not None and rss_peak is not None:
        result.extra["rss_per_watcher_b"] = (rss_peak - rss_before) / config.watchers
    return result


def _warmup(config: WorkloadConfig) -> float:
    return 0.0 if config.workload in ("load", "watch", "watch-idle") else config.warmup


def _server_cpu_at(server_pid: Pids | None, wall: float) -> float:
    """The server tree's CPU seconds read at ``wall`` (the start of measurement)."""
    if not server_pid:
        return 0.0
    time.sleep(max(0.0, wall - time.time()))
    return tree_cpu_seconds(server_pid)


def _errors(results: list[dict[str, Any]]) -> tuple[Counter[str], str]:
    kinds: Counter[str] = Counter()
    first = ""
    for r in results:
        kinds.update(r["errors"])
        first = first or r["first_error"]
    return kinds, first


def merge_results(config: WorkloadConfig, results: list[dict[str, Any]], server: str) -> RunResult:
    """One RunResult from the client processes' reports."""
    if config.workload in ("watch", "watch-idle"):
        return merge_watch(config, results, server)
    latencies = array("d")
    for r in results:
        latencies.frombytes(r["latencies"])
    kinds, first = _errors(results)
    start = min(r["measure_start"] for r in results)
    last = max(r["last_end"] for r in results)
    elapsed = max(0.0, last - start) if last else 0.0
    cpu = sum(r["cpu"] for r in results)
    busy = max(r["busy"] for r in results)
    result = RunResult(
        server=server,
        workload=config.workload,
        config=asdict(config),
        procs=len(results),
        ok=len(latencies),
        errors=sum(kinds.values()),
        error_kinds=dict(kinds),
        first_error=first,
        elapsed=elapsed,
        latency=LatencySummary.from_seconds(latencies),
        hit_time_limit=any(r["hit_time_limit"] for r in results),
    )
    # Cores the load generator used: near 1.0 per process means it, not the server, is the limit.
    result.extra["client_cores"] = cpu / busy if busy > 0 else 0.0
    if config.workload == "load":
        keys = sum(r["items"] for r in results)
        result.extra["keys"] = float(keys)
        result.extra["keys_per_s"] = keys / elapsed if elapsed > 0 else 0.0
    return result


def merge_watch(config: WorkloadConfig, results: list[dict[str, Any]], server: str) -> RunResult:
    """Delivery latency of every event whose put was acknowledged, joined by revision."""
    acks: dict[int, float] = {}
    put_latencies = array("d")
    for r in results:
        revs, times = array("q"), array("d")
        revs.frombytes(r["ack_revs"])
        times.frombytes(r["ack_times"])
        acks.update(zip(revs, times, strict=True))
        put_latencies.frombytes(r["put_latencies"])
    delivery: list[float] = []
    for r in results:
        revs, times = array("q"), array("d")
        revs.frombytes(r["event_revs"])
        times.frombytes(r["event_times"])
        delivery.extend(t - acks[rev] for rev, t in zip(revs, times, strict=True) if rev in acks)
    kinds, first = _errors(results)
    watchers = sum(r["watchers"] for r in results)
    result = RunResult(
        server=server,
        workload=config.workload,
        config=asdict(config),
        procs=len(results),
        ok=len(delivery),
        errors=sum(kinds.values()),
        error_kinds=dict(kinds),
        first_error=first,
        elapsed=config.window,
        latency=LatencySummary.from_seconds(delivery),
    )
    result.extra["watchers"] = float(watchers)
    result.extra["streams_lost"] = float(sum(r["streams_lost"] for r in results))
    if config.workload == "watch":
        puts = LatencySummary.from_seconds(put_latencies)
        result.extra["puts"] = float(len(acks))
        result.extra["put_p50_ms"] = puts.p50
        result.extra["events_missing"] = float(len(acks) * watchers - len(delivery))
    return result
