"""Auto compaction (``--auto-compaction-mode``/``--auto-compaction-retention``), etcd 3.4's.

Runs in the core process of every member; only the leader proposes (followers keep sampling
revisions, as etcd's paused compactor does, so a new leader knows the history it must keep).

- **periodic**: keep ``retention`` seconds of history. The current revision is sampled every
  ``min(retention, 1h) / 10``; the first compaction comes ``retention`` after the start, then
  one every ``min(retention, 1h)`` after the last success, each at the oldest revision sampled
  within the retention window (the revision of ``retention`` ago).
- **revision**: keep the last ``retention`` revisions: every 5 minutes, compact at
  ``current - retention`` unless that is not positive or was compacted last time.

A failed proposal is tried again at the next check; "required revision has been compacted"
counts as done. The schedules are pure (the clock is passed in) so that tests can drive them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from server import errors
from server.state import ENTRY_AUTO_COMPACTION
from wardpb.etcdserverpb import rpc_pb2

log = logging.getLogger("ward.autocompact")

HOUR_S = 3600.0
RETRY_DIVISOR = 10  # etcd's periodic compactor samples 10 times per compaction interval
REVISION_INTERVAL_S = 300.0  # etcd's revision compactor checks every 5 minutes
# Internal, for tests only: seconds between checks (both modes), instead of etcd's.
INTERVAL_VARIABLE = "WARD_AUTO_COMPACTION_INTERVAL"


class PeriodicSchedule:
    """etcd's periodic compactor: keep `period` seconds of history."""

    def __init__(self, period: float, start: float, *, interval: float | None = None) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self.compact_interval = min(period, HOUR_S)
        self.interval = interval or self.compact_interval / RETRY_DIVISOR
        # Samples covering one period: _revs[0] is the revision of `period` ago once full.
        self._revs: deque[int] = deque(maxlen=max(1, int(period / self.interval)))
        self._last_success = start
        self._wait = period  # the first compaction waits a whole period

    def observe(self, now: float, revision: int) -> None:
        self._revs.append(revision)

    def due(self, now: float, revision: int) -> int | None:
        """The revision to compact at now, or None."""
        if now - self._last_success < self._wait or not self._revs:
            return None
        self._wait = self.compact_interval
        rev = self._revs[0]
        return rev if rev > 0 else None

    def done(self, now: float, revision: int) -> None:
        self._last_success = now


class RevisionSchedule:
    """etcd's revision compactor: keep the last `retention` revisions."""

    def __init__(self, retention: int, *, interval: float | None = None) -> None:
        if retention <= 0:
            raise ValueError("retention must be positive")
        self.retention = retention
        self.interval = interval or REVISION_INTERVAL_S
        self._prev = 0

    def observe(self, now: float, revision: int) -> None:
        pass

    def due(self, now: float, revision: int) -> int | None:
        rev = revision - self.retention
        if rev <= 0 or rev == self._prev:
            return None
        return rev

    def done(self, now: float, revision: int) -> None:
        self._prev = revision


Schedule = PeriodicSchedule | RevisionSchedule


def make_schedule(
    period_s: float, revisions: int, start: float, *, interval: float | None = None
) -> Schedule | None:
    """The schedule for the configured retention (one of the two is nonzero), or None: off."""
    if interval is None:
        raw = os.environ.get(INTERVAL_VARIABLE)
        interval = float(raw) if raw else None
    if period_s > 0:
        return PeriodicSchedule(period_s, start, interval=interval)
    if revisions > 0:
        return RevisionSchedule(revisions, interval=interval)
    return None


class AutoCompactor:
    """Runs a schedule on the event loop; proposes compactions while this member leads."""

    def __init__(
        self,
        schedule: Schedule,
        *,
        is_leader: Callable[[], bool],
        revision: Callable[[], int],
        compact: Callable[[int], Awaitable[object]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._schedule = schedule
        self._is_leader = is_leader
        self._revision = revision
        self._compact = compact
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="auto-compactor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        s = self._schedule
        while True:
            s.observe(self._clock(), self._revision())
            await asyncio.sleep(s.interval)
            await self.check()

    async def check(self) -> None:
        """One check: propose a compaction if one is due and this member leads."""
        if not self._is_leader():
            return
        s = self._schedule
        rev = s.due(self._clock(), self._revision())
        if rev is None:
            return
        log.info("starting auto compaction at revision %d", rev)
        try:
            await self._compact(rev)
        except errors.EtcdError as e:
            if e.message != errors.COMPACTED.message:
                log.warning("auto compaction at revision %d failed: %s", rev, e.message)
                return
        except Exception as e:
            log.warning("auto compaction at revision %d failed: %s", rev, e)
            return
        s.done(self._clock(), rev)
        log.info("completed auto compaction at revision %d", rev)


class _Driver(Protocol):
    is_leader: bool
    revision: int

    async def propose(self, field: int, request: bytes, *, header: bytes = b"") -> bytes: ...


def for_driver(driver: _Driver, period_s: float, revisions: int) -> AutoCompactor | None:
    """The auto compactor of a member's driver, or None when auto compaction is off."""
    schedule = make_schedule(period_s, revisions, time.monotonic())
    if schedule is None:
        return None

    async def compact(rev: int) -> object:
        request = rpc_pb2.CompactionRequest(revision=rev).SerializeToString()
        return await driver.propose(ENTRY_AUTO_COMPACTION, request)

    return AutoCompactor(
        schedule,
        is_leader=lambda: driver.is_leader,
        revision=lambda: driver.revision,
        compact=compact,
    )
