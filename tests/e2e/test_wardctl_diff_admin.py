# ruff: noqa: F811  (`pair` is the fixture imported from test_wardctl_diff)
"""wardctl's lease, member, user, role, auth and watch commands print what etcdctl 3.4 prints.

Same lockstep servers as test_wardctl_diff (its `pair` fixture). Beyond that file's
normalization, lease IDs (chosen by each server) and remaining TTLs (a second may pass between
the two runs) are replaced by placeholders.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.test_wardctl_diff import (  # noqa: F401 (pair is a fixture)
    ETCDCTL,
    STEP_TIMEOUT_S,
    Pair,
    Side,
    Step,
    _base_env,
    _normalize_text,
    pair,
    step,
)

pytestmark = pytest.mark.skipif(not ETCDCTL.exists(), reason="etcd-client is not installed")

_LEASE_HEX = re.compile(rb"\b[0-9a-f]{16}\b")
_LEASE_JSON = re.compile(rb'"(ID|id)":\d+')
_LEASE_FIELDS = re.compile(rb'^"ID" : \d+$', re.M)
_REMAINING = re.compile(rb'remaining\(\d+s\)|"ttl":\d+|^"TTL" : \d+$', re.M)


def _lease_norm(text: bytes) -> bytes:
    text = _LEASE_HEX.sub(b"<LEASE>", text)
    text = _LEASE_JSON.sub(rb'"\1":<LEASE>', text)
    text = _LEASE_FIELDS.sub(b'"ID" : <LEASE>', text)
    return _REMAINING.sub(b"<TTL>", text)


def check(pair: Pair, *steps: Step, leases: dict[str, tuple[str, str]] | None = None) -> None:
    """Like Pair.check, with lease IDs normalized; `{lease:name}` in an argument is that
    side's lease `name` (left, right)."""
    for s in steps:
        results = []
        for index, side in enumerate((pair.left, pair.right)):
            args = tuple(_sub_leases(a, leases or {}, index) for a in s.args)
            run = Step(args, s.stdin, s.env, s.endpoint_env, s.volatile | {"hash"}, s.pb)
            got = side.run(run)
            results.append(
                (
                    got.code,
                    _lease_norm(_normalize_text(got.stdout, side, run)),
                    _lease_norm(_normalize_text(got.stderr, side, run)),
                )
            )
        assert results[1] == results[0], f"`{' '.join(s.args)}` differs:\n{results}"


def _sub_leases(arg: str, leases: dict[str, tuple[str, str]], index: int) -> str:
    for name, ids in leases.items():
        arg = arg.replace("{lease:" + name + "}", ids[index])
    return arg


def _grant(side: Side, ttl: int) -> str:
    proc = subprocess.run(
        [str(ETCDCTL), "--endpoints", side.server.address, "lease", "grant", str(ttl)],
        capture_output=True,
        env=_base_env(),
        timeout=STEP_TIMEOUT_S,
        check=True,
    )
    return proc.stdout.split()[1].decode()


def test_lease_commands_print_as_etcdctl(pair: Pair) -> None:
    leases = {"a": (_grant(pair.left, 300), _grant(pair.right, 300))}
    for index, side in enumerate((pair.left, pair.right)):
        subprocess.run(
            [
                str(ETCDCTL),
                "--endpoints",
                side.server.address,
                "put",
                "--lease",
                leases["a"][index],
                "lease/k",
                "v",
            ],
            env=_base_env(),
            check=True,
            capture_output=True,
            timeout=STEP_TIMEOUT_S,
        )
    check(
        pair,
        *(step("lease", "grant", "60", "-w", fmt) for fmt in ("simple", "json", "fields")),
        *(
            step("lease", "timetolive", "{lease:a}", "--keys", "-w", fmt)
            for fmt in ("simple", "json", "fields")
        ),
        step("lease", "timetolive", "{lease:a}"),
        step("lease", "timetolive", "1234"),
        step("lease", "timetolive", "1234", "-w", "json"),
        *(
            step("lease", "keep-alive", "--once", "{lease:a}", "-w", fmt)
            for fmt in ("simple", "json", "fields")
        ),
        step("lease", "keep-alive", "--once", "1234"),
        step("lease", "revoke", "{lease:a}"),
        step("lease", "revoke", "{lease:a}"),
        step("lease", "revoke", "zz"),
        step("lease", "grant"),
        step("lease", "grant", "abc"),
        step("lease", "grant", "10", "-w", "table"),
        step("lease", "--help"),
        step("lease", "timetolive", "--help"),
        step("lease", "keep-alive", "--help"),
        leases=leases,
    )


def test_lease_list_prints_every_lease(pair: Pair) -> None:
    check(pair, *(step("lease", "list", "-w", fmt) for fmt in ("simple", "json", "fields")))


def test_member_list_and_errors_print_as_etcdctl(pair: Pair) -> None:
    check(
        pair,
        *(step("member", "list", "-w", fmt) for fmt in ("simple", "json", "fields", "table")),
        step("member", "remove", "xyz"),
        step("member", "remove"),
        step("member", "remove", "1234"),
        step("member", "update", "1234"),
        step("member", "update", "1234", "--peer-urls=http://127.0.0.1:1"),
        step("member", "promote", "1234"),
        step("member", "add"),
        step("member", "add", "a", "http://x"),
        step("member", "add", "a"),
        step("member", "--help"),
        step("member", "add", "--help"),
        step("member", "list", "--help"),
        step("move-leader"),
        step("move-leader", "zz"),
        step("move-leader", "1234"),
    )


def test_users_roles_and_auth_print_as_etcdctl(pair: Pair) -> None:
    check(
        pair,
        step("user", "add", "root:rootpw"),
        step("user", "add", "root:rootpw"),
        step("user", "add", "alice", "--interactive=false", stdin=b"alicepw\n"),
        step("user", "add", "bob", "--new-user-password=bobpw", "-w", "json"),
        step("user", "add", ":pw"),
        step("role", "add", "r1"),
        step("role", "add", "r2", "-w", "fields"),
        step("role", "grant-permission", "r1", "read", "k1"),
        step("role", "grant-permission", "r1", "readwrite", "a", "b", "-w", "json"),
        step("role", "grant-permission", "r1", "write", "p", "--prefix"),
        step("role", "grant-permission", "r1", "read", "z", "--from-key"),
        step("role", "grant-permission", "r1", "bogus", "k"),
        step("role", "grant-permission", "r1", "read", "k", "e", "--prefix"),
        step("role", "grant-permission", "r1"),
        *(step("role", "get", "r1", "-w", fmt) for fmt in ("simple", "json", "fields")),
        *(step("role", "list", "-w", fmt) for fmt in ("simple", "json", "fields")),
        step("user", "grant-role", "alice", "r1"),
        step("user", "grant-role", "alice", "nope"),
        *(step("user", "get", "alice", "-w", fmt) for fmt in ("simple", "json", "fields")),
        step("user", "get", "alice", "--detail"),
        step("user", "get", "nobody"),
        *(step("user", "list", "-w", fmt) for fmt in ("simple", "json", "fields")),
        step("user", "passwd", "bob", "--interactive=false", stdin=b"newpw\n"),
        step("role", "revoke-permission", "r1", "k1"),
        step("role", "revoke-permission", "r1", "a", "b"),
        step("role", "revoke-permission", "r1", "z", "--from-key"),
        step("role", "revoke-permission", "r1", "z", "--from-key"),
        step("user", "revoke-role", "alice", "r1"),
        step("user", "revoke-role", "alice", "r1"),
        step("user", "delete", "bob"),
        step("role", "delete", "r2"),
        step("auth", "enable", "extra"),
        step("auth", "enable"),
        step("--user", "root:rootpw", "user", "list"),
        step("--user", "root", "--password", "rootpw", "role", "list"),
        step("--user", "root:wrong", "user", "list"),
        step("--user", "alice:alicepw", "user", "list"),
        step("--user", "root:rootpw", "auth", "disable"),
        step("user", "--help"),
        step("role", "--help"),
        step("auth", "--help"),
        step("role", "grant-permission", "--help"),
        step("user", "add", "--help"),
    )


def _watch_output(side: Side, *args: str) -> bytes:
    # A watch never ends by itself: stop it once it has had time to print the history.
    env = _base_env()
    env["ETCDCTL_ENDPOINTS"] = side.server.address
    try:
        proc = subprocess.run([*side.tool, "watch", *args], capture_output=True, env=env, timeout=4)
        out = proc.stdout
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
    return _normalize_text(out, side, Step(("watch",)))


def test_watch_replays_history_in_every_format(pair: Pair) -> None:
    for key, value in (("watch/a", "1"), ("watch/a", "2"), ("watch/b", "3")):
        pair.both("put", key, value)
    pair.both("del", "watch/a")
    first = pair.revision() - 3
    formats = ("simple", "json", "fields", "protobuf")
    # Each watch is stopped after a fixed wait: run them all at once rather than wait 8 times.
    with ThreadPoolExecutor(max_workers=2 * len(formats)) as pool:
        outputs = {
            (fmt, side): pool.submit(
                _watch_output,
                getattr(pair, side),
                *("watch/", "--prefix", "--prev-kv", "--rev", str(first), "-w", fmt),
            )
            for fmt in formats
            for side in ("left", "right")
        }
        for fmt in formats:
            want, got = outputs[fmt, "left"].result(), outputs[fmt, "right"].result()
            assert want
            assert got == want, fmt
