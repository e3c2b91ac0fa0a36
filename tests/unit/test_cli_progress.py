"""wardctl's progress bar (`ward.cli.progress`): drawn on a terminal only, never into a pipe or
a file, so that redirected output holds exactly etcdctl's results."""

from __future__ import annotations

import io
import os
import time

import pytest

from ward.cli.progress import Progress, progress_bar, terminal_stream


class _Terminal(io.BytesIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class _Streams:
    def __init__(self, stdout: io.BytesIO, stderr: io.BytesIO) -> None:
        self.stdout = stdout
        self.stderr = stderr


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_drawn_when_neither_stream_is_a_terminal() -> None:
    streams = _Streams(io.BytesIO(), io.BytesIO())
    bar = progress_bar(streams, 3)
    assert not bar.enabled
    with bar:
        bar.add(1)
        time.sleep(0.3)  # longer than a refresh
        bar.add(2)
    assert bar.current == 3
    assert streams.stdout.getvalue() == b""
    assert streams.stderr.getvalue() == b""


def test_a_pipe_is_not_a_terminal() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(write_fd, "wb", closefd=False) as pipe:
            assert terminal_stream(pipe) is None
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_the_bar_goes_to_stdout_when_it_is_a_terminal_else_to_stderr() -> None:
    out, err = _Terminal(), _Terminal()
    assert progress_bar(_Streams(out, err), 1).stream is out
    plain = io.BytesIO()
    assert progress_bar(_Streams(plain, err), 1).stream is err


def test_a_dumb_terminal_gets_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert terminal_stream(_Terminal()) is None


def test_render_shows_counts_bar_percent_and_time_left() -> None:
    clock = _Clock()
    bar = Progress(60, None, style="Bom !", width=60, clock=clock)
    bar.start()
    bar.add(15)
    clock.now += 15
    line = bar.render(clock.now)
    assert line.startswith(" 15 / 60 Booooooom ")
    assert line.endswith("!  25.00% 00m45s")
    assert len(line) == 60 - 2


def test_render_shows_elapsed_time_once_finished_and_never_overflows() -> None:
    clock = _Clock()
    bar = Progress(10, None, width=40, clock=clock)
    bar.start()
    bar.add(25)  # more than the total: the bar stays full
    clock.now += 61
    bar.finish()
    line = bar.render(clock.now)
    assert line.endswith("] 100.00% 01m01s")
    assert "[" + "=" * (line.index("]") - line.index("[") - 1) + "]" in line


def test_render_without_a_total_shows_bytes_and_rate() -> None:
    clock = _Clock()
    bar = Progress(None, None, unit="B", clock=clock)
    bar.start()
    bar.add(3 * 1024 * 1024)
    clock.now += 2
    assert bar.render(clock.now) == " 3.00 MiB 1.50 MiB/s 00m02s"


def test_a_narrow_terminal_gets_the_numbers_without_a_bar() -> None:
    bar = Progress(100, None, width=10, clock=_Clock())
    assert bar.render(100.0) == " 0 / 100   0.00%"


def test_on_a_terminal_frames_are_redrawn_in_place_and_the_last_ends_the_line() -> None:
    term = _Terminal()
    clock = _Clock()
    bar = Progress(4, term, width=50, clock=clock)
    with bar:
        bar.add(4)
        clock.now += 1
    frames = term.getvalue().decode()
    assert frames.startswith("\r 0 / 4 [")
    assert frames.endswith("\n")
    assert frames.count("\n") == 1
    last = frames.rsplit("\r", 1)[1]
    assert last.rstrip() == bar.render(clock.now)
    assert len(last) == 50  # padded to width - 1, plus the newline


def test_style_must_have_five_characters() -> None:
    with pytest.raises(ValueError, match="five characters"):
        Progress(1, None, style="[=]")
