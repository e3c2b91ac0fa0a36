"""Human-readable reports of runs and comparisons, and the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.compare import KINDS, Comparison
from bench.runner import MIB, RunResult

_LABELS = {
    "throughput": "throughput /s",
    "p50_ms": "p50 ms",
    "p90_ms": "p90 ms",
    "p99_ms": "p99 ms",
    "errors": "errors",
    "rss_peak_mib": "peak RSS MiB",
    "rss_after_mib": "RSS after MiB",
    "pss_after_mib": "PSS after MiB",
    "keys": "keys loaded",
    "keys_per_s": "keys/s",
    "watchers": "watchers",
    "streams_lost": "streams lost",
    "puts": "puts",
    "put_p50_ms": "put p50 ms",
    "events_missing": "events missing",
    "rss_per_watcher_b": "RSS B/watcher",
    "client_cores": "client cores",
    "server_cores": "server cores",
    "server_cpu_us_per_op": "server CPU us/op",
}
_UNIT = {"load": "txn/s", "watch": "events/s", "watch-idle": "events/s"}


def _num(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f} MiB"


def describe(config: dict[str, Any]) -> str:
    """One line naming the workload and its load model."""
    workload = config["workload"]
    parts = [workload]
    if workload in ("watch", "watch-idle"):
        parts.append(f"{config['watchers']} watchers")
        if workload == "watch":
            parts.append(f"{config['rate']:g} puts/s")
    elif workload == "load":
        parts.append(f"{config['keys']} keys in txns of {config['txn_ops']}")
    else:
        parts.append(f"{config['key_order']} keys of {config['key_space']}")
    if workload == "range":
        parts.append("serializable" if config["consistency"] == "s" else "linearizable")
    if workload not in ("watch", "watch-idle"):
        parts.append(f"{config['clients']} clients")
    parts.append(f"{config['conns']} conns")
    parts.append(f"val {config['val_size']} B")
    if config.get("members", 1) > 1:
        parts.append(f"{config['members']} members each")
    return ", ".join(parts)


def format_run(result: RunResult) -> str:
    """A few lines reporting one run."""
    latency = result.latency
    unit = _UNIT.get(result.workload, "req/s")
    lines = [
        f"{result.server}: {describe(result.config)}; {result.procs} client processes",
        f"  ok {result.ok}, errors {result.errors} in {result.elapsed:.2f} s"
        f" -> {_num(result.throughput)} {unit}",
    ]
    if latency.count:
        lines.append(
            f"  latency ms: p50 {_num(latency.p50)}  p90 {_num(latency.p90)}"
            f"  p99 {_num(latency.p99)}  max {_num(latency.max)}"
        )
    if result.rss_peak is not None:
        lines.append(
            f"  server RSS: peak {_mib(result.rss_peak)} (before {_mib(result.rss_before)},"
            f" after {_mib(result.rss_after)}; PSS after {_mib(result.pss_after)})"
        )
    if result.extra:
        extras = ", ".join(f"{_LABELS.get(k, k)} {_num(v)}" for k, v in result.extra.items())
        lines.append(f"  {extras}")
    if result.errors:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(result.error_kinds.items()))
        lines.append(f"  errors: {kinds}; first: {result.first_error}")
    if result.hit_time_limit:
        lines.append("  WARNING: the time limit ended the run before --total was reached")
    return "\n".join(lines)


def format_compare(comparison: Comparison) -> str:
    """Medians of both servers and the Ward/etcd ratio, one metric per row."""
    medians = {kind: comparison.medians(kind) for kind in KINDS}
    ratios = comparison.ratios()
    counts = {kind: len(comparison.runs[kind]) for kind in KINDS}
    runs = comparison.runs["etcd"] or comparison.runs["ward"]
    header = describe(runs[0].config) if runs else comparison.config.workload
    lines = [
        f"{header}; medians of {counts['etcd']} etcd and {counts['ward']} Ward runs",
        f"{'metric':<16}{'etcd':>12}{'ward':>12}{'ward/etcd':>11}",
    ]
    names = list(medians["etcd"] or medians["ward"])
    for name in names:
        row = [_num(medians[kind].get(name, math.nan)) for kind in KINDS]
        lines.append(
            f"{_LABELS.get(name, name):<16}{row[0]:>12}{row[1]:>12}"
            f"{_num(ratios.get(name, math.nan)):>11}"
        )
    for kind in KINDS:
        each = ", ".join(_num(r.throughput) for r in comparison.runs[kind])
        lines.append(f"{kind} throughput per run: {each or '-'}")
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    # JSON has no NaN; null says "not measured".
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, NaN as null."""
    Path(path).write_text(json.dumps(_clean(data), indent=2) + "\n")
