from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PolicyApplyRequest(_message.Message):
    __slots__ = ("document", "prune", "dry_run")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    document: bytes
    prune: bool
    dry_run: bool
    def __init__(self, document: _Optional[bytes] = ..., prune: _Optional[bool] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class PolicyApplyResponse(_message.Message):
    __slots__ = ("changes", "auth_revision", "applied")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    AUTH_REVISION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedScalarFieldContainer[str]
    auth_revision: int
    applied: bool
    def __init__(self, changes: _Optional[_Iterable[str]] = ..., auth_revision: _Optional[int] = ..., applied: _Optional[bool] = ...) -> None: ...

class PolicyExportRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyExportResponse(_message.Message):
    __slots__ = ("document",)
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    document: bytes
    def __init__(self, document: _Optional[bytes] = ...) -> None: ...
