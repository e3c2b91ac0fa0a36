"""wardctl prints what etcdctl 3.4 prints: same stdout, same stderr, same exit code.

Two servers of one kind start with the same identity (`servers.start_server`); every step of
every test runs `etcdctl` against the left one and `wardctl` against the right one, so the two
servers see the same requests in the same order and stay in lockstep (same revisions, same
data). Outputs are compared after normalizing only what cannot match:

- each side's endpoint address, and its server's cluster and member IDs (placeholders);
- the program's name and version ("wardctl version: 0.1.0");
- the JSON log lines etcdctl's Go client writes to stderr, and capnslog timestamps;
- where a step says so: health check durations, raft indexes and db sizes (`status`), and
  keyspace hashes when the servers are not etcd.

Protobuf output is compared byte for byte, or, when the servers' IDs differ, after decoding
and clearing the header IDs.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.protobuf.message import Message

from tests.e2e.servers import SERVER_KINDS, Endpoint, start_server
from tests.e2e.ward_process import ETCDCTL, REPO
from wardpb.etcdserverpb import rpc_pb2

pytestmark = pytest.mark.skipif(not ETCDCTL.exists(), reason="etcd-client is not installed")

STEP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Result:
    code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class Step:
    """One command line, run with etcdctl on the left and wardctl on the right.

    `{ep}` in an argument is the side's endpoint, `{dir}` a directory of its own. The endpoint
    goes in ETCDCTL_ENDPOINTS unless `endpoint_env` is false. `volatile` names the normalizers
    to apply ("took", "status", "hash"); `pb` is the message type of protobuf output.
    """

    args: tuple[str, ...]
    stdin: bytes = b""
    env: Mapping[str, str] = field(default_factory=dict)
    endpoint_env: bool = True
    volatile: frozenset[str] = frozenset()
    pb: type[Message] | None = None


def step(
    *args: str,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    endpoint_env: bool = True,
    volatile: tuple[str, ...] = (),
    pb: type[Message] | None = None,
) -> Step:
    return Step(args, stdin, dict(env or {}), endpoint_env, frozenset(volatile), pb)


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_", "GRPC_"))}
    env["PYTHONPATH"] = os.pathsep.join((str(REPO), str(REPO / "proto")))
    return env


@dataclass
class Side:
    """One server and the tool that talks to it."""

    server: Endpoint
    tool: list[str]
    workdir: Path
    ids: dict[bytes, bytes] = field(default_factory=dict)

    def run(self, s: Step) -> Result:
        args = [
            a.replace("{ep}", self.server.address).replace("{dir}", str(self.workdir))
            for a in s.args
        ]
        env = _base_env()
        if s.endpoint_env:
            env["ETCDCTL_ENDPOINTS"] = self.server.address
        env.update(s.env)
        proc = subprocess.run(
            [*self.tool, *args],
            input=s.stdin,
            capture_output=True,
            env=env,
            cwd=self.workdir,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


def _identity(side: Side) -> dict[bytes, bytes]:
    # The server's IDs as every format prints them, mapped to placeholders.
    proc = subprocess.run(
        [str(ETCDCTL), "--endpoints", side.server.address, "endpoint", "status", "-w", "json"],
        capture_output=True,
        env=_base_env(),
        timeout=STEP_TIMEOUT_S,
        check=True,
    )
    header = json.loads(proc.stdout)[0]["Status"]["header"]
    member, cluster = int(header["member_id"]), int(header["cluster_id"])
    return {
        str(member).encode(): b"<MEMBER>",
        f"{member:x}".encode(): b"<MEMBER-HEX>",
        str(cluster).encode(): b"<CLUSTER>",
        side.server.address.encode(): b"<EP>",
        str(side.workdir).encode(): b"<DIR>",
    }


_ZAP_LINE = re.compile(rb'^\{"level":.*\n', re.M)
_CAPNSLOG_TS = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ", re.M)
_VERSION = re.compile(rb"^(?:etcdctl|wardctl) version: .*$", re.M)
_TOOK = re.compile(rb"(?:\d+(?:\.\d+)?(?:ns|\xc2\xb5s|ms|h|m|s))+")
_SIZE = re.compile(rb"\b\d+(?:\.\d)? (?:B|kB|MB|GB)\b")


def _collapse(text: bytes) -> bytes:
    # Placeholders change column widths the same way on both sides; compare tables loosely.
    return re.sub(rb"-{2,}", b"-", re.sub(rb" {2,}", b" ", text))


def _normalize_text(text: bytes, side: Side, s: Step) -> bytes:
    for value, placeholder in sorted(side.ids.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(value, placeholder)
    text = _ZAP_LINE.sub(b"", text)
    text = _CAPNSLOG_TS.sub(b"<TS> ", text)
    text = _VERSION.sub(b"<CTL> version: <V>", text)
    text = text.replace(b"wardctl", b"etcdctl")
    if "took" in s.volatile:
        text = _collapse(_TOOK.sub(b"<TOOK>", text))
    if "status" in s.volatile:
        text = _SIZE.sub(b"<SIZE>", text)
        text = re.sub(
            rb'"(raftIndex|raftAppliedIndex|raftTerm|raft_term|dbSize|dbSizeInUse)":\d+',
            rb'"\1":0',
            text,
        )
        text = re.sub(
            rb'^"(RaftIndex|RaftAppliedIndex|RaftTerm|DBSize)" : \d+$',
            rb'"\1" : 0',
            text,
            flags=re.M,
        )
        # simple: "<EP>, <MEMBER-HEX>, version, size, leader, learner, term, index, applied, "
        text = re.sub(rb"(<SIZE>, \w+, \w+), \d+, \d+, \d+,", rb"\1, T, I, A,", text)
        text = re.sub(
            rb"(\|\s*\w+\s*\|\s*\w+\s*)\|\s*\d+\s*\|\s*\d+\s*\|\s*\d+\s*\|",
            rb"\1| T | I | A |",
            text,
        )
        text = _collapse(text)
    if "hash" in s.volatile:
        text = re.sub(rb'"hash":\d+', b'"hash":0', text)
        text = re.sub(rb'^"Hash" : \d+$', b'"Hash" : 0', text, flags=re.M)
        text = _collapse(re.sub(rb"(<EP>,? \|?\s*)\d+", rb"\1H", text))
    return text


def _clear_ids(msg: Message) -> None:
    for fd, value in msg.ListFields():
        if fd.name in ("cluster_id", "member_id", "raft_term", "memberID"):
            msg.ClearField(fd.name)
        elif fd.type == fd.TYPE_MESSAGE:
            for item in value if fd.is_repeated else [value]:
                _clear_ids(item)


def _normalize_pb(data: bytes, pb: type[Message]) -> bytes:
    msg = pb()
    msg.ParseFromString(data)
    _clear_ids(msg)
    return msg.SerializeToString(deterministic=True)


@dataclass
class Pair:
    """etcdctl on the left server, wardctl on the right one."""

    kind: str
    left: Side
    right: Side

    def check(self, *steps: Step, restore: Step | None = None) -> None:
        """Run each step on both sides and require the same (normalized) outcome.

        `restore` runs (with etcdctl, uncompared) before each side's run: it brings back the
        state a step changes when both sides share one server.
        """
        for s in steps:
            if self.kind != "etcd":
                s = Step(s.args, s.stdin, s.env, s.endpoint_env, s.volatile | {"hash"}, s.pb)
            if restore is not None:
                self.left.run(restore)
            want = self.left.run(s)
            if restore is not None:
                self.left.run(restore)
            got = self.right.run(s)
            if s.pb is not None:
                want_out, got_out = want.stdout, got.stdout
                if want_out != got_out and want.code == got.code == 0:
                    want_out = _normalize_pb(want_out, s.pb)
                    got_out = _normalize_pb(got_out, s.pb)
            else:
                want_out = _normalize_text(want.stdout, self.left, s)
                got_out = _normalize_text(got.stdout, self.right, s)
            want_err = _normalize_text(want.stderr, self.left, s)
            got_err = _normalize_text(got.stderr, self.right, s)
            label = " ".join(s.args)
            assert (got.code, got_out, got_err) == (want.code, want_out, want_err), (
                f"`{label}` differs\n"
                f"etcdctl ({want.code}):\n{want_out.decode(errors='replace')}"
                f"{want_err.decode(errors='replace')}\n"
                f"wardctl ({got.code}):\n{got_out.decode(errors='replace')}"
                f"{got_err.decode(errors='replace')}"
            )

    def both(self, *args: str) -> None:
        """Run a setup command with etcdctl on both servers (not compared)."""
        for side in (self.left, self.right):
            proc = subprocess.run(
                [str(ETCDCTL), "--endpoints", side.server.address, *args],
                capture_output=True,
                env=_base_env(),
                timeout=STEP_TIMEOUT_S,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr

    def revision(self) -> int:
        """The current revision (the same on both servers while they are in lockstep)."""
        revs = []
        for side in (self.left, self.right):
            proc = subprocess.run(
                [str(ETCDCTL), "--endpoints", side.server.address, "get", "x", "-w", "json"],
                capture_output=True,
                env=_base_env(),
                timeout=STEP_TIMEOUT_S,
                check=True,
            )
            revs.append(int(json.loads(proc.stdout)["header"]["revision"]))
        assert revs[0] == revs[1], f"servers out of lockstep: revisions {revs}"
        return revs[0]


@pytest.fixture(scope="module", params=SERVER_KINDS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    base = tmp_path_factory.mktemp(f"wardctl-diff-{request.param}")
    left = start_server(request.param, base / "left-server")
    request.addfinalizer(left.stop)
    right = start_server(request.param, base / "right-server")
    request.addfinalizer(right.stop)
    sides = []
    for name, server, tool in (
        ("left", left, [str(ETCDCTL)]),
        ("right", right, [sys.executable, "-m", "ward.cli"]),
    ):
        workdir = base / f"{name}-work"
        workdir.mkdir()
        side = Side(server, tool, workdir)
        side.ids = _identity(side)
        sides.append(side)
    yield Pair(request.param, sides[0], sides[1])


FORMATS = ("simple", "json", "fields", "protobuf", "table")


# -- put -------------------------------------------------------------------------------------


def test_put_prints_ok_and_the_previous_pair_in_every_format(pair: Pair) -> None:
    pair.check(
        step("put", "put/a", "1"),
        step("put", "put/a", "2", "--prev-kv"),
        step("put", "put/a", "3", "--prev-kv", "-w", "json"),
        step("put", "put/a", "4", "--prev-kv", "-w", "fields"),
        step("put", "put/a", "5", "--prev-kv", "-w", "protobuf", pb=rpc_pb2.PutResponse),
        # The table printer refuses after the put went through, as in etcdctl.
        step("put", "put/a", "6", "-w", "table"),
        step("--hex", "put", "put/a", "7", "--prev-kv"),
        step("put", "put/b", 'needs=quoting "\\ \x01 é'),
        step("get", "put/b", "-w", "fields"),
    )


def test_put_reads_the_value_from_stdin_when_it_is_not_given(pair: Pair) -> None:
    pair.check(
        step("put", "put/stdin", stdin=b"from stdin\nwith two lines"),
        step("get", "put/stdin"),
        step("put", "put/stdin", stdin=b""),
        step("put", "--", "put/dash", "-leading-dash"),
        step("get", "put/dash"),
    )


@pytest.mark.slow
def test_put_options_and_their_errors(pair: Pair) -> None:
    pair.check(
        step("put", "put/iv", "v"),
        step("put", "put/iv", "--ignore-value", "--prev-kv"),
        step("put", "put/iv", "x", "--ignore-value"),
        step("put", "put/missing", "--ignore-value"),
        step("put", "put/iv", "--ignore-lease", stdin=b"new"),
        step("put", "put/iv", "v", "--lease=zz"),
        step("put", "put/iv", "v", "--lease=1234"),
        step("put"),
        step("put", "", "empty-key"),
        step("put", "a", "b", "extra-argument-is-ignored"),
    )


# -- get -------------------------------------------------------------------------------------


def test_get_range_options_select_the_same_keys(pair: Pair) -> None:
    for i, key in enumerate(("get/a", "get/b", "get/c", "get/d", "geu")):
        pair.both("put", key, f"value-{4 - i}")
    pair.check(
        step("get", "get/a"),
        step("get", "get/", "--prefix"),
        step("get", "get/b", "--from-key"),
        step("get", "get/b", "get/d"),
        step("get", "get/", "--prefix", "--limit", "2"),
        step("get", "get/", "--prefix", "--limit=2", "-w", "fields"),
        step("get", "get/", "--prefix", "--keys-only"),
        step("get", "get/", "--prefix", "--print-value-only"),
        step("get", "get/", "--prefix", "--sort-by=value"),
        step("get", "get/", "--prefix", "--sort-by=VALUE", "--order=descend"),
        step("get", "get/", "--prefix", "--sort-by=modify", "--order=ASCEND"),
        step("get", "get/", "--prefix", "--order=DESCEND", "--limit", "1"),
        step("get", "get/", "--prefix", "--sort-by=create", "--order=descend", "-w", "json"),
        step("get", "get/", "--prefix", "--sort-by=version"),
        step("get", "get/", "--prefix", "--consistency=s"),
        step("--hex", "get", "get/", "--prefix"),
        step("get", "", "--prefix", "--keys-only", "--limit", "3"),
        step("get", "get/nothing"),
        step("get", "get/nothing", "-w", "fields"),
    )


def test_get_output_formats(pair: Pair) -> None:
    pair.check(
        *(
            step("get", "get/", "--prefix", "-w", fmt, pb=rpc_pb2.RangeResponse)
            if fmt == "protobuf"
            else step("get", "get/", "--prefix", "-w", fmt)
            for fmt in FORMATS
        ),
        step("get", "get/a", "-wjson"),
        step("-w=fields", "get", "get/a"),
        step("get", "get/a", "-w", "xml"),
        step("get", "get/nothing", "-w", "json"),
    )


def test_get_reads_at_a_revision_and_reports_future_and_compacted_ones(pair: Pair) -> None:
    pair.both("put", "rev/k", "one")
    first = pair.revision()
    pair.both("put", "rev/k", "two")
    pair.check(
        step("get", "rev/k", "--rev", str(first)),
        step("get", "rev/k", f"--rev={first}", "-w", "json"),
        step("get", "rev/k", "--rev", "0x7fffffff"),
        step("get", "rev/k", "--rev", "-1"),
        step("compaction", str(first + 1)),
        step("get", "rev/k", "--rev", str(first)),
        step("compaction", str(first)),
        step("compaction", "--physical", str(first + 1)),
        step("compaction", str(pair.revision() + 1000)),
    )


@pytest.mark.slow
def test_get_argument_errors(pair: Pair) -> None:
    pair.check(
        step("get"),
        step("get", ""),
        step("get", "a", "b", "--prefix"),
        step("get", "a", "--prefix", "--from-key"),
        step("get", "a", "--sort-by=size"),
        step("get", "a", "--order=sideways"),
        step("get", "a", "--consistency=x"),
        step("get", "a", "--print-value-only", "-w", "json"),
        step("get", "a", "--rev", "abc"),
        step("get", "a", "--limit"),
        step("get", "a", "--prefix=maybe"),
        step("get", "a", "--bogus"),
        step("get", "a", "-x"),
        step("get", "a", "-w"),
        step("get", "a", "---x"),
    )


# -- del -------------------------------------------------------------------------------------


def test_del_removes_keys_and_prints_the_count_and_previous_pairs(pair: Pair) -> None:
    for key in ("del/a", "del/b", "del/c", "del/d", "del/e", "dem"):
        pair.both("put", key, key.upper())
    pair.check(
        step("del", "del/nothing"),
        step("del", "del/a"),
        step("del", "del/b", "--prev-kv"),
        step("del", "del/c", "del/d", "--prev-kv", "-w", "json"),
        step("del", "del/", "--prefix", "-w", "fields", "--prev-kv"),
        step("del", "dem", "--from-key", "-w", "protobuf", pb=rpc_pb2.DeleteRangeResponse),
        step("del", "x", "-w", "table"),
        step("del"),
        step("del", "a", "b", "c"),
        step("del", "a", "b", "--prefix"),
        step("del", "a", "--prefix", "--from-key"),
        step("del", ""),
    )


# -- txn -------------------------------------------------------------------------------------

TXN_SWAP = b'value("txn/k") = "old"\n\nput txn/k "new value" --prev-kv\nget txn/k\n\nget txn/k\n\n'


def test_txn_reads_compares_and_branches_from_stdin(pair: Pair) -> None:
    pair.both("put", "txn/k", "old")
    pair.check(
        step("txn", stdin=TXN_SWAP),
        step("txn", stdin=TXN_SWAP),
        step("txn", "-i", stdin=TXN_SWAP),
        step("txn", "--interactive", "-w", "json", stdin=TXN_SWAP),
        step("txn", "-w", "fields", stdin=TXN_SWAP),
        step("txn", "-w", "protobuf", stdin=TXN_SWAP, pb=rpc_pb2.TxnResponse),
        step("txn", "-w", "table", stdin=TXN_SWAP),
        step(
            "txn",
            stdin=b'ver("txn/k") > "0"\nc("txn/k") != "0"\nm("txn/k") < "999999"\n'
            b'mod("txn/none") = "0"\n\n'
            b"del txn/k --prev-kv\nput txn/x 'quoted value' y\nput txn/y \"a\\tb\"\n"
            b"get txn/ --prefix --keys-only\n\n\n",
        ),
        step("txn", stdin=b"\n\n\n"),
        step("txn", stdin=b"\nput txn/z\n\n\n"),
        step("txn", "extra-argument", stdin=TXN_SWAP),
    )


@pytest.mark.parametrize(
    "text",
    [
        b'bogus("k") > "0"\n\n\n\n',
        b'mod k > "0"\n\n\n\n',
        b'mod("k") > 0\n\n\n\n',
        b'mod("k") > "x"\n\n\n\n',
        b'c("k")="0"\n\n\n\n',
        b'val("k) = "x"\n\n\n\n',
        b'val(k) = "x"\n\n\n\n',
        b'val("k")\n\n\n\n',
        b'val("k") =\n\n\n\n',
        b'val("k")= "x"\n\n\n\n',
        b'val ("k") = "x"\n\n\n\n',
        b'val("k" ) = "x"\n\n\n\n',
        b'val( "k") = `raw` trailing words\n\n\n\n',
        b'val("\\q") = "x"\n\n\n\n',
        b"\nget\n\n\n",
        b"\nbogus a b\n\n\n",
        b"\nget a --prefix=zz\n\n\n",
        b"\nput a b --bogus\n\n\n",
        b'\nput a "bad\\q"\n\n\n',
        b"\n\ng a -w json\n\n",
        b'mod("k") > "0"\n\nput k v\n',
        b"",
    ],
    ids=lambda t: t.decode().replace("\n", "|")[:40] or "empty",
)
@pytest.mark.slow
def test_txn_input_errors_match(pair: Pair, text: bytes) -> None:
    pair.check(step("txn", stdin=text))


# -- maintenance -----------------------------------------------------------------------------


def test_endpoint_status_hashkv_and_health_in_every_format(pair: Pair) -> None:
    pair.check(
        *(step("endpoint", "status", "-w", fmt, volatile=("status",)) for fmt in FORMATS),
        *(step("endpoint", "hashkv", "-w", fmt) for fmt in FORMATS),
        *(step("endpoint", "health", "-w", fmt, volatile=("took",)) for fmt in FORMATS),
        step("endpoint", "status", "--cluster", "-w", "table", volatile=("status",)),
        step("endpoint", "hashkv", "--cluster"),
        step("endpoint", "hashkv", "--rev", "2", "-w", "json"),
        step("endpoint", "health", "--cluster", volatile=("took",)),
        step("endpoint", "stat", volatile=("status",)),
        step("endpoint"),
        step("endpoint", "bogus"),
    )


@pytest.mark.slow
def test_alarm_list_and_disarm_with_no_alarm(pair: Pair) -> None:
    pair.check(
        *(
            step("alarm", verb, "-w", fmt, pb=rpc_pb2.AlarmResponse)
            if fmt == "protobuf"
            else step("alarm", verb, "-w", fmt)
            for verb in ("list", "disarm")
            for fmt in ("simple", "json", "protobuf", "table")
        ),
        step("alarm", "list", "extra"),
        step("alarm", "disarm", "extra"),
        step("alarm"),
    )


def test_defrag_and_compaction_report_what_they_did(pair: Pair) -> None:
    pair.both("put", "compact/k", "v")
    rev = pair.revision()
    pair.check(
        step("defrag"),
        step("defrag", "--cluster"),
        step("compaction", str(rev)),
        step("compaction", str(rev)),
        step("compaction"),
        step("compaction", "abc"),
        step("compaction", "99999999999999999999"),
    )


def test_snapshot_save_writes_a_private_file(pair: Pair) -> None:
    pair.check(
        step("snapshot", "save", "{dir}/snap.db"),
        step("snapshot", "save"),
        step("snapshot", "save", "a", "b"),
        step("snapshot", "save", "{dir}/missing/snap.db"),
        step(
            "--endpoints",
            "{ep},{ep}",
            "snapshot",
            "save",
            "{dir}/two.db",
            endpoint_env=False,
        ),
    )
    for side in (pair.left, pair.right):
        path = side.workdir / "snap.db"
        assert path.stat().st_size > 0
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not (side.workdir / "snap.db.part").exists()
    # A backend snapshot of the same data has the same size on both servers of a kind.
    if pair.kind == "etcd":
        sizes = {(s.workdir / "snap.db").stat().st_size for s in (pair.left, pair.right)}
        assert len(sizes) == 1


# -- global flags, environment, help ----------------------------------------------------------


@pytest.mark.slow
def test_global_flags_and_environment_variables(pair: Pair) -> None:
    pair.both("put", "env/k", "v")
    pair.check(
        step("--endpoints", "{ep}", "get", "env/k", endpoint_env=False),
        step("get", "env/k", "--endpoints={ep}", "--dial-timeout=500ms", endpoint_env=False),
        step("get", "env/k", "--command-timeout", "3s", "--keepalive-time=30s"),
        step("get", "env/k", "--dial-timeout=abc"),
        step("get", "env/k", env={"ETCDCTL_WRITE_OUT": "json"}),
        step("get", "env/k", env={"ETCDCTL_API": "3", "ETCDCTL_HEX": "true"}),
        step("get", "env/k", env={"ETCDCTL_DIAL_TIMEOUT": "not-a-duration"}),
        step("get", "env/k", env={"ETCDCTL_UNKNOWN": "x"}),
        step("get", "env/k", "-w", "fields", env={"ETCDCTL_WRITE_OUT": "json"}),
        step("get", "env/k", env={"ETCDCTL_API": "4"}),
        step("version"),
        step("version", "extra", "-w", "json"),
    )


@pytest.mark.parametrize(
    "args",
    [
        ("get", "--help"),
        ("put", "--help"),
        ("del", "-h"),
        ("txn", "--help"),
        ("compaction", "--help"),
        ("defrag", "--help"),
        ("endpoint", "--help"),
        ("endpoint", "status", "--help"),
        ("endpoint", "health", "--help"),
        ("endpoint", "hashkv", "--help"),
        ("snapshot", "save", "--help"),
        ("alarm", "--help"),
        ("alarm", "list", "--help"),
        ("help", "get"),
        ("help", "endpoint", "status"),
        ("gett", "k"),
        ("bogus",),
        ("ge", "--help"),
        ("--bogus", "get", "kv/unknown"),
    ],
    ids=" ".join,
)
@pytest.mark.slow
def test_help_and_usage_errors(pair: Pair, args: tuple[str, ...]) -> None:
    pair.check(step(*args))


# -- unreachable endpoints -------------------------------------------------------------------


@pytest.mark.slow
def test_unreachable_endpoints_time_out_like_etcdctl(pair: Pair) -> None:
    dead = "127.0.0.1:9"  # discard; nothing listens there
    timeout = "--command-timeout=1s"
    pair.check(
        step("--endpoints", dead, timeout, "get", "k", endpoint_env=False),
        step("--endpoints", dead, timeout, "endpoint", "status", endpoint_env=False),
        step("--endpoints", dead, timeout, "endpoint", "hashkv", endpoint_env=False),
        step("--endpoints", dead, timeout, "defrag", endpoint_env=False),
        step(
            "--endpoints",
            f"{dead},{{ep}}",
            timeout,
            "endpoint",
            "health",
            "-w",
            "table",
            endpoint_env=False,
            volatile=("took",),
        ),
        step(
            "--endpoints",
            f"{dead},{{ep}}",
            timeout,
            "endpoint",
            "status",
            endpoint_env=False,
            volatile=("status",),
        ),
        step("--endpoints", f"{dead},{{ep}}", timeout, "get", "k", endpoint_env=False),
    )


# -- an active alarm -------------------------------------------------------------------------


@pytest.fixture(params=SERVER_KINDS)
def full_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    """One server with a tiny quota, filled until it raised the NOSPACE alarm; both tools talk
    to it (only commands that change nothing are compared, or ones that restore the state)."""
    server = start_server(request.param, tmp_path / "server", "--quota-backend-bytes=65536")
    request.addfinalizer(server.stop)
    sides = []
    for name, tool in (("left", [str(ETCDCTL)]), ("right", [sys.executable, "-m", "ward.cli"])):
        workdir = tmp_path / name
        workdir.mkdir()
        side = Side(server, tool, workdir)
        side.ids = _identity(side)
        sides.append(side)
    full = Pair(request.param, sides[0], sides[1])
    for i in range(40):
        if (
            b"database space exceeded"
            in full.left.run(step("put", f"big/{i}", stdin=b"x" * 40_000)).stderr
        ):
            break
    else:
        pytest.fail("the quota never filled up")
    yield full


@pytest.mark.slow
def test_an_active_alarm_shows_in_alarm_list_status_and_put(full_server: Pair) -> None:
    full_server.check(
        step("alarm", "list"),
        step("alarm", "list", "-w", "json"),
        step("alarm", "list", "-w", "protobuf", pb=rpc_pb2.AlarmResponse),
        *(step("endpoint", "status", "-w", fmt, volatile=("status",)) for fmt in FORMATS),
        step("put", "k", "v"),
    )
    # Disarming clears the alarm; a put as large as the ones that filled the store is over the
    # quota again and raises it again (a tiny one may still fit under it).
    full_server.check(
        step("alarm", "disarm"),
        step("alarm", "disarm", "-w", "json"),
        restore=step("put", "k", stdin=b"x" * 40_000),
    )
