"""The linearizability checker itself: it accepts what is linearizable and rejects what is not."""

from __future__ import annotations

import random

import pytest
from linearizability import (
    CAS,
    READ,
    WRITE,
    CheckBudgetExceeded,
    History,
    Operation,
    check,
)


def op(
    client: int, kind: str, value: object, call: float, ret: float | None, key: str = "k"
) -> Operation:
    return Operation(client=client, op=kind, key=key, value=value, call=call, ret=ret)


def test_sequential_history_is_linearizable() -> None:
    h = [
        op(1, WRITE, "a", 0, 1),
        op(2, READ, "a", 2, 3),
        op(1, WRITE, "b", 4, 5),
        op(2, READ, "b", 6, 7),
    ]
    result = check(h)
    assert result.ok
    assert [o.value for o in result.linearizations["k"]] == ["a", "a", "b", "b"]


@pytest.mark.parametrize("seen", [None, "a"])
def test_read_concurrent_with_a_write_may_see_either_value(seen: object) -> None:
    assert check([op(1, WRITE, "a", 0, 10), op(2, READ, seen, 1, 2)]).ok


def test_stale_read_after_a_completed_write_is_a_violation() -> None:
    w = op(1, WRITE, "a", 0, 1)
    r = op(2, READ, None, 2, 3)  # sees the initial value after the write returned
    result = check([w, r])
    assert not result.ok
    v = result.violation
    assert v is not None and v.key == "k"
    assert v.blocked == r and v.prefix == (w,) and v.state == "a"
    assert "cannot take effect" in v.describe()


def test_value_nobody_wrote_is_a_violation() -> None:
    assert not check([op(1, WRITE, "a", 0, 1), op(2, READ, "z", 0, 5)]).ok


def test_new_then_old_value_by_sequential_reads_is_a_violation() -> None:
    # The classic: a write is in flight; one read sees it, a later read does not.
    h = [
        op(1, WRITE, "new", 0, 100),
        op(2, READ, "new", 10, 20),
        op(3, READ, None, 30, 40),
    ]
    result = check(h)
    assert not result.ok
    assert result.violation is not None and result.violation.blocked == h[2]
    # With the reads overlapping each other, both orders are possible again.
    h[2] = op(3, READ, None, 15, 40)
    assert check(h).ok


def test_lost_update_is_a_violation() -> None:
    # Two sequential writes; a later read sees the first one again.
    h = [op(1, WRITE, 1, 0, 1), op(2, WRITE, 2, 2, 3), op(3, READ, 1, 4, 5)]
    assert not check(h).ok


def test_write_with_unknown_outcome_may_take_effect_late_or_never() -> None:
    w = op(1, WRITE, "maybe", 0, None)
    assert check([w, op(2, READ, None, 5, 6)]).ok
    assert check([w, op(2, READ, "maybe", 5, 6)]).ok
    # ...and even after a later read missed it.
    assert check([w, op(2, READ, None, 5, 6), op(3, READ, "maybe", 7, 8)]).ok
    # But not before it was called, and not undone once seen.
    assert not check([op(1, WRITE, "late", 10, None), op(2, READ, "late", 1, 2)]).ok
    h = [w, op(2, READ, "maybe", 5, 6), op(3, READ, None, 7, 8)]
    assert not check(h).ok


def test_touching_intervals_count_as_concurrent() -> None:
    # Returns and calls at the same instant: no false alarm from a tie.
    assert check([op(1, WRITE, "a", 0, 5), op(2, READ, None, 5, 6)]).ok
    assert not check([op(1, WRITE, "a", 0, 5), op(2, READ, None, 6, 7)]).ok


def test_keys_are_checked_independently() -> None:
    h = [
        op(1, WRITE, "a", 0, 1, key="x"),
        op(1, WRITE, "b", 2, 3, key="y"),
        op(2, READ, None, 4, 5, key="y"),  # stale on y
        op(2, READ, "a", 4, 5, key="x"),
    ]
    result = check(h)
    assert not result.ok and result.violation is not None
    assert result.violation.key == "y"
    assert check(h, initial={"y": "b"}).ok is False
    assert check([o for o in h if o.key == "x"]).ok


def test_compare_and_set() -> None:
    h = [
        op(1, WRITE, 0, 0, 1),
        op(2, CAS, (0, 1, True), 2, 3),
        op(3, CAS, (0, 2, False), 4, 5),  # 1 is there now: fails
        op(4, READ, 1, 6, 7),
    ]
    assert check(h).ok
    h[2] = op(3, CAS, (0, 2, True), 4, 5)  # claims success on a stale expectation
    assert not check(h).ok
    # A cas whose outcome is unknown takes effect only if its expectation holds.
    unknown = [op(1, WRITE, 0, 0, 1), op(2, CAS, (0, 5, None), 2, None), op(3, READ, 5, 9, 10)]
    assert check(unknown).ok
    unknown[0] = op(1, WRITE, 3, 0, 1)
    assert not check(unknown).ok


def test_history_recorder_drops_failures_and_keeps_unknowns() -> None:
    h = History()
    w = h.invoke(1, WRITE, "k", "a")
    h.ok(w)
    lost = h.invoke(2, WRITE, "k", "never")
    h.fail(lost)
    unknown = h.invoke(3, WRITE, "k", "maybe")
    h.info(unknown)
    r = h.invoke(4, READ, "k")
    h.ok(r, "a")
    c = h.invoke(5, CAS, "k", ("a", "b"))
    h.ok(c, True)
    h.invoke(6, READ, "k")  # never answered
    ops = h.operations()
    assert [(o.client, o.value) for o in ops] == [
        (1, "a"),
        (3, "maybe"),
        (4, "a"),
        (5, ("a", "b", True)),
        (6, None),
    ]
    assert ops[1].ret is None and ops[4].ret is None
    assert all(o.call < o.ret for o in ops if o.ret is not None)
    assert check(ops).ok


def _random_linearizable(rng: random.Random, n: int, clients: int) -> list[Operation]:
    """A history produced by a real register: each operation takes effect at an instant
    inside its interval, in the order of those instants."""
    ops: list[Operation] = []
    free_at = [0.0] * clients
    state: object = None
    points: list[tuple[float, int, str, object, float, float | None]] = []
    for i in range(n):
        c = rng.randrange(clients)
        call = free_at[c] + rng.random()
        point = call + rng.random() * 3
        ret = point + rng.random() * 3
        free_at[c] = ret
        kind = rng.choice([READ, WRITE, WRITE])
        points.append((point, c, kind, f"v{i}", call, None if rng.random() < 0.05 else ret))
    for _, c, kind, v, call, returned in sorted(points):
        if kind == WRITE:
            state = v
            ops.append(Operation(c, WRITE, "k", v, call, returned))
        elif returned is not None:
            ops.append(Operation(c, READ, "k", state, call, returned))
    return ops


def test_random_linearizable_histories_pass_and_a_corrupted_read_fails() -> None:
    rng = random.Random(7)
    for _ in range(30):
        ops = _random_linearizable(rng, 60, 5)
        assert check(ops).ok
        reads = [i for i, o in enumerate(ops) if o.op == READ]
        i = rng.choice(reads)
        ops[i] = Operation(ops[i].client, READ, "k", "never-written", ops[i].call, ops[i].ret)
        assert not check(ops).ok


def test_search_budget_is_enforced() -> None:
    # Many concurrent writes of distinct values and a read of none of them: exhaustive search.
    h = [op(i, WRITE, i, 0, 100) for i in range(14)] + [op(99, READ, "x", 0, 100)]
    with pytest.raises(CheckBudgetExceeded):
        check(h, max_steps=1000)


def test_unobserved_unknown_writes_do_not_blow_up_a_failing_search() -> None:
    # Thirty writes of unknown outcome nobody read, then a stale read: the verdict comes fast.
    h = [op(i, WRITE, f"lost{i}", i, None) for i in range(30)]
    h += [op(50, WRITE, "a", 40, 41), op(51, READ, None, 42, 43)]
    result = check(h, max_steps=10_000)
    assert not result.ok and result.violation is not None
    assert result.violation.blocked == h[-1]
    # One that was read is kept: it explains the read.
    h[-1] = op(51, READ, "lost7", 42, 43)
    assert check(h, max_steps=10_000).ok


def test_malformed_operations_are_refused() -> None:
    with pytest.raises(ValueError):
        op(1, "append", 1, 0, 1)
    with pytest.raises(ValueError):
        op(1, WRITE, 1, 5, 1)
    with pytest.raises(ValueError):
        op(1, CAS, (1, 2), 0, 1)
