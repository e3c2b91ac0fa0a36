"""What the servicers of one serving process share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from server.apply import Applier, HeaderInfo
from server.storage.backend import Backend
from server.storage.mvcc import KVStore

if TYPE_CHECKING:
    from server.access import Access

# Field numbers of `wardpeerpb.Entry`'s requests.
ENTRY_PUT = 3
ENTRY_DELETE_RANGE = 4
ENTRY_TXN = 5
ENTRY_COMPACTION = 6
ENTRY_LEASE_GRANT = 7
ENTRY_LEASE_REVOKE = 8
ENTRY_ALARM = 9
ENTRY_LEASE_EXPIRE = 10
ENTRY_AUTH_ENABLE = 11
ENTRY_AUTH_DISABLE = 12
ENTRY_AUTH_USER_ADD = 13
ENTRY_AUTH_USER_DELETE = 14
ENTRY_AUTH_USER_CHANGE_PASSWORD = 15
ENTRY_AUTH_USER_GRANT_ROLE = 16
ENTRY_AUTH_USER_REVOKE_ROLE = 17
ENTRY_AUTH_ROLE_ADD = 18
ENTRY_AUTH_ROLE_DELETE = 19
ENTRY_AUTH_ROLE_GRANT_PERMISSION = 20
ENTRY_AUTH_ROLE_REVOKE_PERMISSION = 21
ENTRY_AUTH_PUBLISH_KEY = 22
ENTRY_MEMBER_ATTR = 40
ENTRY_AUTO_COMPACTION = 60

# The etcd API version Ward answers to (clients gate features on it).
API_VERSION = "3.5.0"
WARD_VERSION = "0.1.0"


class Proposer(Protocol):
    """The write path as a serving process sees it: the core's driver, or a link to it."""

    async def propose(self, field: int, request: bytes, *, header: bytes = b"") -> bytes: ...


@dataclass(slots=True)
class ServerState:
    backend: Backend
    kv: KVStore
    reader: Applier
    header: HeaderInfo
    proposer: Proposer
    member_id: int
    cluster_id: int
    max_txn_ops: int = 128
    max_request_bytes: int = 1_572_864
    quota_bytes: int = 2 << 30
    # Cleared while the environment is closed (a worker during defragmentation).
    open_gate: asyncio.Event | None = None
    # What a linearizable read awaits before reading the local store (None: nothing to wait
    # for, e.g. a sole member that leads); see Driver.read_index.
    read_index: Callable[[], Awaitable[None] | None] = lambda: None
    # The auth checks of this process; every serving process has one (see `auth`).
    access: Access | None = None

    @property
    def auth(self) -> Access:
        """This process's auth checks; fails loudly rather than serve unchecked."""
        if self.access is None:
            raise RuntimeError("serving without auth checks: ServerState.access is not set")
        return self.access

    async def storage_open(self) -> None:
        gate = self.open_gate
        if gate is not None and not gate.is_set():
            await gate.wait()
