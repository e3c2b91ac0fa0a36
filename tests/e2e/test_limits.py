"""Limits and bad input over gRPC: etcd's status code and message, and nothing else breaks.

Each refusal is checked on a channel that then still serves, with the data written before it
intact. The tests run against Ward and the real etcd 3.4 started with the same flags
(`server` is parametrized), so every expected answer below is etcd's own; the few where etcd
3.4 cannot be asked (it crashes, or Ward deliberately differs) are Ward-only and say so.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.e2e.etcd_errors import (
    COMPACTED,
    DUPLICATE_KEY,
    EMPTY_KEY,
    FUTURE_REV,
    IA,
    KEY_NOT_FOUND,
    NO_SPACE,
    TOO_LARGE,
    TOO_MANY_OPS,
)
from tests.e2e.ward_process import ETCD, EtcdProcess, WardProcess, etcdctl, start_etcd, start_ward
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

CALL_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 1024
MAX_TXN_OPS = 4
# grpc-go under etcd (and Ward's gRPC server) accepts messages up to --max-request-bytes plus
# this much, so that a request a little too large gets etcd's own error instead.
GRPC_OVERHEAD_BYTES = 512 * 1024


RangeRequest = rpc_pb2.RangeRequest
PutRequest = rpc_pb2.PutRequest
RequestOp = rpc_pb2.RequestOp
TxnRequest = rpc_pb2.TxnRequest

CANARY = b"canary/key"


@dataclass
class Server:
    """A server under test and one channel to it, used before and after every refusal."""

    kind: str
    process: WardProcess | EtcdProcess
    channel: grpc.Channel

    @property
    def kv(self) -> rpc_pb2_grpc.KVStub:
        """KV calls on the one channel."""
        return rpc_pb2_grpc.KVStub(self.channel)

    @property
    def maintenance(self) -> rpc_pb2_grpc.MaintenanceStub:
        """Maintenance calls on the one channel."""
        return rpc_pb2_grpc.MaintenanceStub(self.channel)

    def error(self, method: str, request: object) -> tuple[object, str]:
        """(code, details) of the call's error; ("ok", "") if it succeeded, to fail the assert."""
        stub = self.maintenance if method in ("Defragment", "Alarm") else self.kv
        try:
            getattr(stub, method)(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as err:
            return err.code(), err.details()  # type: ignore[attr-defined]
        return "ok", ""

    def assert_intact(self) -> None:
        """The same channel still reads the canary and takes a write."""
        got = self.kv.Range(RangeRequest(key=CANARY), timeout=CALL_TIMEOUT_S)
        assert [(kv.key, kv.value) for kv in got.kvs] == [(CANARY, b"still here")]
        self.kv.Put(PutRequest(key=b"canary/after", value=b"ok"), timeout=CALL_TIMEOUT_S)


def _start(kind: str, tmp: Path, *flags: str) -> WardProcess | EtcdProcess:
    """A started etcd or Ward with `flags` (skips the test if etcd is wanted but missing)."""
    if kind == "etcd":
        if not ETCD.exists():
            pytest.skip("etcd is not installed")
        return start_etcd(tmp, *flags)
    return start_ward(tmp, *flags)


@pytest.fixture(scope="module", params=["etcd", "ward"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """etcd or Ward with --max-request-bytes 1024 --max-txn-ops 4, a canary key written."""
    process = _start(
        request.param,
        tmp_path_factory.mktemp(request.param),
        "--max-request-bytes",
        str(MAX_REQUEST_BYTES),
        "--max-txn-ops",
        str(MAX_TXN_OPS),
    )
    channel = grpc.insecure_channel(process.endpoint)
    try:
        rpc_pb2_grpc.KVStub(channel).Put(
            PutRequest(key=CANARY, value=b"still here"), timeout=CALL_TIMEOUT_S
        )
        yield Server(request.param, process, channel)
    finally:
        channel.close()
        process.stop()


def _ops(n: int, prefix: bytes = b"op/") -> list[rpc_pb2.RequestOp]:
    """`n` read ops of distinct keys (reads, so that no duplicate-key rule interferes)."""
    return [RequestOp(request_range=RangeRequest(key=prefix + bytes([97 + i]))) for i in range(n)]


# ---- empty keys ----

EMPTY_KEY_REQUESTS = {
    "Range": RangeRequest(key=b""),
    "Put": PutRequest(key=b"", value=b"v"),
    "DeleteRange": rpc_pb2.DeleteRangeRequest(key=b"", range_end=b"z"),
    "Txn-compare": TxnRequest(
        compare=[rpc_pb2.Compare(key=b"", target=rpc_pb2.Compare.VERSION, version=0)]
    ),
    "Txn-put": TxnRequest(success=[RequestOp(request_put=PutRequest(key=b"", value=b"v"))]),
    "Txn-nested-range": TxnRequest(
        failure=[
            RequestOp(request_txn=TxnRequest(success=[RequestOp(request_range=RangeRequest())]))
        ]
    ),
}


@pytest.mark.parametrize("case", list(EMPTY_KEY_REQUESTS))
def test_empty_key_is_refused(server: Server, case: str) -> None:
    method = case.split("-")[0]
    assert server.error(method, EMPTY_KEY_REQUESTS[case]) == EMPTY_KEY
    server.assert_intact()


# ---- request size ----


def test_request_over_max_request_bytes_is_too_large(server: Server) -> None:
    req = PutRequest(key=b"big", value=b"x" * 2000)
    assert server.error("Put", req) == TOO_LARGE
    txn = TxnRequest(success=[RequestOp(request_put=req)])
    assert server.error("Txn", txn) == TOO_LARGE
    assert server.kv.Range(RangeRequest(key=b"big"), timeout=CALL_TIMEOUT_S).count == 0
    server.assert_intact()


def test_request_just_under_the_limit_counts_etcds_framing(
    request: pytest.FixtureRequest, server: Server
) -> None:
    """etcd measures the proposal it would make (the request wrapped in an InternalRaftRequest
    with a header, about 16 bytes more), so a put whose own encoding is 1018 bytes is already
    too large at --max-request-bytes 1024, and one of 900 bytes is fine."""
    server.kv.Put(PutRequest(key=b"edge", value=b"x" * 900), timeout=CALL_TIMEOUT_S)
    req = PutRequest(key=b"edge", value=b"x" * 1010)
    assert req.ByteSize() < MAX_REQUEST_BYTES
    assert server.error("Put", req) == TOO_LARGE
    server.assert_intact()


def _beyond_grpc_limit() -> rpc_pb2.PutRequest:
    req = PutRequest(key=b"huge", value=b"x" * (MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES))
    assert req.ByteSize() > MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES
    return req


def test_request_beyond_grpc_limit_is_resource_exhausted(server: Server) -> None:
    code, _ = server.error("Put", _beyond_grpc_limit())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert server.kv.Range(RangeRequest(key=b"huge"), timeout=CALL_TIMEOUT_S).count == 0
    server.assert_intact()


def test_request_beyond_grpc_limit_message(request: pytest.FixtureRequest, server: Server) -> None:
    req = _beyond_grpc_limit()
    limit = MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES
    want = f"grpc: received message larger than max ({req.ByteSize()} vs. {limit})"
    assert server.error("Put", req) == (grpc.StatusCode.RESOURCE_EXHAUSTED, want)


# ---- txn limits ----


@pytest.mark.parametrize("part", ["compare", "success", "failure"])
def test_txn_with_more_than_max_txn_ops_is_refused(server: Server, part: str) -> None:
    if part == "compare":
        cmp = rpc_pb2.Compare(key=b"op/a", target=rpc_pb2.Compare.VERSION, version=0)
        txn = TxnRequest(compare=[cmp] * (MAX_TXN_OPS + 1))
    else:
        txn = TxnRequest(**{part: _ops(MAX_TXN_OPS + 1)})
    assert server.error("Txn", txn) == TOO_MANY_OPS
    server.kv.Txn(TxnRequest(success=_ops(MAX_TXN_OPS)), timeout=CALL_TIMEOUT_S)
    server.assert_intact()


def test_nested_txn_ops_count_against_the_parent(
    request: pytest.FixtureRequest, server: Server
) -> None:
    """etcd allows a nested txn max-txn-ops minus its parent's op count (v3rpc checkTxnRequest):
    with a limit of 4, a parent of 2 ops cannot hold a txn of 3."""
    nested = RequestOp(request_txn=TxnRequest(success=_ops(3)))
    assert server.error("Txn", TxnRequest(success=[*_ops(1), nested])) == TOO_MANY_OPS
    server.assert_intact()


def test_same_key_put_twice_in_a_txn_is_refused(server: Server) -> None:
    puts = [RequestOp(request_put=PutRequest(key=b"dup", value=v)) for v in (b"1", b"2")]
    assert server.error("Txn", TxnRequest(success=puts)) == DUPLICATE_KEY
    # A put and a delete of the same key, and a put repeated in a nested txn, likewise.
    delete = RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"dup"))
    assert server.error("Txn", TxnRequest(failure=[puts[0], delete])) == DUPLICATE_KEY
    nested = RequestOp(request_txn=TxnRequest(success=[puts[1]]))
    assert server.error("Txn", TxnRequest(success=[puts[0], nested])) == DUPLICATE_KEY
    # The same key in the then and else branches of one nested txn is allowed.
    both = RequestOp(request_txn=TxnRequest(success=[puts[0]], failure=[puts[1]]))
    server.kv.Txn(TxnRequest(success=[both]), timeout=CALL_TIMEOUT_S)
    # (No compare: the nested txn takes its then branch.)
    assert server.kv.Range(RangeRequest(key=b"dup"), timeout=CALL_TIMEOUT_S).kvs[0].value == b"1"
    server.assert_intact()


# ---- revisions ----


def _current(server: Server) -> int:
    """The server's current revision."""
    return int(server.kv.Range(RangeRequest(key=CANARY), timeout=CALL_TIMEOUT_S).header.revision)


def test_future_revision_is_refused(server: Server) -> None:
    future = _current(server) + 10
    assert server.error("Range", RangeRequest(key=CANARY, revision=future)) == FUTURE_REV
    op = RequestOp(request_range=RangeRequest(key=CANARY, revision=future))
    assert server.error("Txn", TxnRequest(success=[op])) == FUTURE_REV
    assert server.error("Compact", rpc_pb2.CompactionRequest(revision=future)) == FUTURE_REV
    server.assert_intact()


def test_compacted_revision_and_compaction_below_it_are_refused(server: Server) -> None:
    old = server.kv.Put(PutRequest(key=b"cmp", value=b"1"), timeout=CALL_TIMEOUT_S).header.revision
    rev = server.kv.Put(PutRequest(key=b"cmp", value=b"2"), timeout=CALL_TIMEOUT_S).header.revision
    server.kv.Compact(rpc_pb2.CompactionRequest(revision=rev), timeout=CALL_TIMEOUT_S)
    assert server.error("Range", RangeRequest(key=b"cmp", revision=old)) == COMPACTED
    op = RequestOp(request_range=RangeRequest(key=b"cmp", revision=old))
    assert server.error("Txn", TxnRequest(success=[op])) == COMPACTED
    assert server.error("Compact", rpc_pb2.CompactionRequest(revision=rev)) == COMPACTED
    assert server.error("Compact", rpc_pb2.CompactionRequest(revision=old)) == COMPACTED
    at = server.kv.Range(RangeRequest(key=b"cmp", revision=rev), timeout=CALL_TIMEOUT_S)
    assert [kv.value for kv in at.kvs] == [b"2"]
    server.assert_intact()


# ---- range and put options ----


def test_count_only(server: Server) -> None:
    for k in (b"cnt/a", b"cnt/b", b"cnt/c"):
        server.kv.Put(PutRequest(key=k, value=b"v"), timeout=CALL_TIMEOUT_S)
    resp = server.kv.Range(
        RangeRequest(key=b"cnt/", range_end=b"cnt0", count_only=True), timeout=CALL_TIMEOUT_S
    )
    assert (list(resp.kvs), resp.count, resp.more) == ([], 3, False)
    assert resp.header.revision == _current(server)


def test_ignore_value_on_a_missing_key_is_refused(server: Server) -> None:
    req = PutRequest(key=b"absent", ignore_value=True)
    assert server.error("Put", req) == KEY_NOT_FOUND
    assert server.error("Txn", TxnRequest(success=[RequestOp(request_put=req)])) == KEY_NOT_FOUND
    assert server.error("Put", PutRequest(key=b"absent", ignore_lease=True)) == KEY_NOT_FOUND
    assert server.kv.Range(RangeRequest(key=b"absent"), timeout=CALL_TIMEOUT_S).count == 0
    server.assert_intact()


def test_ignore_value_with_a_value_is_refused(server: Server) -> None:
    req = PutRequest(key=CANARY, value=b"new", ignore_value=True)
    assert server.error("Put", req) == (IA, "etcdserver: value is provided")
    req = PutRequest(key=CANARY, lease=1, ignore_lease=True)
    assert server.error("Put", req) == (IA, "etcdserver: lease is provided")
    server.assert_intact()


# ---- Ward-only: etcd 3.4 cannot be asked, or Ward deliberately differs ----


@pytest.fixture
def ward_limited(server: Server) -> Server:
    """The module's server when it is Ward; the etcd run of a Ward-only test is skipped."""
    if server.kind != "ward":
        pytest.skip("Ward-only: etcd 3.4 answers differently by design (see the docstring)")
    return server


@pytest.mark.parametrize(
    "request_fields",
    [{"sort_order": 7}, {"sort_order": -1}, {"sort_target": 9}],
    ids=["order-7", "order-minus-1", "target-9"],
)
def test_invalid_sort_option_is_refused(ward_limited: Server, request_fields: dict) -> None:
    """Ward answers etcd 3.6's InvalidArgument "etcdserver: invalid sort option".

    etcd 3.4.23 ignores an unknown sort order (returns the keys unsorted) and panics — the
    whole server exits — on an unknown sort target (etcd-io/etcd#13554), so it is not asked.
    """
    server = ward_limited
    req = RangeRequest(key=b"a", range_end=b"z", **request_fields)
    assert server.error("Range", req) == (IA, "etcdserver: invalid sort option")
    op = RequestOp(request_range=req)
    assert server.error("Txn", TxnRequest(success=[op])) == (IA, "etcdserver: invalid sort option")
    server.assert_intact()


def test_key_over_lmdb_limit_is_refused_clearly(ward_limited: Server) -> None:
    """lmdb keys are at most 511 bytes; Ward means to refuse longer ones with InvalidArgument
    "etcdserver: key is too large" (server/errors.py). etcd accepts any key within
    --max-request-bytes, so this is Ward's own answer, not etcd's."""
    server = ward_limited
    want = (IA, "etcdserver: key is too large")
    outcomes = []
    for req in (PutRequest(key=b"k" * 600, value=b"v"), PutRequest(key=b"k" * 512, value=b"v")):
        try:
            server.kv.Put(req, timeout=CALL_TIMEOUT_S)
            outcomes.append(("ok", ""))
        except grpc.RpcError as err:
            outcomes.append((err.code(), err.details()))  # type: ignore[attr-defined]
    assert outcomes == [want, want]
    server.assert_intact()


# ---- the space quota ----

VALUE_64K = b"v" * 65536
# A fresh Ward's lmdb file is 48 KiB (12 pages) and etcd's bbolt file 20 KiB: 512 KiB is a
# few hundred KB above both, so a handful of 64 KiB puts reach it.
QUOTA = 512 * 1024


@pytest.fixture(params=["etcd", "ward"])
def quota_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A fresh server with --quota-backend-bytes 512 KiB (its own, since NOSPACE sticks)."""
    process = _start(request.param, tmp_path, "--quota-backend-bytes", str(QUOTA))
    channel = grpc.insecure_channel(process.endpoint)
    try:
        rpc_pb2_grpc.KVStub(channel).Put(
            PutRequest(key=CANARY, value=b"still here"), timeout=CALL_TIMEOUT_S
        )
        yield Server(request.param, process, channel)
    finally:
        channel.close()
        process.stop()


def _fill(server: Server, prefix: bytes) -> int:
    """Put 64 KiB values until the quota refuses one; returns how many were accepted."""
    for n in itertools.count():
        assert n < 400, "the quota never refused a put"
        try:
            server.kv.Put(PutRequest(key=prefix + b"%04d" % n, value=VALUE_64K), timeout=10)
        except grpc.RpcError as err:
            assert (err.code(), err.details()) == NO_SPACE  # type: ignore[attr-defined]
            return n
    raise AssertionError("unreachable")


def _alarm_line(server: Server) -> str:
    member = server.kv.Range(RangeRequest(key=CANARY), timeout=CALL_TIMEOUT_S).header.member_id
    return f"memberID:{member} alarm:NOSPACE \n"


def _recover(server: Server, prefix: bytes) -> None:
    """etcd's documented way out of NOSPACE: delete, compact, defragment, disarm."""
    deleted = server.kv.DeleteRange(
        rpc_pb2.DeleteRangeRequest(key=prefix, range_end=prefix[:-1] + b"0"), timeout=10
    )
    server.kv.Compact(
        rpc_pb2.CompactionRequest(revision=deleted.header.revision, physical=True), timeout=30
    )
    server.maintenance.Defragment(rpc_pb2.DefragmentRequest(), timeout=60)
    res = etcdctl(server.process.endpoint, "alarm", "disarm")
    assert (res.returncode, res.stdout) == (0, _alarm_line(server)), res


def test_quota_exceeded_raises_nospace_and_keeps_reads_and_deletes(quota_server: Server) -> None:
    server = quota_server
    accepted = _fill(server, b"fill/")
    assert accepted >= 1
    res = etcdctl(server.process.endpoint, "alarm", "list")
    assert (res.returncode, res.stdout) == (0, _alarm_line(server)), res
    # Every write is refused now, however small, also inside a txn.
    assert server.error("Put", PutRequest(key=b"tiny", value=b"1")) == NO_SPACE
    txn = TxnRequest(success=[RequestOp(request_put=PutRequest(key=b"tiny", value=b"1"))])
    assert server.error("Txn", txn) == NO_SPACE
    # Reads and deletes still work, on the same channel.
    count = server.kv.Range(
        RangeRequest(key=b"fill/", range_end=b"fill0", count_only=True), timeout=CALL_TIMEOUT_S
    )
    assert count.count == accepted
    assert server.kv.Range(RangeRequest(key=CANARY), timeout=CALL_TIMEOUT_S).kvs[0].value == (
        b"still here"
    )
    deleted = server.kv.DeleteRange(
        rpc_pb2.DeleteRangeRequest(key=b"fill/0000"), timeout=CALL_TIMEOUT_S
    )
    assert deleted.deleted == 1
    # The alarm stays until disarmed, even with room freed.
    assert server.error("Put", PutRequest(key=b"tiny", value=b"1")) == NO_SPACE


def test_quota_recovery_by_compact_defrag_disarm(quota_server: Server) -> None:
    server = quota_server
    _fill(server, b"fill/")
    _recover(server, b"fill/")
    res = etcdctl(server.process.endpoint, "alarm", "list")
    assert (res.returncode, res.stdout) == (0, ""), res
    server.kv.Put(PutRequest(key=b"again", value=VALUE_64K), timeout=10)
    server.assert_intact()


def test_quota_recovery_can_be_repeated(
    request: pytest.FixtureRequest, quota_server: Server
) -> None:
    """Fill, recover, and again: each round the quota takes writes again.

    etcd takes 25 or more 64 KiB puts each round (its Raft log is outside the quota). Ward
    keeps its Raft log inside the quota'd lmdb file and neither compaction nor defragmentation
    trims it: the defragmented file grows every round (224, 360, 428, 496 KiB) and by the fifth
    round not one put fits.
    """
    server = quota_server
    for round_ in range(5):
        prefix = b"r%d/" % round_
        accepted = _fill(server, prefix)
        assert accepted >= 1, f"round {round_}: no put fits after recovery"
        _recover(server, prefix)


@pytest.mark.parametrize(
    "kind",
    [
        "etcd",
        "ward",
    ],
)
def test_quota_allows_delete_only_txn_under_nospace(kind: str, tmp_path: Path) -> None:
    """A txn that only deletes costs no space, so etcd lets it through under NOSPACE (its
    quota check passes any request whose cost is 0).

    The server starts with a quota below what an empty store already uses (4 KiB: under
    etcd's empty file and under Ward's live pages), so the first put raises NOSPACE and the
    store stays over the quota.
    """
    process = _start(kind, tmp_path, "--quota-backend-bytes", "4096")
    try:
        with grpc.insecure_channel(process.endpoint) as channel:
            server = Server(kind, process, channel)
            assert server.error("Put", PutRequest(key=b"k", value=b"v")) == NO_SPACE
            delete = RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"k"))
            try:
                server.kv.Txn(TxnRequest(success=[delete]), timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as err:
                raise AssertionError(f"delete-only txn refused: {err.details()}") from None  # type: ignore[attr-defined]
            # A plain DeleteRange goes through on both.
            server.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"k"), timeout=CALL_TIMEOUT_S)
    finally:
        process.stop()
