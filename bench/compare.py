"""etcd against Ward in one invocation: interleaved rounds, a fresh server per run, medians and
the Ward/etcd ratio of each figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench.config import Target, WorkloadConfig
from bench.credentials import DEFAULT_USER, enable_auth, fetch_token
from bench.runner import RunResult, run_workload
from bench.servers import started_server
from bench.stats import median, ratio

KINDS = ("etcd", "ward")


@dataclass(frozen=True)
class ServerOptions:
    """How compare starts each kind of server."""

    ward_args: tuple[str, ...] = ()
    etcd_args: tuple[str, ...] = ()
    ward_cmd: str | None = None
    etcd_bin: str = "etcd"
    data_root: str | None = None
    tls: bool = False  # mutual TLS with a fresh CA, the same for both servers
    auth: bool = False  # auth on, JWT tokens (see bench.credentials.enable_auth)
    members: int = 1  # cluster members of each kind; clients spread over all of them


@dataclass
class Comparison:
    """Every run of both servers, and the medians and ratios derived from them."""

    config: WorkloadConfig
    runs: dict[str, list[RunResult]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def medians(self, kind: str) -> dict[str, float]:
        """Median of each metric over ``kind``'s runs."""
        runs = self.runs[kind]
        if not runs:
            return {}
        names = list(runs[0].metrics())
        return {name: median(r.metrics().get(name, float("nan")) for r in runs) for name in names}

    def ratios(self) -> dict[str, float]:
        """Ward median / etcd median, for every metric both have."""
        etcd, ward = self.medians("etcd"), self.medians("ward")
        return {name: ratio(ward[name], etcd[name]) for name in etcd if name in ward}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: config, every run, medians, ratios."""
        return {
            "config": asdict(self.config),
            "runs": {k: [r.to_json() for r in v] for k, v in self.runs.items()},
            "median": {k: self.medians(k) for k in KINDS},
            "ratio_ward_over_etcd": self.ratios(),
        }


def round_order(round_index: int) -> Sequence[str]:
    """Which server goes first in a round: alternating, so neither always runs on a warm machine."""
    return KINDS if round_index % 2 == 0 else KINDS[::-1]


def run_compare(
    config: WorkloadConfig,
    *,
    runs: int,
    options: ServerOptions,
    user: tuple[str, str] | None = None,
    progress: Callable[[str, int, RunResult], None] | None = None,
) -> Comparison:
    """``runs`` rounds of one etcd run and one Ward run each, every run on a fresh server."""
    comparison = Comparison(config)
    for round_index in range(runs):
        for kind in round_order(round_index):
            extra = options.ward_args if kind == "ward" else options.etcd_args
            with started_server(
                kind,
                extra_args=extra,
                ward_cmd=options.ward_cmd,
                etcd_bin=options.etcd_bin,
                data_root=options.data_root,
                tls=options.tls,
                jwt=options.auth,
                members=options.members,
            ) as server:
                target = Target(server.endpoints, server.tls)
                login = user or (DEFAULT_USER if options.auth else None)
                if options.auth and login:
                    enable_auth(target, *login)
                if login:
                    target = replace(target, token=fetch_token(target, *login), credentials=login)
                result = run_workload(config, target, server=kind, server_pid=server.pids)
                result.config["members"] = server.members
            comparison.runs[kind].append(result)
            if progress:
                progress(kind, round_index, result)
    return comparison
