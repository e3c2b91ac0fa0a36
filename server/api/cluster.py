"""The Cluster service (membership changes come with Raft replication across members)."""

from __future__ import annotations

from server.api.rpc import CallInfo
from server.state import MemberInfo, ServerState
from server.wire import field_bool, field_bytes, field_message, field_varint


def encode_member(m: MemberInfo) -> bytes:
    return b"".join(
        (
            field_varint(1, m.id),
            field_bytes(2, m.name.encode()),
            b"".join(field_bytes(3, u.encode()) for u in m.peer_urls),
            b"".join(field_bytes(4, u.encode()) for u in m.client_urls),
            field_bool(5, m.is_learner),
        )
    )


class ClusterService:
    def __init__(self, state: ServerState) -> None:
        self._s = state

    def methods(self) -> dict[str, object]:
        return {"MemberList": self.member_list}

    async def member_list(self, request: bytes, call: CallInfo) -> bytes:
        s = self._s
        with s.backend.read() as txn:
            rev = s.kv.current_revision(txn)
        members = b"".join(field_message(2, encode_member(m)) for m in s.members)
        return field_message(1, s.header.header(rev)) + members
