"""The apply side of leases on a real lmdb environment: grant, revoke, expiry, attachment."""

from __future__ import annotations

import pytest

from server import errors
from server.apply import Applier, HeaderInfo
from server.errors import EtcdError
from server.lessor import MAX_LEASE_TTL
from server.state import (
    ENTRY_ALARM,
    ENTRY_LEASE_EXPIRE,
    ENTRY_LEASE_GRANT,
    ENTRY_LEASE_REVOKE,
    ENTRY_PUT,
    ENTRY_TXN,
)
from server.storage.backend import Backend, BackendOptions
from server.storage.mvcc import KVStore
from server.wire import field_message, field_varint
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2
from wardpb.peerpb import peer_pb2


class Store:
    """Applies entries as the driver does: one entry per child of a write transaction."""

    def __init__(self, path: str, *, min_ttl: int = 2) -> None:
        self.backend = Backend(path, BackendOptions(map_size=64 << 20, sync=False))
        self.kv = KVStore(self.backend)
        self.applier = Applier(self.backend, self.kv, HeaderInfo(cluster_id=1, member_id=2))
        self.applier.min_lease_ttl = min_ttl
        self.next_id = 100

    def apply(self, field: int, msg: object, *, rid: int | None = None) -> bytes:
        if rid is None:
            self.next_id += 1
            rid = self.next_id
        data = field_message(1, field_varint(1, rid)) + field_message(
            field,
            msg.SerializeToString(),  # type: ignore[attr-defined]
        )
        with self.backend.write() as txn:
            child = self.backend.env.begin(write=True, parent=txn)
            res = self.applier.apply(child, data)
            if res.error is not None:
                child.abort()
                raise res.error
            child.commit()
        return res.response or b""

    def grant(
        self, ttl: int, lid: int = 0, *, rid: int | None = None
    ) -> rpc_pb2.LeaseGrantResponse:
        raw = self.apply(ENTRY_LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lid), rid=rid)
        return rpc_pb2.LeaseGrantResponse.FromString(raw)

    def revoke(self, lid: int) -> rpc_pb2.LeaseRevokeResponse:
        raw = self.apply(ENTRY_LEASE_REVOKE, rpc_pb2.LeaseRevokeRequest(ID=lid))
        return rpc_pb2.LeaseRevokeResponse.FromString(raw)

    def expire(self, *ids: int) -> None:
        self.apply(ENTRY_LEASE_EXPIRE, peer_pb2.LeaseExpire(ids=ids))

    def put(self, key: bytes, lease: int = 0, **kw: object) -> rpc_pb2.PutResponse:
        raw = self.apply(ENTRY_PUT, rpc_pb2.PutRequest(key=key, value=b"v", lease=lease, **kw))
        return rpc_pb2.PutResponse.FromString(raw)

    def keys(self) -> list[bytes]:
        with self.backend.read() as txn:
            return [it.key for it in self.kv.range(txn, b"\x00", b"\x00").items]

    def revision(self) -> int:
        with self.backend.read() as txn:
            return self.kv.current_revision(txn)

    def lease_keys(self, lid: int) -> list[bytes]:
        with self.backend.read() as txn:
            return self.applier.lease_keys(txn, lid)

    def leases(self) -> list[tuple[int, int]]:
        with self.backend.read() as txn:
            return self.applier.leases(txn)

    def events_at(self, rev: int) -> list[tuple[bool, bytes]]:
        with self.backend.read() as txn:
            return [
                (tomb, kv_pb2.KeyValue.FromString(kv).key)
                for _r, tomb, kv in self.kv.events_since(txn, rev, rev)
            ]

    def take_changes(self) -> list[tuple[int, int]]:
        out = list(self.applier.lease_changes)
        self.applier.lease_changes.clear()
        return out


@pytest.fixture
def store(tmp_path: object) -> Store:
    return Store(str(tmp_path))


def test_grant_without_id_derives_a_positive_id_from_the_entry_the_same_on_every_member(
    tmp_path: object,
) -> None:
    a = Store(f"{tmp_path}/a")
    b = Store(f"{tmp_path}/b")
    rid = (0xFFFF << 48) | 12345  # the top bit set: the ID must still come out positive
    ga, gb = a.grant(10, rid=rid), b.grant(10, rid=rid)
    assert ga.ID == gb.ID == rid & ((1 << 63) - 1)
    assert ga.ID > 0 and ga.TTL == 10


def test_a_derived_id_already_taken_moves_on_instead_of_failing(store: Store) -> None:
    store.grant(10, lid=500)
    assert store.grant(10, rid=500).ID == 501


def test_grant_of_an_id_in_use_is_refused_with_etcds_error(store: Store) -> None:
    store.grant(10, lid=77)
    with pytest.raises(EtcdError) as e:
        store.grant(20, lid=77)
    assert e.value is errors.LEASE_EXIST
    assert store.leases() == [(77, 10)]


def test_ttl_above_etcds_maximum_is_refused_and_the_maximum_itself_granted(store: Store) -> None:
    with pytest.raises(EtcdError) as e:
        store.grant(MAX_LEASE_TTL + 1)
    assert e.value is errors.LEASE_TTL_TOO_LARGE
    assert store.grant(MAX_LEASE_TTL).TTL == MAX_LEASE_TTL


@pytest.mark.parametrize("asked", [-5, 0, 1])
def test_ttl_below_the_minimum_is_raised_to_it_and_stored_so(store: Store, asked: int) -> None:
    g = store.grant(asked)
    assert g.TTL == 2
    assert store.leases() == [(g.ID, 2)]


def test_grant_answers_at_the_current_revision_without_making_one(store: Store) -> None:
    store.put(b"a")
    g = store.grant(10)
    assert g.header.revision == store.revision() == 2
    assert (g.header.cluster_id, g.header.member_id) == (1, 2)


def test_grant_is_refused_while_the_space_alarm_is_raised(store: Store) -> None:
    alarm = rpc_pb2.AlarmRequest(
        action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=2, alarm=rpc_pb2.NOSPACE
    )
    store.apply(ENTRY_ALARM, alarm)
    with pytest.raises(EtcdError) as e:
        store.grant(10)
    assert e.value is errors.NO_SPACE


def test_revoke_deletes_every_attached_key_in_one_revision_in_key_order(store: Store) -> None:
    lid = store.grant(10).ID
    for k in (b"c", b"a", b"b"):
        store.put(k, lease=lid)
    store.put(b"other")
    resp = store.revoke(lid)
    assert resp.header.revision == 6
    assert store.events_at(6) == [(True, b"a"), (True, b"b"), (True, b"c")]
    assert store.keys() == [b"other"]
    assert store.leases() == []
    assert store.lease_keys(lid) == []


def test_revoke_of_a_lease_without_keys_makes_no_revision(store: Store) -> None:
    lid = store.grant(10).ID
    assert store.revoke(lid).header.revision == 1 == store.revision()


def test_revoke_of_an_unknown_lease_is_lease_not_found(store: Store) -> None:
    with pytest.raises(EtcdError) as e:
        store.revoke(12345)
    assert e.value is errors.LEASE_NOT_FOUND


def test_expiry_revokes_each_lease_in_a_revision_of_its_own(store: Store) -> None:
    l1, l2 = store.grant(10).ID, store.grant(10).ID
    store.put(b"a", lease=l1)
    store.put(b"b", lease=l2)
    store.put(b"c", lease=l1)
    store.expire(l1, l2)
    assert store.events_at(5) == [(True, b"a"), (True, b"c")]
    assert store.events_at(6) == [(True, b"b")]
    assert store.keys() == [] and store.leases() == []


def test_expiry_of_leases_already_gone_changes_nothing(store: Store) -> None:
    lid = store.grant(10).ID
    store.put(b"a", lease=lid)
    store.expire(lid)
    rev = store.revision()
    store.take_changes()
    store.expire(lid, 999)  # a retried proposal, and an ID nobody knows
    assert store.revision() == rev
    assert store.take_changes() == []


def test_put_with_an_unknown_lease_is_refused_also_inside_a_txn(store: Store) -> None:
    with pytest.raises(EtcdError) as e:
        store.put(b"a", lease=4242)
    assert e.value is errors.LEASE_NOT_FOUND
    txn = rpc_pb2.TxnRequest(
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a", lease=4242))]
    )
    with pytest.raises(EtcdError) as e:
        store.apply(ENTRY_TXN, txn)
    assert e.value is errors.LEASE_NOT_FOUND
    assert store.keys() == []


def test_a_put_without_the_lease_detaches_the_key_so_revoke_keeps_it(store: Store) -> None:
    lid = store.grant(10).ID
    store.put(b"a", lease=lid)
    store.put(b"a")
    assert store.lease_keys(lid) == []
    store.revoke(lid)
    assert store.keys() == [b"a"]


def test_a_put_with_another_lease_moves_the_key_to_it(store: Store) -> None:
    l1, l2 = store.grant(10).ID, store.grant(10).ID
    store.put(b"a", lease=l1)
    store.put(b"a", lease=l2)
    assert store.lease_keys(l1) == [] and store.lease_keys(l2) == [b"a"]
    store.revoke(l1)
    assert store.keys() == [b"a"]
    store.revoke(l2)
    assert store.keys() == []


def test_a_put_with_ignore_lease_keeps_the_key_attached(store: Store) -> None:
    lid = store.grant(10).ID
    store.put(b"a", lease=lid)
    store.put(b"a", ignore_lease=True)
    assert store.lease_keys(lid) == [b"a"]


def test_deleting_a_key_detaches_it(store: Store) -> None:
    lid = store.grant(10).ID
    store.put(b"a", lease=lid)
    store.apply(4, rpc_pb2.DeleteRangeRequest(key=b"a"))
    assert store.lease_keys(lid) == []


def test_the_lessor_hears_of_grants_and_revocations_of_applied_entries_only(store: Store) -> None:
    lid = store.grant(10, lid=5).ID
    with pytest.raises(EtcdError):
        store.grant(10, lid=5)  # refused: the lessor must not hear of it
    store.revoke(lid)
    assert store.take_changes() == [(5, 10), (5, 0)]
