"""Writes refused where they apply, written to the audit log by the member that received them.

Writes are checked where they apply, on every member (`server.auth_apply`), where the client
that sent them is unknown: those checks count the refusal but write no audit line. The serving
process that received the request writes it, when its proposal comes back refused: it runs the
entry's check again (`ENTRY_CHECKS`), as the caller the entry names, in a read transaction of its
own, with the call at hand (`server.api.rpc.CURRENT_CALL`), so the line says who (user, CN,
client address), what (method, check), which key range, the result and the auth revision.
Nothing is added to writes that pass.

Should the rules have changed between the apply and this second look so that it passes, the
refusal is still written, without the key range.
"""

from __future__ import annotations

import logging

import grpc

from auth import errors as auth_errors
from server.access import Access, info_from_header
from server.auth_apply import ENTRY_CHECKS
from server.errors import EtcdError
from server.state import Proposer
from server.storage.backend import Backend
from server.wire import field_message
from wardpb.peerpb import peer_pb2

log = logging.getLogger("ward.audit")

# Refusals by the rules that are not Permission Denied: a call that needs a known user.
_USER_REFUSALS = frozenset(
    (auth_errors.UserEmpty.default_message, auth_errors.UserNotFound.default_message)
)


class AuditedProposer:
    """`inner`'s proposals, with refusals where they applied written to the audit log."""

    def __init__(self, inner: Proposer, access: Access, backend: Backend) -> None:
        self._inner = inner
        self._access = access
        self._backend = backend

    def __repr__(self) -> str:
        return f"AuditedProposer({self._inner!r})"

    async def propose(self, field: int, request: bytes, *, header: bytes = b"") -> bytes:
        try:
            return await self._inner.propose(field, request, header=header)
        except EtcdError as e:
            denied = e.code == grpc.StatusCode.PERMISSION_DENIED
            if self._access.audit is not None and (denied or e.message in _USER_REFUSALS):
                try:
                    self._record(field, request, header, e, denied=denied)
                except Exception:
                    # The audit line must never change the answer.
                    log.exception("could not record a refused write in the audit log")
            raise

    def _record(
        self, field: int, request: bytes, header: bytes, e: EtcdError, *, denied: bool
    ) -> None:
        entry = peer_pb2.Entry.FromString(field_message(field, request))
        kind = entry.WhichOneof("request")
        check = ENTRY_CHECKS.get(kind or "")
        info = info_from_header(peer_pb2.RequestHeader.FromString(header))
        if check is not None:
            try:
                # Counted already where it applied; this look writes the line only.
                with (
                    self._backend.read() as txn,
                    self._access.checker(txn, info, counted=False) as chk,
                ):
                    check(chk, getattr(entry, kind))  # type: ignore[arg-type]
            except EtcdError:
                return  # refused again: the check wrote the line
        if denied:
            self._access.record_denied(
                user=info.username if info is not None else "",
                action=kind or "",
                result=e.message,
            )
