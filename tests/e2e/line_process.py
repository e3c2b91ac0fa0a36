"""A long-running command (etcdctl or wardctl lock/elect/watch) in its own process group, its
stdout lines on a queue, for tests that watch what it prints while it runs."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence


class LineProcess:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        capture_stderr: bool = True,
        line_timeout: float = 15.0,
    ) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
        base["ETCDCTL_API"] = "3"
        self._line_timeout = line_timeout
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture_stderr else subprocess.DEVNULL,
            text=True,
            env={**base, **(env or {})},
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float | None = None) -> str:
        return self.lines.get(timeout=self._line_timeout if timeout is None else timeout)

    def quiet_for(self, seconds: float) -> bool:
        """True if nothing is printed for `seconds`."""
        try:
            self.lines.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def finish(self, timeout: float = 15.0) -> tuple[int, str]:
        """The exit code and what it wrote to stderr, once it has exited."""
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
