"""Auth on and tenants from a policy, on a running `ward`, through the real etcdctl and wardctl:
what the tenant end-to-end tests start from.

Root is `root` with `ROOT_PASSWORD`; every policy user gets the password `password(user)`.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from tests.e2e.ward_process import ETCDCTL_TIMEOUT_S, REPO, WardProcess, etcdctl, start_ward

ROOT_PASSWORD = "root-pass-1"
ROOT = f"--user=root:{ROOT_PASSWORD}"

# Runs etcdctl with these arguments against the server (the caller adds endpoints, TLS flags).
Ctl = Callable[..., subprocess.CompletedProcess[str]]


def password(user: str) -> str:
    return f"{user}-pass-1"


def login(user: str) -> str:
    """etcdctl's flag to run as `user` (a policy user, with its test password)."""
    return f"--user={user}:{password(user)}"


def plain_ctl(endpoint: str) -> Ctl:
    """etcdctl against a plaintext endpoint."""

    def ctl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return etcdctl(endpoint, *args, input=input)

    return ctl


def must(out: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if out.returncode != 0:
        raise AssertionError(f"{out.args} failed: {out.stdout}{out.stderr}")
    return out


def error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The last "Error: ..." line etcdctl printed (the whole of what a client is told)."""
    assert out.returncode != 0, out.stdout
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    assert errors, out.stderr
    return errors[-1]


def wardctl(endpoint: str, *args: str, tls: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ward.cli", "--endpoints", endpoint, *tls, *args],
        capture_output=True,
        text=True,
        timeout=ETCDCTL_TIMEOUT_S,
        cwd=REPO,
        check=False,
    )


def enable_auth(
    ctl: Ctl,
    endpoint: str,
    policy: Path,
    users: Iterable[str],
    *,
    tls: Sequence[str] = (),
    root_flags: Sequence[str] = (ROOT,),
) -> None:
    """Root with the root role, auth on, the policy applied, and each of `users` a password."""
    must(ctl("user", "add", f"root:{ROOT_PASSWORD}"))
    must(ctl("role", "add", "root"))
    must(ctl("user", "grant-role", "root", "root"))
    must(ctl("auth", "enable"))
    must(wardctl(endpoint, *root_flags, "policy", "apply", str(policy), tls=tls))
    for user in users:
        must(ctl(*root_flags, "user", "passwd", user, "--interactive=false", input=password(user)))


@contextlib.contextmanager
def policy_ward(tmp_path: Path, policy: str, users: Iterable[str]) -> Iterator[WardProcess]:
    """A plaintext `ward` (two serving processes) with auth on and `policy` applied; stopped
    on exit."""
    ward = start_ward(tmp_path, "--bcrypt-cost", "4", workers=2)
    try:
        path = tmp_path / "policy.yaml"
        path.write_text(policy)
        enable_auth(plain_ctl(ward.endpoint), ward.endpoint, path, users)
        yield ward
    finally:
        ward.stop()
