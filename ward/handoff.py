"""What a background stream (watch, keep-alive) hands its reader through a queue.

The stream's thread or task puts each response, then at most one exception that ended the
stream (the server's `EtcdError`, or whatever else stopped it), then `END`. Readers of either
client take items out with `unpack`, which makes every later read see the end too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["END", "unpack"]

T = TypeVar("T")

END = object()


def unpack(item: object, kind: type[T], put_back: Callable[[object], None]) -> T | None:
    """The response in `item`, or None at the end; raises what ended the stream.

    `put_back` returns `END` to the queue, so that every later read ends as well.
    """
    if item is END:
        put_back(END)
        return None
    if isinstance(item, Exception):
        put_back(END)
        raise item
    assert isinstance(item, kind)
    return item
