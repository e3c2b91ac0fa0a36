"""What a run does (``WorkloadConfig``), where it goes (``Target``) and how it is split over the
client processes (``ProcPlan``). All plain, picklable data: plans cross the spawn boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from bench.stats import split_evenly
from bench.wire import MAX_KEY_SPACE

# Workloads driven by closed loops of unary calls.
CLOSED_LOOP_WORKLOADS = ("put", "range", "txn-put", "lease", "load", "connect", "authenticate")
WATCH_WORKLOADS = ("watch", "watch-idle")
WORKLOADS = CLOSED_LOOP_WORKLOADS + WATCH_WORKLOADS

DEFAULT_DURATION = 10.0


class ConfigError(ValueError):
    """A run was asked for that cannot be run as given."""


@dataclass(frozen=True)
class WorkloadConfig:
    """One run's workload and load model.

    The run is bounded both ways: ``total`` measured requests (if set) and ``duration`` seconds of
    measurement (``max_duration`` when only ``total`` is given).
    """

    workload: str
    clients: int = 1
    conns: int = 1
    procs: int = 2
    total: int | None = None
    duration: float | None = None
    max_duration: float = 120.0
    warmup: float = 1.0
    key_space: int = 100_000
    key_order: str = "random"
    val_size: int = 256
    consistency: str = "l"
    preload_keys: bool = True
    lease_ttl: int = 60
    keys: int = 100_000
    txn_ops: int = 128
    watchers: int = 1000
    streams: int = 0
    rate: float = 10.0
    timeout: float = 10.0
    seed: int = 1

    def validate(self) -> None:
        """Raise ConfigError on settings no run can honour."""
        checks = [
            (self.workload in WORKLOADS, f"unknown workload {self.workload!r}"),
            (self.clients >= 1, "--clients must be at least 1"),
            (self.conns >= 1, "--conns must be at least 1"),
            (self.procs >= 1, "--procs must be at least 1"),
            (self.total is None or self.total >= 1, "--total must be at least 1"),
            (self.duration is None or self.duration > 0, "--duration must be positive"),
            (self.max_duration > 0, "--max-duration must be positive"),
            (self.warmup >= 0, "--warmup must not be negative"),
            (1 <= self.key_space <= MAX_KEY_SPACE, f"--key-space must be 1..{MAX_KEY_SPACE}"),
            (self.key_order in ("random", "sequential"), "--key-order: random or sequential"),
            (self.val_size >= 0, "--val-size must not be negative"),
            (self.consistency in ("l", "s"), "--consistency: l or s"),
            (self.lease_ttl >= 1, "--lease-ttl must be at least 1"),
            (1 <= self.keys <= MAX_KEY_SPACE, f"--keys must be 1..{MAX_KEY_SPACE}"),
            (1 <= self.txn_ops <= 10_000, "--txn-ops must be 1..10000"),
            (self.watchers >= 1, "--watchers must be at least 1"),
            (self.streams >= 0, "--streams must not be negative"),
            (self.rate > 0, "--rate must be positive"),
            (self.timeout > 0, "--timeout must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def window(self) -> float:
        """Seconds of measurement at most."""
        if self.duration is not None:
            return self.duration
        return self.max_duration if self.total is not None else DEFAULT_DURATION

    @property
    def load_batches(self) -> int:
        """Txns the ``load`` workload sends."""
        return math.ceil(self.keys / self.txn_ops)

    def preload(self) -> WorkloadConfig:
        """The ``load`` run that fills the keyspace a ``range`` run reads."""
        return replace(
            self,
            workload="load",
            keys=self.key_space,
            clients=8,
            conns=min(self.conns, 2),
            total=None,
            duration=None,
            warmup=0.0,
        )


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for https endpoints (client certificate optional)."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Target:
    """The server under test: gRPC targets (``host:port``) plus how to reach them."""

    endpoints: tuple[str, ...]
    tls: TlsFiles | None = None
    token: str | None = None
    # NAME and PASSWORD the `authenticate` workload logs in with (--user).
    credentials: tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_urls(cls, urls: str, tls: TlsFiles | None = None) -> Target:
        """Parse a comma-separated list of ``http(s)://host:port`` (or bare ``host:port``)."""
        endpoints = []
        secure = False
        for url in (u.strip() for u in urls.split(",")):
            if not url:
                continue
            parts = urlsplit(url if "://" in url else f"http://{url}")
            if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
                raise ConfigError(f"bad endpoint {url!r}: want http(s)://host:port")
            secure = secure or parts.scheme == "https"
            endpoints.append(f"{parts.hostname}:{parts.port}")
        if not endpoints:
            raise ConfigError("no endpoints given")
        if secure and tls is None:
            tls = TlsFiles()
        return cls(tuple(endpoints), tls if secure else None)


@dataclass(frozen=True)
class ProcPlan:
    """One client process's share of a run."""

    index: int
    config: WorkloadConfig
    target: Target
    clients: int
    conns: int
    first_conn: int
    # Measured requests this process may send (None: bounded by time only).
    quota: int | None
    # First op number: the first load batch, or where a sequential key walk starts.
    offset: int
    watchers: int = 0
    streams: int = 0
    # Watchers on each of this process's streams.
    per_stream: tuple[int, ...] = ()
    writer: bool = False


def make_plans(config: WorkloadConfig, target: Target) -> list[ProcPlan]:
    """Split clients, connections, quotas and watchers over the client processes.

    A connection belongs to one process, so there are never more processes than connections (nor
    than clients, for closed loops).
    """
    config.validate()
    if config.workload in WATCH_WORKLOADS:
        return _watch_plans(config, target)
    procs = min(config.procs, config.conns, config.clients)
    clients = split_evenly(config.clients, procs)
    conns = split_evenly(config.conns, procs)
    if config.workload == "load":
        quotas: list[int | None] = list(split_evenly(config.load_batches, procs))
    elif config.total is not None:
        quotas = list(split_evenly(config.total, procs))
    else:
        quotas = [None] * procs
    plans = []
    first_conn = offset = 0
    for i in range(procs):
        start = offset if config.workload == "load" else config.key_space * i // procs
        plans.append(
            ProcPlan(
                index=i,
                config=config,
                target=target,
                clients=clients[i],
                conns=conns[i],
                first_conn=first_conn,
                quota=quotas[i],
                offset=start,
            )
        )
        first_conn += conns[i]
        offset += quotas[i] or 0
    return plans


def _watch_plans(config: WorkloadConfig, target: Target) -> list[ProcPlan]:
    streams_total = config.streams or config.conns
    streams_total = min(streams_total, config.watchers)
    procs = min(config.procs, config.conns, streams_total)
    conns = split_evenly(config.conns, procs)
    streams = split_evenly(streams_total, procs)
    # Watchers follow streams so every stream carries a near-equal share.
    per_stream = split_evenly(config.watchers, streams_total)
    plans = []
    first_conn = first_stream = 0
    for i in range(procs):
        mine = per_stream[first_stream : first_stream + streams[i]]
        plans.append(
            ProcPlan(
                index=i,
                config=config,
                target=target,
                clients=0,
                conns=conns[i],
                first_conn=first_conn,
                quota=None,
                offset=0,
                watchers=sum(mine),
                streams=streams[i],
                per_stream=tuple(mine),
                writer=(i == 0 and config.workload == "watch"),
            )
        )
        first_conn += conns[i]
        first_stream += streams[i]
    return plans
