"""The pure parts both clients share (`ward.calls`, `ward.rpc`, `ward.retry`, `ward.watch`'s
cursor): the two clients offer the same methods, and the shared decisions are right."""

from __future__ import annotations

import inspect
import math

import grpc
import pytest

from ward import Client, calls
from ward.aio import Client as AsyncClient
from ward.channels import Stubs
from ward.deadline import Deadline
from ward.endpoints import parse_endpoint
from ward.errors import AuthNotEnabledError, CompactedError, EtcdError, LeaseNotFoundError
from ward.lease import renew_interval, renewed
from ward.retry import BACKOFF_MIN_S, KEEPALIVE_TRANSIENT, Attempts, stream_step
from ward.rpc import Call, Plan, PlanRun
from ward.tokens import Tokens
from ward.watch import StreamEnded, WatchCursor, watch_create_request
from wardpb.etcdserverpb import rpc_pb2


@pytest.mark.parametrize("build", calls.UNARY, ids=lambda b: b.__name__)
def test_both_clients_have_each_call_with_its_signature_and_docstring(build: object) -> None:
    name = build.__name__  # type: ignore[attr-defined]
    expected = list(inspect.signature(build).parameters)  # type: ignore[arg-type]
    for client, is_coroutine in ((Client, False), (AsyncClient, True)):
        method = getattr(client, name)
        assert inspect.iscoroutinefunction(method) is is_coroutine
        assert method.__doc__ == build.__doc__  # type: ignore[attr-defined]
        assert list(inspect.signature(method).parameters) == ["self", *expected]
        bound = getattr(client("127.0.0.1:1"), name)
        assert list(inspect.signature(bound).parameters) == expected


def test_the_clients_offer_the_same_public_methods() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    # Only the context-manager protocol differs (with / async with).
    assert public(Client) == public(AsyncClient)


def test_a_prepared_kv_request_goes_to_its_method() -> None:
    channel = grpc.insecure_channel("127.0.0.1:1")  # never used: nothing connects
    try:
        stubs = Stubs(parse_endpoint("127.0.0.1:1", tls_by_default=False), channel)
        for request, method in (
            (rpc_pb2.RangeRequest(key=b"k"), stubs.kv.Range),
            (rpc_pb2.PutRequest(key=b"k"), stubs.kv.Put),
            (rpc_pb2.DeleteRangeRequest(key=b"k"), stubs.kv.DeleteRange),
            (rpc_pb2.TxnRequest(), stubs.kv.Txn),
        ):
            assert calls.kv_request(request).pick(stubs) is method
    finally:
        channel.close()
    with pytest.raises(TypeError, match="not a KV request"):
        calls.kv_request(rpc_pb2.CompactionRequest())


def test_disarming_every_alarm_is_a_plan_of_a_list_then_one_disarm_each() -> None:
    op = calls.alarm_disarm(timeout=10)
    assert isinstance(op, Plan)
    run = PlanRun(op, Deadline.after(10))
    first = run.next_call()
    assert first is not None and first.request.action == rpc_pb2.AlarmRequest.GET
    active = rpc_pb2.AlarmResponse(
        alarms=[
            rpc_pb2.AlarmMember(memberID=1, alarm=rpc_pb2.NOSPACE),
            rpc_pb2.AlarmMember(memberID=2, alarm=rpc_pb2.CORRUPT),
        ]
    )
    run.answer(active)
    for member in (1, 2):
        step = run.next_call()
        assert step is not None
        assert (step.request.action, step.request.memberID) == (
            rpc_pb2.AlarmRequest.DEACTIVATE,
            member,
        )
        assert step.timeout is not None and 0 < step.timeout <= 10
        run.answer(rpc_pb2.AlarmResponse(alarms=[active.alarms[member - 1]]))
    assert run.next_call() is None
    assert run.result is not None and len(run.result.alarms) == 2
    # One alarm named: a single call.
    assert isinstance(calls.alarm_disarm(1, rpc_pb2.NOSPACE), Call)


def test_a_plan_sees_the_errors_of_its_calls() -> None:
    tokens = Tokens("root", "secret-password")
    run = PlanRun(tokens.authenticate(5), Deadline.after(5))
    call = run.next_call()
    assert call is not None and call.anonymous and call.request.name == "root"
    # Authentication disabled on the server: fine, calls go without a token.
    run.fail(AuthNotEnabledError(AuthNotEnabledError.MESSAGE))
    assert run.next_call() is None
    assert not tokens.needed and tokens.metadata() is None
    # Any other error propagates to the caller.
    tokens.invalidate()
    run = PlanRun(tokens.authenticate(5), Deadline.after(5))
    assert run.next_call() is not None
    run.fail(EtcdError("boom"))
    with pytest.raises(EtcdError, match="boom"):
        run.next_call()
    assert tokens.needed


def test_a_client_without_user_never_authenticates() -> None:
    tokens = Tokens(None, None)
    assert not tokens.needed and not tokens.can_refresh
    tokens.invalidate()
    assert not tokens.needed
    assert PlanRun(tokens.authenticate(5), Deadline.after(5)).next_call() is None


def test_deadlines() -> None:
    assert Deadline.after(math.inf).remaining() is None
    assert Deadline.after(math.inf).remaining_or_inf() == math.inf
    assert not Deadline.after(math.inf).passed()
    soon = Deadline.after(10)
    assert 9 < (soon.remaining() or 0) <= 10
    assert Deadline.after(-1).passed() and Deadline.after(-1).remaining() == 0


def _attempts(timeout: float = 10, **policy: bool) -> Attempts:
    options = {"failover": True, "safe": True, "pinned": False, "can_refresh": False}
    return Attempts(Deadline.after(timeout), **{**options, **policy})


def test_a_broken_stream_is_retried_only_for_safe_calls_with_failover() -> None:
    broken = StreamEnded()  # Unavailable, after the call was sent
    safe = _attempts()
    first, second = safe.after(broken), safe.after(broken)
    assert first.retry and first.forget_endpoint and first.delay == BACKOFF_MIN_S
    assert second.delay == 2 * BACKOFF_MIN_S
    assert not _attempts(safe=False).after(broken).retry
    single = _attempts(failover=False)
    assert single.wait_for_ready and not single.after(broken).retry
    step = _attempts(failover=False, pinned=True).after(broken)
    assert not step.retry and not step.forget_endpoint
    # No time left for the backoff: give up now.
    assert not _attempts(timeout=0.01).after(broken).retry
    # A long-lived stream reopens after it.
    assert stream_step(broken, can_refresh=False, transient=KEEPALIVE_TRANSIENT).retry


def test_watch_cursor_resumes_after_the_last_delivered_revision() -> None:
    cursor = WatchCursor(watch_create_request("k", prefix=True))
    assert cursor.open_request().create_request.start_revision == 0
    created = rpc_pb2.WatchResponse(created=True, header=rpc_pb2.ResponseHeader(revision=7))
    assert cursor.accept(created) is None
    assert cursor.next_revision == 8
    event = rpc_pb2.WatchResponse(
        events=[{"kv": {"key": b"k1", "mod_revision": 9}}],
        header=rpc_pb2.ResponseHeader(revision=9),
    )
    assert cursor.accept(event) is event
    assert cursor.open_request().create_request.start_revision == 10
    assert cursor.open_request().create_request.range_end == b"l"
    progress = rpc_pb2.WatchResponse(header=rpc_pb2.ResponseHeader(revision=15))
    assert cursor.accept(progress) is progress and cursor.next_revision == 16
    compacted = rpc_pb2.WatchResponse(canceled=True, compact_revision=20)
    assert isinstance(cursor.accept(compacted), CompactedError)


def test_a_refused_watch_is_answered_and_ends_with_the_reason() -> None:
    cursor = WatchCursor(watch_create_request("k"))
    handed: list[object] = []
    answered: list[bool] = []
    refused = rpc_pb2.WatchResponse(created=True, canceled=True, cancel_reason="no more")
    assert cursor.deliver(refused, handed.append, lambda: answered.append(True))
    assert answered == [True]
    assert len(handed) == 1 and isinstance(handed[0], EtcdError) and str(handed[0]) == "no more"


def test_lease_renewals() -> None:
    assert renew_interval(9) == 3 and renew_interval(1) == 0.5
    assert renewed(rpc_pb2.LeaseKeepAliveResponse(ID=1, TTL=5)).TTL == 5
    for gone in (None, rpc_pb2.LeaseKeepAliveResponse(ID=1, TTL=0)):
        with pytest.raises(LeaseNotFoundError):
            renewed(gone)
