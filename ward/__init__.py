"""Ward's client library: clients for Ward and etcd (blocking and asyncio), and the `wardctl` CLI.

    from ward import Client, txn
    from ward.aio import Client as AsyncClient  # or ward.AsyncClient

The public API is re-exported here: `Client`, `AsyncClient` (`ward.aio.Client`), the txn
builder module `txn`, the sort enums, and the error types (all `EtcdError` subclasses, also
importable from `ward.errors`). Names load on first use, so `import ward` stays cheap and does
not load gRPC until it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> module that defines it ("module:name" when it is called differently there).
_EXPORTS = {
    "AlarmType": "ward.client",
    "AsyncClient": "ward.aio:Client",
    "Client": "ward.client",
    "AuthFailedError": "ward.errors",
    "ClientConfigError": "ward.errors",
    "CompactedError": "ward.errors",
    "DeadlineExceededError": "ward.errors",
    "EmptyKeyError": "ward.errors",
    "EtcdError": "ward.errors",
    "FutureRevisionError": "ward.errors",
    "KeyNotFoundError": "ward.errors",
    "LeaseNotFoundError": "ward.errors",
    "NoLeaderError": "ward.errors",
    "NoSpaceError": "ward.errors",
    "PermissionDeniedError": "ward.errors",
    "error_from_rpc": "ward.errors",
    "SortOrder": "ward.requests",
    "SortTarget": "ward.requests",
}

__all__ = [
    "AlarmType",
    "AsyncClient",
    "AuthFailedError",
    "Client",
    "ClientConfigError",
    "CompactedError",
    "DeadlineExceededError",
    "EmptyKeyError",
    "EtcdError",
    "FutureRevisionError",
    "KeyNotFoundError",
    "LeaseNotFoundError",
    "NoLeaderError",
    "NoSpaceError",
    "PermissionDeniedError",
    "SortOrder",
    "SortTarget",
    "__version__",
    "error_from_rpc",
    "txn",
]


def __getattr__(name: str) -> object:
    if name == "txn":
        return importlib.import_module("ward.txn")
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'ward' has no attribute {name!r}")
    module, _, attr = where.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from ward import txn
    from ward.aio import Client as AsyncClient
    from ward.client import AlarmType, Client
    from ward.errors import (
        AuthFailedError,
        ClientConfigError,
        CompactedError,
        DeadlineExceededError,
        EmptyKeyError,
        EtcdError,
        FutureRevisionError,
        KeyNotFoundError,
        LeaseNotFoundError,
        NoLeaderError,
        NoSpaceError,
        PermissionDeniedError,
        error_from_rpc,
    )
    from ward.requests import SortOrder, SortTarget
