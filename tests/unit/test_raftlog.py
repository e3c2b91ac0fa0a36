"""The Raft log on lmdb: what the core reads back is what the driver persisted."""

from __future__ import annotations

import pytest

from server.raft import ConfState, Entry, HardState
from server.raft.errors import LogCompacted, LogUnavailable
from server.storage.backend import Backend, BackendOptions
from server.storage.raftlog import RaftLog


def _backend(path) -> Backend:
    return Backend(str(path), BackendOptions(map_size=32 << 20, sync=False))


def _ents(lo: int, hi: int, term: int) -> list[Entry]:
    return [Entry(term=term, index=i, data=b"e%d" % i) for i in range(lo, hi)]


def test_append_then_read_back_and_survive_reopen(tmp_path) -> None:
    b = _backend(tmp_path)
    log = RaftLog(b)
    with b.write() as txn:
        log.append(txn, _ents(1, 6, 1))
        log.set_hard_state(txn, HardState(term=1, vote=7, commit=5))
        log.set_conf_state(txn, ConfState(voters=(7, 8, 9), learners=(10,)))
        log.set_applied(txn, 4)
    assert (log.first_index(), log.last_index()) == (1, 5)
    assert [e.data for e in log.entries(2, 4)] == [b"e2", b"e3"]
    b.close()
    b = _backend(tmp_path)
    log = RaftLog(b)
    assert log.initial_state() == (
        HardState(term=1, vote=7, commit=5),
        ConfState(voters=(7, 8, 9), learners=(10,)),
    )
    assert log.applied == 4 and log.last_index() == 5 and log.term(5) == 1


def test_append_replaces_a_conflicting_tail(tmp_path) -> None:
    b = _backend(tmp_path)
    log = RaftLog(b)
    with b.write() as txn:
        log.append(txn, _ents(1, 6, 1))
    with b.write() as txn:
        log.append(txn, _ents(3, 4, 2))  # a new leader's entry at 3 drops 3..5
    assert log.last_index() == 3
    assert [e.term for e in log.entries(1, 4)] == [1, 1, 2]
    with pytest.raises(LogUnavailable):
        log.entries(1, 6)


def test_compaction_keeps_the_term_of_the_last_compacted_entry(tmp_path) -> None:
    b = _backend(tmp_path)
    log = RaftLog(b)
    with b.write() as txn:
        log.append(txn, _ents(1, 11, 3))
        log.compact(txn, 6)
    assert log.first_index() == 7 and log.term(6) == 3
    with pytest.raises(LogCompacted):
        log.entries(5, 8)
    with pytest.raises(LogCompacted):
        log.term(5)
    assert [e.index for e in log.entries(7, 11)] == [7, 8, 9, 10]
    b.close()
    log = RaftLog(_backend(tmp_path))
    assert (log.first_index(), log.last_index(), log.term(6)) == (7, 10, 3)


def test_entries_respect_max_size_but_return_at_least_one(tmp_path) -> None:
    b = _backend(tmp_path)
    log = RaftLog(b)
    with b.write() as txn:
        log.append(txn, _ents(1, 6, 1))
    assert len(log.entries(1, 6, max_size=1)) == 1
    assert len(log.entries(1, 6, max_size=5)) == 2  # 2 data bytes each


def test_entries_kept_in_memory_read_as_lmdb_holds_them(tmp_path, monkeypatch) -> None:
    # The newest entries are served from memory; a RaftLog opened on the same environment
    # has nothing cached and reads lmdb: both must answer alike after appends that extend
    # or overwrite the tail, compactions, and trimming of the cache.
    import random

    import server.storage.raftlog as raftlog_module

    monkeypatch.setattr(raftlog_module, "TAIL_ENTRIES", 8)
    rng = random.Random(7)
    b = _backend(tmp_path)
    log = RaftLog(b)
    term = 1
    for _ in range(300):
        last, first = log.last_index(), log.first_index()
        if rng.random() < 0.1 and last > first:
            with b.write() as txn:
                log.compact(txn, rng.randrange(first, last))
        else:
            lo = rng.randrange(max(first, last - 5), last + 2)
            term += rng.random() < 0.3
            with b.write() as txn:
                log.append(txn, _ents(lo, lo + rng.randrange(1, 30), term))
        fresh = RaftLog(b)
        lo_i, hi_i = log.first_index(), log.last_index()
        assert (fresh.first_index(), fresh.last_index()) == (lo_i, hi_i)
        for i in range(lo_i, hi_i + 1):
            assert log.term(i) == fresh.term(i)
        for _ in range(5):
            a = rng.randrange(lo_i, hi_i + 1)
            z = rng.randrange(a, hi_i + 1) + 1
            assert log.entries(a, z) == fresh.entries(a, z)
            assert log.entries(a, z, max_size=7) == fresh.entries(a, z, max_size=7)
