"""Resident memory of a server's whole process tree, sampled from /proc.

Ward serves from several processes, so a server's memory is the sum of VmRSS over the root
process and every descendant. Pages shared between them (lmdb's map, the interpreter) count once
per process: that is what VmRSS measures, and it is the figure the memory comparison uses.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from bench.proctree import Pids, process_tree

_PROC = Path("/proc")


def rss_bytes(pid: int) -> int:
    """VmRSS of one process in bytes; 0 if it is gone or is a zombie."""
    try:
        with open(_PROC / str(pid) / "status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_bytes(pid: Pids) -> int:
    """Sum of VmRSS over ``pid`` and its descendants (over every root's tree, given several)."""
    return sum(rss_bytes(p) for p in process_tree(pid))


def tree_pss_bytes(pid: Pids) -> int:
    """Sum of Pss over the tree (shared pages split between sharers); 0 if unreadable.

    Costlier than VmRSS (the kernel walks every mapping), so it is read once, after a run.
    """
    total = 0
    for p in process_tree(pid):
        try:
            with open(_PROC / str(p) / "smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


class RssSampler:
    """Samples a process tree's RSS on a background thread and keeps the peak.

    Use as a context manager around the measured window; ``peak`` is valid afterwards.
    """

    def __init__(self, pid: Pids, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.last = 0
        self.samples = 0
        self._stop = threading.Event()
        name = f"rss-{pid if isinstance(pid, int) else pid[0]}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _sample(self) -> None:
        value = tree_rss_bytes(self.pid)
        self.last = value
        self.samples += 1
        self.peak = max(self.peak, value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> RssSampler:
        """Take a first sample now and keep sampling every ``interval`` seconds."""
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop sampling (after one last sample) and return the peak in bytes."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._sample()
        return self.peak

    def __enter__(self) -> RssSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
