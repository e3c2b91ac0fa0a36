"""The MVCC store and the apply path on a real lmdb environment: etcd's revision model."""

from __future__ import annotations

import pytest

from server import errors
from server.api.validate import check_txn
from server.apply import Applier, HeaderInfo
from server.errors import EtcdError
from server.state import ENTRY_ALARM, ENTRY_AUTO_COMPACTION, ENTRY_COMPACTION
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore
from server.wire import field_message, field_varint
from wardpb.etcdserverpb import rpc_pb2

C = rpc_pb2.Compare


class Store:
    """Applies requests as the driver would: one entry, one child of a write transaction."""

    def __init__(self, path: str) -> None:
        self.backend = Backend(path, BackendOptions(map_size=64 << 20, sync=False))
        self.kv = KVStore(self.backend)
        self.applier = Applier(self.backend, self.kv, HeaderInfo(cluster_id=1, member_id=2))
        self._id = 0

    def _apply(self, field: int, msg: object) -> bytes:
        self._id += 1
        data = field_message(1, field_varint(1, self._id)) + field_message(
            field,
            msg.SerializeToString(),  # type: ignore[attr-defined]
        )
        with self.backend.write() as txn:
            res = self.applier.apply(txn, data)
        if res.error is not None:
            raise res.error
        return res.response or b""

    def put(self, key: bytes, value: bytes, **kw: object) -> rpc_pb2.PutResponse:
        raw = self._apply(3, rpc_pb2.PutRequest(key=key, value=value, **kw))
        return rpc_pb2.PutResponse.FromString(raw)

    def delete(self, key: bytes, end: bytes = b"", **kw: object) -> rpc_pb2.DeleteRangeResponse:
        raw = self._apply(4, rpc_pb2.DeleteRangeRequest(key=key, range_end=end, **kw))
        return rpc_pb2.DeleteRangeResponse.FromString(raw)

    def txn(self, r: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        return rpc_pb2.TxnResponse.FromString(self._apply(5, r))

    def compact(self, rev: int) -> None:
        self._apply(6, rpc_pb2.CompactionRequest(revision=rev))

    def get(self, key: bytes, end: bytes = b"", **kw: object) -> rpc_pb2.RangeResponse:
        with self.backend.read() as txn:
            raw = self.applier.range(txn, rpc_pb2.RangeRequest(key=key, range_end=end, **kw))
        return rpc_pb2.RangeResponse.FromString(raw)


@pytest.fixture
def s(tmp_path) -> Store:
    store = Store(str(tmp_path / "db"))
    yield store
    store.backend.close()


def keys(resp: rpc_pb2.RangeResponse) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


def test_each_write_gets_one_revision_and_versions_count_up(s: Store) -> None:
    assert s.get(b"a").header.revision == 1  # an empty store is at revision 1, as etcd's
    assert s.put(b"a", b"1").header.revision == 2
    assert s.put(b"a", b"2").header.revision == 3
    kv = s.get(b"a").kvs[0]
    assert (kv.create_revision, kv.mod_revision, kv.version, kv.value) == (2, 3, 2, b"2")


def test_delete_makes_a_tombstone_and_recreate_starts_a_new_generation(s: Store) -> None:
    s.put(b"a", b"1")
    resp = s.delete(b"a", prev_kv=True)
    assert resp.deleted == 1 and resp.prev_kvs[0].value == b"1"
    assert s.get(b"a").count == 0
    s.put(b"a", b"again")
    kv = s.get(b"a").kvs[0]
    assert (kv.create_revision, kv.version) == (4, 1)


def test_deleting_nothing_does_not_advance_the_revision(s: Store) -> None:
    s.put(b"a", b"1")
    assert s.delete(b"zz").header.revision == 2


def test_ranges_by_key_range_prefix_and_from_key(s: Store) -> None:
    for k in (b"a", b"ab", b"abc", b"b", b"c"):
        s.put(k, b"v")
    assert keys(s.get(b"ab")) == [b"ab"]
    assert keys(s.get(b"a", b"b")) == [b"a", b"ab", b"abc"]
    assert keys(s.get(b"ab", b"ac")) == [b"ab", b"abc"]  # prefix "ab"
    assert keys(s.get(b"b", b"\x00")) == [b"b", b"c"]  # from-key
    assert keys(s.get(b"\x00", b"\x00")) == [b"a", b"ab", b"abc", b"b", b"c"]


def test_limit_more_and_count(s: Store) -> None:
    for k in (b"a", b"b", b"c"):
        s.put(k, b"v")
    r = s.get(b"a", b"\x00", limit=2)
    assert keys(r) == [b"a", b"b"] and r.more and r.count == 3
    r = s.get(b"a", b"\x00", limit=3)
    assert not r.more
    r = s.get(b"a", b"\x00", count_only=True)
    assert r.count == 3 and not r.kvs


def test_keys_only_drops_values_only(s: Store) -> None:
    s.put(b"a", b"value", lease=0)
    kv = s.get(b"a", keys_only=True).kvs[0]
    assert kv.key == b"a" and kv.value == b"" and kv.version == 1


def test_sort_by_each_target(s: Store) -> None:
    s.put(b"a", b"3")
    s.put(b"b", b"1")
    s.put(b"c", b"2")
    s.put(b"b", b"4")
    RR = rpc_pb2.RangeRequest
    assert keys(s.get(b"a", b"\x00", sort_order=RR.DESCEND)) == [b"c", b"b", b"a"]
    assert keys(s.get(b"a", b"\x00", sort_target=RR.VALUE)) == [b"c", b"a", b"b"]
    assert keys(s.get(b"a", b"\x00", sort_target=RR.MOD, sort_order=RR.DESCEND)) == [
        b"b",
        b"c",
        b"a",
    ]
    assert keys(s.get(b"a", b"\x00", sort_target=RR.VERSION, sort_order=RR.DESCEND))[0] == b"b"
    assert keys(s.get(b"a", b"\x00", sort_target=RR.CREATE)) == [b"a", b"b", b"c"]


def test_sorted_limit_sorts_before_cutting(s: Store) -> None:
    for k, v in ((b"a", b"3"), (b"b", b"1"), (b"c", b"2")):
        s.put(k, v)
    r = s.get(b"a", b"\x00", sort_target=rpc_pb2.RangeRequest.VALUE, limit=1)
    assert keys(r) == [b"b"] and r.more and r.count == 3


def test_min_max_mod_and_create_revision_filters(s: Store) -> None:
    s.put(b"a", b"1")  # rev 2
    s.put(b"b", b"1")  # rev 3
    s.put(b"a", b"2")  # rev 4
    assert keys(s.get(b"a", b"\x00", min_mod_revision=4)) == [b"a"]
    assert keys(s.get(b"a", b"\x00", max_mod_revision=3)) == [b"b"]
    assert keys(s.get(b"a", b"\x00", min_create_revision=3)) == [b"b"]
    assert keys(s.get(b"a", b"\x00", max_create_revision=2)) == [b"a"]


def test_read_at_a_past_revision_sees_that_revision(s: Store) -> None:
    s.put(b"a", b"1")  # 2
    s.put(b"b", b"1")  # 3
    s.put(b"a", b"2")  # 4
    s.delete(b"b")  # 5
    r = s.get(b"a", b"\x00", revision=3)
    assert [(kv.key, kv.value) for kv in r.kvs] == [(b"a", b"1"), (b"b", b"1")]
    assert r.header.revision == 5  # etcd answers with the current revision
    assert keys(s.get(b"a", b"\x00", revision=5)) == [b"a"]
    assert s.get(b"b", revision=4).kvs[0].value == b"1"
    assert s.get(b"b", revision=1).count == 0


def test_future_revision_is_refused(s: Store) -> None:
    s.put(b"a", b"1")
    with pytest.raises(EtcdError) as e:
        s.get(b"a", revision=3)
    assert e.value is errors.FUTURE_REV


def test_compaction_removes_history_below_but_keeps_the_revision_readable(s: Store) -> None:
    s.put(b"a", b"1")  # 2
    s.put(b"a", b"2")  # 3
    s.put(b"b", b"1")  # 4
    s.delete(b"b")  # 5
    s.put(b"c", b"1")  # 6
    s.compact(5)
    with pytest.raises(EtcdError) as e:
        s.get(b"a", revision=4)
    assert e.value is errors.COMPACTED
    assert [(kv.key, kv.value) for kv in s.get(b"a", b"\x00", revision=5).kvs] == [(b"a", b"2")]
    with s.backend.read() as txn:
        # Only the surviving version of "a" and the later "c" remain in history.
        assert sum(1 for _ in txn.cursor(db=s.backend.hist)) == 2
    with pytest.raises(EtcdError) as e:
        s.compact(5)
    assert e.value is errors.COMPACTED
    with pytest.raises(EtcdError) as e:
        s.compact(99)
    assert e.value is errors.FUTURE_REV


def test_put_with_prev_kv_ignore_value_and_ignore_lease(s: Store) -> None:
    s.put(b"a", b"old")
    r = s.put(b"a", b"", ignore_value=True, prev_kv=True)
    assert r.prev_kv.value == b"old"
    assert s.get(b"a").kvs[0].value == b"old" and s.get(b"a").kvs[0].version == 2
    with pytest.raises(EtcdError) as e:
        s.put(b"missing", b"", ignore_value=True)
    assert e.value is errors.KEY_NOT_FOUND


def test_put_with_unknown_lease_is_refused_and_writes_nothing(s: Store) -> None:
    with pytest.raises(EtcdError) as e:
        s.put(b"a", b"1", lease=42)
    assert e.value is errors.LEASE_NOT_FOUND
    assert s.get(b"a").header.revision == 1


def _cmp(key: bytes, target: int, result: int, **kw: object) -> rpc_pb2.Compare:
    return rpc_pb2.Compare(key=key, target=target, result=result, **kw)


def _put_op(key: bytes, value: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))


def test_txn_compares_each_target(s: Store) -> None:
    s.put(b"a", b"1", lease=0)
    cases = [
        (_cmp(b"a", C.VALUE, C.EQUAL, value=b"1"), True),
        (_cmp(b"a", C.VALUE, C.GREATER, value=b"0"), True),
        (_cmp(b"a", C.VERSION, C.EQUAL, version=1), True),
        (_cmp(b"a", C.CREATE, C.LESS, create_revision=2), False),
        (_cmp(b"a", C.MOD, C.NOT_EQUAL, mod_revision=2), False),
        (_cmp(b"a", C.LEASE, C.EQUAL, lease=0), True),
        (_cmp(b"missing", C.VERSION, C.EQUAL, version=0), True),
        (_cmp(b"missing", C.VALUE, C.EQUAL, value=b""), False),
    ]
    for c, want in cases:
        assert s.txn(rpc_pb2.TxnRequest(compare=[c])).succeeded is want, c


def test_txn_compare_over_a_range_needs_every_key(s: Store) -> None:
    s.put(b"a1", b"x")
    s.put(b"a2", b"y")
    c = _cmp(b"a", C.VALUE, C.EQUAL, value=b"x", range_end=b"b")
    assert not s.txn(rpc_pb2.TxnRequest(compare=[c])).succeeded
    c = _cmp(b"a", C.VERSION, C.EQUAL, version=1, range_end=b"b")
    assert s.txn(rpc_pb2.TxnRequest(compare=[c])).succeeded


def test_txn_ops_share_one_revision_and_see_earlier_ops(s: Store) -> None:
    r = s.txn(
        rpc_pb2.TxnRequest(
            success=[
                _put_op(b"a", b"1"),
                _put_op(b"b", b"2"),
                rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a", range_end=b"c")),
            ]
        )
    )
    assert r.header.revision == 2
    assert r.responses[2].response_range.count == 2
    assert r.responses[0].response_put.header.revision == 2
    assert [kv.mod_revision for kv in s.get(b"a", b"c").kvs] == [2, 2]


def test_nested_txn_branches_are_chosen_before_any_op_runs(s: Store) -> None:
    # The outer op writes "a", but the inner compare must see the state before the txn.
    inner = rpc_pb2.TxnRequest(
        compare=[_cmp(b"a", C.VERSION, C.EQUAL, version=0)],
        success=[_put_op(b"then", b"1")],
        failure=[_put_op(b"else", b"1")],
    )
    r = s.txn(
        rpc_pb2.TxnRequest(success=[_put_op(b"a", b"1"), rpc_pb2.RequestOp(request_txn=inner)])
    )
    assert r.responses[1].response_txn.succeeded
    assert keys(s.get(b"\x00", b"\x00")) == [b"a", b"then"]


def test_failed_txn_precondition_writes_nothing(s: Store) -> None:
    r = rpc_pb2.TxnRequest(
        success=[
            _put_op(b"a", b"1"),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"b", ignore_value=True)),
        ]
    )
    with pytest.raises(EtcdError) as e:
        s.txn(r)
    assert e.value is errors.KEY_NOT_FOUND
    assert s.get(b"a").count == 0 and s.get(b"a").header.revision == 1


def test_txn_validation_limits_and_duplicate_keys() -> None:
    many = rpc_pb2.TxnRequest(success=[_put_op(b"k%d" % i, b"") for i in range(129)])
    with pytest.raises(EtcdError) as e:
        check_txn(many, 128)
    assert e.value is errors.TOO_MANY_OPS
    dup = rpc_pb2.TxnRequest(success=[_put_op(b"k", b"1"), _put_op(b"k", b"2")])
    with pytest.raises(EtcdError) as e:
        check_txn(dup, 128)
    assert e.value is errors.DUPLICATE_KEY
    put_and_delete = rpc_pb2.TxnRequest(
        success=[
            _put_op(b"k", b"1"),
            rpc_pb2.RequestOp(
                request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"a", range_end=b"z")
            ),
        ]
    )
    with pytest.raises(EtcdError):
        check_txn(put_and_delete, 128)
    # The same key in the then and else branches of a nested txn is allowed.
    nested = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(
                request_txn=rpc_pb2.TxnRequest(
                    success=[_put_op(b"k", b"1")], failure=[_put_op(b"k", b"2")]
                )
            )
        ]
    )
    check_txn(nested, 128)
    empty_compare = rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"")])
    with pytest.raises(EtcdError) as e:
        check_txn(empty_compare, 128)
    assert e.value is errors.EMPTY_KEY


def test_hash_kv_matches_for_equal_histories(tmp_path) -> None:
    a, b = Store(str(tmp_path / "a")), Store(str(tmp_path / "b"))
    for st in (a, b):
        st.put(b"x", b"1")
        st.put(b"y", b"2")
    with a.backend.read() as ta, b.backend.read() as tb:
        assert a.kv.hash_kv(ta, 3) == b.kv.hash_kv(tb, 3)
    b.put(b"z", b"3")
    with a.backend.read() as ta, b.backend.read() as tb:
        assert a.kv.hash_kv(ta, 3) == b.kv.hash_kv(tb, 3)
        assert a.kv.hash_kv(ta, 4) != b.kv.hash_kv(tb, 4)


def test_a_corrupt_alarm_refuses_every_compaction_the_auto_compactors_too(s: Store) -> None:
    for i in range(4):
        s.put(b"k", str(i).encode())
    s._apply(ENTRY_AUTO_COMPACTION, rpc_pb2.CompactionRequest(revision=2))  # applies, no auth
    with pytest.raises(EtcdError) as compacted:
        s.get(b"k", revision=1)
    assert "compacted" in compacted.value.message
    alarm = rpc_pb2.AlarmRequest(
        action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=2, alarm=rpc_pb2.CORRUPT
    )
    s._apply(ENTRY_ALARM, alarm)
    for field in (ENTRY_COMPACTION, ENTRY_AUTO_COMPACTION):
        with pytest.raises(EtcdError) as refused:
            s._apply(field, rpc_pb2.CompactionRequest(revision=3))
        assert refused.value is errors.CORRUPT
