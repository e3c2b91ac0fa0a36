"""``ward-bench``: drive etcd or Ward with a Python load generator, or compare them in one run.

ward-bench run --workload put --start etcd --clients 64 --conns 8
ward-bench run --workload range --consistency s --endpoints http://127.0.0.1:2379 --pid 1234
ward-bench compare --workload put --clients 64 --conns 8 --runs 3 --json out.json
ward-bench load --keys 1000000 --val-size 256 --start ward
ward-bench compare --workload load --keys 1000000
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType

from bench.compare import ServerOptions, run_compare
from bench.config import WORKLOADS, ConfigError, Target, TlsFiles, WorkloadConfig
from bench.credentials import DEFAULT_USER, enable_auth, fetch_token, parse_user
from bench.report import format_compare, format_run, write_json
from bench.runner import BenchError, RunResult, run_workload
from bench.servers import SERVER_KINDS, ServerStartError, started_server


def _workload_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("load model")
    g.add_argument("--clients", type=int, default=1, help="closed-loop clients (default 1)")
    g.add_argument("--conns", type=int, default=1, help="gRPC connections (default 1)")
    g.add_argument("--procs", type=int, default=2, help="client processes (default 2)")
    g.add_argument("--total", type=int, help="stop after this many measured requests")
    g.add_argument("--duration", type=float, help="seconds to measure (default 10)")
    g.add_argument(
        "--max-duration", type=float, default=120.0, help="time limit for --total runs (120)"
    )
    g.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (1)")
    g.add_argument("--timeout", type=float, default=10.0, help="per-request deadline, s (10)")
    g.add_argument("--seed", type=int, default=1, help="seed of keys and values (1)")
    g = p.add_argument_group("keys and values")
    g.add_argument("--key-space", type=int, default=100_000, help="distinct keys (100000)")
    g.add_argument("--key-order", choices=("random", "sequential"), default="random")
    g.add_argument("--val-size", type=int, default=256, help="value bytes (256)")
    g.add_argument(
        "--consistency", choices=("l", "s"), default="l", help="range: l(inearizable) or s"
    )
    g.add_argument(
        "--no-preload",
        dest="preload_keys",
        action="store_false",
        help="range: the server already holds the keyspace; do not load it first",
    )
    g.add_argument("--lease-ttl", type=int, default=60, help="lease: TTL of each grant (60)")
    g.add_argument("--keys", type=int, default=100_000, help="load: keys to write (100000)")
    g.add_argument("--txn-ops", type=int, default=128, help="load: puts per txn (128)")
    g = p.add_argument_group("watch")
    g.add_argument("--watchers", type=int, default=1000, help="watchers on the prefix (1000)")
    g.add_argument("--streams", type=int, default=0, help="watch streams (default: --conns)")
    g.add_argument("--rate", type=float, default=10.0, help="watch: puts per second (10)")
    return p


def _server_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("servers started by the bench")
    g.add_argument("--ward-cmd", help="command that runs Ward (default: this checkout, or `ward`)")
    g.add_argument("--etcd-bin", default="etcd", help="etcd binary (default: etcd on PATH)")
    g.add_argument("--data-root", help="where temporary data dirs go (default: $TMPDIR)")
    g.add_argument("--user", help="NAME:PASSWORD to authenticate as, for servers with auth on")
    g.add_argument(
        "--tls",
        action="store_true",
        help="started servers serve mutual TLS (a fresh CA; clients present its certificate)",
    )
    g.add_argument(
        "--auth",
        action="store_true",
        help="started servers get auth on with JWT tokens; requests run as --user (default"
        " bench:bench-password), who may read and write every bench key",
    )
    g.add_argument(
        "--members",
        type=int,
        default=1,
        help="started servers are clusters of this many members on loopback (default 1);"
        " connections spread over every member's client endpoint",
    )
    g.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``ward-bench`` command line."""
    parser = argparse.ArgumentParser(
        prog="ward-bench",
        description="Benchmark Ward or etcd; compare them as a ratio in one run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Pass server flags as --server-args='--flag value' (with '=', since they start "
        "with dashes).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    parents = [_workload_options(), _server_options()]

    run = sub.add_parser("run", parents=parents, help="one run against one server")
    run.add_argument("--workload", choices=WORKLOADS, required=True)
    load = sub.add_parser(
        "load", parents=parents, help="load --keys keys, then report the server's RSS"
    )
    load.set_defaults(workload="load", clients=8, conns=2)
    for p in (run, load):
        g = p.add_argument_group("target")
        g.add_argument("--start", choices=SERVER_KINDS, help="start a fresh server, stop it after")
        g.add_argument("--endpoints", help="running server(s): http(s)://host:port[,...]")
        g.add_argument("--pid", type=int, help="PID of the running server, for its RSS")
        g.add_argument("--server-args", default="", help="extra flags for the started server")
        g.add_argument("--cacert", help="CA bundle for https endpoints")
        g.add_argument("--cert", help="client certificate for https endpoints")
        g.add_argument("--key", help="client key for https endpoints")

    compare = sub.add_parser(
        "compare", parents=parents, help="interleaved etcd and Ward runs, medians and ratios"
    )
    compare.add_argument("--workload", choices=WORKLOADS, required=True)
    compare.add_argument("--runs", type=int, default=3, help="rounds of etcd + Ward (3)")
    compare.add_argument("--ward-args", default="", help="extra Ward flags: --ward-args='--x 1'")
    compare.add_argument("--etcd-args", default="", help="extra etcd flags: --etcd-args='--x 1'")
    return parser


def config_from_args(args: argparse.Namespace) -> WorkloadConfig:
    """The validated workload configuration the parsed arguments describe."""
    config = WorkloadConfig(
        workload=args.workload,
        clients=args.clients,
        conns=args.conns,
        procs=args.procs,
        total=args.total,
        duration=args.duration,
        max_duration=args.max_duration,
        warmup=args.warmup,
        key_space=args.key_space,
        key_order=args.key_order,
        val_size=args.val_size,
        consistency=args.consistency,
        preload_keys=args.preload_keys,
        lease_ttl=args.lease_ttl,
        keys=args.keys,
        txn_ops=args.txn_ops,
        watchers=args.watchers,
        streams=args.streams,
        rate=args.rate,
        timeout=args.timeout,
        seed=args.seed,
    )
    config.validate()
    return config


def _run_one(args: argparse.Namespace, config: WorkloadConfig) -> RunResult:
    user = parse_user(args.user) if args.user else None
    if bool(args.start) == bool(args.endpoints):
        raise ConfigError("give exactly one of --start ward|etcd and --endpoints URL")
    if args.start:
        with started_server(
            args.start,
            extra_args=shlex.split(args.server_args),
            ward_cmd=args.ward_cmd,
            etcd_bin=args.etcd_bin,
            data_root=args.data_root,
            tls=args.tls,
            jwt=args.auth,
            members=args.members,
        ) as server:
            target = Target(server.endpoints, server.tls)
            user = user or (DEFAULT_USER if args.auth else None)
            if args.auth and user:
                enable_auth(target, *user)
            if user:
                target = replace(target, token=fetch_token(target, *user), credentials=user)
            result = run_workload(config, target, server=args.start, server_pid=server.pids)
            result.config["members"] = server.members
            return result
    tls = None
    if args.cacert or args.cert or args.key:
        tls = TlsFiles(args.cacert, args.cert, args.key)
    target = Target.from_urls(args.endpoints, tls)
    if user:
        target = replace(target, token=fetch_token(target, *user), credentials=user)
    return run_workload(config, target, server="external", server_pid=args.pid)


def _progress(kind: str, round_index: int, result: RunResult) -> None:
    print(f"[round {round_index + 1}] {format_run(result)}", flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so every finally block runs and started servers die too.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ward-bench`` and ``python -m bench``; returns the exit status."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        config = config_from_args(args)
        if args.members < 1:
            raise ConfigError("--members must be at least 1")
        if args.command == "compare":
            if args.runs < 1:
                raise ConfigError("--runs must be at least 1")
            options = ServerOptions(
                ward_args=tuple(shlex.split(args.ward_args)),
                etcd_args=tuple(shlex.split(args.etcd_args)),
                ward_cmd=args.ward_cmd,
                etcd_bin=args.etcd_bin,
                data_root=args.data_root,
                tls=args.tls,
                auth=args.auth,
                members=args.members,
            )
            user = parse_user(args.user) if args.user else None
            comparison = run_compare(
                config, runs=args.runs, options=options, user=user, progress=_progress
            )
            print(format_compare(comparison))
            if args.json:
                write_json(args.json, comparison.to_json())
        else:
            result = _run_one(args, config)
            print(format_run(result))
            if args.json:
                write_json(args.json, result.to_json())
    except (ConfigError, BenchError, ServerStartError) as err:
        print(f"ward-bench: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
