"""`/metrics`: Prometheus text exposition with etcd's metric names where the meaning is shared.

Values are read when scraped, from the state that already exists (driver, backend, peer
transport, RPC counters): nothing is added to the request path but the RPC layer's counter
increments. Process metrics come from /proc, as Go's process collector reads them.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]


@dataclass(slots=True)
class Family:
    name: str
    kind: str  # "counter", "gauge" or "histogram"
    help: str
    collect: Callable[[], Iterable[Sample]]


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


@dataclass(slots=True)
class Registry:
    families: list[Family] = field(default_factory=list)

    def add(self, name: str, kind: str, help: str, collect: Callable[[], Iterable[Sample]]) -> None:
        self.families.append(Family(name, kind, help, collect))

    def gauge(self, name: str, help: str, value: Callable[[], float]) -> None:
        self.add(name, "gauge", help, lambda: [((), float(value()))])

    def counter(self, name: str, help: str, value: Callable[[], float]) -> None:
        self.add(name, "counter", help, lambda: [((), float(value()))])

    def render(self) -> bytes:
        out: list[str] = []
        for f in self.families:
            try:
                samples = list(f.collect())
            except Exception as e:  # one broken source must not hide the others
                out.append(f"# {f.name} unavailable: {type(e).__name__}")
                continue
            out.append(f"# HELP {f.name} {f.help}")
            out.append(f"# TYPE {f.name} {f.kind}")
            for labels, value in samples:
                name = f.name
                if labels and labels[0][0] == "":  # a histogram's series: _bucket, _sum, _count
                    name += labels[0][1]
                    labels = labels[1:]
                if labels:
                    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    out.append(f"{name}{{{inner}}} {_number(value)}")
                else:
                    out.append(f"{name} {_number(value)}")
        return ("\n".join(out) + "\n").encode()


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """Prometheus's ExponentialBuckets (etcd's disk histograms: 0.001, 2, 14)."""
    return tuple(start * factor**i for i in range(count))


class Histogram:
    """A Prometheus histogram without labels. `observe` may run on another thread (the
    driver's writer): each update is a few list and float operations under the GIL, and a
    scrape that reads mid-update is off by one observation at most."""

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def samples(self) -> Iterable[Sample]:
        total = 0
        for bound, n in zip(self._bounds, self._counts, strict=False):
            total += n
            yield (("", "_bucket"), ("le", _number(bound))), total
        total += self._counts[-1]
        yield (("", "_bucket"), ("le", "+Inf")), total
        yield (("", "_sum"),), self._sum
        yield (("", "_count"),), total


class RPCCounters:
    """grpc_server_started_total / grpc_server_handled_total, as go-grpc-prometheus names them."""

    __slots__ = ("handled", "started")

    def __init__(self) -> None:
        self.started: dict[tuple[str, str, str], int] = {}
        self.handled: dict[tuple[str, str, str, str], int] = {}

    def start(self, kind: str, service: str, method: str) -> None:
        k = (kind, service, method)
        self.started[k] = self.started.get(k, 0) + 1

    def done(self, kind: str, service: str, method: str, code: str) -> None:
        k = (kind, service, method, code)
        self.handled[k] = self.handled.get(k, 0) + 1

    def total(self) -> int:
        """Changes whenever a counter does (workers push only then)."""
        return sum(self.started.values()) + sum(self.handled.values())

    def encode(self) -> bytes:
        """This process's counters, as a worker pushes them to the core (`ipc.COUNTERS`)."""
        return json.dumps(
            {
                "started": [[*k, n] for k, n in self.started.items()],
                "handled": [[*k, n] for k, n in self.handled.items()],
            }
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> RPCCounters:
        out = cls()
        try:
            value = json.loads(data)
            out.started = {(t, s, m): int(n) for t, s, m, n in value["started"]}
            out.handled = {(t, s, m, c): int(n) for t, s, m, c, n in value["handled"]}
        except (ValueError, KeyError, TypeError):
            pass  # a malformed push counts as nothing
        return out

    def register(
        self, reg: Registry, others: Callable[[], Iterable[RPCCounters]] = lambda: ()
    ) -> None:
        """Register this process's counters summed with `others` (the workers' last pushes)."""

        def merged() -> tuple[dict[tuple[str, ...], int], dict[tuple[str, ...], int]]:
            started: dict[tuple[str, ...], int] = dict(self.started)
            handled: dict[tuple[str, ...], int] = dict(self.handled)
            for o in others():
                for k, n in o.started.items():
                    started[k] = started.get(k, 0) + n
                for k2, n in o.handled.items():
                    handled[k2] = handled.get(k2, 0) + n
            return started, handled

        def started() -> Iterable[Sample]:
            for (t, s, m), n in sorted(merged()[0].items()):
                yield (("grpc_method", m), ("grpc_service", s), ("grpc_type", t)), n

        def handled() -> Iterable[Sample]:
            for (t, s, m, c), n in sorted(merged()[1].items()):
                yield (
                    (("grpc_code", c), ("grpc_method", m), ("grpc_service", s), ("grpc_type", t)),
                    n,
                )

        reg.add(
            "grpc_server_started_total",
            "counter",
            "Total number of RPCs started on the server.",
            started,
        )
        reg.add(
            "grpc_server_handled_total",
            "counter",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            handled,
        )


def grpc_code_name(code: object) -> str:
    """grpc-go's name of a status code ("NotFound"), as go-grpc-prometheus labels it."""
    name = getattr(code, "name", str(code))
    return "".join(p.capitalize() for p in name.split("_")).replace("Ok", "OK")


# Counters of this process's RPCs. The core process serves /metrics: workers push theirs to
# it over their link every COUNTER_PUSH_S when they changed (server/worker.py), and the core
# adds each worker's last push to its own (docs/architecture.md, "HTTP endpoints").
RPC = RPCCounters()
COUNTER_PUSH_S = 1.0


class LeaderWatch:
    """Counts leader changes (etcd_server_leader_changes_seen_total) by sampling the driver's
    leader every heartbeat: the driver has no hook for it, and a change lasting less than a
    heartbeat is not one a scrape could see anyway."""

    def __init__(self, leader: Callable[[], int], interval: float) -> None:
        self._leader = leader
        self._interval = interval
        self.changes = 0
        self._last = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def sample(self) -> None:
        lead = self._leader()
        if lead and lead != self._last:
            self.changes += 1
        if lead:
            self._last = lead

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)


_START = time.time()


def _proc_stat() -> list[str]:
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def register_process(reg: Registry) -> None:
    """Go's process collector names (process_*), read from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")

    def cpu() -> float:
        st = _proc_stat()
        return (int(st[11]) + int(st[12])) / tick  # utime + stime

    def start_time() -> float:
        try:
            with open("/proc/stat") as f:
                btime = next(int(ln.split()[1]) for ln in f if ln.startswith("btime"))
            return btime + int(_proc_stat()[19]) / tick
        except (OSError, StopIteration):
            return _START

    def max_fds() -> float:
        import resource

        return float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    reg.counter(
        "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", cpu
    )
    reg.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        lambda: int(_proc_stat()[21]) * page,
    )
    reg.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        lambda: int(_proc_stat()[20]),
    )
    reg.gauge(
        "process_open_fds",
        "Number of open file descriptors.",
        lambda: len(os.listdir("/proc/self/fd")),
    )
    reg.gauge("process_max_fds", "Maximum number of open file descriptors.", max_fds)
    reg.gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        start_time,
    )
