"""Start `ward` (and, for comparison, the real etcd) as child processes for end-to-end tests.

Each server runs in its own process group, so that `kill9()` and the final `stop()` reach every
process it forked (Ward's worker processes included) and no test leaves a server behind. Ports
are borrowed from the kernel on 127.0.0.1 just before the start, because etcd's flags name
fixed ports and neither server reports a port 0 back.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[2]
ETCD = Path("/usr/bin/etcd")
ETCDCTL = Path("/usr/bin/etcdctl")

READY_LINE = "ready to serve client requests"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
ETCDCTL_TIMEOUT_S = 30.0


class ServerStartError(RuntimeError):
    """The server exited, or did not become ready in time; the message carries its log."""

    def __init__(self, message: str, returncode: int | None, log: str) -> None:
        super().__init__(f"{message}\n--- server log ---\n{log[-4000:]}")
        self.returncode = returncode
        self.log = log


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORT_FLOOR = 10000
_PORT_CEILING = max(_ephemeral_low(), _PORT_FLOOR + 1000)
# Each test process starts its walk somewhere else, so concurrent runs rarely probe the same port.
_PORT_START = _PORT_FLOOR + os.getpid() * 61 % (_PORT_CEILING - _PORT_FLOOR)
_next_port = itertools.cycle(
    itertools.chain(range(_PORT_START, _PORT_CEILING), range(_PORT_FLOOR, _PORT_START))
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to right now, below the ephemeral range.

    A port from bind(0) comes out of the range the kernel also hands to outgoing connections,
    so between the check and the server's bind some client's socket could take it as its
    source port ("address already in use"). Below that range only explicit binds take ports,
    and this walk hands each one out once per test process. Ward binds with SO_REUSEPORT, so
    two Wards handed the same port would share it silently; a test that sees foreign data
    fails rather than passes.
    """
    for _ in range(_PORT_CEILING - _PORT_FLOOR):
        port = next(_next_port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port on 127.0.0.1 below the ephemeral range")


def eventually(
    check: Callable[[], bool], timeout: float = 30.0, what: str = "", interval: float = 0.2
) -> None:
    """Poll `check` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {what}")
        time.sleep(interval)


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on `port` (each serving process has its own, SO_REUSEPORT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                count += 1
    return count


def _clean_environ(extra: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment without ETCD_*/ETCDCTL_*/GRPC_* variables, plus `extra`.

    A stray ETCD_* variable in the developer's shell would silently change the server's
    configuration under test, so none is inherited; nor are GRPC_* ones (importing `ward.cli`
    in the test process sets GRPC_VERBOSITY=NONE, which would hide the server's handshake log
    lines that the TLS tests read).
    """
    prefixes = ("ETCD_", "ETCDCTL_", "GRPC_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONPATH"] = os.pathsep.join((str(REPO), str(REPO / "proto")))
    env.update(extra or {})
    return env


class _ServerProcess:
    """A server in its own process group, logging to a file; ready when its log says so."""

    ready_line = READY_LINE

    def __init__(self, tmp_path: Path, label: str) -> None:
        self.tmp_path = tmp_path
        self.client_port = free_port()
        self.peer_port = free_port()
        self.log_path = tmp_path / f"{label}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._argv: list[str] = []
        self._env: dict[str, str] = {}
        self._log_offset = 0

    @property
    def endpoint(self) -> str:
        """host:port of the client listener, as gRPC channels and etcdctl take it."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int:
        """The main process's pid; it is also the process group's id."""
        assert self.proc is not None, "server not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_text(self) -> str:
        """Everything the server wrote to stdout and stderr so far, over every (re)start."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def launch(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Start `argv` in a new process group without waiting for it to serve."""
        self._argv = list(argv)
        self._env = _clean_environ(env)
        self._spawn()

    def _spawn(self) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self.tmp_path,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Block until this start's log says it serves; raise ServerStartError otherwise."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_line in self.log_text()[self._log_offset :]:
                return
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"server exited with {self.proc.returncode} before serving",
                    self.proc.returncode,
                    self.log_text(),
                )
            time.sleep(0.05)
        self.kill9()
        raise ServerStartError(f"server not ready after {timeout} s", None, self.log_text())

    def wait_listening(self, sockets: int, timeout: float = START_TIMEOUT_S) -> None:
        """Block until `sockets` listening sockets serve the client port (one per process)."""
        deadline = time.monotonic() + timeout
        while listening_sockets(self.client_port) < sockets:
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"fewer than {sockets} processes listen after {timeout} s",
                    self.returncode,
                    self.log_text(),
                )
            time.sleep(0.05)

    def wait_exit(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """The exit code once the main process has exited (for servers expected to refuse)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the main process only, as a service manager would."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Ask the main process to stop and wait; then SIGKILL whatever is left of the group."""
        if self.proc is None:
            return None
        code: int | None = self.proc.poll()
        if code is None:
            self.send_signal(sig)
            try:
                code = self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                code = None
        self._kill_group()
        return code

    def kill9(self) -> None:
        """SIGKILL every process of the group at once (a crash, or the last resort)."""
        self._kill_group()

    def _kill_group(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving a `with` block stops the server, whatever happened inside."""
        self.stop()

    def restart(self) -> None:
        """Stop (if running) and start again with the same flags, data dir and ports."""
        self.stop()
        self._spawn()
        self.wait_ready()


class WardProcess(_ServerProcess):
    """`python -m server.main` with a single-member cluster on loopback ports."""

    def __init__(self, tmp_path: Path, workers: int = 2, name: str = "w") -> None:
        super().__init__(tmp_path, "ward")
        self.workers = workers
        self.name = name
        self.data_dir = tmp_path / "ward.data"

    def base_flags(self) -> list[str]:
        """The flags every test starts from: one member `name` on this object's ports."""
        return [
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            f"{self.name}={self.peer_url}",
            "--workers",
            str(self.workers),
        ]

    def start(
        self,
        *extra_flags: str,
        env: Mapping[str, str] | None = None,
        base_flags: bool = True,
        wait: bool = True,
    ) -> WardProcess:
        """Launch with the base flags (unless `base_flags` is false) and `extra_flags`."""
        flags = [*(self.base_flags() if base_flags else []), *extra_flags]
        self.launch([sys.executable, "-m", "server.main", *flags], env)
        if wait:
            self.wait_ready()
        return self


def start_ward(
    tmp_path: Path,
    *extra_flags: str,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
) -> WardProcess:
    """A started, serving `ward` on fresh loopback ports with its data dir under `tmp_path`.

    The caller must `stop()` it (the `ward` fixture does); on a start failure the processes are
    already gone and ServerStartError carries the log.
    """
    ward = WardProcess(tmp_path, workers=workers)
    try:
        return ward.start(*extra_flags, env=env)
    except BaseException:
        ward.kill9()
        raise


class EtcdProcess(_ServerProcess):
    """The real etcd 3.4, started the way `start_ward` starts Ward, to compare answers with."""

    ready_line = READY_LINE

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, "etcd")
        self.data_dir = tmp_path / "etcd.data"

    def start(self, *extra_flags: str) -> EtcdProcess:
        self.launch(
            [
                str(ETCD),
                "--name",
                "e",
                "--data-dir",
                str(self.data_dir),
                "--listen-client-urls",
                self.client_url,
                "--advertise-client-urls",
                self.client_url,
                "--listen-peer-urls",
                self.peer_url,
                "--initial-advertise-peer-urls",
                self.peer_url,
                "--initial-cluster",
                f"e={self.peer_url}",
                *extra_flags,
            ]
        )
        self.wait_ready()
        return self


def start_etcd(tmp_path: Path, *extra_flags: str) -> EtcdProcess:
    """A started, serving etcd (skip the caller's test first if ETCD does not exist)."""
    etcd = EtcdProcess(tmp_path)
    try:
        return etcd.start(*extra_flags)
    except BaseException:
        etcd.kill9()
        raise


def etcdctl(
    endpoint: str, *args: str, input: str | None = None, timeout: float = ETCDCTL_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """`/usr/bin/etcdctl --endpoints endpoint args...` with the v3 API; output captured as text."""
    env = _clean_environ({"ETCDCTL_API": "3"})
    return subprocess.run(
        [str(ETCDCTL), "--endpoints", endpoint, *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
