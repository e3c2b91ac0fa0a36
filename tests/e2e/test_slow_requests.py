"""Slow-request log lines from a running `ward`: one JSON line per request slower than
`--experimental-warning-apply-duration` (etcd's flag, set tiny here so that every request is
slow), with its duration and a summary that never holds a password, a token or a value."""

from __future__ import annotations

import json
from pathlib import Path

from server.config.values import parse_go_duration
from tests.e2e.auth_client import authenticate
from tests.e2e.ward_process import etcdctl, start_ward

ROOT_PW = "Root-Secret-9"
ALICE_PW = "Alice-Secret-7"
ALICE_NEW_PW = "Alice-Newpass-8"
VALUE = "value-not-for-logs"


def _slow_lines(log: str) -> list[dict[str, object]]:
    out = []
    for line in log.splitlines():
        if "took too long" not in line:
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _ok(endpoint: str, *args: str, stdin: str | None = None) -> str:
    r = etcdctl(endpoint, *args, input=stdin)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_slow_requests_are_logged_with_their_duration_and_no_secret(tmp_path: Path) -> None:
    ward = start_ward(
        tmp_path, "--experimental-warning-apply-duration", "1ns", "--bcrypt-cost", "4"
    )
    try:
        ep = ward.endpoint
        _ok(ep, "put", "slow/key", VALUE)
        _ok(ep, "get", "slow/key")
        _ok(ep, "user", "add", f"root:{ROOT_PW}")
        _ok(ep, "user", "grant-role", "root", "root")
        _ok(ep, "user", "add", f"alice:{ALICE_PW}")
        _ok(ep, "auth", "enable")
        token = authenticate(ep, "alice", ALICE_PW)
        # Alice holds no role: refused, and the refusal is logged as slow too.
        assert etcdctl(ep, f"--user=alice:{ALICE_PW}", "get", "slow/key").returncode != 0
        _ok(
            ep,
            f"--user=root:{ROOT_PW}",
            "user",
            "passwd",
            "alice",
            "--interactive=false",
            stdin=ALICE_NEW_PW + "\n",
        )
        _ok(ep, f"--user=root:{ROOT_PW}", "put", "slow/key2", VALUE)
        log = ward.log_text()
    finally:
        ward.stop()

    lines = _slow_lines(log)
    for line in lines:
        assert line["level"] == "warn"
        assert line["expected-duration"] == "1ns"
        assert parse_go_duration(str(line["took"])) > 0

    def find(**want: str) -> dict[str, object]:
        for line in lines:
            if all(want[k] in str(line.get(k, "")) for k in want):
                return line
        raise AssertionError(f"no slow-request line with {want}:\n" + "\n".join(map(str, lines)))

    # etcd's apply line for the entry, on the member that applied it.
    put = find(msg="apply request took too long", method="put", request='key:"slow/key"')
    assert f"value_size:{len(VALUE)}" in str(put["request"]) and put["prefix"] == ""
    # etcd's read-only range line, and Ward's line for the whole Put call.
    rng = find(prefix="read-only range ", request='key:"slow/key"')
    assert str(rng["response"]).startswith("range_response_count:1 ")
    find(msg="request took too long", method="/etcdserverpb.KV/Put")
    # Calls with a password: the user's name, never the password.
    find(method="/etcdserverpb.Auth/Authenticate", request='name:"alice" password:[redacted]')
    find(method="/etcdserverpb.Auth/UserAdd", request='name:"alice"')
    find(method="/etcdserverpb.Auth/UserChangePassword", request='name:"alice"')
    find(method="auth_user_add", request="password_hash:[redacted]")
    refused = find(prefix="read-only range ", error="permission denied")
    assert refused["response"] == ""
    for secret in (ROOT_PW, ALICE_PW, ALICE_NEW_PW, VALUE, token):
        assert secret not in log


def test_requests_under_the_threshold_are_not_logged(tmp_path: Path) -> None:
    ward = start_ward(tmp_path, "--experimental-warning-apply-duration", "1h")
    try:
        _ok(ward.endpoint, "put", "k", "v")
        _ok(ward.endpoint, "get", "k")
        log = ward.log_text()
    finally:
        ward.stop()
    assert _slow_lines(log) == []
