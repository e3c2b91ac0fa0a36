"""The real etcdctl 3.4's `user`, `role` and `auth` commands, and `--user` on other commands,
against Ward and etcd 3.4 in the same run: every command must print the same thing, fail with
the same message and exit with the same status on both.

One script of commands runs against each server; the scripts' transcripts must be equal. Lines
etcdctl's client library logs on its own (JSON, with timestamps and client IDs) are left out;
its `Error: ...` lines, which carry the server's messages, are kept. Both servers hash cheaply
(`--bcrypt-cost 4`); every password is at least 8 characters, Ward's minimum (etcd has none).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.servers import SERVER_KINDS, Endpoint, start_server
from tests.e2e.ward_process import etcdctl

ROOT = "--user=root:root-pass-1"
ALICE = "--user=alice:alice-pass-2"

# (arguments, stdin): run in this order against a fresh server of each kind.
SCRIPT: tuple[tuple[tuple[str, ...], str | None], ...] = (
    # --- auth off: setting up, and etcd's rules about root ---
    (("auth", "disable"), None),
    (("auth", "enable"), None),
    (("user", "add", "root:root-pass-1"), None),
    (("user", "add", "root:another-pass"), None),
    (("role", "add", "root"), None),
    (("role", "add", "root"), None),
    (("user", "grant-role", "root", "root"), None),
    (("user", "grant-role", "root", "root"), None),
    (("user", "grant-role", "nobody", "root"), None),
    (("user", "grant-role", "root", "no-such-role"), None),
    (("role", "add", "r1"), None),
    (("role", "add", "r2"), None),
    (("role", "grant-permission", "r1", "read", "k1"), None),
    (("role", "grant-permission", "r1", "write", "k2", "kz"), None),
    (("role", "grant-permission", "r1", "readwrite", "--prefix", "p/"), None),
    (("role", "grant-permission", "r1", "readwrite", "--from-key", "f"), None),
    (("role", "grant-permission", "r1", "readwrite", "k1"), None),
    (("role", "grant-permission", "r1", "read", "k1"), None),
    (("role", "grant-permission", "r2", "readwrite", "k1"), None),
    (("role", "grant-permission", "no-such-role", "read", "k1"), None),
    (("role", "grant-permission", "r1", "bogus", "k1"), None),
    (("role", "get", "r1"), None),
    (("role", "get", "r1", "-w", "json"), None),
    (("role", "get", "no-such-role"), None),
    (("role", "get", "root"), None),
    (("role", "list"), None),
    (("role", "revoke-permission", "r1", "k2", "kz"), None),
    (("role", "revoke-permission", "r1", "k2", "kz"), None),
    (("role", "revoke-permission", "no-such-role", "k1"), None),
    (("role", "get", "r1"), None),
    (("user", "add", "alice:alice-pass-1"), None),
    (("user", "add", "bob", "--interactive=false"), "bob-pass-1\n"),
    (("user", "add", "carol", "--no-password"), None),
    (("user", "grant-role", "alice", "r1"), None),
    (("user", "grant-role", "alice", "r2"), None),
    (("user", "get", "alice"), None),
    (("user", "get", "alice", "--detail"), None),
    (("user", "get", "nobody"), None),
    (("user", "get", "carol"), None),
    (("user", "revoke-role", "alice", "r2"), None),
    (("user", "revoke-role", "alice", "r2"), None),
    (("user", "revoke-role", "nobody", "r1"), None),
    (("user", "list"), None),
    (("user", "list", "-w", "json"), None),
    (("user", "passwd", "alice", "--interactive=false"), "alice-pass-2\n"),
    (("user", "passwd", "nobody", "--interactive=false"), "nobody-pass-1\n"),
    (("user", "get", "root"), None),
    # etcdctl grants root the root role itself when the server says it lacks it.
    (("user", "revoke-role", "root", "root"), None),
    (("user", "get", "root"), None),
    (("auth", "enable"), None),
    (("user", "grant-role", "root", "root"), None),
    (("auth", "enable"), None),
    (("auth", "enable"), None),
    ((ROOT, "user", "get", "root"), None),
    # --- auth on: who may do what ---
    (("get", "k1"), None),
    (("put", "k1", "v"), None),
    ((ROOT, "put", "k1", "root-wrote-this"), None),
    ((ALICE, "get", "k1"), None),
    (("--user=alice:alice-pass-1", "get", "k1"), None),
    (("--user=nobody:nobody-pass-1", "get", "k1"), None),
    (("--user=carol:carol-pass-1", "get", "k1"), None),
    ((ALICE, "put", "k1", "v"), None),
    ((ALICE, "put", "k2", "v"), None),
    ((ALICE, "put", "p/x", "v"), None),
    ((ALICE, "put", "p/y", "v", "--prev-kv"), None),
    ((ALICE, "get", "p/", "--prefix"), None),
    ((ALICE, "get", "p", "--prefix"), None),
    ((ALICE, "put", "f", "v"), None),
    ((ALICE, "put", "zzz", "v"), None),
    ((ALICE, "put", "e", "v"), None),
    ((ALICE, "get", "f", "--from-key", "--keys-only"), None),
    ((ALICE, "get", "e", "--from-key"), None),
    ((ALICE, "del", "p/x"), None),
    ((ALICE, "del", "p/", "--prefix", "--prev-kv"), None),
    ((ALICE, "del", "k1"), None),
    # etcdctl counts "permission denied" as healthy, "user name is empty" not.
    (("endpoint", "health"), None),
    ((ALICE, "endpoint", "health"), None),
    ((ALICE, "user", "list"), None),
    ((ALICE, "user", "get", "alice"), None),
    ((ALICE, "user", "get", "root"), None),
    ((ALICE, "role", "get", "r1"), None),
    ((ALICE, "role", "get", "r2"), None),
    ((ALICE, "role", "list"), None),
    ((ALICE, "role", "add", "r3"), None),
    ((ALICE, "user", "add", "dave:dave-pass-1"), None),
    ((ALICE, "user", "grant-role", "alice", "root"), None),
    ((ALICE, "role", "grant-permission", "r1", "readwrite", "k1"), None),
    ((ALICE, "auth", "disable"), None),
    ((ALICE, "defrag"), None),
    ((ALICE, "alarm", "disarm"), None),
    ((ROOT, "user", "delete", "root"), None),
    ((ROOT, "user", "revoke-role", "root", "root"), None),
    ((ROOT, "role", "delete", "root"), None),
    ((ROOT, "role", "delete", "r2"), None),
    ((ROOT, "role", "delete", "r2"), None),
    ((ROOT, "user", "get", "alice"), None),
    ((ROOT, "role", "list"), None),
    ((ROOT, "user", "delete", "bob"), None),
    ((ROOT, "user", "delete", "bob"), None),
    ((ROOT, "user", "list"), None),
    ((ROOT, "get", "", "--from-key", "--keys-only"), None),
    ((ROOT, "alarm", "list"), None),
    ((ROOT, "auth", "disable"), None),
    # --- auth off again: tokens and users no longer matter ---
    (("get", "k1", "--print-value-only"), None),
    ((ROOT, "get", "k1"), None),
    (("user", "list"), None),
    (("auth", "enable"), None),
    ((ALICE, "get", "f", "--from-key", "--keys-only"), None),
)


@dataclass(frozen=True, slots=True)
class Step:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: tuple[str, ...]

    def show(self) -> str:
        return f"$ etcdctl {' '.join(self.args)}  -> {self.code}\n{self.stdout}" + "".join(
            f"! {line}\n" for line in self.stderr
        )


def _transcript(endpoint: Endpoint) -> list[Step]:
    steps = []
    for args, stdin in SCRIPT:
        res = etcdctl(endpoint.address, *args, input=stdin)
        # Some commands name the endpoint, whose port differs by nature, or a duration.
        stdout = _plain(res.stdout, endpoint.address)
        stderr = tuple(
            _plain(line, endpoint.address)
            for line in res.stderr.splitlines()
            if line and not _client_log(line)
        )
        steps.append(Step(args, res.returncode, stdout, stderr))
    return steps


def _plain(text: str, address: str) -> str:
    return _TOOK.sub("took = T", text.replace(address, "ENDPOINT"))


_TOOK = re.compile(r"took = [0-9.]+[µmn]?s")


def _client_log(line: str) -> bool:
    """A line etcdctl's client library logs by itself (its retry notices)."""
    if not line.startswith("{"):
        return False
    try:
        return "level" in json.loads(line)
    except ValueError:
        return False


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Step]]]:
    out: dict[str, list[Step]] = {}
    for kind in SERVER_KINDS:
        tmp: Path = tmp_path_factory.mktemp(f"auth-{kind}")
        server = start_server(kind, tmp, "--bcrypt-cost", "4")
        try:
            out[kind] = _transcript(server)
        finally:
            server.stop()
    yield out


def _normalized(steps: list[Step]) -> list[Step]:
    """Values that differ by nature between two servers: JSON headers (IDs, revisions, terms)."""
    out = []
    for s in steps:
        stdout = s.stdout
        if "-w" in s.args and "json" in s.args and stdout:
            doc = json.loads(stdout)
            doc.pop("header", None)
            stdout = json.dumps(doc, sort_keys=True)
        out.append(Step(s.args, s.code, stdout, s.stderr))
    return out


def test_etcdctl_auth_script_prints_what_etcd_prints(transcripts: dict[str, list[Step]]) -> None:
    etcd, ward = (_normalized(transcripts[k]) for k in ("etcd", "ward"))
    assert len(etcd) == len(ward) == len(SCRIPT)
    mismatches = [
        f"--- etcd\n{e.show()}--- ward\n{w.show()}"
        for e, w in zip(etcd, ward, strict=True)
        if e != w
    ]
    assert not mismatches, "\n".join(mismatches)


def _step(transcripts: dict[str, list[Step]], kind: str, *args: str) -> Step:
    return next(s for s in transcripts[kind] if s.args == args)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_key_messages_are_etcds(transcripts: dict[str, list[Step]], kind: str) -> None:
    """A few steps spelled out, so that a wrong message fails here even if both agree."""
    step = _step(transcripts, kind, "auth", "enable")
    assert step.stderr == ("Error: etcdserver: root user does not exist",)
    assert _step(transcripts, kind, "get", "k1").stderr == (
        "Error: etcdserver: user name is empty",
    )
    assert _step(transcripts, kind, ALICE, "put", "e", "v").stderr == (
        "Error: etcdserver: permission denied",
    )
    assert _step(transcripts, kind, ROOT, "user", "delete", "root").stderr == (
        "Error: etcdserver: invalid auth management",
    )
    assert _step(transcripts, kind, "--user=alice:alice-pass-1", "get", "k1").stderr == (
        "Error: etcdserver: authentication failed, invalid user ID or password",
    )
    assert _step(transcripts, kind, ROOT, "auth", "disable").stdout == "Authentication Disabled\n"
