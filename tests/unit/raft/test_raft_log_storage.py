"""MemoryStorage, the Raft log (storage + unstable tail) and per-follower progress."""

from __future__ import annotations

import pytest

from server.raft import (
    ConfState,
    Entry,
    InvariantViolation,
    LogCompacted,
    LogUnavailable,
    MemoryStorage,
)
from server.raft.log import RaftLog
from server.raft.progress import Inflights, Progress, ProgressState
from server.raft.storage import limit_size


def _storage(terms: list[int]) -> MemoryStorage:
    s = MemoryStorage(conf_state=ConfState(voters=(1,)))
    s.append([Entry(term=t, index=i) for i, t in enumerate(terms, start=1)])
    return s


def _log(terms: list[int]) -> RaftLog:
    return RaftLog(_storage(terms), max_size_per_msg=1 << 20)


def test_memory_storage_bounds_and_errors() -> None:
    s = _storage([1, 1, 2, 3])
    assert (s.first_index(), s.last_index()) == (1, 4)
    assert s.term(0) == 0 and s.term(4) == 3
    assert [e.index for e in s.entries(2, 4)] == [2, 3]
    with pytest.raises(LogUnavailable):
        s.entries(2, 6)
    with pytest.raises(LogUnavailable):
        s.term(5)
    s.compact(2)
    assert (s.first_index(), s.last_index()) == (3, 4)
    assert s.term(2) == 1  # the compacted boundary still answers
    with pytest.raises(LogCompacted):
        s.entries(2, 3)
    with pytest.raises(LogCompacted):
        s.term(1)


def test_memory_storage_append_replaces_conflicting_suffix() -> None:
    s = _storage([1, 1, 1])
    s.append([Entry(term=2, index=2)])
    assert [(e.index, e.term) for e in s.entries(1, 3)] == [(1, 1), (2, 2)]
    with pytest.raises(InvariantViolation):
        s.append([Entry(term=2, index=9)])


def test_entries_are_cut_by_size_but_never_empty() -> None:
    ents = [Entry(term=1, index=i, data=b"x" * 10) for i in range(1, 6)]
    assert len(limit_size(ents, 25)) == 2
    assert len(limit_size(ents, 1)) == 1
    assert len(limit_size(ents, None)) == 5


def test_log_reads_across_storage_and_unstable_tail() -> None:
    log = _log([1, 1])
    log.append([Entry(term=2, index=3), Entry(term=2, index=4)])
    assert log.last_index() == 4 and log.last_term() == 2
    assert [(e.index, e.term) for e in log.slice(1, 5)] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert log.term_or_zero(9) == 0


def test_maybe_append_refuses_mismatching_previous_entry() -> None:
    log = _log([1, 1, 2])
    assert log.maybe_append(3, 1, 0, (Entry(term=3, index=4),)) is None
    assert log.maybe_append(5, 2, 0, ()) is None
    assert log.last_index() == 3


def test_maybe_append_truncates_conflicting_suffix_and_commits() -> None:
    log = _log([1, 1, 2, 2])
    last = log.maybe_append(2, 1, 3, (Entry(term=3, index=3),))
    assert last == 3
    assert log.last_index() == 3 and log.term(3) == 3
    assert log.committed == 3


def test_maybe_append_ignores_already_present_entries() -> None:
    log = _log([1, 1, 2])
    assert log.maybe_append(0, 0, 0, (Entry(term=1, index=1), Entry(term=1, index=2))) == 2
    assert log.last_index() == 3  # the matching prefix did not truncate index 3


def test_conflict_with_committed_entry_is_an_invariant_violation() -> None:
    log = _log([1, 1, 2])
    log.commit_to(3)
    with pytest.raises(InvariantViolation):
        log.maybe_append(1, 1, 3, (Entry(term=5, index=2),))


def test_find_conflict_by_term_skips_entries_of_higher_terms() -> None:
    log = _log([1, 1, 2, 2, 2, 4, 4])
    assert log.find_conflict_by_term(7, 3) == (5, 2)
    assert log.find_conflict_by_term(7, 4) == (7, 4)
    assert log.find_conflict_by_term(4, 0) == (0, 0)


def test_is_up_to_date_compares_last_term_then_length() -> None:
    log = _log([1, 2, 2])
    assert log.is_up_to_date(1, 3)
    assert log.is_up_to_date(3, 2)
    assert not log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(10, 1)


def test_commit_past_last_index_is_refused() -> None:
    log = _log([1])
    with pytest.raises(InvariantViolation):
        log.commit_to(2)


def test_unstable_entries_stay_until_persisted_with_the_same_term() -> None:
    log = _log([1])
    log.append([Entry(term=2, index=2)])
    log.unstable.stable_to(2, 1)  # an acknowledgement for a replaced entry
    assert log.has_unstable()
    log.unstable.stable_to(2, 2)
    assert not log.has_unstable()


def test_inflights_free_up_to_acknowledged_index() -> None:
    inf = Inflights(3)
    for i in (5, 7, 9):
        inf.add(i)
    assert inf.full()
    inf.free_le(7)
    assert len(inf) == 1 and not inf.full()


def test_progress_probe_sends_one_append_until_answered() -> None:
    pr = Progress(next_index=5, max_inflight=10)
    assert not pr.is_paused()
    pr.sent_entries(2, 6)
    assert pr.is_paused()
    assert pr.maybe_update(6)
    assert not pr.is_paused()


def test_progress_ignores_stale_rejection() -> None:
    pr = Progress(next_index=10, max_inflight=10)
    assert not pr.maybe_decr_to(5, 3)  # rejects a probe at 5, but we now probe at 9
    assert pr.maybe_decr_to(9, 3)
    assert pr.next == 4
    pr.match = 3
    pr.become_replicate()
    assert not pr.maybe_decr_to(2, 0)  # at or below match: stale
    assert pr.maybe_decr_to(7, 0) and pr.next == 4


def test_progress_replicate_pipelines_until_inflight_window_full() -> None:
    pr = Progress(next_index=1, max_inflight=2)
    pr.become_replicate()
    pr.sent_entries(1, 1)
    assert not pr.is_paused() and pr.next == 2
    pr.sent_entries(1, 2)
    assert pr.is_paused()
    pr.become_snapshot(50)
    assert pr.state == ProgressState.SNAPSHOT and pr.is_paused()
    pr.become_probe()
    assert pr.next == 51
