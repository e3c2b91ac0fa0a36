"""`check perf` and `check datascale`: etcdctl 3.4's load checks, same loads, same verdicts.

`check perf` puts random 256-byte keys with 1 KiB values under --prefix at a fixed rate for 60
seconds from many concurrent clients, deletes them, and judges the throughput (over 90% of the
rate), the slowest request (at most 0.5 s) and the standard deviation of latencies (at most
0.1 s). `check datascale` puts a fixed number of 512+512-byte pairs as fast as it can and
reports how much the server's resident memory grew, read from its Prometheus `/metrics`.

Differences from etcdctl, all deliberate:

- The progress bar is drawn only on a terminal (`ward.cli.progress`); etcdctl's pb bar also
  writes its frames into a pipe. Everything else on stdout is etcdctl's, byte for byte.
- etcdctl reads `/metrics` over plain HTTP from the first gRPC endpoint. etcd serves both on
  one port; Ward serves /metrics only on `--listen-metrics-urls` (or
  `--listen-client-http-urls`), so against Ward that fetch fails exactly as etcdctl's does
  ("fetch error: ..." then FAIL). wardctl then adds a hint on stderr, and takes the metrics
  listener's URL from the Ward-only flag `--metrics-url` (hidden, so that the help stays
  etcdctl's), over TLS with the client's certificates when it is https.
- Against Ward every datascale put fails ("key is too large"): its keys are the prefix plus
  512 bytes, and Ward (lmdb) takes keys of at most 511. etcdctl fails the same way there.
- The concurrent clients share at most `MAX_CONNECTIONS` gRPC connections (HTTP/2 carries
  concurrent calls on one); the number of requests in flight is etcdctl's.
"""

from __future__ import annotations

import math
import queue
import random
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ward.cli.command import Command, Invocation
from ward.cli.config import apply_env, client_kwargs, new_client
from ward.cli.exits import (
    EXIT_BAD_FEATURE,
    EXIT_ERROR,
    EXIT_INVALID_INPUT,
    CliExit,
    error_text,
)
from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import quote
from ward.cli.metrics import RESIDENT_MEMORY, endpoint_metrics_url, resident_memory
from ward.cli.progress import Progress, progress_bar
from ward.client import Client
from ward.errors import EtcdError

__all__ = [
    "DATASCALE_LOADS",
    "PERF_LOADS",
    "Stats",
    "check_command",
    "go_float",
    "summarize",
    "varint_key",
]

MAX_CONNECTIONS = 16
CLEANUP_TIMEOUT_S = 30.0  # etcdctl's deadline for the delete, compaction and defragmentation
BAR_STYLE = "Bom !"  # etcdctl's pb format: "B", then "o"s, an "m" and spaces up to "!"

METRICS_HINT = (
    "hint: Ward serves /metrics on --listen-metrics-urls (or --listen-client-http-urls), not on"
    " its gRPC endpoint; give that URL with --metrics-url"
)


@dataclass(frozen=True)
class PerfLoad:
    """A `check perf` workload: puts per second, concurrent clients, seconds."""

    limit: int
    clients: int
    duration: int


@dataclass(frozen=True)
class DatascaleLoad:
    """A `check datascale` workload: pairs to put, bytes per pair, concurrent clients."""

    limit: int
    kv_size: int
    clients: int


PERF_LOADS = {
    "s": PerfLoad(limit=150, clients=50, duration=60),
    "m": PerfLoad(limit=1000, clients=200, duration=60),
    "l": PerfLoad(limit=8000, clients=500, duration=60),
    "xl": PerfLoad(limit=15000, clients=1000, duration=60),
}

DATASCALE_LOADS = {
    "s": DatascaleLoad(limit=10_000, kv_size=1024, clients=50),
    "m": DatascaleLoad(limit=100_000, kv_size=1024, clients=200),
    "l": DatascaleLoad(limit=1_000_000, kv_size=1024, clients=500),
    # etcd's upper bound: three versions of a million objects.
    "xl": DatascaleLoad(limit=3_000_000, kv_size=1024, clients=1000),
}

_LOAD_ALIASES = {
    "s": "s",
    "small": "s",
    "m": "m",
    "medium": "m",
    "l": "l",
    "large": "l",
    "xl": "xl",
    "xLarge": "xl",
}


def _model(inv: Invocation) -> str:
    load = str(inv.flags.value("load"))
    model = _LOAD_ALIASES.get(load)
    if model is None:
        raise CliExit(EXIT_BAD_FEATURE, f"unknown load option {load}")
    return model


# -- statistics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """What etcd's pkg/report makes of the requests: successes per second over the whole run,
    the slowest success and the population standard deviation of successes (seconds), and
    the count of each error text."""

    rps: float
    slowest: float
    stddev: float
    errors: dict[str, int]


def summarize(latencies: list[float], errors: dict[str, int], total_s: float) -> Stats:
    """pkg/report's Stats; with no success the deviation is NaN, as Go computes 0/0."""
    n = len(latencies)
    rps = n / total_s if total_s > 0 else math.inf
    if n == 0:
        return Stats(rps, 0.0, math.nan, dict(errors))
    mean = sum(latencies) / n
    stddev = math.sqrt(sum((x - mean) ** 2 for x in latencies) / n)
    return Stats(rps, max(latencies), stddev, dict(errors))


def go_float(value: float) -> str:
    """Go's %f: six decimals, and NaN / +Inf / -Inf for the special values."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:f}"


def varint_key(buf: bytearray, value: int) -> None:
    """Go's binary.PutVarint of a non-negative `value` into the start of `buf`.

    etcdctl reuses one zeroed buffer for every key, so a shorter varint leaves the tail of the
    previous one in place; writing into the same buffer keeps that.
    """
    ux = value << 1  # zigzag encoding of a non-negative number
    i = 0
    while ux >= 0x80:
        buf[i] = (ux & 0x7F) | 0x80
        ux >>= 7
        i += 1
    buf[i] = ux


class _Keys:
    """etcdctl's random keys: the prefix, then a buffer starting with a random varint."""

    def __init__(self, prefix: bytes, size: int) -> None:
        self._prefix = prefix
        self._buf = bytearray(size)

    def next(self) -> bytes:
        varint_key(self._buf, random.randrange((1 << 63) - 1))
        return self._prefix + bytes(self._buf)


# -- the load --------------------------------------------------------------------------------


class _Load:
    """Worker threads that take (key, value) pairs from a queue and put them, each timed.

    `workers` requests are in flight at most, as with etcdctl's one goroutine per client.
    """

    def __init__(
        self, clients: list[Client], workers: int, on_done: Callable[[], None] | None = None
    ) -> None:
        self.requests: queue.Queue[tuple[bytes, bytes] | None] = queue.Queue(maxsize=workers)
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self._on_done = on_done
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, args=(clients[i % len(clients)],), daemon=True)
            for i in range(workers)
        ]
        self.began = 0.0
        self.total_s = 0.0

    def start(self) -> None:
        self.began = time.monotonic()
        for thread in self._threads:
            thread.start()

    def _work(self, client: Client) -> None:
        while (item := self.requests.get()) is not None:
            key, value = item
            start = time.monotonic()
            error = None
            try:
                # etcdctl puts with a context that has no deadline.
                client.put(key, value, timeout=math.inf)
            except EtcdError as exc:
                error = error_text(exc)
            end = time.monotonic()
            with self._lock:
                if error is None:
                    self.latencies.append(end - start)
                else:
                    self.errors[error] += 1
            if self._on_done is not None:
                self._on_done()

    def close(self) -> None:
        """No more requests: each worker stops once the queue is drained."""
        for _ in self._threads:
            self.requests.put(None)

    def wait(self) -> Stats:
        for thread in self._threads:
            thread.join()
        self.total_s = time.monotonic() - self.began
        with self._lock:
            return summarize(self.latencies, dict(self.errors), self.total_s)


def _clients(inv: Invocation, count: int) -> tuple[list[Client], dict[str, object]]:
    # etcdctl's clientConfigFromCmd once (one password prompt), then a client per connection.
    apply_env(inv)
    kwargs = client_kwargs(inv)
    clients: list[Client] = []
    try:
        for _ in range(min(count, MAX_CONNECTIONS)):
            clients.append(new_client(inv, kwargs))
    except BaseException:
        _close(clients)
        raise
    return clients, kwargs


def _close(clients: list[Client]) -> None:
    for client in clients:
        client.close()


def _ensure_empty(inv: Invocation, client: Client, prefix: str, timeout: float) -> None:
    try:
        resp = client.get(_raw(prefix), prefix=True, limit=1, timeout=timeout)
    except EtcdError as exc:
        raise CliExit(EXIT_ERROR, error_text(exc)) from None
    if resp.kvs:
        raise CliExit(
            EXIT_INVALID_INPUT,
            f"prefix {quote(prefix)} has keys. Delete with {inv.prog} del --prefix {prefix} first",
        )


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _clean_up(
    inv: Invocation, client: Client, endpoints: list[str], prefix: str, timeout: float
) -> None:
    """Delete the check's keys, then compact and defragment when asked to."""
    try:
        resp = client.delete(_raw(prefix), prefix=True, timeout=timeout)
    except EtcdError as exc:
        raise CliExit(EXIT_ERROR, error_text(exc)) from None
    if inv.flags.value("auto-compact"):
        rev = resp.header.revision
        _say(inv, f"Compacting with revision {rev}")
        try:
            client.compact(rev, physical=True, timeout=CLEANUP_TIMEOUT_S)
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
        _say(inv, f"Compacted with revision {rev}")
    if inv.flags.value("auto-defrag"):
        for ep in endpoints:
            _say(inv, f"Defragmenting {quote(ep)}")
            try:
                client.defragment(ep, timeout=CLEANUP_TIMEOUT_S)
            except EtcdError as exc:
                raise CliExit(EXIT_ERROR, error_text(exc)) from None
            _say(inv, f"Defragmented {quote(ep)}")


def _say(inv: Invocation, line: str) -> None:
    # Flushed at once: these commands run for a while and the user watches them.
    inv.out(line)
    inv.stdout.flush()


def _report_errors(inv: Invocation, stats: Stats) -> None:
    _say(inv, "FAIL: too many errors")
    for text, count in sorted(stats.errors.items()):
        _say(inv, f"FAIL: ERROR({text}) -> {count}")


# -- check perf ------------------------------------------------------------------------------


def _offer_at_rate(load: _Load, keys: _Keys, value: bytes, rate: int, deadline: float) -> None:
    """Queue puts at `rate` per second until `deadline`, like golang.org/x/time/rate with a
    burst of one: a request waits for its slot, and no slot is kept for later while the queue
    is full. Stops at the first slot past the deadline (the limiter refuses such a wait)."""
    interval = 1.0 / rate
    slot = time.monotonic()
    while True:
        now = time.monotonic()
        slot = max(slot, now)
        if slot > deadline:
            return
        if slot > now:
            time.sleep(slot - now)
        load.requests.put((keys.next(), value))
        slot += interval


def _run_perf(inv: Invocation) -> int:
    cfg = PERF_LOADS[_model(inv)]
    prefix = str(inv.flags.value("prefix"))
    clients, kwargs = _clients(inv, cfg.clients)
    try:
        _ensure_empty(inv, clients[0], prefix, timeout=cfg.duration)
        load = _Load(clients, cfg.clients)
        with progress_bar(inv, cfg.duration, style=BAR_STYLE) as bar:
            _count_seconds(bar, cfg.duration)
            load.start()
            keys = _Keys(_raw(prefix), 256)
            _offer_at_rate(load, keys, bytes(1024), cfg.limit, load.began + cfg.duration)
            load.close()
            stats = load.wait()
        endpoints = kwargs["endpoints"]
        assert isinstance(endpoints, list)
        _clean_up(inv, clients[0], endpoints, prefix, CLEANUP_TIMEOUT_S)
    finally:
        _close(clients)
    return _perf_verdict(inv, stats, cfg)


def _count_seconds(bar: Progress, seconds: int) -> None:
    # etcdctl's bar counts the seconds of the run, whatever the requests do.
    def tick() -> None:
        for _ in range(seconds):
            time.sleep(1)
            bar.add(1)

    if bar.enabled:
        threading.Thread(target=tick, name="check-perf-seconds", daemon=True).start()


def _perf_verdict(inv: Invocation, stats: Stats, cfg: PerfLoad) -> int:
    ok = True
    if stats.errors:
        _report_errors(inv, stats)
        ok = False
    writes = int(stats.rps) + 1
    if stats.rps / cfg.limit <= 0.9:
        _say(inv, f"FAIL: Throughput too low: {writes} writes/s")
        ok = False
    else:
        _say(inv, f"PASS: Throughput is {writes} writes/s")
    # etcdctl's own wording: these two failures carry no "FAIL:".
    if stats.slowest > 0.5:
        _say(inv, f"Slowest request took too long: {go_float(stats.slowest)}s")
        ok = False
    else:
        _say(inv, f"PASS: Slowest request took {go_float(stats.slowest)}s")
    if stats.stddev > 0.1:
        _say(inv, f"Stddev too high: {go_float(stats.stddev)}s")
        ok = False
    else:
        _say(inv, f"PASS: Stddev is {go_float(stats.stddev)}s")
    if ok:
        _say(inv, "PASS")
        return 0
    _say(inv, "FAIL")
    raise CliExit(EXIT_ERROR)


# -- check datascale: the server's memory from /metrics --------------------------------------


def _tls_context(kwargs: dict[str, object]) -> ssl.SSLContext:
    # The client's own TLS material, for a metrics listener served over https.
    cacert = kwargs.get("cacert")
    context = ssl.create_default_context(cafile=str(cacert) if cacert else None)
    cert, key = kwargs.get("cert"), kwargs.get("key")
    if cert:
        context.load_cert_chain(str(cert), str(key) if key else None)
    if kwargs.get("insecure_skip_verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _memory_source(inv: Invocation, kwargs: dict[str, object]) -> Callable[[], float]:
    """How to read the server's memory: from --metrics-url when given, else as etcdctl does,
    from the first endpoint (with a hint on stderr when that fails)."""
    given = str(inv.flags.value("metrics-url"))
    if given:
        parts = urllib.parse.urlsplit(given)
        url = given if parts.path not in ("", "/") else given.rstrip("/") + "/metrics"
        context = _tls_context(kwargs) if parts.scheme == "https" else None
        return lambda: resident_memory(lambda line: _say(inv, line), url, context)
    endpoints = kwargs["endpoints"]
    assert isinstance(endpoints, list)
    url = endpoint_metrics_url(endpoints[0])

    def read() -> float:
        found = resident_memory(lambda line: _say(inv, line), url)
        if found == 0:
            inv.err(METRICS_HINT)
        return found

    return read


def _memory_unread(inv: Invocation, when: str) -> None:
    _say(inv, f"FAIL: Could not read {RESIDENT_MEMORY} {when} the put operations.")
    raise CliExit(EXIT_ERROR)


def _run_datascale(inv: Invocation) -> int:
    cfg = DATASCALE_LOADS[_model(inv)]
    prefix = str(inv.flags.value("prefix"))
    clients, kwargs = _clients(inv, cfg.clients)
    endpoints = kwargs["endpoints"]
    assert isinstance(endpoints, list)
    try:
        # etcdctl's read here has no deadline.
        _ensure_empty(inv, clients[0], prefix, timeout=math.inf)
        memory = _memory_source(inv, kwargs)
        before = memory()
        if before == 0:
            _memory_unread(inv, "before")
        _say(
            inv,
            f"Start data scale check for work load [{cfg.limit} key-value pairs, "
            f"{cfg.kv_size} bytes per key-value, {cfg.clients} concurrent clients].",
        )
        with progress_bar(inv, cfg.limit, style=BAR_STYLE) as bar:
            # Every request counts on the bar, failed or not, as in etcdctl.
            load = _Load(clients, cfg.clients, on_done=bar.add)
            load.start()
            keys, value = _Keys(_raw(prefix), 512), bytes(512)
            for _ in range(cfg.limit):
                load.requests.put((keys.next(), value))
            load.close()
            stats = load.wait()
        after = memory()
        if after == 0:
            _memory_unread(inv, "after")
        _clean_up(inv, clients[0], endpoints, prefix, math.inf)
    finally:
        _close(clients)
    if stats.errors:
        _report_errors(inv, stats)
        raise CliExit(EXIT_ERROR)
    used_mb = (after - before) / (1024 * 1024)
    _say(inv, f"PASS: Approximate system memory used : {used_mb:.2f} MB.")
    return 0


# -- the commands ----------------------------------------------------------------------------


def _common_flags(what: str, default_prefix: str) -> list[Flag]:
    return [
        Flag(
            "load",
            Kind.STRING,
            "s",
            f"The {what} check's workload model. Accepted workloads: s(small), m(medium), "
            "l(large), xl(xLarge)",
        ),
        Flag(
            "prefix",
            Kind.STRING,
            default_prefix,
            f"The prefix for writing the {what} check's keys.",
        ),
        Flag(
            "auto-compact",
            Kind.BOOL,
            False,
            "Compact storage with last revision after test is finished.",
        ),
        Flag("auto-defrag", Kind.BOOL, False, "Defragment storage after test is finished."),
    ]


def check_command() -> Command:
    """The `check` group: `perf` and `datascale`."""
    group = Command(
        use="check <subcommand>", short="commands for checking properties of the etcd cluster"
    )
    group.add(
        Command(
            use="perf [options]",
            short="Check the performance of the etcd cluster",
            run=_run_perf,
            flags=_common_flags("performance", "/etcdctl-check-perf/"),
        ),
        Command(
            use="datascale [options]",
            short=(
                "Check the memory usage of holding data for different workloads on a given "
                "server endpoint."
            ),
            long=(
                "If no endpoint is provided, localhost will be used. If multiple endpoints are "
                "provided, first endpoint will be used."
            ),
            run=_run_datascale,
            flags=[
                *_common_flags("datascale", "/etcdctl-check-datascale/"),
                Flag(
                    "metrics-url",
                    Kind.STRING,
                    "",
                    "URL of the server's metrics listener (Ward: --listen-metrics-urls), "
                    "read instead of the first endpoint's /metrics",
                    hidden=True,
                ),
            ],
        ),
    )
    return group
