"""The generated stubs are current and speak etcd's v3 wire format (names, numbers, bytes)."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.message import Message

from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2
from wardpb.peerpb import peer_pb2
from wardpb.v3electionpb import v3election_pb2
from wardpb.v3lockpb import v3lock_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


def _generated_tree(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in (root / "wardpb").rglob("*")
        if p.is_file() and (p.name == "__init__.py" or p.name.endswith(GENERATED_SUFFIXES))
    }


# --- (a) committed stubs match a fresh generation -------------------------------------------


def test_committed_stubs_are_byte_identical_to_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "genproto.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=tmp_path,  # the generator must not depend on the caller's directory
    )
    fresh = _generated_tree(tmp_path)
    committed = _generated_tree(PROTO_ROOT)
    hint = "generated stubs are stale: run python tools/genproto.py"

    assert fresh, "genproto produced nothing"
    assert committed == fresh, f"{hint} (files differ: {sorted(map(str, committed ^ fresh))})"
    changed = [
        str(rel)
        for rel in sorted(fresh)
        if not filecmp.cmp(tmp_path / rel, PROTO_ROOT / rel, shallow=False)
    ]
    assert not changed, f"{hint} (content differs: {changed})"


def test_proto_dir_itself_is_not_a_python_package() -> None:
    # Another library owns the import name `proto`; only proto/wardpb is a package.
    assert not (PROTO_ROOT / "__init__.py").exists()
    for folder in [PROTO_ROOT / "wardpb", *(PROTO_ROOT / "wardpb").glob("*/")]:
        if folder.is_dir() and folder.name != "__pycache__":
            assert (folder / "__init__.py").is_file(), folder


def test_every_proto_file_has_generated_stubs() -> None:
    for source in (PROTO_ROOT / "wardpb").rglob("*.proto"):
        for suffix in GENERATED_SUFFIXES:
            assert source.with_name(source.stem + suffix).is_file(), (source, suffix)


# --- (b) wire names ---------------------------------------------------------------------------

# service full name -> {method: (request, response, client streaming, server streaming)}
SERVICES: dict[str, dict[str, tuple[str, str, bool, bool]]] = {
    "etcdserverpb.KV": {
        "Range": ("RangeRequest", "RangeResponse", False, False),
        "Put": ("PutRequest", "PutResponse", False, False),
        "DeleteRange": ("DeleteRangeRequest", "DeleteRangeResponse", False, False),
        "Txn": ("TxnRequest", "TxnResponse", False, False),
        "Compact": ("CompactionRequest", "CompactionResponse", False, False),
    },
    "etcdserverpb.Watch": {
        "Watch": ("WatchRequest", "WatchResponse", True, True),
    },
    "etcdserverpb.Lease": {
        "LeaseGrant": ("LeaseGrantRequest", "LeaseGrantResponse", False, False),
        "LeaseRevoke": ("LeaseRevokeRequest", "LeaseRevokeResponse", False, False),
        "LeaseKeepAlive": ("LeaseKeepAliveRequest", "LeaseKeepAliveResponse", True, True),
        "LeaseTimeToLive": ("LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse", False, False),
        "LeaseLeases": ("LeaseLeasesRequest", "LeaseLeasesResponse", False, False),
    },
    "etcdserverpb.Cluster": {
        "MemberAdd": ("MemberAddRequest", "MemberAddResponse", False, False),
        "MemberRemove": ("MemberRemoveRequest", "MemberRemoveResponse", False, False),
        "MemberUpdate": ("MemberUpdateRequest", "MemberUpdateResponse", False, False),
        "MemberList": ("MemberListRequest", "MemberListResponse", False, False),
        "MemberPromote": ("MemberPromoteRequest", "MemberPromoteResponse", False, False),
    },
    "etcdserverpb.Maintenance": {
        "Alarm": ("AlarmRequest", "AlarmResponse", False, False),
        "Status": ("StatusRequest", "StatusResponse", False, False),
        "Defragment": ("DefragmentRequest", "DefragmentResponse", False, False),
        "Hash": ("HashRequest", "HashResponse", False, False),
        "HashKV": ("HashKVRequest", "HashKVResponse", False, False),
        "Snapshot": ("SnapshotRequest", "SnapshotResponse", False, True),
        "MoveLeader": ("MoveLeaderRequest", "MoveLeaderResponse", False, False),
        "Downgrade": ("DowngradeRequest", "DowngradeResponse", False, False),
    },
    "etcdserverpb.Auth": {
        "AuthEnable": ("AuthEnableRequest", "AuthEnableResponse", False, False),
        "AuthDisable": ("AuthDisableRequest", "AuthDisableResponse", False, False),
        "AuthStatus": ("AuthStatusRequest", "AuthStatusResponse", False, False),
        "Authenticate": ("AuthenticateRequest", "AuthenticateResponse", False, False),
        "UserAdd": ("AuthUserAddRequest", "AuthUserAddResponse", False, False),
        "UserGet": ("AuthUserGetRequest", "AuthUserGetResponse", False, False),
        "UserList": ("AuthUserListRequest", "AuthUserListResponse", False, False),
        "UserDelete": ("AuthUserDeleteRequest", "AuthUserDeleteResponse", False, False),
        "UserChangePassword": (
            "AuthUserChangePasswordRequest",
            "AuthUserChangePasswordResponse",
            False,
            False,
        ),
        "UserGrantRole": ("AuthUserGrantRoleRequest", "AuthUserGrantRoleResponse", False, False),
        "UserRevokeRole": ("AuthUserRevokeRoleRequest", "AuthUserRevokeRoleResponse", False, False),
        "RoleAdd": ("AuthRoleAddRequest", "AuthRoleAddResponse", False, False),
        "RoleGet": ("AuthRoleGetRequest", "AuthRoleGetResponse", False, False),
        "RoleList": ("AuthRoleListRequest", "AuthRoleListResponse", False, False),
        "RoleDelete": ("AuthRoleDeleteRequest", "AuthRoleDeleteResponse", False, False),
        "RoleGrantPermission": (
            "AuthRoleGrantPermissionRequest",
            "AuthRoleGrantPermissionResponse",
            False,
            False,
        ),
        "RoleRevokePermission": (
            "AuthRoleRevokePermissionRequest",
            "AuthRoleRevokePermissionResponse",
            False,
            False,
        ),
    },
    "v3lockpb.Lock": {
        "Lock": ("LockRequest", "LockResponse", False, False),
        "Unlock": ("UnlockRequest", "UnlockResponse", False, False),
    },
    "v3electionpb.Election": {
        "Campaign": ("CampaignRequest", "CampaignResponse", False, False),
        "Proclaim": ("ProclaimRequest", "ProclaimResponse", False, False),
        "Leader": ("LeaderRequest", "LeaderResponse", False, False),
        "Observe": ("LeaderRequest", "LeaderResponse", False, True),
        "Resign": ("ResignRequest", "ResignResponse", False, False),
    },
}


def _all_services() -> dict[str, object]:
    found = {}
    for module in (rpc_pb2, v3lock_pb2, v3election_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            found[service.full_name] = service
    return found


def test_service_full_names_are_etcds() -> None:
    assert set(_all_services()) == set(SERVICES)


@pytest.mark.parametrize("service_name", sorted(SERVICES))
def test_service_methods_match_etcd(service_name: str) -> None:
    service = _all_services()[service_name]
    package = service_name.split(".")[0]
    actual = {
        m.name: (
            m.input_type.full_name,
            m.output_type.full_name,
            m.client_streaming,
            m.server_streaming,
        )
        for m in service.methods  # type: ignore[attr-defined]
    }
    # Every request and response type lives in its service's own package.
    expected = {
        name: (f"{package}.{req}", f"{package}.{resp}", cs, ss)
        for name, (req, resp, cs, ss) in SERVICES[service_name].items()
    }
    assert actual == expected


# (message full name, field name, field number)
FIELD_NUMBERS: list[tuple[str, str, int]] = [
    ("etcdserverpb.ResponseHeader", "cluster_id", 1),
    ("etcdserverpb.ResponseHeader", "member_id", 2),
    ("etcdserverpb.ResponseHeader", "revision", 3),
    ("etcdserverpb.ResponseHeader", "raft_term", 4),
    ("etcdserverpb.RangeRequest", "key", 1),
    ("etcdserverpb.RangeRequest", "range_end", 2),
    ("etcdserverpb.RangeRequest", "limit", 3),
    ("etcdserverpb.RangeRequest", "revision", 4),
    ("etcdserverpb.RangeRequest", "sort_order", 5),
    ("etcdserverpb.RangeRequest", "sort_target", 6),
    ("etcdserverpb.RangeRequest", "serializable", 7),
    ("etcdserverpb.RangeRequest", "keys_only", 8),
    ("etcdserverpb.RangeRequest", "count_only", 9),
    ("etcdserverpb.RangeRequest", "min_mod_revision", 10),
    ("etcdserverpb.RangeRequest", "max_mod_revision", 11),
    ("etcdserverpb.RangeRequest", "min_create_revision", 12),
    ("etcdserverpb.RangeRequest", "max_create_revision", 13),
    ("etcdserverpb.RangeResponse", "kvs", 2),
    ("etcdserverpb.RangeResponse", "more", 3),
    ("etcdserverpb.RangeResponse", "count", 4),
    ("etcdserverpb.PutRequest", "key", 1),
    ("etcdserverpb.PutRequest", "value", 2),
    ("etcdserverpb.PutRequest", "lease", 3),
    ("etcdserverpb.PutRequest", "prev_kv", 4),
    ("etcdserverpb.PutRequest", "ignore_value", 5),
    ("etcdserverpb.PutRequest", "ignore_lease", 6),
    ("etcdserverpb.DeleteRangeRequest", "prev_kv", 3),
    ("etcdserverpb.DeleteRangeResponse", "deleted", 2),
    ("etcdserverpb.DeleteRangeResponse", "prev_kvs", 3),
    ("etcdserverpb.RequestOp", "request_range", 1),
    ("etcdserverpb.RequestOp", "request_put", 2),
    ("etcdserverpb.RequestOp", "request_delete_range", 3),
    ("etcdserverpb.RequestOp", "request_txn", 4),
    ("etcdserverpb.ResponseOp", "response_txn", 4),
    ("etcdserverpb.TxnRequest", "compare", 1),
    ("etcdserverpb.TxnRequest", "success", 2),
    ("etcdserverpb.TxnRequest", "failure", 3),
    ("etcdserverpb.TxnResponse", "succeeded", 2),
    ("etcdserverpb.TxnResponse", "responses", 3),
    ("etcdserverpb.Compare", "result", 1),
    ("etcdserverpb.Compare", "target", 2),
    ("etcdserverpb.Compare", "key", 3),
    ("etcdserverpb.Compare", "version", 4),
    ("etcdserverpb.Compare", "create_revision", 5),
    ("etcdserverpb.Compare", "mod_revision", 6),
    ("etcdserverpb.Compare", "value", 7),
    ("etcdserverpb.Compare", "lease", 8),
    ("etcdserverpb.Compare", "range_end", 64),
    ("etcdserverpb.CompactionRequest", "revision", 1),
    ("etcdserverpb.CompactionRequest", "physical", 2),
    ("etcdserverpb.WatchRequest", "create_request", 1),
    ("etcdserverpb.WatchRequest", "cancel_request", 2),
    ("etcdserverpb.WatchRequest", "progress_request", 3),
    ("etcdserverpb.WatchCreateRequest", "key", 1),
    ("etcdserverpb.WatchCreateRequest", "range_end", 2),
    ("etcdserverpb.WatchCreateRequest", "start_revision", 3),
    ("etcdserverpb.WatchCreateRequest", "progress_notify", 4),
    ("etcdserverpb.WatchCreateRequest", "filters", 5),
    ("etcdserverpb.WatchCreateRequest", "prev_kv", 6),
    ("etcdserverpb.WatchCreateRequest", "watch_id", 7),
    ("etcdserverpb.WatchCreateRequest", "fragment", 8),
    ("etcdserverpb.WatchCancelRequest", "watch_id", 1),
    ("etcdserverpb.WatchResponse", "header", 1),
    ("etcdserverpb.WatchResponse", "watch_id", 2),
    ("etcdserverpb.WatchResponse", "created", 3),
    ("etcdserverpb.WatchResponse", "canceled", 4),
    ("etcdserverpb.WatchResponse", "compact_revision", 5),
    ("etcdserverpb.WatchResponse", "cancel_reason", 6),
    ("etcdserverpb.WatchResponse", "fragment", 7),
    ("etcdserverpb.WatchResponse", "events", 11),
    ("etcdserverpb.LeaseGrantRequest", "TTL", 1),
    ("etcdserverpb.LeaseGrantRequest", "ID", 2),
    ("etcdserverpb.LeaseGrantResponse", "error", 4),
    ("etcdserverpb.LeaseKeepAliveResponse", "header", 1),
    ("etcdserverpb.LeaseKeepAliveResponse", "ID", 2),
    ("etcdserverpb.LeaseKeepAliveResponse", "TTL", 3),
    ("etcdserverpb.LeaseTimeToLiveResponse", "grantedTTL", 4),
    ("etcdserverpb.LeaseTimeToLiveResponse", "keys", 5),
    ("etcdserverpb.Member", "isLearner", 5),
    ("etcdserverpb.MemberListRequest", "linearizable", 1),
    ("etcdserverpb.AlarmRequest", "memberID", 2),
    ("etcdserverpb.AlarmRequest", "alarm", 3),
    ("etcdserverpb.HashKVResponse", "compact_revision", 3),
    ("etcdserverpb.StatusResponse", "version", 2),
    ("etcdserverpb.StatusResponse", "dbSize", 3),
    ("etcdserverpb.StatusResponse", "leader", 4),
    ("etcdserverpb.StatusResponse", "raftIndex", 5),
    ("etcdserverpb.StatusResponse", "raftTerm", 6),
    ("etcdserverpb.StatusResponse", "raftAppliedIndex", 7),
    ("etcdserverpb.StatusResponse", "errors", 8),
    ("etcdserverpb.StatusResponse", "dbSizeInUse", 9),
    ("etcdserverpb.StatusResponse", "isLearner", 10),
    ("etcdserverpb.AuthUserAddRequest", "options", 3),
    ("etcdserverpb.AuthUserAddRequest", "hashedPassword", 4),
    ("etcdserverpb.AuthUserChangePasswordRequest", "hashedPassword", 3),
    ("etcdserverpb.AuthUserGrantRoleRequest", "user", 1),
    ("etcdserverpb.AuthRoleGrantPermissionRequest", "perm", 2),
    ("etcdserverpb.AuthStatusResponse", "authRevision", 3),
    ("mvccpb.KeyValue", "key", 1),
    ("mvccpb.KeyValue", "create_revision", 2),
    ("mvccpb.KeyValue", "mod_revision", 3),
    ("mvccpb.KeyValue", "version", 4),
    ("mvccpb.KeyValue", "value", 5),
    ("mvccpb.KeyValue", "lease", 6),
    ("mvccpb.Event", "type", 1),
    ("mvccpb.Event", "kv", 2),
    ("mvccpb.Event", "prev_kv", 3),
    ("authpb.Permission", "permType", 1),
    ("authpb.Permission", "key", 2),
    ("authpb.Permission", "range_end", 3),
    ("authpb.User", "options", 4),
    ("authpb.Role", "keyPermission", 2),
    ("v3lockpb.LockRequest", "lease", 2),
    ("v3lockpb.LockResponse", "key", 2),
    ("v3electionpb.LeaderKey", "rev", 3),
    ("v3electionpb.LeaderKey", "lease", 4),
    ("v3electionpb.CampaignRequest", "value", 3),
    ("wardpeerpb.Entry", "header", 1),
    ("wardpeerpb.Entry", "put", 3),
    ("wardpeerpb.Entry", "lease_expire", 10),
]

_MODULES = (rpc_pb2, kv_pb2, auth_pb2, v3lock_pb2, v3election_pb2, peer_pb2)


def _message_descriptor(full_name: str):  # type: ignore[no-untyped-def]
    package, _, name = full_name.partition(".")
    for module in _MODULES:
        if module.DESCRIPTOR.package == package and name in module.DESCRIPTOR.message_types_by_name:
            return module.DESCRIPTOR.message_types_by_name[name]
    raise KeyError(full_name)


@pytest.mark.parametrize(("message", "field", "number"), FIELD_NUMBERS)
def test_field_numbers_match_etcd(message: str, field: str, number: int) -> None:
    descriptor = _message_descriptor(message)
    assert descriptor.full_name == message
    assert descriptor.fields_by_name[field].number == number


def test_compare_targets_share_the_target_union_oneof() -> None:
    oneof = rpc_pb2.Compare.DESCRIPTOR.oneofs_by_name["target_union"]
    names = [f.name for f in oneof.fields]
    assert names == ["version", "create_revision", "mod_revision", "value", "lease"]


def test_enum_values_match_etcd() -> None:
    assert kv_pb2.Event.EventType.Value("PUT") == 0
    assert kv_pb2.Event.EventType.Value("DELETE") == 1
    assert [auth_pb2.Permission.Type.Value(n) for n in ("READ", "WRITE", "READWRITE")] == [0, 1, 2]
    compare_results = ("EQUAL", "GREATER", "LESS", "NOT_EQUAL")
    assert [rpc_pb2.Compare.CompareResult.Value(n) for n in compare_results] == [0, 1, 2, 3]
    compare_targets = ("VERSION", "CREATE", "MOD", "VALUE", "LEASE")
    assert [rpc_pb2.Compare.CompareTarget.Value(n) for n in compare_targets] == [0, 1, 2, 3, 4]
    sort_targets = ("KEY", "VERSION", "CREATE", "MOD", "VALUE")
    assert [rpc_pb2.RangeRequest.SortTarget.Value(n) for n in sort_targets] == [0, 1, 2, 3, 4]
    sort_orders = ("NONE", "ASCEND", "DESCEND")
    assert [rpc_pb2.RangeRequest.SortOrder.Value(n) for n in sort_orders] == [0, 1, 2]
    assert [rpc_pb2.AlarmType.Value(n) for n in ("NONE", "NOSPACE", "CORRUPT")] == [0, 1, 2]
    actions = ("GET", "ACTIVATE", "DEACTIVATE")
    assert [rpc_pb2.AlarmRequest.AlarmAction.Value(n) for n in actions] == [0, 1, 2]
    filters = ("NOPUT", "NODELETE")
    assert [rpc_pb2.WatchCreateRequest.FilterType.Value(n) for n in filters] == [0, 1]


# --- (c) bytes on the wire ----------------------------------------------------------------------

# (message built by our stubs, the bytes etcd's encoding of the same value has, written by hand)
WIRE_CASES: list[tuple[str, Message, bytes]] = [
    ("keyvalue", kv_pb2.KeyValue(key=b"a", create_revision=2), b"\n\x01a\x10\x02"),
    (
        "put_with_lease_and_prev_kv",
        rpc_pb2.PutRequest(key=b"k", value=b"v", lease=5, prev_kv=True),
        b"\n\x01k\x12\x01v\x18\x05\x20\x01",
    ),
    (
        "range_prefix_limit_serializable",
        rpc_pb2.RangeRequest(key=b"a", range_end=b"b", limit=10, serializable=True),
        b"\n\x01a\x12\x01b\x18\x0a\x38\x01",
    ),
    (
        # A compare of value "x" on key "k" with NOT_EQUAL/VALUE; range_end 64 needs a 2-byte tag.
        "compare_value_with_range_end",
        rpc_pb2.Compare(
            result=rpc_pb2.Compare.NOT_EQUAL,
            target=rpc_pb2.Compare.VALUE,
            key=b"k",
            value=b"x",
            range_end=b"l",
        ),
        b"\x08\x03\x10\x03\x1a\x01k\x3a\x01x\x82\x04\x01l",
    ),
    (
        # version=0 is still sent: a set oneof member is always encoded, even at its default.
        "compare_version_zero_is_encoded",
        rpc_pb2.Compare(key=b"k", version=0),
        b"\x1a\x01k\x20\x00",
    ),
    (
        "watch_create_with_filters_and_watch_id",
        rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=b"a",
                start_revision=3,
                filters=[rpc_pb2.WatchCreateRequest.NODELETE],
                watch_id=7,
            )
        ),
        # filters is a packed repeated enum (field 5, wire type 2).
        b"\n\x0a\n\x01a\x18\x03\x2a\x01\x01\x38\x07",
    ),
    (
        "delete_event",
        kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"a", mod_revision=9)),
        b"\x08\x01\x12\x05\n\x01a\x18\x09",
    ),
    (
        "negative_lease_ttl_is_ten_byte_varint",
        rpc_pb2.LeaseKeepAliveResponse(ID=1, TTL=-1),
        b"\x10\x01\x18" + b"\xff" * 9 + b"\x01",
    ),
    (
        "permission_readwrite",
        auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"a", range_end=b"b"),
        b"\x08\x02\x12\x01a\x1a\x01b",
    ),
    (
        "peer_entry_put",
        peer_pb2.Entry(
            header=peer_pb2.RequestHeader(id=1, username="u"),
            put=rpc_pb2.PutRequest(key=b"a"),
        ),
        b"\n\x05\x08\x01\x12\x01u\x1a\x03\n\x01a",
    ),
]


@pytest.mark.parametrize(("case", "message", "wire"), WIRE_CASES, ids=[c[0] for c in WIRE_CASES])
def test_encoding_matches_hand_written_bytes(case: str, message: Message, wire: bytes) -> None:
    assert message.SerializeToString(deterministic=True) == wire


@pytest.mark.parametrize(("case", "message", "wire"), WIRE_CASES, ids=[c[0] for c in WIRE_CASES])
def test_hand_written_bytes_decode_to_the_expected_message(
    case: str, message: Message, wire: bytes
) -> None:
    decoded = type(message).FromString(wire)
    assert decoded == message


def test_decoded_compare_reports_which_target_is_set() -> None:
    decoded = rpc_pb2.Compare.FromString(b"\x1a\x01k\x20\x00")
    assert decoded.WhichOneof("target_union") == "version"
    assert decoded.version == 0
