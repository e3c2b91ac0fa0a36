"""ward-bench: percentile math, request bytes, load splitting, RSS of a process tree, the command
line, and one short real run against an etcd the tool starts.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from array import array
from pathlib import Path

import pytest

from bench import wire
from bench.compare import Comparison, round_order
from bench.config import ConfigError, Target, WorkloadConfig, make_plans
from bench.main import build_parser, config_from_args, main
from bench.proctree import process_tree, tree_cpu_seconds
from bench.rss import RssSampler, rss_bytes, tree_rss_bytes
from bench.runner import RunResult, merge_watch
from bench.stats import LatencySummary, median, percentile, ratio, split_evenly
from wardpb.etcdserverpb import rpc_pb2

# --- percentiles and summaries ---------------------------------------------------------------


def test_percentile_interpolates_linearly_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile([float(i) for i in range(1, 11)], 90) == pytest.approx(9.1)
    assert percentile([float(i) for i in range(1, 101)], 99) == pytest.approx(99.01)


def test_percentile_of_one_sample_is_that_sample_and_of_none_is_nan() -> None:
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_sorts_and_reports_milliseconds() -> None:
    summary = LatencySummary.from_seconds([0.003, 0.001, 0.002])
    assert summary.count == 3
    assert summary.p50 == pytest.approx(2.0)
    assert summary.max == pytest.approx(3.0)
    assert summary.mean == pytest.approx(2.0)
    assert math.isnan(LatencySummary.from_seconds([]).p50)


def test_median_skips_nan_and_ratio_refuses_zero() -> None:
    assert median([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert math.isnan(median([math.nan]))
    assert ratio(1.0, 4.0) == 0.25
    assert math.isnan(ratio(1.0, 0.0))


def test_split_evenly_differs_by_at_most_one_and_keeps_the_total() -> None:
    assert split_evenly(10, 3) == [4, 3, 3]
    assert split_evenly(2, 4) == [1, 1, 0, 0]
    assert sum(split_evenly(1001, 7)) == 1001


# --- pre-serialized requests -----------------------------------------------------------------


def test_put_template_renders_the_request_protobuf_would() -> None:
    request = wire.put_template(b"v" * 300).render(wire.key_bytes(42))
    assert request == rpc_pb2.PutRequest(key=b"00000042", value=b"v" * 300).SerializeToString()


def test_range_template_carries_the_consistency() -> None:
    serializable = rpc_pb2.RangeRequest.FromString(
        wire.range_template(serializable=True).render(b"00000001")
    )
    linearizable = rpc_pb2.RangeRequest.FromString(
        wire.range_template(serializable=False).render(b"00000001")
    )
    assert serializable.key == b"00000001" and serializable.serializable
    assert not linearizable.serializable


def test_txn_put_is_one_put_in_success_with_no_compares() -> None:
    txn = rpc_pb2.TxnRequest.FromString(wire.txn_put_template(b"x").render(b"00000009"))
    assert not txn.compare and not txn.failure
    assert [op.request_put.key for op in txn.success] == [b"00000009"]
    assert txn.success[0].request_put.value == b"x"


def test_with_lease_sets_the_lease_field_including_large_ids() -> None:
    base = wire.put_template(b"v").render(b"00000001")
    for lease in (1, 300, 2**62 + 5):
        put = rpc_pb2.PutRequest.FromString(wire.with_lease(base, lease))
        assert (put.key, put.lease) == (b"00000001", lease)


def test_multi_put_txn_holds_every_key_in_order() -> None:
    keys = [wire.key_bytes(i) for i in range(128)]
    txn = rpc_pb2.TxnRequest.FromString(wire.multi_put_txn(wire.put_template(b"v"), keys))
    assert [op.request_put.key for op in txn.success] == keys


def test_watch_create_covers_the_prefix() -> None:
    request = rpc_pb2.WatchRequest.FromString(wire.watch_create(b"a/"))
    assert (request.create_request.key, request.create_request.range_end) == (b"a/", b"a0")
    assert wire.prefix_end(b"a\xff") == b"b"


def test_template_rejects_a_key_of_the_wrong_length() -> None:
    with pytest.raises(ValueError):
        wire.put_template(b"v").render(b"short")


# --- splitting the load over client processes ------------------------------------------------

_TARGET = Target(("127.0.0.1:1",))


def test_plans_split_clients_connections_and_total() -> None:
    config = WorkloadConfig("put", clients=64, conns=8, procs=2, total=1001)
    plans = make_plans(config, _TARGET)
    assert [p.clients for p in plans] == [32, 32]
    assert [p.conns for p in plans] == [4, 4]
    assert [p.first_conn for p in plans] == [0, 4]
    assert sum(p.quota or 0 for p in plans) == 1001


def test_plans_never_have_more_processes_than_connections_or_clients() -> None:
    assert len(make_plans(WorkloadConfig("put", clients=16, conns=1, procs=2), _TARGET)) == 1
    assert len(make_plans(WorkloadConfig("put", clients=1, conns=4, procs=2), _TARGET)) == 1


def test_load_plans_cover_every_batch_exactly_once() -> None:
    config = WorkloadConfig("load", clients=8, conns=3, procs=3, keys=1000, txn_ops=128)
    plans = make_plans(config, _TARGET)
    batches = [b for p in plans for b in range(p.offset, p.offset + (p.quota or 0))]
    assert batches == list(range(8))  # ceil(1000 / 128)


def test_watch_plans_place_every_watcher_and_one_writer() -> None:
    config = WorkloadConfig("watch", watchers=1000, conns=3, streams=5, procs=2)
    plans = make_plans(config, _TARGET)
    assert sum(p.watchers for p in plans) == 1000
    assert sum(len(p.per_stream) for p in plans) == 5
    assert [p.writer for p in plans] == [True, False]


def test_invalid_config_is_refused() -> None:
    for bad in (
        WorkloadConfig("put", total=0),
        WorkloadConfig("range", consistency="x"),
        WorkloadConfig("put", key_space=10**9),
        WorkloadConfig("nope"),
    ):
        with pytest.raises(ConfigError):
            bad.validate()


# --- command line ----------------------------------------------------------------------------


def test_compare_arguments_parse_into_the_config() -> None:
    args = build_parser().parse_args(
        ["compare", "--workload", "put", "--clients", "64", "--conns", "8", "--runs", "3"]
    )
    config = config_from_args(args)
    assert (args.command, args.runs) == ("compare", 3)
    assert (config.workload, config.clients, config.conns, config.procs) == ("put", 64, 8, 2)
    assert config.val_size == 256


def test_load_subcommand_is_the_load_workload_with_several_clients() -> None:
    args = build_parser().parse_args(["load", "--keys", "1000000", "--start", "etcd"])
    config = config_from_args(args)
    assert (config.workload, config.keys, config.clients) == ("load", 1_000_000, 8)


def test_server_args_take_dashed_flags_after_equals() -> None:
    args = build_parser().parse_args(
        ["run", "--workload", "range", "--consistency", "s", "--start", "ward",
         "--server-args=--workers 2"]
    )  # fmt: skip
    assert args.server_args == "--workers 2"
    assert config_from_args(args).consistency == "s"


def test_bad_arguments_exit_with_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--workload", "range", "--consistency", "x"])
    assert main(["run", "--workload", "put"]) == 2  # neither --start nor --endpoints
    assert main(["run", "--workload", "put", "--start", "etcd", "--total", "0"]) == 2
    assert "ward-bench:" in capsys.readouterr().err


def test_endpoint_urls_become_grpc_targets() -> None:
    target = Target.from_urls("http://127.0.0.1:2379, 127.0.0.1:2479")
    assert target.endpoints == ("127.0.0.1:2379", "127.0.0.1:2479")
    assert target.tls is None
    assert Target.from_urls("https://localhost:2379").tls is not None
    with pytest.raises(ConfigError):
        Target.from_urls("unix:///tmp/sock")


# --- comparison ------------------------------------------------------------------------------


def _result(server: str, ok: int, p50: float) -> RunResult:
    latency = LatencySummary(ok, p50, p50, p50, p50, p50)
    return RunResult(server, "put", {}, 2, ok, 0, {}, "", 1.0, latency)


def test_comparison_reports_medians_and_ward_over_etcd_ratios() -> None:
    comparison = Comparison(WorkloadConfig("put"))
    comparison.runs["etcd"] = [_result("etcd", n, 1.0) for n in (900, 1000, 5000)]
    comparison.runs["ward"] = [_result("ward", n, 2.0) for n in (400, 500, 100)]
    assert comparison.medians("etcd")["throughput"] == 1000
    assert comparison.ratios()["throughput"] == pytest.approx(0.4)
    assert comparison.ratios()["p50_ms"] == pytest.approx(2.0)
    assert list(round_order(0)) != list(round_order(1))


def test_watch_latency_joins_events_to_put_acks_by_revision() -> None:
    def arr(kind: str, values: list[float]) -> bytes:
        return array(kind, values).tobytes()

    writer = {
        "watchers": 1, "ack_revs": arr("q", [10, 11]), "ack_times": arr("d", [100.0, 101.0]),
        "put_latencies": arr("d", [0.001, 0.001]), "event_revs": arr("q", [10, 11]),
        "event_times": arr("d", [100.002, 101.004]), "errors": {}, "first_error": "",
        "streams_lost": 0,
    }  # fmt: skip
    other = {
        **writer, "ack_revs": b"", "ack_times": b"", "put_latencies": b"",
        "event_revs": arr("q", [10, 99]), "event_times": arr("d", [100.006, 102.0]),
    }  # fmt: skip
    result = merge_watch(WorkloadConfig("watch", duration=2.0), [writer, other], "etcd")
    assert result.ok == 3  # revision 99 was never acknowledged: not a sample
    assert result.latency.max == pytest.approx(6.0)
    assert result.extra["events_missing"] == 1  # 2 puts x 2 watchers, 3 delivered


# --- server memory ---------------------------------------------------------------------------

_TREE = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
        "import time; b = bytearray(64 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
        "print('ready', flush=True); time.sleep(60)"])
    time.sleep(60)
    """
)


def test_rss_sums_the_whole_process_tree() -> None:
    root = subprocess.Popen([sys.executable, "-c", _TREE], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            tree = process_tree(root.pid)
            if len(tree) == 2 and rss_bytes(tree[1]) > 64 * 1024 * 1024:
                break
            time.sleep(0.05)
        assert len(tree) == 2 and tree[0] == root.pid
        child = tree[1]
        assert tree_rss_bytes(root.pid) >= rss_bytes(root.pid) + 64 * 1024 * 1024
        with RssSampler(root.pid, interval=0.02) as sampler:
            time.sleep(0.1)
        assert sampler.samples >= 3
        assert sampler.peak >= rss_bytes(root.pid) + rss_bytes(child) - 1024 * 1024
        assert tree_cpu_seconds(root.pid) > 0  # two interpreters started and touched 64 MiB
    finally:
        os.killpg(root.pid, signal.SIGKILL)
        root.wait()
    assert tree_rss_bytes(root.pid) == 0


def test_rss_and_cpu_sum_over_several_roots() -> None:
    # A cluster's members are separate process groups: every root's tree counts, once.
    # Each child says when it is done starting: until then its RSS grows between two reads.
    script = "import sys; print(flush=True); sys.stdin.read()"
    roots = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        for r in roots:
            assert r.stdout is not None
            r.stdout.readline()
        pids = tuple(r.pid for r in roots)
        assert sorted(process_tree(pids)) == sorted(pids)
        assert process_tree((pids[0], pids[0])) == [pids[0]]
        assert tree_rss_bytes(pids) == rss_bytes(pids[0]) + rss_bytes(pids[1])
    finally:
        for r in roots:
            r.kill()
            r.wait()
    assert process_tree(pids) == []


def test_cluster_members_get_etcds_flags_for_a_new_cluster() -> None:
    from bench.servers import etcd_flags

    single = etcd_flags("bench", Path("/d"), 2379, 2380)
    assert "--initial-cluster-state" not in single
    assert single[single.index("--initial-cluster") + 1] == "bench=http://127.0.0.1:2380"
    cluster = "m0=http://127.0.0.1:2380,m1=http://127.0.0.1:2382"
    flags = etcd_flags("m1", Path("/d"), 2381, 2382, initial_cluster=cluster)
    assert flags[flags.index("--initial-cluster") + 1] == cluster
    assert flags[flags.index("--initial-cluster-state") + 1] == "new"
    assert flags[flags.index("--listen-peer-urls") + 1] == "http://127.0.0.1:2382"
    assert flags[flags.index("--listen-client-urls") + 1] == "http://127.0.0.1:2381"
    assert build_parser().parse_args(["run", "--workload", "put", "--members", "3"]).members == 3


# --- a real run ------------------------------------------------------------------------------


def _bench_servers() -> list[int]:
    """PIDs of servers whose command line names a ward-bench data dir."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"ward-bench-" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")
def test_real_put_run_against_a_started_etcd_counts_every_request(tmp_path: Path) -> None:
    before = set(_bench_servers())
    out = tmp_path / "run.json"
    status = main(
        ["run", "--workload", "put", "--start", "etcd", "--total", "200", "--clients", "4",
         "--conns", "2", "--warmup", "0.2", "--json", str(out)]
    )  # fmt: skip
    assert status == 0
    result = json.loads(out.read_text())
    assert (result["ok"], result["errors"]) == (200, 0)
    assert result["latency"]["count"] == 200 and result["latency"]["p50"] > 0
    assert result["rss_peak"] > 0
    assert set(_bench_servers()) <= before  # the started etcd is gone
