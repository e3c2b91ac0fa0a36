from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_NORMAL: _ClassVar[EntryType]
    ENTRY_CONF_CHANGE: _ClassVar[EntryType]

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MSG_HUP: _ClassVar[MessageType]
    MSG_BEAT: _ClassVar[MessageType]
    MSG_PROP: _ClassVar[MessageType]
    MSG_APP: _ClassVar[MessageType]
    MSG_APP_RESP: _ClassVar[MessageType]
    MSG_VOTE: _ClassVar[MessageType]
    MSG_VOTE_RESP: _ClassVar[MessageType]
    MSG_SNAP: _ClassVar[MessageType]
    MSG_HEARTBEAT: _ClassVar[MessageType]
    MSG_HEARTBEAT_RESP: _ClassVar[MessageType]
    MSG_UNREACHABLE: _ClassVar[MessageType]
    MSG_SNAP_STATUS: _ClassVar[MessageType]
    MSG_CHECK_QUORUM: _ClassVar[MessageType]
    MSG_TRANSFER_LEADER: _ClassVar[MessageType]
    MSG_TIMEOUT_NOW: _ClassVar[MessageType]
    MSG_READ_INDEX: _ClassVar[MessageType]
    MSG_READ_INDEX_RESP: _ClassVar[MessageType]
    MSG_PRE_VOTE: _ClassVar[MessageType]
    MSG_PRE_VOTE_RESP: _ClassVar[MessageType]
    MSG_SNAP_RESP: _ClassVar[MessageType]
ENTRY_NORMAL: EntryType
ENTRY_CONF_CHANGE: EntryType
MSG_HUP: MessageType
MSG_BEAT: MessageType
MSG_PROP: MessageType
MSG_APP: MessageType
MSG_APP_RESP: MessageType
MSG_VOTE: MessageType
MSG_VOTE_RESP: MessageType
MSG_SNAP: MessageType
MSG_HEARTBEAT: MessageType
MSG_HEARTBEAT_RESP: MessageType
MSG_UNREACHABLE: MessageType
MSG_SNAP_STATUS: MessageType
MSG_CHECK_QUORUM: MessageType
MSG_TRANSFER_LEADER: MessageType
MSG_TIMEOUT_NOW: MessageType
MSG_READ_INDEX: MessageType
MSG_READ_INDEX_RESP: MessageType
MSG_PRE_VOTE: MessageType
MSG_PRE_VOTE_RESP: MessageType
MSG_SNAP_RESP: MessageType

class RaftEntry(_message.Message):
    __slots__ = ("term", "index", "type", "data")
    TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    term: int
    index: int
    type: EntryType
    data: bytes
    def __init__(self, term: _Optional[int] = ..., index: _Optional[int] = ..., type: _Optional[_Union[EntryType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ConfState(_message.Message):
    __slots__ = ("voters", "learners")
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ...) -> None: ...

class SnapshotMetadata(_message.Message):
    __slots__ = ("conf_state", "index", "term")
    CONF_STATE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    conf_state: ConfState
    index: int
    term: int
    def __init__(self, conf_state: _Optional[_Union[ConfState, _Mapping]] = ..., index: _Optional[int] = ..., term: _Optional[int] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("data", "metadata")
    DATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    metadata: SnapshotMetadata
    def __init__(self, data: _Optional[bytes] = ..., metadata: _Optional[_Union[SnapshotMetadata, _Mapping]] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("metadata", "offset", "data", "done", "checksum", "transfer")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    metadata: SnapshotMetadata
    offset: int
    data: bytes
    done: bool
    checksum: int
    transfer: int
    def __init__(self, metadata: _Optional[_Union[SnapshotMetadata, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., done: _Optional[bool] = ..., checksum: _Optional[int] = ..., transfer: _Optional[int] = ...) -> None: ...

class RaftMessage(_message.Message):
    __slots__ = ("type", "to", "term", "log_term", "index", "entries", "commit", "snapshot", "reject", "reject_hint", "context", "chunk")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    REJECT_HINT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    type: MessageType
    to: int
    term: int
    log_term: int
    index: int
    entries: _containers.RepeatedCompositeFieldContainer[RaftEntry]
    commit: int
    snapshot: Snapshot
    reject: bool
    reject_hint: int
    context: bytes
    chunk: SnapshotChunk
    def __init__(self, type: _Optional[_Union[MessageType, str]] = ..., to: _Optional[int] = ..., term: _Optional[int] = ..., log_term: _Optional[int] = ..., index: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[RaftEntry, _Mapping]]] = ..., commit: _Optional[int] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., reject: _Optional[bool] = ..., reject_hint: _Optional[int] = ..., context: _Optional[bytes] = ..., chunk: _Optional[_Union[SnapshotChunk, _Mapping]] = ..., **kwargs) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ("cluster_id", "to", "messages")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    to: int
    messages: _containers.RepeatedCompositeFieldContainer[RaftMessage]
    def __init__(self, cluster_id: _Optional[int] = ..., to: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[RaftMessage, _Mapping]]] = ..., **kwargs) -> None: ...

class RaftAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerCall(_message.Message):
    __slots__ = ("cluster_id", "method", "request")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    method: str
    request: bytes
    def __init__(self, cluster_id: _Optional[int] = ..., method: _Optional[str] = ..., request: _Optional[bytes] = ..., **kwargs) -> None: ...

class PeerCallResponse(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: bytes
    def __init__(self, response: _Optional[bytes] = ...) -> None: ...
