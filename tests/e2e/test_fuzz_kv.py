"""Hypothesis-driven fuzzing of the KV service over gRPC, against a model of etcd's semantics.

`test_kv_requests_match_the_etcd_model` sends random Range/Put/DeleteRange/Txn/Compact requests
(nested txns up to depth 3, random compares, empty keys, single keys, from-key ends `b"\\0"` and
inverted ranges, past and future revisions) and checks every answer against `EtcdModel`, a
Python transcription of etcd 3.4's KV rules (v3rpc/key.go checks, apply.go, mvcc). The same test
runs against the real etcd, so the model itself is checked against etcd on every run.

Where Ward was found to differ from etcd, the input class is kept out of the random generator
and pinned instead by a deterministic `test_fuzz_finding_*` test below (strict xfail while the
bug stands), so the random test stays a sharp tripwire for new differences.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tests.e2e.etcd_errors import (
    COMPACTED,
    DUPLICATE_KEY,
    EMPTY_KEY,
    FUTURE_REV,
    KEY_NOT_FOUND,
    LEASE_NOT_FOUND,
    LEASE_PROVIDED,
    TOO_MANY_OPS,
    VALUE_PROVIDED,
)
from tests.e2e.ward_process import ETCD, start_etcd, start_ward
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from wardpb.mvccpb import kv_pb2

CALL_TIMEOUT_S = 5.0
RangeRequest = rpc_pb2.RangeRequest
Compare = rpc_pb2.Compare

# Status codes etcd's KV service answers with. INTERNAL is in the list only because grpc-go,
# under etcd, answers an undecodable request with it ("grpc: error unmarshalling request: ...");
# `_check_code` accepts it with that message only.
ETCD_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
    }
)
UNMARSHAL_PREFIX = "grpc: error unmarshalling request: "


MAX_TXN_OPS = 128  # both servers run with the default --max-txn-ops
FROM_KEY = b"\x00"
MISSING_LEASE = 0x7E57  # never granted: every put naming it must fail


class ModelError(Exception):
    """The error etcd answers a request with, as (status code, message).

    `also` is a second answer accepted where Ward is known to differ from etcd and a pinned test
    says so; it is None everywhere else.
    """

    def __init__(
        self,
        error: tuple[grpc.StatusCode, str],
        also: tuple[grpc.StatusCode, str] | None = None,
    ) -> None:
        super().__init__(error[1])
        self.error = error
        self.accepted = {error, also or error}


# ---- the model ----


@dataclass(frozen=True, slots=True)
class KV:
    """One live key as mvcc stores it."""

    key: bytes
    value: bytes
    create: int
    mod: int
    version: int
    lease: int

    def message(self, keys_only: bool = False) -> kv_pb2.KeyValue:
        """The KeyValue etcd sends for this key."""
        return kv_pb2.KeyValue(
            key=self.key,
            create_revision=self.create,
            mod_revision=self.mod,
            version=self.version,
            value=b"" if keys_only else self.value,
            lease=self.lease,
        )


Snapshot = dict[bytes, KV]


def _in_range(k: bytes, key: bytes, end: bytes) -> bool:
    """etcd's key range: `end` empty is the single key, `b"\\0"` every key from `key` on."""
    if not end:
        return k == key
    if end == FROM_KEY:
        return k >= key
    return key <= k < end


def _select(snap: Snapshot, key: bytes, end: bytes) -> list[KV]:
    return [snap[k] for k in sorted(snap) if _in_range(k, key, end)]


@dataclass(slots=True)
class ExpectRange:
    """A RangeResponse as etcd builds it, plus what a valid reordering of ties may use."""

    response: rpc_pb2.RangeResponse
    candidates: list[kv_pb2.KeyValue]  # every kv in range after filters, before the limit
    sort_target: int | None  # None: the order is fully determined (by key)


@dataclass(slots=True)
class ExpectTxn:
    revision: int
    succeeded: bool
    responses: list[object] = field(default_factory=list)  # Expect* per op, in order


@dataclass(slots=True)
class ExpectSimple:
    """A Put/DeleteRange/Compact response: the proto to match, header revision included."""

    response: object


@dataclass(slots=True)
class EtcdModel:
    """The keyspace as etcd would hold it after the requests seen so far."""

    kvs: Snapshot
    rev: int
    compacted: int
    history: dict[int, Snapshot]  # revision -> keyspace, for revisions the model saw

    @classmethod
    def synced(cls, kv: rpc_pb2_grpc.KVStub, compacted: int) -> EtcdModel:
        """The model of what the server holds now (its older history is unknown)."""
        resp = kv.Range(RangeRequest(key=FROM_KEY, range_end=FROM_KEY), timeout=CALL_TIMEOUT_S)
        kvs = {
            m.key: KV(m.key, m.value, m.create_revision, m.mod_revision, m.version, m.lease)
            for m in resp.kvs
        }
        rev = resp.header.revision
        return cls(kvs=kvs, rev=rev, compacted=compacted, history={rev: dict(kvs)})

    def commit(self, kvs: Snapshot, changed: bool) -> int:
        """End a write: a new revision if anything changed; returns the revision after it."""
        if changed:
            self.rev += 1
            self.kvs = kvs
            self.history[self.rev] = dict(kvs)
        return self.rev

    # -- etcd's v3rpc checks (key.go), in etcd's order --

    @staticmethod
    def check_range(r: rpc_pb2.RangeRequest) -> None:
        """v3rpc checkRangeRequest."""
        if not r.key:
            raise ModelError(EMPTY_KEY)

    @staticmethod
    def check_put(r: rpc_pb2.PutRequest) -> None:
        """v3rpc checkPutRequest."""
        if not r.key:
            raise ModelError(EMPTY_KEY)
        if r.ignore_value and r.value:
            raise ModelError(VALUE_PROVIDED)
        if r.ignore_lease and r.lease:
            raise ModelError(LEASE_PROVIDED)

    @staticmethod
    def check_delete(r: rpc_pb2.DeleteRangeRequest) -> None:
        """v3rpc checkDeleteRequest."""
        if not r.key:
            raise ModelError(EMPTY_KEY)

    def check_txn(self, t: rpc_pb2.TxnRequest, max_ops: int) -> None:
        """v3rpc checkTxnRequest: a nested txn may hold `max_ops` minus its parent's ops."""
        opc = max(len(t.compare), len(t.success), len(t.failure))
        if opc > max_ops:
            raise ModelError(TOO_MANY_OPS)
        for c in t.compare:
            if not c.key:
                raise ModelError(EMPTY_KEY)
        for op in (*t.success, *t.failure):
            which = op.WhichOneof("request")
            if which == "request_range":
                self.check_range(op.request_range)
            elif which == "request_put":
                self.check_put(op.request_put)
            elif which == "request_delete_range":
                self.check_delete(op.request_delete_range)
            elif which == "request_txn":
                self.check_txn(op.request_txn, max_ops - opc)
            else:
                raise ModelError(KEY_NOT_FOUND)  # etcd's answer to an empty RequestOp

    @classmethod
    def check_intervals(cls, ops: list[rpc_pb2.RequestOp]) -> tuple[set[bytes], list]:
        """etcd's checkIntervals: no key put twice, or put and deleted, on one path."""
        dels: list[tuple[bytes, bytes]] = []
        for op in ops:
            if op.WhichOneof("request") == "request_delete_range":
                d = op.request_delete_range
                dels.append((d.key, d.range_end))

        def deleted(k: bytes) -> bool:
            # A point delete hits its key only; a range [key, end) by plain byte order, so a
            # from-key end b"\0" or an inverted range hits nothing (etcd's string intervals).
            return any(k == s if not e else s <= k < e for s, e in dels)

        puts: set[bytes] = set()
        for op in ops:
            if op.WhichOneof("request") != "request_txn":
                continue
            then_puts, then_dels = cls.check_intervals(list(op.request_txn.success))
            else_puts, else_dels = cls.check_intervals(list(op.request_txn.failure))
            for k in then_puts:
                if k in puts or deleted(k):
                    raise ModelError(DUPLICATE_KEY)
                puts.add(k)
            for k in else_puts:
                if (k in puts and k not in then_puts) or deleted(k):
                    raise ModelError(DUPLICATE_KEY)
                puts.add(k)
            dels.extend(then_dels)
            dels.extend(else_dels)
        for op in ops:
            if op.WhichOneof("request") != "request_put":
                continue
            k = op.request_put.key
            if k in puts or deleted(k):
                raise ModelError(DUPLICATE_KEY)
            puts.add(k)
        return puts, dels

    # -- reads --

    def range(
        self, r: rpc_pb2.RangeRequest, working: Snapshot, current: int, header_rev: int
    ) -> ExpectRange | None:
        """etcd's Range at `r.revision` (0: the working keyspace); None if the model cannot know.

        `current` is the revision the read view is at, `header_rev` what the answer reports.
        """
        rev = r.revision
        if rev > current:
            raise ModelError(FUTURE_REV)
        if rev <= 0:
            rev = current
        if rev < self.compacted:
            raise ModelError(COMPACTED)
        snap = working if rev == current else self.history.get(rev)
        if snap is None:
            return None
        items = _select(snap, r.key, r.range_end)
        count = len(items)
        if r.max_mod_revision:
            items = [i for i in items if i.mod <= r.max_mod_revision]
        if r.min_mod_revision:
            items = [i for i in items if i.mod >= r.min_mod_revision]
        if r.max_create_revision:
            items = [i for i in items if i.create <= r.max_create_revision]
        if r.min_create_revision:
            items = [i for i in items if i.create >= r.min_create_revision]
        order, target = r.sort_order, r.sort_target
        if target != RangeRequest.KEY and order == RangeRequest.NONE:
            order = RangeRequest.ASCEND
        tie_target: int | None = None
        if order in (RangeRequest.ASCEND, RangeRequest.DESCEND):
            items = sorted(items, key=lambda i: _sort_key(i, target))
            if order == RangeRequest.DESCEND:
                items.reverse()
            if target != RangeRequest.KEY:
                tie_target = target
        more = False
        shown = items
        if r.count_only:
            shown = []
        elif r.limit > 0 and len(items) > r.limit:
            shown = items[: r.limit]
            more = True
        resp = rpc_pb2.RangeResponse(
            header=rpc_pb2.ResponseHeader(revision=header_rev),
            kvs=[i.message(r.keys_only) for i in shown],
            more=more,
            count=count,
        )
        candidates = [i.message(r.keys_only) for i in items]
        return ExpectRange(resp, candidates, tie_target)

    # -- top-level requests --

    def expect(self, method: str, request: object) -> object:
        """The expected answer (Expect*) to `request`, applying its effect to the model."""
        if method == "Range":
            assert isinstance(request, rpc_pb2.RangeRequest)
            self.check_range(request)
            return self.range(request, self.kvs, self.rev, self.rev)
        if method == "Put":
            assert isinstance(request, rpc_pb2.PutRequest)
            self.check_put(request)
            if request.lease and not request.ignore_lease:
                raise ModelError(LEASE_NOT_FOUND)
            kvs = dict(self.kvs)
            body = self._put(kvs, request, self.rev + 1)
            body.header.revision = self.commit(kvs, True)
            return ExpectSimple(body)
        if method == "DeleteRange":
            assert isinstance(request, rpc_pb2.DeleteRangeRequest)
            self.check_delete(request)
            kvs = dict(self.kvs)
            body = self._delete(kvs, request)
            body.header.revision = self.commit(kvs, body.deleted > 0)
            return ExpectSimple(body)
        if method == "Txn":
            assert isinstance(request, rpc_pb2.TxnRequest)
            return self._txn(request)
        if method == "Compact":
            assert isinstance(request, rpc_pb2.CompactionRequest)
            if request.revision <= self.compacted:
                raise ModelError(COMPACTED)
            if request.revision > self.rev:
                raise ModelError(FUTURE_REV)
            self.compacted = request.revision
            self.history = {r: s for r, s in self.history.items() if r >= request.revision}
            return ExpectSimple(
                rpc_pb2.CompactionResponse(header=rpc_pb2.ResponseHeader(revision=self.rev))
            )
        raise AssertionError(method)

    def _put(self, kvs: Snapshot, p: rpc_pb2.PutRequest, rev: int) -> rpc_pb2.PutResponse:
        """Apply a checked put at `rev` to `kvs`; the response without its header revision."""
        prev = kvs.get(p.key)
        if (p.ignore_value or p.ignore_lease) and prev is None:
            raise ModelError(KEY_NOT_FOUND)
        value = prev.value if p.ignore_value and prev else p.value
        lease = prev.lease if p.ignore_lease and prev else p.lease
        kvs[p.key] = KV(
            p.key,
            value,
            prev.create if prev else rev,
            rev,
            prev.version + 1 if prev else 1,
            lease,
        )
        resp = rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader())
        if p.prev_kv and prev is not None:
            resp.prev_kv.CopyFrom(prev.message())
        return resp

    @staticmethod
    def _delete(kvs: Snapshot, d: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        """Apply a delete to `kvs`; the response without its header revision."""
        doomed = _select(kvs, d.key, d.range_end)
        for item in doomed:
            del kvs[item.key]
        return rpc_pb2.DeleteRangeResponse(
            header=rpc_pb2.ResponseHeader(),
            deleted=len(doomed),
            prev_kvs=[i.message() for i in doomed] if d.prev_kv else [],
        )

    def _compare(self, c: rpc_pb2.Compare) -> bool:
        """etcd's applyCompare: every key in the range must satisfy it."""
        items = _select(self.kvs, c.key, c.range_end)
        if not items:
            if c.target == Compare.VALUE:
                return False  # etcd: a missing key has no value to compare
            return _compare_one(c, None)
        return all(_compare_one(c, i) for i in items)

    def _path(self, t: rpc_pb2.TxnRequest) -> list[bool]:
        """Branch taken by every txn on the path, depth first, all against the pre-txn state."""
        ok = all(self._compare(c) for c in t.compare)
        path = [ok]
        for op in t.success if ok else t.failure:
            if op.WhichOneof("request") == "request_txn":
                path.extend(self._path(op.request_txn))
        return path

    def _walk(
        self,
        t: rpc_pb2.TxnRequest,
        path: list[bool],
        i: int,
        fn: Callable[[rpc_pb2.RequestOp], None],
    ) -> int:
        """Call `fn(op)` on every non-txn op of the path, depth first; returns the next index."""
        ok = path[i]
        i += 1
        for op in t.success if ok else t.failure:
            if op.WhichOneof("request") == "request_txn":
                i = self._walk(op.request_txn, path, i, fn)
            else:
                fn(op)
        return i

    def _txn(self, t: rpc_pb2.TxnRequest) -> ExpectTxn:
        self.check_txn(t, MAX_TXN_OPS)
        self.check_intervals(list(t.success))
        self.check_intervals(list(t.failure))
        path = self._path(t)

        errors: list[tuple[str, tuple[grpc.StatusCode, str]]] = []  # (kind, error), op order

        def check(op: rpc_pb2.RequestOp) -> None:
            which = op.WhichOneof("request")
            if which == "request_put":
                p = op.request_put
                if (p.ignore_value or p.ignore_lease) and p.key not in self.kvs:
                    errors.append(("put", KEY_NOT_FOUND))
                elif p.lease:
                    errors.append(("put", LEASE_NOT_FOUND))
            elif which == "request_range":
                rev = op.request_range.revision
                if rev > self.rev:
                    errors.append(("range", FUTURE_REV))
                elif rev and rev < self.compacted:
                    errors.append(("range", COMPACTED))

        self._walk(t, path, 0, check)
        if errors:
            # etcd checks every put of the path first, then every range (applierV3backend.Txn).
            puts = [e for kind, e in errors if kind == "put"]
            etcd_error = puts[0] if puts else errors[0][1]
            # Ward checks in op order: accepted only here, and pinned by
            # test_fuzz_finding_txn_checks_puts_before_ranges.
            raise ModelError(etcd_error, also=errors[0][1])
        kvs = dict(self.kvs)
        run = _TxnRun(path)
        expect = self._run(t, kvs, run)
        expect.revision = self.commit(kvs, run.changed)
        return expect

    def _run(self, t: rpc_pb2.TxnRequest, kvs: Snapshot, run: _TxnRun) -> ExpectTxn:
        """Apply the taken branch of `t` to `kvs`, as etcd's applyTxn, nested txns included."""
        ok = run.path[run.i]
        run.i += 1
        out = ExpectTxn(revision=0, succeeded=ok)
        base = self.rev
        for op in t.success if ok else t.failure:
            which = op.WhichOneof("request")
            if which == "request_range":
                # A read inside a write txn sees the txn's own writes, at base + 1.
                current = base + 1 if run.changed else base
                out.responses.append(self.range(op.request_range, kvs, current, current))
            elif which == "request_put":
                body = self._put(kvs, op.request_put, base + 1)
                run.changed = True
                body.header.revision = base + 1
                out.responses.append(ExpectSimple(body))
            elif which == "request_delete_range":
                body = self._delete(kvs, op.request_delete_range)
                run.changed = run.changed or body.deleted > 0
                body.header.revision = base + 1 if run.changed else base
                out.responses.append(ExpectSimple(body))
            else:
                out.responses.append(self._run(op.request_txn, kvs, run))
        return out


@dataclass(slots=True)
class _TxnRun:
    """Progress through one txn's application: the branch path and whether it wrote yet."""

    path: list[bool]
    i: int = 0
    changed: bool = False


def _sort_key(item: KV, target: int) -> object:
    """What a Range sorts `item` by for `target`."""
    return {
        RangeRequest.KEY: item.key,
        RangeRequest.VERSION: item.version,
        RangeRequest.CREATE: item.create,
        RangeRequest.MOD: item.mod,
        RangeRequest.VALUE: item.value,
    }[target]


def _compare_one(c: rpc_pb2.Compare, item: KV | None) -> bool:
    """etcd's compareKV; a missing key compares as the zero KeyValue."""
    target = c.target
    if target == Compare.VALUE:
        a: object = item.value if item else b""
        b: object = c.value
    elif target == Compare.VERSION:
        a, b = (item.version if item else 0), c.version
    elif target == Compare.CREATE:
        a, b = (item.create if item else 0), c.create_revision
    elif target == Compare.MOD:
        a, b = (item.mod if item else 0), c.mod_revision
    else:
        a, b = (item.lease if item else 0), c.lease
    result = (a > b) - (a < b)  # type: ignore[operator]
    return {
        Compare.EQUAL: result == 0,
        Compare.NOT_EQUAL: result != 0,
        Compare.GREATER: result > 0,
        Compare.LESS: result < 0,
    }[c.result]


# ---- comparing answers with the model ----


def _kv_sort_value(kv: kv_pb2.KeyValue, target: int) -> object:
    """What a Range sorted by `target` (not KEY) ordered the returned `kv` by."""
    return {
        RangeRequest.VERSION: kv.version,
        RangeRequest.CREATE: kv.create_revision,
        RangeRequest.MOD: kv.mod_revision,
        RangeRequest.VALUE: kv.value,
    }[target]


def _assert_range(actual: rpc_pb2.RangeResponse, exp: ExpectRange, where: str) -> None:
    """`actual` is the RangeResponse etcd would send, up to the order of sort ties."""
    e = exp.response
    assert actual.header.revision == e.header.revision, where
    assert (actual.count, actual.more) == (e.count, e.more), f"{where}: count/more"
    if exp.sort_target is None:
        assert list(actual.kvs) == list(e.kvs), f"{where}: kvs"
        return
    # Equal sort values may come in any order (Go's sort.Sort is not stable): compare the
    # sequence of sort values, and that every kv returned is one the range holds.
    t = exp.sort_target
    assert [_kv_sort_value(kv, t) for kv in actual.kvs] == [
        _kv_sort_value(kv, t) for kv in e.kvs
    ], f"{where}: sort order"
    candidates = [kv.SerializeToString(deterministic=True) for kv in exp.candidates]
    got = [kv.SerializeToString(deterministic=True) for kv in actual.kvs]
    assert len(set(got)) == len(got), f"{where}: a kv returned twice"
    assert all(g in candidates for g in got), f"{where}: kvs"


def _assert_txn(actual: rpc_pb2.TxnResponse, exp: ExpectTxn, where: str, top: bool) -> None:
    """`actual` is the TxnResponse etcd would send, nested responses included."""
    if top:
        assert actual.header.revision == exp.revision, f"{where}: revision"
    # A nested TxnResponse's header is left empty by etcd; its revision is not compared here
    # (test_fuzz_finding_nested_txn_header_is_empty pins it).
    assert actual.succeeded == exp.succeeded, f"{where}: succeeded"
    assert len(actual.responses) == len(exp.responses), f"{where}: number of responses"
    for n, (got, want) in enumerate(zip(actual.responses, exp.responses, strict=True)):
        here = f"{where}.responses[{n}]"
        which = got.WhichOneof("response")
        if isinstance(want, ExpectTxn):
            assert which == "response_txn", here
            _assert_txn(got.response_txn, want, here, top=False)
        elif want is None:
            assert which == "response_range", here  # a past revision the model never saw
        elif isinstance(want, ExpectRange):
            assert which == "response_range", here
            _assert_range(got.response_range, want, here)
        else:
            assert isinstance(want, ExpectSimple)
            assert getattr(got, which) == want.response, here


def _assert_answer(method: str, actual: object, expected: object) -> None:
    """`actual` is the model's expected answer, member IDs and term aside."""
    if isinstance(expected, ExpectRange):
        assert isinstance(actual, rpc_pb2.RangeResponse)
        _assert_range(actual, expected, method)
    elif isinstance(expected, ExpectTxn):
        assert isinstance(actual, rpc_pb2.TxnResponse)
        _assert_txn(actual, expected, method, top=True)
    elif isinstance(expected, ExpectSimple):
        got = copy.deepcopy(actual)
        got.header.ClearField("cluster_id")  # type: ignore[attr-defined]
        got.header.ClearField("member_id")  # type: ignore[attr-defined]
        got.header.ClearField("raft_term")  # type: ignore[attr-defined]
        assert got == expected.response, method


def _check_code(err: grpc.RpcError) -> None:
    """The error is one etcd could answer with: never UNKNOWN, a hang, or an internal error."""
    code = err.code()
    assert code in ETCD_CODES, f"{code} {err.details()!r}"
    if code == grpc.StatusCode.INTERNAL:
        assert (err.details() or "").startswith(UNMARSHAL_PREFIX), err.details()


# ---- strategies ----

# A small alphabet so that random keys collide, nest as prefixes and order around b"\0"/b"\xff".
keys = st.lists(st.sampled_from(b"\x00ab\xff"), min_size=1, max_size=3).map(bytes)


def keys_or_empty(one_in: int) -> st.SearchStrategy[bytes]:
    """A key, empty (which etcd refuses) one time in `one_in`."""
    return st.integers(1, one_in).flatmap(lambda n: st.just(b"") if n == 1 else keys)


# Requests get an empty key one time in ten; the ops and compares of a txn one in fifty, so
# that most txns get past the check and reach the duplicate-key and apply rules.
TOP_KEYS = keys_or_empty(10)
TXN_KEYS = keys_or_empty(50)
# Single key, from-key, and an arbitrary end: often below the key (an inverted, empty range).
range_ends = st.one_of(st.just(b""), st.just(FROM_KEY), keys)
values = st.binary(max_size=6)


# Revisions depend on the server's state, which Hypothesis must not see (it replays a choice
# sequence and expects the same requests): a drawn revision is REL + k for "the current
# revision + k", and `resolve` makes it absolute just before the request is sent.
REL = 1 << 40
REL_FIELDS = frozenset(
    {
        "revision",
        "min_mod_revision",
        "max_mod_revision",
        "min_create_revision",
        "max_create_revision",
        "create_revision",
        "mod_revision",
    }
)


def rel(k: int) -> int:
    """A revision k away from the current one, made absolute by `resolve`."""
    return REL + k


def resolve(msg: object, current: int) -> None:
    """Replace every REL + k in `msg` (recursively) by current + k, at least 1."""
    for fd, value in msg.ListFields():  # type: ignore[attr-defined]
        if fd.message_type is not None:
            items = value if fd.is_repeated else [value]
            for item in items:
                resolve(item, current)
        elif fd.name in REL_FIELDS and isinstance(value, int) and value >= REL // 2:
            setattr(msg, fd.name, max(1, current + value - REL))


def revisions(*, in_txn: bool) -> st.SearchStrategy[int]:
    """Revisions around the current one: past, current, future, 0 and (outside txns) -1."""
    fixed = [0, rel(1), rel(5)]
    if not in_txn:
        # Inside a txn etcd refuses a negative revision as compacted while Ward reads the current
        # one: test_fuzz_finding_negative_revision_in_txn pins that.
        fixed.append(-1)
    return st.one_of(st.sampled_from(fixed), st.integers(-6, 0).map(rel))


def range_requests(*, in_txn: bool = False) -> st.SearchStrategy:
    """RangeRequests; inside a txn with fewer empty keys and no negative revision."""

    def build(
        key: bytes,
        end: bytes,
        limit: int,
        rev: int,
        order: int,
        target: int,
        flags: tuple[bool, bool, bool],
        filters: tuple[int, int, int, int],
    ) -> rpc_pb2.RangeRequest:
        keys_only, count_only, serializable = flags
        if count_only:
            limit = 0  # test_fuzz_finding_count_only_with_limit pins count_only with a limit
        return RangeRequest(
            key=key,
            range_end=end,
            limit=limit,  # no negative limits: test_fuzz_finding_negative_limit
            revision=rev,
            sort_order=order,
            sort_target=target,
            keys_only=keys_only,
            count_only=count_only,
            serializable=serializable,
            min_mod_revision=filters[0],
            max_mod_revision=filters[1],
            min_create_revision=filters[2],
            max_create_revision=filters[3],
        )

    filter_rev = st.one_of(st.just(0), st.integers(-8, 1).map(rel))
    return st.builds(
        build,
        TXN_KEYS if in_txn else TOP_KEYS,
        range_ends,
        st.integers(0, 4),
        revisions(in_txn=in_txn),
        st.sampled_from(list(RangeRequest.SortOrder.values())),
        st.sampled_from(list(RangeRequest.SortTarget.values())),
        st.tuples(st.booleans(), st.integers(0, 5).map(lambda n: n == 0), st.booleans()),
        st.one_of(
            st.just((0, 0, 0, 0)),
            st.tuples(filter_rev, filter_rev, filter_rev, filter_rev),
        ),
    )


def put_requests(key_strategy: st.SearchStrategy[bytes] = TOP_KEYS) -> st.SearchStrategy:
    """PutRequests, with prev_kv, ignore_value/ignore_lease and missing leases mixed in."""

    def build(key: bytes, value: bytes, prev_kv: bool, mode: int) -> rpc_pb2.PutRequest:
        p = rpc_pb2.PutRequest(key=key, value=value, prev_kv=prev_kv)
        if mode == 1:
            p.ignore_value = True  # with a value too, sometimes: "value is provided"
        elif mode == 2:
            p.value = b""
            p.ignore_value = True
        elif mode == 3:
            p.ignore_lease = True
        elif mode == 4:
            # A missing lease on a plain put. (With ignore_value on a missing key the order of
            # the two errors differs: test_fuzz_finding_put_checks_lease_before_key.)
            p.lease = MISSING_LEASE
        return p

    return st.builds(
        build, key_strategy, values, st.booleans(), st.sampled_from([0, 0, 0, 0, 1, 2, 3, 4])
    )


def delete_requests(key_strategy: st.SearchStrategy[bytes] = TOP_KEYS) -> st.SearchStrategy:
    """DeleteRangeRequests over single keys, from-key and inverted ranges."""
    return st.builds(
        lambda k, e, p: rpc_pb2.DeleteRangeRequest(key=k, range_end=e, prev_kv=p),
        key_strategy,
        range_ends,
        st.booleans(),
    )


def compares() -> st.SearchStrategy:
    """Compares of every target and result, on single keys and ranges."""

    def build(
        key: bytes, end: bytes, target: int, result: int, union: int, n: int, v: bytes
    ) -> rpc_pb2.Compare:
        c = Compare(key=key, range_end=end, target=target, result=result)
        # Usually the union field of the target; sometimes another one (etcd then compares
        # against the zero value). The union's fields are numbered as the targets are.
        # (Unknown targets: test_fuzz_finding_unknown_compare_target.)
        fields = ["version", "create_revision", "mod_revision", "value", "lease"]
        field_name = fields[target if union > 4 else union]
        setattr(c, field_name, v if field_name == "value" else n)
        return c

    return st.builds(
        build,
        TXN_KEYS,
        st.one_of(st.just(b""), st.just(b""), range_ends),
        st.sampled_from(list(Compare.CompareTarget.values())),
        st.sampled_from(list(Compare.CompareResult.values())),
        st.integers(0, 9),
        st.one_of(st.integers(0, 3), st.integers(-3, 1).map(rel)),
        values,
    )


def txn_requests(depth: int = 3) -> st.SearchStrategy:
    """TxnRequests of up to 3 compares and 3 ops a branch, nested up to `depth` levels."""
    leaf_ops = st.one_of(
        range_requests(in_txn=True).map(lambda r: rpc_pb2.RequestOp(request_range=r)),
        put_requests(TXN_KEYS).map(lambda r: rpc_pb2.RequestOp(request_put=r)),
        delete_requests(TXN_KEYS).map(lambda r: rpc_pb2.RequestOp(request_delete_range=r)),
    )
    if depth > 1:
        ops = st.one_of(
            leaf_ops,
            st.deferred(lambda: txn_requests(depth - 1)).map(
                lambda t: rpc_pb2.RequestOp(request_txn=t)
            ),
        )
    else:
        ops = leaf_ops
    return st.builds(
        lambda c, s, f: rpc_pb2.TxnRequest(compare=c, success=s, failure=f),
        st.lists(compares(), max_size=3),
        st.lists(ops, max_size=3),
        st.lists(ops, max_size=3),
    )


def compactions() -> st.SearchStrategy:
    """Compactions around the current revision: past, current and one ahead."""
    # Revision 0 on a never-compacted store: test_fuzz_finding_compact_zero.
    return st.integers(-4, 1).map(lambda k: rpc_pb2.CompactionRequest(revision=rel(k)))


def requests() -> st.SearchStrategy[tuple[str, object]]:
    """(KV method, request) pairs; writes and txns weighted up, compactions rarer."""
    return st.one_of(
        range_requests().map(lambda r: ("Range", r)),
        put_requests().map(lambda r: ("Put", r)),
        put_requests().map(lambda r: ("Put", r)),
        delete_requests().map(lambda r: ("DeleteRange", r)),
        txn_requests().map(lambda r: ("Txn", r)),
        txn_requests().map(lambda r: ("Txn", r)),
        st.integers(0, 3).flatmap(
            lambda n: (
                compactions().map(lambda r: ("Compact", r))
                if n == 0
                else range_requests().map(lambda r: ("Range", r))
            )
        ),
    )


# ---- fixtures ----


@dataclass(slots=True)
class Target:
    """One server under test, its channel, and the compaction revision the model tracks."""

    name: str
    channel: grpc.Channel
    compacted: int


# The run against etcd checks the model itself; it is slow only for being a second run.
@pytest.fixture(scope="module", params=["ward", pytest.param("etcd", marks=pytest.mark.slow)])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """Ward (two processes) or, to check the model itself, the real etcd; one per module."""
    tmp: Path = tmp_path_factory.mktemp(request.param)
    if request.param == "etcd":
        if not ETCD.exists():
            pytest.skip("etcd is not installed")
        server = start_etcd(tmp)
        compacted = -1  # etcd's compactMainRev before any compaction
    else:
        server = start_ward(tmp)
        compacted = 0
    channel = grpc.insecure_channel(server.endpoint)
    try:
        yield Target(request.param, channel, compacted)
    finally:
        channel.close()
        server.stop()


def _call(channel: grpc.Channel, method: str, request: object) -> object:
    """Call KV/`method` with the stubs, within the call deadline."""
    stub = rpc_pb2_grpc.KVStub(channel)
    return getattr(stub, method)(request, timeout=CALL_TIMEOUT_S)


# ---- tests ----


@settings(
    max_examples=100,
    deadline=None,
    database=None,  # examples depend on a live server's state: nothing worth replaying
    # No "explain" phase: it re-runs examples against the live server for a long time.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_kv_requests_match_the_etcd_model(target: Target, data: st.DataObject) -> None:
    """Every answer is etcd's: the same error, or the same response and keyspace afterwards."""
    kv = rpc_pb2_grpc.KVStub(target.channel)
    model = EtcdModel.synced(kv, target.compacted)
    for _ in range(data.draw(st.integers(1, 6), label="requests")):
        method, request = data.draw(requests(), label="request")
        resolve(request, model.rev)
        before = copy.deepcopy(model)
        try:
            expected: object = model.expect(method, request)
            want_error, accepted = None, set()
        except ModelError as e:
            expected, want_error, accepted = None, e.error, e.accepted
            model = before
        try:
            actual = _call(target.channel, method, request)
        except grpc.RpcError as err:
            _check_code(err)
            event(f"{method}: {err.details()}")
            assert (err.code(), err.details()) in accepted, f"{method} {request}: {want_error}"
            continue
        event(f"{method}: ok")
        assert want_error is None, f"{method} succeeded; etcd answers {want_error}"
        if method == "Compact":
            target.compacted = model.compacted
        if expected is not None:
            _assert_answer(method, actual, expected)
    # The whole keyspace, as a fresh read sees it, is the model's.
    full = kv.Range(RangeRequest(key=FROM_KEY, range_end=FROM_KEY), timeout=CALL_TIMEOUT_S)
    assert full.header.revision == model.rev
    assert list(full.kvs) == [model.kvs[k].message() for k in sorted(model.kvs)]


KV_METHODS = ("Range", "Put", "DeleteRange", "Txn")


@pytest.fixture(scope="module")
def scratch_ward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    """A Ward apart from the model's, for garbage input and the pinned findings below.

    It is never compacted (test_fuzz_finding_compact_zero needs that); each pinned test uses
    keys of its own. One process: these findings are in the servicers, which the core and the
    workers share, and a one-process Ward stops without waiting out its worker.
    """
    server = start_ward(tmp_path_factory.mktemp("scratch"), workers=1)
    channel = grpc.insecure_channel(server.endpoint)
    try:
        yield channel
    finally:
        channel.close()
        server.stop()


def _raw(channel: grpc.Channel, method: str, payload: bytes) -> bytes:
    """Send `payload` as the request bytes of KV/`method`, bypassing the stubs' serializers."""
    call = channel.unary_unary(
        f"/etcdserverpb.KV/{method}", request_serializer=None, response_deserializer=None
    )
    return call(payload, timeout=CALL_TIMEOUT_S)  # type: ignore[no-any-return]


@settings(
    max_examples=100,
    deadline=None,
    # Stop at the first failure (the pinned tests below say what failed) instead of
    # shrinking against a live server.
    phases=[Phase.explicit, Phase.generate],
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(method=st.sampled_from(KV_METHODS), payload=st.binary(max_size=64))
def test_random_bytes_get_an_etcd_answer(
    scratch_ward: grpc.Channel, method: str, payload: bytes
) -> None:
    """Random bytes as a request: a response or an etcd error, and the channel still serves.

    (Compact is left out: garbage there stops Ward's write path for good, which
    test_fuzz_finding_garbage_compact_keeps_writes_working pins on a server of its own.)
    """
    try:
        _raw(scratch_ward, method, payload)
    except grpc.RpcError as err:
        _check_code(err)
    rpc_pb2_grpc.KVStub(scratch_ward).Range(RangeRequest(key=b"probe"), timeout=CALL_TIMEOUT_S)


# ---- pinned findings: each differs between etcd 3.4.23 and Ward as of writing ----


Outcome = tuple[object, ...]


def _outcome(
    fn: Callable[..., object], request: object, timeout: float = CALL_TIMEOUT_S
) -> Outcome:
    """("ok", response) or (status code, details): an RPC error becomes a value to assert on."""
    try:
        return ("ok", fn(request, timeout=timeout))
    except grpc.RpcError as err:
        return (err.code(), err.details())  # type: ignore[attr-defined]


def _seed(kv: rpc_pb2_grpc.KVStub, prefix: bytes) -> None:
    """Keys prefix+a, prefix+b, prefix+c (each test its own prefix on the shared server)."""
    for k in (b"a", b"b", b"c"):
        kv.Put(rpc_pb2.PutRequest(key=prefix + k, value=k), timeout=CALL_TIMEOUT_S)


def test_fuzz_finding_garbage_compact_keeps_writes_working(tmp_path: Path) -> None:
    """A 3-byte garbage Compact is refused and later writes still work.

    etcd: INTERNAL "grpc: error unmarshalling request: unexpected EOF", writes unaffected.
    Ward: the call hangs (DEADLINE_EXCEEDED), the log says "fatal: could not persist a Raft
    ready; stopping", and every later write hangs until a restart.
    """
    ward = start_ward(tmp_path, workers=1)  # a server of its own: this kills its write path
    with ward, grpc.insecure_channel(ward.endpoint) as channel:
        compact = channel.unary_unary(
            "/etcdserverpb.KV/Compact", request_serializer=None, response_deserializer=None
        )
        # Short deadlines: a healthy server answers in milliseconds, a wedged one never.
        code, details = _outcome(compact, b"\xff\xff\xff", timeout=1)
        kv = rpc_pb2_grpc.KVStub(channel)
        after = _outcome(kv.Put, rpc_pb2.PutRequest(key=b"after", value=b"1"), timeout=1)
    assert code == grpc.StatusCode.INTERNAL, (code, details)
    assert str(details).startswith(UNMARSHAL_PREFIX)
    assert after[0] == "ok", after


@pytest.mark.parametrize("method", KV_METHODS)
def test_fuzz_finding_undecodable_request(scratch_ward: grpc.Channel, method: str) -> None:
    """etcd (grpc-go) answers bytes that are not the request message with INTERNAL
    "grpc: error unmarshalling request: unexpected EOF"; Ward with UNKNOWN "Unexpected <class
    'google.protobuf.message.DecodeError'>: Error parsing message ..."."""
    call = scratch_ward.unary_unary(
        f"/etcdserverpb.KV/{method}", request_serializer=None, response_deserializer=None
    )
    code, details = _outcome(call, b"\xff\xff\xff")
    assert code == grpc.StatusCode.INTERNAL, (code, details)
    assert str(details).startswith(UNMARSHAL_PREFIX)


def test_fuzz_finding_negative_limit(scratch_ward: grpc.Channel) -> None:
    """etcd takes a limit <= 0 as no limit (3 keys, limit -2: all 3 kvs, more false); Ward
    returns no kvs and more=true."""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    _seed(kv, b"neg/")
    resp = kv.Range(RangeRequest(key=b"neg/", range_end=b"neg0", limit=-2), timeout=CALL_TIMEOUT_S)
    assert [x.key for x in resp.kvs] == [b"neg/a", b"neg/b", b"neg/c"]
    assert (resp.more, resp.count) == (False, 3)


def test_fuzz_finding_count_only_with_limit(scratch_ward: grpc.Channel) -> None:
    """etcd: count_only with limit 1 over 3 keys answers count 3, more false (no kv was
    returned, so none was held back). Ward answers more=true."""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    _seed(kv, b"cnt/")
    resp = kv.Range(
        RangeRequest(key=b"cnt/", range_end=b"cnt0", count_only=True, limit=1),
        timeout=CALL_TIMEOUT_S,
    )
    assert (list(resp.kvs), resp.count, resp.more) == ([], 3, False)


def test_fuzz_finding_empty_request_op(scratch_ward: grpc.Channel) -> None:
    """etcd refuses a txn holding a RequestOp with no request set: InvalidArgument
    "etcdserver: key not found" (v3rpc checkRequestOp). Ward applies it and answers an empty
    ResponseOp."""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    assert _outcome(kv.Txn, rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp()])) == KEY_NOT_FOUND


def test_fuzz_finding_negative_revision_in_txn(scratch_ward: grpc.Channel) -> None:
    """etcd refuses a Range inside a txn at a revision below its compacted one (-1 before any
    compaction), so revision -2 is OutOfRange "required revision has been compacted"; Ward
    reads the current revision. (Outside a txn both read the current revision.)"""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    _seed(kv, b"negrev/")
    op = rpc_pb2.RequestOp(request_range=RangeRequest(key=b"negrev/a", revision=-2))
    assert _outcome(kv.Txn, rpc_pb2.TxnRequest(success=[op])) == COMPACTED


def test_fuzz_finding_put_checks_lease_before_key(scratch_ward: grpc.Channel) -> None:
    """A plain Put with ignore_value of a missing key naming a missing lease: etcd checks the
    lease first (NotFound "etcdserver: requested lease not found"); Ward answers
    InvalidArgument "etcdserver: key not found"."""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    req = rpc_pb2.PutRequest(key=b"nope", ignore_value=True, lease=MISSING_LEASE)
    assert _outcome(kv.Put, req) == LEASE_NOT_FOUND


def test_fuzz_finding_compact_zero(scratch_ward: grpc.Channel) -> None:
    """On a never-compacted store etcd accepts Compact(revision=0) (its compacted revision
    starts at -1); Ward answers OutOfRange "required revision has been compacted"."""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    outcome = _outcome(kv.Compact, rpc_pb2.CompactionRequest(revision=0))
    assert outcome[0] == "ok", outcome


def test_fuzz_finding_nested_txn_header_is_empty(scratch_ward: grpc.Channel) -> None:
    """etcd leaves the header of a nested TxnResponse empty (newTxnResp); Ward sets its
    revision. Harmless to clients that ignore it, but not etcd's bytes."""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    inner = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_range=RangeRequest(key=b"a"))])
    resp = kv.Txn(
        rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_txn=inner)]),
        timeout=CALL_TIMEOUT_S,
    )
    assert resp.responses[0].response_txn.header == rpc_pb2.ResponseHeader()


def test_fuzz_finding_txn_checks_puts_before_ranges(scratch_ward: grpc.Channel) -> None:
    """etcd checks every put on the taken path before any range (applierV3backend.Txn): a txn
    [Range at a future revision, Put ignore_value of a missing key] is InvalidArgument
    "etcdserver: key not found". Ward answers OutOfRange "required revision is a future
    revision"."""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    txn = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(request_range=RangeRequest(key=b"a", revision=1 << 40)),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"missing", ignore_value=True)),
        ]
    )
    assert _outcome(kv.Txn, txn) == KEY_NOT_FOUND


def test_fuzz_finding_unknown_compare_target(scratch_ward: grpc.Channel) -> None:
    """etcd's compareKV leaves the comparison result 0 for a target it does not know, so
    EQUAL holds: Compare(target=9, lease=5) on a missing key succeeds. Ward compares the
    key's lease (0) with 5 and fails the txn."""
    kv = rpc_pb2_grpc.KVStub(scratch_ward)
    cmp = Compare(key=b"nokey", target=9, result=Compare.EQUAL, lease=5)  # type: ignore[arg-type]
    resp = kv.Txn(rpc_pb2.TxnRequest(compare=[cmp]), timeout=CALL_TIMEOUT_S)
    assert resp.succeeded
