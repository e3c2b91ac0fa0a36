from wardpb.etcdserverpb import rpc_pb2 as _rpc_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestHeader(_message.Message):
    __slots__ = ("id", "username", "auth_revision", "client", "common_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    AUTH_REVISION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    COMMON_NAME_FIELD_NUMBER: _ClassVar[int]
    id: int
    username: str
    auth_revision: int
    client: str
    common_name: str
    def __init__(self, id: _Optional[int] = ..., username: _Optional[str] = ..., auth_revision: _Optional[int] = ..., client: _Optional[str] = ..., common_name: _Optional[str] = ...) -> None: ...

class LeaseExpire(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class MemberChange(_message.Message):
    __slots__ = ("request_id", "member")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    member: _rpc_pb2.Member
    def __init__(self, request_id: _Optional[int] = ..., member: _Optional[_Union[_rpc_pb2.Member, _Mapping]] = ...) -> None: ...

class AuthUserAdd(_message.Message):
    __slots__ = ("name", "password_hash", "no_password")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    NO_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    name: str
    password_hash: str
    no_password: bool
    def __init__(self, name: _Optional[str] = ..., password_hash: _Optional[str] = ..., no_password: _Optional[bool] = ...) -> None: ...

class AuthUserChangePassword(_message.Message):
    __slots__ = ("name", "password_hash")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    name: str
    password_hash: str
    def __init__(self, name: _Optional[str] = ..., password_hash: _Optional[str] = ...) -> None: ...

class AuthPublishKey(_message.Message):
    __slots__ = ("kid", "sign_method", "public_pem")
    KID_FIELD_NUMBER: _ClassVar[int]
    SIGN_METHOD_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_PEM_FIELD_NUMBER: _ClassVar[int]
    kid: str
    sign_method: str
    public_pem: bytes
    def __init__(self, kid: _Optional[str] = ..., sign_method: _Optional[str] = ..., public_pem: _Optional[bytes] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("name", "prefix", "quota_keys", "quota_bytes", "admins", "quota_leases", "quota_watchers", "quota_rps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    QUOTA_KEYS_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    ADMINS_FIELD_NUMBER: _ClassVar[int]
    QUOTA_LEASES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_WATCHERS_FIELD_NUMBER: _ClassVar[int]
    QUOTA_RPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    prefix: bytes
    quota_keys: int
    quota_bytes: int
    admins: _containers.RepeatedScalarFieldContainer[str]
    quota_leases: int
    quota_watchers: int
    quota_rps: int
    def __init__(self, name: _Optional[str] = ..., prefix: _Optional[bytes] = ..., quota_keys: _Optional[int] = ..., quota_bytes: _Optional[int] = ..., admins: _Optional[_Iterable[str]] = ..., quota_leases: _Optional[int] = ..., quota_watchers: _Optional[int] = ..., quota_rps: _Optional[int] = ...) -> None: ...

class PolicyApply(_message.Message):
    __slots__ = ("document", "prune")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    document: bytes
    prune: bool
    def __init__(self, document: _Optional[bytes] = ..., prune: _Optional[bool] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("header", "put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke", "alarm", "lease_expire", "auth_enable", "auth_disable", "auth_user_add", "auth_user_delete", "auth_user_change_password", "auth_user_grant_role", "auth_user_revoke_role", "auth_role_add", "auth_role_delete", "auth_role_grant_permission", "auth_role_revoke_permission", "auth_publish_key", "member_attr", "policy_apply", "auto_compaction")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_RANGE_FIELD_NUMBER: _ClassVar[int]
    TXN_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_FIELD_NUMBER: _ClassVar[int]
    LEASE_GRANT_FIELD_NUMBER: _ClassVar[int]
    LEASE_REVOKE_FIELD_NUMBER: _ClassVar[int]
    ALARM_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_FIELD_NUMBER: _ClassVar[int]
    AUTH_ENABLE_FIELD_NUMBER: _ClassVar[int]
    AUTH_DISABLE_FIELD_NUMBER: _ClassVar[int]
    AUTH_USER_ADD_FIELD_NUMBER: _ClassVar[int]
    AUTH_USER_DELETE_FIELD_NUMBER: _ClassVar[int]
    AUTH_USER_CHANGE_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    AUTH_USER_GRANT_ROLE_FIELD_NUMBER: _ClassVar[int]
    AUTH_USER_REVOKE_ROLE_FIELD_NUMBER: _ClassVar[int]
    AUTH_ROLE_ADD_FIELD_NUMBER: _ClassVar[int]
    AUTH_ROLE_DELETE_FIELD_NUMBER: _ClassVar[int]
    AUTH_ROLE_GRANT_PERMISSION_FIELD_NUMBER: _ClassVar[int]
    AUTH_ROLE_REVOKE_PERMISSION_FIELD_NUMBER: _ClassVar[int]
    AUTH_PUBLISH_KEY_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ATTR_FIELD_NUMBER: _ClassVar[int]
    POLICY_APPLY_FIELD_NUMBER: _ClassVar[int]
    AUTO_COMPACTION_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    put: _rpc_pb2.PutRequest
    delete_range: _rpc_pb2.DeleteRangeRequest
    txn: _rpc_pb2.TxnRequest
    compaction: _rpc_pb2.CompactionRequest
    lease_grant: _rpc_pb2.LeaseGrantRequest
    lease_revoke: _rpc_pb2.LeaseRevokeRequest
    alarm: _rpc_pb2.AlarmRequest
    lease_expire: LeaseExpire
    auth_enable: _rpc_pb2.AuthEnableRequest
    auth_disable: _rpc_pb2.AuthDisableRequest
    auth_user_add: AuthUserAdd
    auth_user_delete: _rpc_pb2.AuthUserDeleteRequest
    auth_user_change_password: AuthUserChangePassword
    auth_user_grant_role: _rpc_pb2.AuthUserGrantRoleRequest
    auth_user_revoke_role: _rpc_pb2.AuthUserRevokeRoleRequest
    auth_role_add: _rpc_pb2.AuthRoleAddRequest
    auth_role_delete: _rpc_pb2.AuthRoleDeleteRequest
    auth_role_grant_permission: _rpc_pb2.AuthRoleGrantPermissionRequest
    auth_role_revoke_permission: _rpc_pb2.AuthRoleRevokePermissionRequest
    auth_publish_key: AuthPublishKey
    member_attr: _rpc_pb2.Member
    policy_apply: PolicyApply
    auto_compaction: _rpc_pb2.CompactionRequest
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., put: _Optional[_Union[_rpc_pb2.PutRequest, _Mapping]] = ..., delete_range: _Optional[_Union[_rpc_pb2.DeleteRangeRequest, _Mapping]] = ..., txn: _Optional[_Union[_rpc_pb2.TxnRequest, _Mapping]] = ..., compaction: _Optional[_Union[_rpc_pb2.CompactionRequest, _Mapping]] = ..., lease_grant: _Optional[_Union[_rpc_pb2.LeaseGrantRequest, _Mapping]] = ..., lease_revoke: _Optional[_Union[_rpc_pb2.LeaseRevokeRequest, _Mapping]] = ..., alarm: _Optional[_Union[_rpc_pb2.AlarmRequest, _Mapping]] = ..., lease_expire: _Optional[_Union[LeaseExpire, _Mapping]] = ..., auth_enable: _Optional[_Union[_rpc_pb2.AuthEnableRequest, _Mapping]] = ..., auth_disable: _Optional[_Union[_rpc_pb2.AuthDisableRequest, _Mapping]] = ..., auth_user_add: _Optional[_Union[AuthUserAdd, _Mapping]] = ..., auth_user_delete: _Optional[_Union[_rpc_pb2.AuthUserDeleteRequest, _Mapping]] = ..., auth_user_change_password: _Optional[_Union[AuthUserChangePassword, _Mapping]] = ..., auth_user_grant_role: _Optional[_Union[_rpc_pb2.AuthUserGrantRoleRequest, _Mapping]] = ..., auth_user_revoke_role: _Optional[_Union[_rpc_pb2.AuthUserRevokeRoleRequest, _Mapping]] = ..., auth_role_add: _Optional[_Union[_rpc_pb2.AuthRoleAddRequest, _Mapping]] = ..., auth_role_delete: _Optional[_Union[_rpc_pb2.AuthRoleDeleteRequest, _Mapping]] = ..., auth_role_grant_permission: _Optional[_Union[_rpc_pb2.AuthRoleGrantPermissionRequest, _Mapping]] = ..., auth_role_revoke_permission: _Optional[_Union[_rpc_pb2.AuthRoleRevokePermissionRequest, _Mapping]] = ..., auth_publish_key: _Optional[_Union[AuthPublishKey, _Mapping]] = ..., member_attr: _Optional[_Union[_rpc_pb2.Member, _Mapping]] = ..., policy_apply: _Optional[_Union[PolicyApply, _Mapping]] = ..., auto_compaction: _Optional[_Union[_rpc_pb2.CompactionRequest, _Mapping]] = ...) -> None: ...
