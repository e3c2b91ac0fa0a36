"""A progress bar for wardctl's long-running commands, drawn only on a terminal.

etcdctl draws its bars with cheggaaa/pb, which writes to stdout whether or not stdout is a
terminal: a piped `etcdctl check perf` carries some 300 carriage-return frames before its
results. wardctl draws only on a terminal (stdout, else stderr), so output redirected to a file
or a pipe holds the results alone, byte for byte what etcdctl prints after its bar.

    with progress_bar(inv, total=60, style="Bom !") as bar:
        ...
        bar.add(1)

`render` is pure (it takes the time), so the drawing can be tested without a terminal.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import IO, Protocol

__all__ = ["Progress", "ProgressOwner", "progress_bar", "terminal_stream"]

REFRESH_S = 0.2  # pb's default refresh rate
DEFAULT_WIDTH = 80
DEFAULT_STYLE = "[=>-]"  # start, done, head, to do, end (pb's Format string)
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def terminal_stream(*streams: IO[bytes]) -> IO[bytes] | None:
    """The first of `streams` that is a terminal able to redraw a line, or None."""
    if os.environ.get("TERM") == "dumb":
        return None
    for stream in streams:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            if stream.isatty():
                return stream
    return None


def _width(stream: IO[bytes]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return DEFAULT_WIDTH


def _size(n: float) -> str:
    for unit in _UNITS:
        if n < 1024 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _clock_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60:02d}m{seconds % 60:02d}s"


class Progress:
    """Counts work done towards `total` (None: unknown) and, when `stream` is a terminal,
    redraws itself there every `REFRESH_S` seconds from a background thread.

    With `stream` None every method still counts but nothing is drawn.
    """

    def __init__(
        self,
        total: int | None,
        stream: IO[bytes] | None,
        *,
        style: str = DEFAULT_STYLE,
        unit: str = "",
        width: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(style) != 5:
            raise ValueError("style takes five characters: start, done, head, to do, end")
        self.total = total
        self.stream = stream
        self.style = style
        self.unit = unit  # "B": show sizes and a rate instead of plain counts
        self.width = width if width is not None else (_width(stream) if stream else 0)
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current = 0
        self.started = clock()
        self.finished = False

    @property
    def enabled(self) -> bool:
        """Whether anything is drawn."""
        return self.stream is not None

    def add(self, n: int = 1) -> None:
        """Count `n` more units of work (thread-safe)."""
        with self._lock:
            self.current += n

    def set(self, value: int) -> None:
        """Set the amount of work done (thread-safe)."""
        with self._lock:
            self.current = value

    def render(self, now: float) -> str:
        """The bar's line at time `now` (no carriage return, no newline)."""
        elapsed = max(0.0, now - self.started)
        show: Callable[[float], str] = _size if self.unit == "B" else str
        counter = show(self.current)
        if self.total is not None:
            counter += f" / {show(self.total)}"
        rate = f"{_size(self.current / elapsed)}/s" if self.unit == "B" and elapsed > 0 else ""
        if self.total is None or self.total <= 0:
            return " ".join(p for p in (f" {counter}", rate, _clock_text(elapsed)) if p)
        fraction = min(1.0, self.current / self.total)
        if self.finished:
            timing = _clock_text(elapsed)
        elif fraction > 0:
            timing = _clock_text(elapsed / fraction - elapsed)
        else:
            timing = ""
        percent = f"{fraction * 100:6.2f}%"
        fixed = " ".join(p for p in (f" {counter}", percent, rate, timing) if p)
        room = self.width - len(fixed) - 3  # the spaces around the bar and a spare column
        if room < 3:
            return fixed
        start, done, head, todo, end = tuple(self.style)
        inner = room - 2
        filled = int(inner * fraction)
        if 0 < filled < inner:
            body = done * (filled - 1) + head + todo * (inner - filled)
        else:
            body = done * filled + todo * (inner - filled)
        bar = f"{start}{body}{end}"
        return " ".join(p for p in (f" {counter}", bar, percent, rate, timing) if p)

    def _draw(self, final: bool = False) -> None:
        if self.stream is None:
            return
        with self._lock:
            line = self.render(self._clock())
        # Padded with spaces to wipe what a longer previous frame left on the line, and one
        # column short of the width so that the terminal never wraps it.
        data = "\r" + line.ljust(max(0, self.width - 1)) + ("\n" if final else "")
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(data.encode())
            self.stream.flush()

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self._draw()

    def start(self) -> Progress:
        """Start the clock and, on a terminal, the redrawing thread."""
        self.started = self._clock()
        if self.stream is not None and self._thread is None:
            self._draw()
            self._thread = threading.Thread(target=self._refresh, name="progress", daemon=True)
            self._thread.start()
        return self

    def finish(self) -> None:
        """Stop redrawing and leave the final state on its own line (like pb's Finish)."""
        if self.finished:
            return
        self.finished = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._draw(final=True)

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.finish()


class ProgressOwner(Protocol):
    """What `progress_bar` needs of an invocation: its two output streams."""

    @property
    def stdout(self) -> IO[bytes]: ...

    @property
    def stderr(self) -> IO[bytes]: ...


def progress_bar(
    inv: ProgressOwner, total: int | None, *, style: str = DEFAULT_STYLE, unit: str = ""
) -> Progress:
    """A bar for `inv`, drawn on stdout if it is a terminal (where etcdctl draws), else on
    stderr if that is one, else nowhere."""
    return Progress(total, terminal_stream(inv.stdout, inv.stderr), style=style, unit=unit)
