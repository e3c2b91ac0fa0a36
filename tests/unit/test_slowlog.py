"""Slow-request log lines (server.slowlog): etcd's shape, durations as Go spells them, and
summaries that never carry a password, a token or a value."""

from __future__ import annotations

import json
import logging

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.config import parse_config
from server.config.values import parse_go_duration
from server.logs import JSONFormatter
from server.slowlog import REDACTED, SlowLog, go_duration, summarize
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2
from wardpb.policypb import policy_pb2
from wardpb.v3electionpb import v3election_pb2
from wardpb.v3lockpb import v3lock_pb2

SECRET = "hunter2-Secret-Pw"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1e-9, "1ns"),
        (999e-9, "999ns"),
        (132.622e-6, "132.622µs"),
        (1e-6, "1µs"),
        (0.1, "100ms"),
        (0.060011725, "60.011725ms"),
        (1.5, "1.5s"),
        (62, "1m2s"),
        (3600, "1h0m0s"),
        (3723.25, "1h2m3.25s"),
    ],
)
def test_durations_are_spelled_as_go_spells_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
    assert parse_go_duration(text) == pytest.approx(seconds, abs=1e-12)


def test_a_put_shows_its_key_and_the_size_of_its_value() -> None:
    r = rpc_pb2.PutRequest(key=b"foo", value=b"secret-value", lease=5, prev_kv=True)
    assert summarize(r) == 'key:"foo" value_size:12 lease:5 prev_kv:true'


def test_a_txn_shows_no_value_of_its_compares_or_puts() -> None:
    r = rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(
                key=b"k", target=rpc_pb2.Compare.VALUE, value=b"cmp-secret", range_end=b"l"
            )
        ],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k", value=b"v-secret"))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"\xff\x00"))],
    )
    text = summarize(r)
    assert "secret" not in text
    assert 'compare:<target:VALUE key:"k" value_size:10 range_end:"l">' in text
    assert 'success:<request_put:<key:"k" value_size:8>>' in text
    assert 'failure:<request_range:<key:"\\377\\000">>' in text


def _fill_strings(msg: Message, depth: int = 0) -> None:
    """Set every string field of `msg` (and of its message fields): SECRET where its name says
    it holds a secret, a plain word elsewhere."""
    secret = set(_secret_string_fields(msg))
    for fd in msg.DESCRIPTOR.fields:
        value = SECRET if fd.name in secret else "plain"
        if fd.is_repeated:
            if fd.type == FieldDescriptor.TYPE_STRING:
                getattr(msg, fd.name).append(value)
            elif fd.type == FieldDescriptor.TYPE_MESSAGE and depth < 3:
                _fill_strings(getattr(msg, fd.name).add(), depth + 1)
        elif fd.type == FieldDescriptor.TYPE_STRING:
            setattr(msg, fd.name, value)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE and depth < 3 and fd.containing_oneof is None:
            _fill_strings(getattr(msg, fd.name), depth + 1)


def _secret_string_fields(msg: Message) -> list[str]:
    words = ("password", "token", "secret")
    return [
        fd.name
        for fd in msg.DESCRIPTOR.fields
        if fd.type == FieldDescriptor.TYPE_STRING and any(w in fd.name.lower() for w in words)
    ]


_REQUEST_TYPES = [
    cls
    for module in (rpc_pb2, auth_pb2, policy_pb2, v3lock_pb2, v3election_pb2)
    for name, cls in vars(module).items()
    if isinstance(cls, type) and issubclass(cls, Message) and name.endswith("Request")
]


@pytest.mark.parametrize("cls", _REQUEST_TYPES, ids=lambda c: c.__name__)
def test_no_request_summary_shows_a_password_or_token(cls: type[Message]) -> None:
    msg = cls()
    _fill_strings(msg)
    secret_fields = _secret_string_fields(msg)
    text = summarize(msg)
    if secret_fields:
        assert SECRET not in text, text
        for name in secret_fields:
            assert f"{name}:{REDACTED}" in text


def test_the_auth_requests_with_a_password_show_only_the_user_name() -> None:
    for r in (
        rpc_pb2.AuthenticateRequest(name="alice", password=SECRET),
        rpc_pb2.AuthUserAddRequest(name="alice", password=SECRET, hashedPassword=SECRET),
        rpc_pb2.AuthUserChangePasswordRequest(name="alice", password=SECRET, hashedPassword=SECRET),
    ):
        text = summarize(r)
        assert 'name:"alice"' in text
        assert SECRET not in text
        assert f"password:{REDACTED}" in text


def test_entries_show_their_header_and_no_password_hash_key_or_policy() -> None:
    for entry in (
        peer_pb2.Entry(auth_user_add=peer_pb2.AuthUserAdd(name="bob", password_hash=SECRET)),
        peer_pb2.Entry(
            auth_user_change_password=peer_pb2.AuthUserChangePassword(
                name="bob", password_hash=SECRET
            )
        ),
        peer_pb2.Entry(auth_publish_key=peer_pb2.AuthPublishKey(kid="k1", public_pem=b"PEM")),
        peer_pb2.Entry(policy_apply=peer_pb2.PolicyApply(document=SECRET.encode())),
    ):
        entry.header.id = 7
        entry.header.username = "root"
        text = summarize(entry)
        assert text.startswith('header:<id:7 username:"root">')
        assert SECRET not in text and "PEM" not in text, text


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    fmt = JSONFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if r.name == "ward.slow"]


def test_a_slow_range_is_logged_as_etcd_logs_a_read_only_range(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = SlowLog(0.1)
    resp = rpc_pb2.RangeResponse(kvs=[{"key": b"k", "value": b"v"}], count=1)
    raw = resp.SerializeToString()
    with caplog.at_level(logging.WARNING, logger="ward.slow"):
        slow.served(
            "etcdserverpb.KV",
            "Range",
            rpc_pb2.RangeRequest(key=b"k").SerializeToString(),
            raw,
            "",
            0.25,
            "ipv4:127.0.0.1:5555",
        )
    (line,) = _lines(caplog)
    assert line["msg"] == "apply request took too long"
    assert line["level"] == "warn"
    assert line["took"] == "250ms" and line["expected-duration"] == "100ms"
    assert line["prefix"] == "read-only range "
    assert line["request"] == 'key:"k"'
    assert line["response"] == f"range_response_count:1 size:{len(raw)}"
    assert line["method"] == "/etcdserverpb.KV/Range"
    assert line["remote"] == "ipv4:127.0.0.1:5555"
    assert "error" not in line


def test_a_read_only_txn_and_a_write_txn_are_told_apart(caplog: pytest.LogCaptureFixture) -> None:
    slow = SlowLog(0.1)
    ro = rpc_pb2.TxnRequest(success=[{"request_range": {"key": b"a"}}])
    rw = rpc_pb2.TxnRequest(success=[{"request_put": {"key": b"a", "value": b"x"}}])
    resp = rpc_pb2.TxnResponse(
        succeeded=True, responses=[{"response_range": {"kvs": [{"key": b"a"}]}}]
    ).SerializeToString()
    with caplog.at_level(logging.WARNING, logger="ward.slow"):
        slow.served("etcdserverpb.KV", "Txn", ro.SerializeToString(), resp, "", 0.2, "")
        slow.served("etcdserverpb.KV", "Txn", rw.SerializeToString(), None, "boom", 0.2, "")
    first, second = _lines(caplog)
    assert first["prefix"] == "read-only txn "
    assert first["response"] == f"responses:<range_response_count:1> size:{len(resp)}"
    assert second["msg"] == "request took too long"
    assert second["prefix"] == "" and second["error"] == "boom"
    assert second["request"] == 'success:<request_put:<key:"a" value_size:1>>'


def test_a_slow_authenticate_line_names_the_user_and_never_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = SlowLog(0.0)
    req = rpc_pb2.AuthenticateRequest(name="alice", password=SECRET).SerializeToString()
    with caplog.at_level(logging.WARNING, logger="ward.slow"):
        slow.served("etcdserverpb.Auth", "Authenticate", req, b"\x12\x05token", "", 0.3, "")
    (line,) = _lines(caplog)
    assert line["method"] == "/etcdserverpb.Auth/Authenticate"
    assert line["request"] == f'name:"alice" password:{REDACTED}'
    assert SECRET not in json.dumps(line)


def test_calls_that_wait_by_design_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    slow = SlowLog(0.0)
    with caplog.at_level(logging.WARNING, logger="ward.slow"):
        slow.served("v3lockpb.Lock", "Lock", b"", b"", "", 5.0, "")
        slow.served("v3electionpb.Election", "Campaign", b"", b"", "", 5.0, "")
        slow.served("v3lockpb.Lock", "Unlock", b"", b"", "", 5.0, "")
    assert [line["method"] for line in _lines(caplog)] == ["/v3lockpb.Lock/Unlock"]


def test_an_applied_entry_is_logged_with_its_kind(caplog: pytest.LogCaptureFixture) -> None:
    slow = SlowLog(0.1)
    entry = peer_pb2.Entry(put=rpc_pb2.PutRequest(key=b"k", value=b"vvv"))
    entry.header.id = 42
    with caplog.at_level(logging.WARNING, logger="ward.slow"):
        slow.applied(entry.SerializeToString(), b"\x0a\x00", "", 0.15)
    (line,) = _lines(caplog)
    assert line["msg"] == "apply request took too long"
    assert line["method"] == "put" and line["prefix"] == ""
    assert line["request"] == 'header:<id:42> put:<key:"k" value_size:3>'
    assert line["response"] == "size:2"


def test_the_threshold_is_etcds_flag() -> None:
    cfg, warnings = parse_config(["--experimental-warning-apply-duration=1ms"], {})
    assert cfg.experimental_warning_apply_duration == pytest.approx(0.001)
    assert not [w for w in warnings if "warning-apply-duration" in w]
    default, _ = parse_config([], {})
    assert default.experimental_warning_apply_duration == pytest.approx(0.1)
