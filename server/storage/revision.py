"""The MVCC revision: a main revision per write transaction, a sub-revision per change in it."""

from __future__ import annotations

import struct
from typing import NamedTuple

_REV = struct.Struct(">QQ")

REV_SIZE = _REV.size


class Revision(NamedTuple):
    """A (main, sub) pair whose byte encoding sorts in revision order."""

    main: int
    sub: int = 0

    def to_bytes(self) -> bytes:
        return _REV.pack(self.main, self.sub)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Revision:
        return cls(*_REV.unpack(raw))


def rev_bytes(main: int, sub: int = 0) -> bytes:
    """Encode without building a tuple (hot path)."""
    return _REV.pack(main, sub)


def rev_main(raw: bytes) -> int:
    """The main revision of an encoded revision."""
    return int.from_bytes(raw[:8], "big")
