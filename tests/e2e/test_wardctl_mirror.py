# ruff: noqa: F811  (`started` is the fixture imported from test_wardctl_lock_elect)
"""`wardctl make-mirror` mirrors one Ward into another as etcdctl 3.4's make-mirror does.

Two Ward servers, a source and a destination. Each scenario runs once with etcdctl and once
with wardctl, each tool under its own keys: keys exist before the mirror starts (the initial
sync), then the source changes (a put, a delete, a two-key transaction, a key outside the
prefix) while the mirror runs. Both tools must leave the destination holding exactly the
source's keys under the prefix, renamed as etcdctl renames them (--dest-prefix,
--no-dest-prefix, the default, and the empty prefix), with one destination revision per
source revision; and print the same lines (the running count, every 30 s) and errors.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.servers import Endpoint, start_server
from tests.e2e.test_wardctl_diff import Pair, Side, _identity, step
from tests.e2e.test_wardctl_lock_elect import TOOLS, Tool, started  # noqa: F401 (a fixture)
from tests.e2e.ward_process import ETCDCTL, etcdctl

pytestmark = pytest.mark.skipif(not ETCDCTL.exists(), reason="etcd-client is not installed")

SYNC_TIMEOUT_S = 20.0
KV = dict[bytes, tuple[bytes, int]]  # key -> (value, mod revision)


@dataclass(frozen=True)
class Servers:
    source: Endpoint
    dest: Endpoint


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("wardctl-mirror")
    source = start_server("ward", base / "source", identity=None)
    try:
        dest = start_server("ward", base / "dest", identity=None)
    except BaseException:
        source.stop()
        raise
    try:
        yield Servers(source, dest)
    finally:
        dest.stop()
        source.stop()


def _ok(server: Endpoint, *args: str, input: str | None = None) -> str:
    got = etcdctl(server.address, *args, input=input)
    assert got.returncode == 0, got.stderr
    return got.stdout


def _read(server: Endpoint, prefix: str) -> KV:
    """Every key under `prefix` ("": every key) with its value and mod revision."""
    resp = json.loads(_ok(server, "get", prefix, "--prefix", "-w", "json"))
    return {
        base64.b64decode(kv["key"]): (base64.b64decode(kv.get("value", "")), kv["mod_revision"])
        for kv in resp.get("kvs", [])
    }


def _values(kvs: KV) -> dict[bytes, bytes]:
    return {k: v for k, (v, _) in kvs.items()}


def _wait_until(dest: Endpoint, prefix: str, want: dict[bytes, bytes], mirror: Tool) -> KV:
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while True:
        got = _read(dest, prefix)
        if _values(got) == want:
            return got
        assert mirror.proc.poll() is None, f"the mirror exited: {mirror.finish()}"
        assert time.monotonic() < deadline, f"destination {_values(got)} != {want}"
        time.sleep(0.2)


@dataclass(frozen=True)
class Mode:
    """How a scenario names its keys: the source prefix, the flags, where the copies go."""

    prefix: Callable[[str], str]  # tool letter -> --prefix
    flags: Callable[[str], list[str]]
    rename: Callable[[str, bytes], bytes]  # tool letter, source key -> destination key
    dest_range: Callable[[str], str]  # tool letter -> the prefix that holds its copies


MODES = {
    "dest-prefix": Mode(
        prefix=lambda t: f"dp-{t}/",
        flags=lambda t: ["--dest-prefix", f"copy-{t}/"],
        rename=lambda t, k: k.replace(f"dp-{t}/".encode(), f"copy-{t}/".encode(), 1),
        dest_range=lambda t: f"copy-{t}/",
    ),
    "no-dest-prefix": Mode(
        prefix=lambda t: f"nd-{t}/",
        flags=lambda t: ["--no-dest-prefix"],
        rename=lambda t, k: k.replace(f"nd-{t}/".encode(), b"", 1),
        dest_range=lambda t: f"{t}-",
    ),
    "same-prefix": Mode(
        prefix=lambda t: f"sp-{t}/",
        flags=lambda t: [],
        rename=lambda t, k: k,
        dest_range=lambda t: f"sp-{t}/",
    ),
    # The whole keyspace (a from-key read, a watch on everything); Go's strings.Replace puts
    # the destination prefix in front of every key.
    "every-key": Mode(
        prefix=lambda t: "",
        flags=lambda t: ["--dest-prefix", f"all-{t}/"],
        rename=lambda t, k: f"all-{t}/".encode() + k,
        dest_range=lambda t: f"all-{t}/",
    ),
}


@pytest.mark.parametrize("tool", ["etcdctl", "wardctl"])
@pytest.mark.parametrize("mode", list(MODES))
def test_make_mirror_copies_then_follows_the_source(
    servers: Servers, started: list[Tool], mode: str, tool: str
) -> None:
    m, t = MODES[mode], tool[0]
    p = m.prefix(t)
    # Keys under the prefix carry the tool's letter, so that copies never collide.
    keys = [f"{p}{t}-mm/a", f"{p}{t}-mm/b", f"{p}{t}-mm/sub/{p}{t}-x"]
    mirrored = p or f"{t}-mm/"  # what this scenario writes (all of it is mirrored)
    for i, key in enumerate(keys):
        _ok(servers.source, "put", key, f"v{i}")
    mirror = Tool(
        tool,
        servers.source.address,
        "make-mirror",
        "--prefix",
        p,
        *m.flags(t),
        servers.dest.address,
    )
    started.append(mirror)

    def expected() -> dict[bytes, bytes]:
        return {m.rename(t, k): v for k, v in _values(_read(servers.source, p)).items()}

    base = _wait_until(servers.dest, m.dest_range(t), expected(), mirror)
    # The initial sync puts key by key: one destination revision each.
    assert len({rev for _, rev in base.values()}) == len(base)

    _ok(servers.source, "put", f"{mirrored}{t}-mm/c", "new")
    _ok(servers.source, "del", keys[0])
    _ok(
        servers.source, "txn", input=f"\nput {mirrored}{t}-mm/t1 x\nput {mirrored}{t}-mm/t2 y\n\n\n"
    )
    _ok(servers.source, "put", f"outside-{t}-{mode}", "not mirrored unless every key is")
    final = _wait_until(servers.dest, m.dest_range(t), expected(), mirror)

    def rev(key: str) -> int:
        return final[m.rename(t, key.encode())][1]

    # One destination transaction per source revision: the two txn keys share a revision.
    assert rev(f"{mirrored}{t}-mm/t1") == rev(f"{mirrored}{t}-mm/t2") > rev(f"{mirrored}{t}-mm/c")
    assert m.rename(t, keys[0].encode()) not in final
    # Nothing printed before the first 30 s report; still running.
    assert mirror.quiet_for(0.5)
    assert mirror.proc.poll() is None


@pytest.mark.slow
def test_make_mirror_prints_the_running_count_every_30_seconds(
    servers: Servers, started: list[Tool]
) -> None:
    """Both tools at once: 3 keys synced, then a put and a delete: 5 at the first report."""
    mirrors = {}
    for tool in TOOLS:
        p = f"count-{tool}/"
        for i in range(3):
            _ok(servers.source, "put", f"{p}{i}", "v")
        mirrors[tool] = Tool(
            tool, servers.source.address, "make-mirror", "--prefix", p, servers.dest.address
        )
        started.append(mirrors[tool])
    for tool, mirror in mirrors.items():
        p = f"count-{tool}/"
        _wait_until(servers.dest, p, {f"{p}{i}".encode(): b"v" for i in range(3)}, mirror)
        _ok(servers.source, "put", f"{p}new", "v")
        _ok(servers.source, "del", f"{p}0")
    lines = {tool: mirror.line(timeout=45) for tool, mirror in mirrors.items()}
    assert lines == {"etcdctl": "5", "wardctl": "5"}


def test_make_mirror_argument_errors(servers: Servers, tmp_path: Path) -> None:
    sides = []
    for name in TOOLS:
        workdir = tmp_path / name
        workdir.mkdir()
        side = Side(servers.source, TOOLS[name], workdir)
        side.ids = _identity(side)
        sides.append(side)
    Pair("ward", sides[0], sides[1]).check(
        step("make-mirror"),
        step("make-mirror", "a", "b"),
        # Checked once the source has answered, so with a reachable source.
        step("make-mirror", "--dest-prefix", "x", "--no-dest-prefix", servers.dest.address),
        step("make-mirror", "--no-dest-prefix=maybe", servers.dest.address),
        step("make-mirror", "--help"),
        step("help", "make-mirror"),
        step("make-mirr", "-h"),
    )
