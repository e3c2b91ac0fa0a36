"""The gateway's JSON parser: whatever the body, etcd's InvalidArgument or a request message."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.errors import EtcdError
from server.gateway.jsonapi import ROUTES, parse_messages, to_json
from wardpb.etcdserverpb import rpc_pb2

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
fields = st.sampled_from(
    [
        "key",
        "range_end",
        "limit",
        "revision",
        "sort_order",
        "compare",
        "success",
        "request_put",
        "keys_only",
        "ID",
        "TTL",
        "create_request",
        "value",
        "lease",
    ]
)


def _parse_or_refuse(body: bytes, path: str) -> None:
    route = ROUTES[path]
    try:
        for m in parse_messages(body, route.request, many=route.client_streaming):
            m.SerializeToString()
    except EtcdError as e:
        assert e.code == grpc.StatusCode.INVALID_ARGUMENT


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(sorted(ROUTES)))
def test_any_bytes_parse_or_get_invalid_argument(body: bytes, path: str) -> None:
    _parse_or_refuse(body, path)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(fields, json_values, max_size=5), st.sampled_from(sorted(ROUTES)))
def test_wrong_field_types_parse_or_get_invalid_argument(body: dict, path: str) -> None:
    import json

    _parse_or_refuse(json.dumps(body).encode(), path)


@pytest.mark.parametrize("text", ["!!", "Zm9", "Zm9v!", "Zm 9v"])
def test_bytes_need_strict_base64_as_in_go(text: str) -> None:
    with pytest.raises(EtcdError, match="illegal base64 data"):
        parse_messages(f'{{"key":"{text}"}}'.encode(), rpc_pb2.RangeRequest, many=False)


def test_answers_use_original_names_and_int64_strings() -> None:
    resp = rpc_pb2.RangeResponse(count=3)
    resp.header.revision = 7
    assert to_json(resp) == b'{"header":{"revision":"7"},"count":"3"}'
