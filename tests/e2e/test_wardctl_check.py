"""`wardctl check perf` and `check datascale` print what etcdctl 3.4 prints.

Both tools talk to one Ward server (the `Side`s of test_wardctl_diff over a shared server, as
in its `full_server`), or, where only etcd can give a passing answer, to one etcd. Outputs are
compared after test_wardctl_diff's normalization and, here, after taking out only what cannot
match:

- etcdctl's progress bar: cheggaaa/pb writes its "\\r" frames to stdout even into a pipe;
  wardctl draws its bar on a terminal only (`ward.cli.progress`, and the pty test below);
- measured numbers: writes/s, request latencies, revisions, megabytes of memory;
- `check perf`'s verdicts, which depend on the load of this shared machine: each tool's PASS
  or FAIL must follow from its own numbers by etcdctl's thresholds, and the lines must be the
  same ones in the same order.

Output that differs on purpose: `check datascale` against Ward fails to read `/metrics` from
the gRPC endpoint exactly as etcdctl does (same stdout), and wardctl adds one hint on stderr
naming its Ward-only `--metrics-url` flag; Ward serves /metrics on `--listen-metrics-urls`.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import Endpoint, start_server
from tests.e2e.test_wardctl_diff import (
    ETCDCTL,
    Pair,
    Side,
    _base_env,
    _identity,
    _normalize_text,
    step,
)
from tests.e2e.ward_process import etcdctl, free_port
from ward.cli.check import METRICS_HINT

pytestmark = pytest.mark.skipif(not ETCDCTL.exists(), reason="etcd-client is not installed")

WARDCTL = [sys.executable, "-m", "ward.cli"]
TERMINAL_TIMEOUT_S = 60.0
PERF_TIMEOUT_S = 150.0  # a 60 s run, its last requests and the clean-up, on a busy machine

# etcdctl's pb frames: "\r" and a bar state, over and over, ended by a newline.
_PB_FRAMES = re.compile(rb"^(?:\r[^\r\n]*)+\n", re.M)
_MB = re.compile(rb"used : -?\d+\.\d\d MB\.")  # memory may also shrink
_REVISION = re.compile(rb"with revision \d+")


def _pair_on(server: Endpoint, tmp_path: Path) -> Pair:
    sides = []
    for name, tool in (("left", [str(ETCDCTL)]), ("right", WARDCTL)):
        workdir = tmp_path / f"{name}-work"
        workdir.mkdir(exist_ok=True)
        side = Side(server, tool, workdir)
        side.ids = _identity(side)
        sides.append(side)
    return Pair(server.kind, sides[0], sides[1])


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory, metrics_port: int) -> Iterator[Endpoint]:
    base = tmp_path_factory.mktemp("wardctl-check")
    server = start_server(
        "ward",
        base / "server",
        "--listen-metrics-urls",
        f"http://127.0.0.1:{metrics_port}",
        identity=None,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared(ward: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """etcdctl (left) and wardctl (right) against the same Ward server."""
    return _pair_on(ward, tmp_path_factory.mktemp("wardctl-check-sides"))


def _count(server: Endpoint, prefix: str) -> int:
    got = etcdctl(server.address, "get", prefix, "--prefix", "--limit=1", "-w", "fields")
    assert got.returncode == 0, got.stderr
    return int(re.search(r'"Count" : (\d+)', got.stdout).group(1))  # type: ignore[union-attr]


# -- help and argument errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--help"),
        ("check",),
        ("check", "perf", "--help"),
        ("check", "datascale", "--help"),
        ("check", "datascale", "-h"),
        ("help", "check", "perf"),
        ("chek", "perf"),
        ("check", "perf", "--load"),
        ("check", "perf", "--bogus"),
    ],
    ids=" ".join,
)
def test_check_help_and_usage_errors(shared: Pair, args: tuple[str, ...]) -> None:
    shared.check(step(*args))


def test_check_refuses_unknown_loads_and_a_prefix_that_has_keys(shared: Pair) -> None:
    shared.both("put", "/etcdctl-check-perf/left-over", "x")
    shared.both("put", "taken/k", "x")
    shared.check(
        step("check", "perf", "--load", "huge"),
        step("check", "datascale", "--load=XL"),
        step("check", "perf"),
        step("check", "perf", "--load", "small", "--prefix", "taken/"),
        step("check", "datascale", "--prefix", "taken/", "--load", "xLarge"),
    )
    shared.both("del", "--prefix", "taken/")
    shared.both("del", "--prefix", "/etcdctl-check-perf/")


# -- check datascale -------------------------------------------------------------------------


def test_datascale_against_ward_fails_to_read_metrics_as_etcdctl_does(shared: Pair) -> None:
    """Ward's gRPC port answers HTTP/1.1 with HTTP/2 frames: both tools print Go's "malformed
    HTTP response" with the same bytes and FAIL before any put; wardctl adds its hint."""
    s = step("check", "datascale")
    want, got = shared.left.run(s), shared.right.run(s)
    assert want.code == got.code == 1
    assert got.stdout == want.stdout
    assert want.stdout.startswith(b'fetch error: Get "http://')
    assert want.stdout.endswith(
        b"\nFAIL: Could not read process_resident_memory_bytes before the put operations.\n"
    )
    assert _normalize_text(want.stderr, shared.left, s) == b""
    assert got.stderr == METRICS_HINT.encode() + b"\n"
    assert _count(shared.left.server, "/etcdctl-check-datascale/") == 0


def test_datascale_reads_metrics_url_and_reports_wards_key_limit(
    shared: Pair, metrics_port: int
) -> None:
    """With --metrics-url wardctl reads Ward's memory, runs the load and cleans up. Every put
    fails: datascale's keys are the prefix plus 512 bytes and Ward (lmdb) takes keys of at most
    511 bytes, so this pins that etcd/Ward difference too (etcdctl would fail the same way)."""
    prefix = "/ds-metrics/"
    got = shared.right.run(
        step(
            "check",
            "datascale",
            "--prefix",
            prefix,
            "--auto-compact",
            "--auto-defrag",
            "--metrics-url",
            f"http://127.0.0.1:{metrics_port}",
        )
    )
    out = _REVISION.sub(b"with revision R", got.stdout)
    address = shared.right.server.address.encode()
    assert (got.code, out, got.stderr) == (
        1,
        b"Start data scale check for work load [10000 key-value pairs, 1024 bytes per"
        b" key-value, 50 concurrent clients].\n"
        b"Compacting with revision R\nCompacted with revision R\n"
        b'Defragmenting "' + address + b'"\nDefragmented "' + address + b'"\n'
        b"FAIL: too many errors\n"
        b"FAIL: ERROR(rpc error: code = InvalidArgument desc = etcdserver: key is too large)"
        b" -> 10000\n",
        b"",
    )
    assert _count(shared.right.server, prefix) == 0


@pytest.fixture(scope="module")
def etcd_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """etcdctl and wardctl against one etcd, which serves /metrics on its client port."""
    base = tmp_path_factory.mktemp("wardctl-check-etcd")
    server = start_server("etcd", base / "server", identity=None)
    try:
        yield _pair_on(server, base)
    finally:
        server.stop()


@pytest.mark.slow
def test_datascale_against_etcd_passes_as_etcdctl_does(etcd_pair: Pair) -> None:
    s = step("check", "datascale", "--auto-compact", "--auto-defrag")
    results = []
    for side in (etcd_pair.left, etcd_pair.right):
        got = side.run(s)
        assert got.code == 0, got.stdout + got.stderr
        out = _normalize_text(_PB_FRAMES.sub(b"", got.stdout), side, s)
        results.append((_REVISION.sub(b"with revision R", _MB.sub(b"used : M MB.", out)),))
    assert results[1] == results[0]
    assert results[0][0] == (
        b"Start data scale check for work load [10000 key-value pairs, 1024 bytes per"
        b" key-value, 50 concurrent clients].\n"
        b'Compacting with revision R\nCompacted with revision R\nDefragmenting "<EP>"\n'
        b'Defragmented "<EP>"\nPASS: Approximate system memory used : M MB.\n'
    )
    assert _count(etcd_pair.left.server, "/etcdctl-check-datascale/") == 0


def _on_a_terminal(args: list[str], cwd: Path, columns: int = 100) -> tuple[int, bytes]:
    """Run `args` with stdout and stderr on a pseudo-terminal; its exit code and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = _base_env()
    env.pop("TERM", None)
    proc = subprocess.Popen(
        args, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env, cwd=cwd
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + TERMINAL_TIMEOUT_S
    try:
        while select.select([master], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
    return proc.wait(timeout=TERMINAL_TIMEOUT_S), b"".join(chunks)


def test_the_progress_bar_is_drawn_on_a_terminal_only(shared: Pair, metrics_port: int) -> None:
    args = [
        "--endpoints",
        shared.right.server.address,
        "check",
        "datascale",
        "--prefix",
        "/ds-tty/",
        "--metrics-url",
        f"http://127.0.0.1:{metrics_port}",
    ]
    code, out = _on_a_terminal([*WARDCTL, *args], shared.right.workdir)
    assert code == 1
    # The terminal turns "\n" into "\r\n".
    start, _, rest = out.partition(b"concurrent clients].\r\n")
    assert start.startswith(b"Start data scale check")
    frames, _, results = rest.partition(b"\r\n")
    assert frames.startswith(b"\r 0 / 10000 B")
    final = frames.rsplit(b"\r", 1)[1]
    assert re.fullmatch(rb" 10000 / 10000 Bo+! 100\.00% \d\dm\d\ds +", final), final
    assert len(final) == 99  # one column short of the terminal's width
    assert results.startswith(b"FAIL: too many errors\r\n")
    # The same command into a pipe: not one frame.
    piped = subprocess.run(
        [*WARDCTL, *args],
        capture_output=True,
        env=_base_env(),
        cwd=shared.right.workdir,
        timeout=60,
    )
    assert b"\r" not in piped.stdout + piped.stderr
    assert piped.stdout == (start + b"concurrent clients].\r\n" + results).replace(b"\r\n", b"\n")


def test_snapshot_save_counts_bytes_on_a_terminal_only(shared: Pair) -> None:
    args = ["--endpoints", shared.right.server.address, "snapshot", "save"]
    workdir = shared.right.workdir
    code, out = _on_a_terminal([*WARDCTL, *args, str(workdir / "tty.db")], workdir)
    assert code == 0, out
    frames, _, rest = out.partition(b"\r\n")
    final = frames.rsplit(b"\r", 1)[1]
    size = (workdir / "tty.db").stat().st_size
    assert re.fullmatch(
        rb" \d+(\.\d\d)? (B|KiB|MiB) \d+(\.\d\d)? (B|KiB|MiB)/s \d\dm\d\ds +", final
    )
    assert final.split()[:2] == _sizes(size)
    assert rest.startswith(b"Snapshot saved at " + str(workdir / "tty.db").encode())
    piped = shared.right.run(step("snapshot", "save", "{dir}/piped.db"))
    assert (piped.code, b"\r" in piped.stdout + piped.stderr) == (0, False)
    assert piped.stdout == b"Snapshot saved at " + str(workdir / "piped.db").encode() + b"\n"


def _sizes(n: float) -> list[bytes]:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return [(f"{n:.0f}" if unit == "B" else f"{n:.2f}").encode(), unit.encode()]
        n /= 1024
    raise AssertionError


# -- check perf ------------------------------------------------------------------------------

_PERF_LINES = [
    # (pattern, what it judges, passed)
    (re.compile(rb"PASS: Throughput is (\d+) writes/s"), "throughput", True),
    (re.compile(rb"FAIL: Throughput too low: (\d+) writes/s"), "throughput", False),
    (re.compile(rb"PASS: Slowest request took (\d+\.\d{6})s"), "slowest", True),
    (re.compile(rb"Slowest request took too long: (\d+\.\d{6})s"), "slowest", False),
    (re.compile(rb"PASS: Stddev is (\d+\.\d{6}|NaN)s"), "stddev", True),
    (re.compile(rb"Stddev too high: (\d+\.\d{6})s"), "stddev", False),
]


def _perf_outcome(code: int, stdout: bytes) -> tuple[list[bytes], dict[str, float]]:
    """The shape of a `check perf` output (its lines with numbers and verdicts taken out) and
    its numbers; asserts that each verdict follows from its number as etcdctl decides."""
    shape: list[bytes] = []
    numbers: dict[str, float] = {}
    verdicts: list[bool] = []
    for line in stdout.splitlines():
        for pattern, what, passed in _PERF_LINES:
            m = pattern.fullmatch(line)
            if m:
                value = float(m.group(1))
                numbers[what] = value
                verdicts.append(passed)
                shape.append(what.encode())
                if what == "throughput":  # etcdctl prints int(rps) + 1 and wants rps > 135
                    assert passed == (value > 136) or value == 136, line
                elif what == "slowest":
                    assert passed == (value <= 0.5), line
                else:
                    assert passed == (value <= 0.1 or value != value), line
                break
        else:
            shape.append(_REVISION.sub(b"with revision R", line))
    assert shape[-1] in (b"PASS", b"FAIL"), stdout
    assert (shape[-1] == b"PASS") == all(verdicts) == (code == 0), stdout
    shape[-1] = b"VERDICT"
    return shape, numbers


@pytest.mark.slow
def test_perf_runs_etcdctls_load_and_judges_it_the_same_way(shared: Pair) -> None:
    """etcdctl and wardctl at once (60 s each) against one Ward, under their own prefixes."""
    runs: dict[str, subprocess.CompletedProcess[bytes]] = {}

    def run(name: str, side: Side) -> None:
        runs[name] = subprocess.run(
            # No --auto-compact: compaction is cluster-wide, so one tool's could cut the other's
            # history while it still runs (its own compaction then fails).
            [*side.tool, "check", "perf", "--prefix", f"/perf-{name}/"],
            capture_output=True,
            env={**_base_env(), "ETCDCTL_ENDPOINTS": side.server.address},
            cwd=side.workdir,
            timeout=PERF_TIMEOUT_S,
            check=False,
        )

    threads = [
        threading.Thread(target=run, args=(name, side))
        for name, side in (("etcdctl", shared.left), ("wardctl", shared.right))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want, got = runs["etcdctl"], runs["wardctl"]
    assert _PB_FRAMES.match(want.stdout), "etcdctl draws its bar into the pipe"
    assert b"\r" not in got.stdout + got.stderr, "wardctl draws no bar into a pipe"
    want_shape, want_numbers = _perf_outcome(want.returncode, _PB_FRAMES.sub(b"", want.stdout))
    got_shape, got_numbers = _perf_outcome(got.returncode, got.stdout)
    assert got_shape == want_shape, (_PB_FRAMES.sub(b"", want.stdout), got.stdout)
    assert want_shape[-4:-1] == [b"throughput", b"slowest", b"stddev"]
    assert _normalize_text(want.stderr, shared.left, step()) == b""
    assert got.stderr == b""
    # The rate limiter: 150 writes/s at most (printed as int(rps) + 1), and wardctl offers the
    # load as well as etcdctl did at the same time on the same server.
    assert got_numbers["throughput"] <= 151
    assert got_numbers["throughput"] >= 0.9 * want_numbers["throughput"]
    for name in runs:
        assert _count(shared.left.server, f"/perf-{name}/") == 0
