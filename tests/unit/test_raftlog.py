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
