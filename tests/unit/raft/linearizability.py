"""A linearizability checker for histories of per-key registers (no Raft in here).

A history is a list of :class:`Operation`: who (``client``) did what (``op``: read, write or
compare-and-set) to which ``key``, with which ``value``, between which ``call`` and ``ret``
times (any comparable clock: a logical counter, ``time.monotonic()``). An operation whose
outcome is unknown (the client timed out or crashed) has ``ret=None``: it may have taken effect
at any time after its call, or never. A read with an unknown outcome tells nothing and is
ignored; an operation known to have failed must be left out of the history altogether
(:class:`History` does both).

Values:

* ``write``: ``value`` is what was written (``None`` models a delete).
* ``read``: ``value`` is what was read (``None``: the key was absent).
* ``cas``: ``value`` is ``(expected, new, succeeded)``; ``succeeded`` is ``None`` when unknown.

Values must be hashable (the search memoizes register states).

:func:`check` decides whether some total order of the operations, consistent with real time
(an operation that returned before another was called comes first) and with each register's
sequential behaviour, explains every answer. Linearizability is compositional (Herlihy & Wing),
so each key is checked on its own. The search is Wing & Gong's, with Lowe's memoization of
(operations linearized, register value) as in Porcupine: scan the pending calls in time order,
tentatively linearize one whose effect matches the model, backtrack when the next return
belongs to an operation not yet linearized. Intervals that merely touch (a return and a call at
the same instant) count as concurrent, so clock ties never produce a false alarm.

Writes with unknown outcomes are what makes the search expensive (each may be placed anywhere
after its call, or nowhere), so on keys without cas one whose value nobody read is dropped
first: it may as well never have happened, and placing it anywhere could only be undone by a
later write before any read. This keeps verdicts the same and failing searches short.

On a violation, :class:`Violation` is the witness: the longest order of operations the search
could justify, the register's value after it, and an operation that returned without any way
to take effect after that prefix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

READ = "read"
WRITE = "write"
CAS = "cas"
OPS = frozenset({READ, WRITE, CAS})


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation on one register, with the interval it spanned."""

    client: Hashable
    op: str
    key: Hashable
    value: Any
    call: float
    ret: float | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown operation {self.op!r}")
        if self.ret is not None and self.ret < self.call:
            raise ValueError(f"operation returns before it is called: {self}")
        if self.op == CAS and not (isinstance(self.value, tuple) and len(self.value) == 3):
            raise ValueError("a cas value is (expected, new, succeeded)")

    def __str__(self) -> str:
        ret = "?" if self.ret is None else f"{self.ret:g}"
        return f"[{self.call:g}, {ret}] client {self.client}: {self.op} {self.key!r} {self.value!r}"


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a key's history is not linearizable (see the module docstring)."""

    key: Hashable
    prefix: tuple[Operation, ...]
    state: Any
    blocked: Operation

    def describe(self) -> str:
        lines = [f"key {self.key!r} is not linearizable; the longest justified order is:"]
        lines += [f"  {op}" for op in self.prefix] or ["  (nothing)"]
        lines.append(f"leaving the register at {self.state!r}, after which")
        lines.append(f"  {self.blocked}")
        lines.append("cannot take effect before it returned")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """``ok``, with one linearization per key; or the first violation found."""

    ok: bool
    violation: Violation | None = None
    linearizations: dict[Hashable, tuple[Operation, ...]] = field(default_factory=dict)


class CheckBudgetExceeded(Exception):
    """The search took more than ``max_steps`` steps: no verdict (shrink the history)."""


def step_register(state: Any, op: Operation) -> tuple[bool, Any]:
    """The sequential register: whether ``op`` may take effect in ``state``, and the next state."""
    if op.op == WRITE:
        return True, op.value
    if op.op == READ:
        return state == op.value, state
    expected, new, succeeded = op.value
    if state == expected:
        return succeeded is not False, new
    return succeeded is not True, state


class _Entry:
    """A call or return event in the doubly linked list the search lifts operations out of."""

    __slots__ = ("id", "is_call", "match", "next", "prev")

    def __init__(self, op_id: int, is_call: bool) -> None:
        self.id = op_id
        self.is_call = is_call
        self.match: _Entry | None = None  # a call's return event
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _lift(call: _Entry) -> None:
    """Take an operation (its call and return events) out of the list."""
    ret = call.match
    assert call.prev is not None and ret is not None and ret.prev is not None
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    """Put back an operation taken out by ``_lift`` (the reverse, in reverse order)."""
    ret = call.match
    assert call.prev is not None and ret is not None and ret.prev is not None
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def _check_key(
    key: Hashable,
    ops: list[Operation],
    initial: Any,
    model: Callable[[Any, Operation], tuple[bool, Any]],
    max_steps: int,
) -> tuple[tuple[Operation, ...], Violation | None]:
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        events.append((math.inf if op.ret is None else op.ret, 1, i))
    events.sort()  # at equal times calls come first: touching intervals overlap

    head = _Entry(-1, False)
    calls: dict[int, _Entry] = {}
    prev = head
    for _, kind, i in events:
        e = _Entry(i, kind == 0)
        if e.is_call:
            calls[i] = e
        else:
            calls[i].match = e
        e.prev = prev
        prev.next = e
        prev = e

    state = initial
    linearized = 0
    stack: list[tuple[_Entry, Any]] = []
    cache: set[tuple[int, Any]] = set()
    best: Violation | None = None
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            raise CheckBudgetExceeded(f"key {key!r}: more than {max_steps} steps")
        assert entry is not None  # the list always ends with a return event
        if entry.is_call:
            ok, new_state = model(state, ops[entry.id])
            if ok:
                seen = (linearized | 1 << entry.id, new_state)
                if seen not in cache:
                    cache.add(seen)
                    stack.append((entry, state))
                    state = new_state
                    linearized |= 1 << entry.id
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
            continue
        # A return event of an operation not linearized yet.
        if ops[entry.id].ret is None:
            break  # only unknown outcomes are left: each may simply never have happened
        if best is None or len(stack) >= len(best.prefix):
            best = Violation(
                key=key,
                prefix=tuple(ops[e.id] for e, _ in stack),
                state=state,
                blocked=ops[entry.id],
            )
        if not stack:
            return (), best
        call, state = stack.pop()
        linearized &= ~(1 << call.id)
        _unlift(call)
        entry = call.next
    return tuple(ops[e.id] for e, _ in stack), None


def check(
    history: Iterable[Operation],
    *,
    initial: Mapping[Hashable, Any] | None = None,
    model: Callable[[Any, Operation], tuple[bool, Any]] = step_register,
    max_steps: int = 2_000_000,
) -> CheckResult:
    """Whether ``history`` is linearizable; ``initial`` maps keys to their first value (None).

    Raises :class:`CheckBudgetExceeded` when the search of one key takes over ``max_steps``.
    """
    by_key: dict[Hashable, list[Operation]] = {}
    for op in history:
        if op.op == READ and op.ret is None:
            continue  # an unanswered read constrains nothing
        by_key.setdefault(op.key, []).append(op)
    init = initial or {}
    linearizations: dict[Hashable, tuple[Operation, ...]] = {}
    for key in sorted(by_key, key=repr):
        ops = by_key[key]
        if model is step_register and all(o.op != CAS for o in ops):
            ops = _drop_unobserved_unknown_writes(ops)
        order, violation = _check_key(key, ops, init.get(key), model, max_steps)
        if violation is not None:
            return CheckResult(ok=False, violation=violation)
        linearizations[key] = order
    return CheckResult(ok=True, linearizations=linearizations)


def _drop_unobserved_unknown_writes(ops: list[Operation]) -> list[Operation]:
    """Without the writes of unknown outcome whose value no read returned (see above)."""
    read = {o.value for o in ops if o.op == READ}
    return [o for o in ops if not (o.op == WRITE and o.ret is None and o.value not in read)]


class History:
    """Records operations as clients invoke and complete them.

    ``clock`` gives the time of each event; by default a counter that ticks once per event,
    which orders events exactly as they were recorded (right for a simulation; a process-level
    test passes ``time.monotonic``).
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._counter = 0
        self._clock = clock or self._tick
        self._open: dict[int, Operation] = {}
        self._done: list[Operation] = []
        self._next_handle = 0

    def _tick(self) -> float:
        self._counter += 1
        return float(self._counter)

    def invoke(self, client: Hashable, op: str, key: Hashable, value: Any = None) -> int:
        """Record a call; returns a handle for ``ok`` / ``fail`` / ``info``. For a cas,
        ``value`` is ``(expected, new)``."""
        if op == CAS:
            expected, new = value
            value = (expected, new, None)
        handle = self._next_handle
        self._next_handle += 1
        self._open[handle] = Operation(client, op, key, value, self._clock())
        return handle

    def ok(self, handle: int, value: Any = None) -> None:
        """The operation completed: for a read ``value`` is what it read, for a cas whether it
        succeeded; ignored for a write."""
        op = self._open.pop(handle)
        if op.op == READ:
            op = replace(op, value=value)
        elif op.op == CAS:
            op = replace(op, value=(op.value[0], op.value[1], bool(value)))
        self._done.append(replace(op, ret=self._clock()))

    def fail(self, handle: int) -> None:
        """The operation certainly did not take effect (refused before reaching the log)."""
        del self._open[handle]

    def info(self, handle: int) -> None:
        """The outcome is unknown (timeout, crash): it may take effect any time, or never."""
        self._done.append(self._open.pop(handle))

    def pending(self) -> int:
        return len(self._open)

    def operations(self) -> list[Operation]:
        """Everything recorded; operations still open count as unknown outcomes."""
        return [*self._done, *self._open.values()]
