"""The worker link's frame writer, on a real Unix socket pair: frames written during one turn of
the event loop leave in one write, in order, and read back as the frames they were."""

from __future__ import annotations

import asyncio
import socket

from server.ipc import OK, PUSH_REV, FrameWriter, frame, read_frame


async def _pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamWriter]:
    """A reader at one end, a writer at the other (and the reader's own writer, kept open)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    reader, keep = await asyncio.open_unix_connection(sock=a)
    _, writer = await asyncio.open_unix_connection(sock=b)
    return reader, writer, keep


async def _burst_then_single() -> None:
    reader, writer, _ = await _pair()
    writes: list[bytes] = []
    real_write = writer.write

    def counting(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    writer.write = counting  # type: ignore[method-assign]
    out = FrameWriter(writer)
    frames = [frame(i, OK, b"answer %d" % i) for i in range(1, 6)] + [frame(0, PUSH_REV, b"x")]
    for f in frames:
        out.write(f)
    assert writes == []  # nothing leaves before the loop turns
    got = [await read_frame(reader) for _ in frames]
    assert writes == [b"".join(frames)]
    assert got == [(i, OK, b"answer %d" % i) for i in range(1, 6)] + [(0, PUSH_REV, b"x")]
    out.write(frame(9, OK, b"later"))
    assert await read_frame(reader) == (9, OK, b"later")
    assert writes[1:] == [frame(9, OK, b"later")]
    writer.close()


def test_frames_of_one_loop_turn_leave_in_one_write_in_order() -> None:
    asyncio.run(_burst_then_single())


async def _closed() -> None:
    reader, writer, _ = await _pair()
    out = FrameWriter(writer)
    out.write(frame(1, OK, b"lost"))
    writer.close()
    await asyncio.sleep(0)  # the flush finds the link closing and drops the frame quietly
    assert await reader.read() == b""


def test_frames_for_a_closed_link_are_dropped() -> None:
    asyncio.run(_closed())
