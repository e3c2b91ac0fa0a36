"""Read-index requests waiting for a heartbeat round to confirm the leader still leads."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.raft.types import Message


@dataclass(slots=True)
class ReadIndexStatus:
    request: Message
    index: int  # the commit index when the request arrived
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    """Pending read-index requests, keyed by their context, in arrival order.

    A heartbeat carries the context of the newest request; a quorum of acks for it confirms
    leadership at a time after every older request arrived, so all of them are released together.
    """

    def __init__(self) -> None:
        self._pending: dict[bytes, ReadIndexStatus] = {}
        self._queue: list[bytes] = []

    def add_request(self, index: int, request: Message) -> None:
        ctx = request.context
        if ctx in self._pending:
            return
        self._pending[ctx] = ReadIndexStatus(request=request, index=index)
        self._queue.append(ctx)

    def recv_ack(self, node_id: int, ctx: bytes) -> set[int] | None:
        """Record that ``node_id`` answered a heartbeat carrying ``ctx``; returns all acks."""
        status = self._pending.get(ctx)
        if status is None:
            return None
        status.acks.add(node_id)
        return status.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release the request ``ctx`` and every request queued before it."""
        if ctx not in self._pending:
            return []
        pos = self._queue.index(ctx)
        released = [self._pending.pop(c) for c in self._queue[: pos + 1]]
        del self._queue[: pos + 1]
        return released

    def last_pending_ctx(self) -> bytes:
        return self._queue[-1] if self._queue else b""

    def __len__(self) -> int:
        return len(self._queue)
