"""A process and its descendants, and the CPU time they have used, read from /proc."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from the state on (index 0 is field 3), or None if gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    return stat[stat.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's children file), or [] if it is gone."""
    found: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except FileNotFoundError:
            # Kernels without CONFIG_PROC_CHILDREN: fall back to scanning every process's parent.
            return _children_by_scan(pid)
        except OSError:
            continue
        found.extend(int(tok) for tok in text.split())
    return found


def _children_by_scan(pid: int) -> list[int]:
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


Pids = int | Sequence[int]
"""One server's root process, or the roots of several (the members of a cluster)."""


def process_tree(pid: Pids) -> list[int]:
    """``pid`` and all its descendants (empty if ``pid`` is gone); with several roots, every
    root's tree (the members of a cluster, each in its own process group)."""
    roots = [pid] if isinstance(pid, int) else list(pid)
    tree: list[int] = []
    pending = [p for p in roots if (_PROC / str(p)).exists()]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        tree.append(current)
        pending.extend(children(current))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, including children it has reaped; 0 if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 of stat (indices 11-14 here).
    return sum(int(v) for v in fields[11:15]) / _TICKS


def tree_cpu_seconds(pid: Pids) -> float:
    """CPU time used so far by ``pid`` and its live descendants (and the children they reaped)."""
    return sum(cpu_seconds(p) for p in process_tree(pid))
