"""Ward's Policy service: apply a declarative policy as one replicated entry, or export one.

Served by the core process (workers forward its calls). Root only. `Apply` with `dry_run`
computes the plan against this member's tables and changes nothing; otherwise the policy is
proposed as one `policy_apply` entry, which every member plans and applies against its own
tables at the same log index (`server.tenant_apply`), so the answer lists what changed there.
"""

from __future__ import annotations

from auth.policy import PolicyError, export
from server.access import Access, request_header
from server.api.rpc import CallInfo, Unary
from server.state import ServerState
from server.tenant_apply import PolicyApplier, invalid_policy, load_state
from wardpb.peerpb import peer_pb2
from wardpb.policypb import policy_pb2

ENTRY_POLICY_APPLY = peer_pb2.Entry.DESCRIPTOR.fields_by_name["policy_apply"].number


class PolicyService:
    def __init__(self, state: ServerState, access: Access) -> None:
        self._s = state
        self._access = access
        # Plans only (dry runs, early refusals): the apply path applies.
        self._planner = PolicyApplier(access, state.kv, lambda rev: b"")

    def methods(self) -> dict[str, Unary]:
        return {"Apply": self.apply, "Export": self.export}

    async def apply(self, request: bytes, call: CallInfo) -> bytes:
        r = policy_pb2.PolicyApplyRequest.FromString(request)
        await self._s.storage_open()
        info = await self._access.identify(call)
        s = self._s
        with s.backend.read() as txn, self._access.checker(txn, info) as chk:
            chk.admin()
            # Planned here first: a policy that cannot apply is refused before it is proposed,
            # and a dry run stops here.
            changes = self._planner.plan(txn, r.document, prune=r.prune)
            revision = chk.revision
        if r.dry_run:
            return policy_pb2.PolicyApplyResponse(
                changes=[c.text for c in changes], auth_revision=revision, applied=False
            ).SerializeToString()
        entry = peer_pb2.PolicyApply(document=r.document, prune=r.prune)
        return await s.proposer.propose(
            ENTRY_POLICY_APPLY, entry.SerializeToString(), header=request_header(info, call)
        )

    async def export(self, request: bytes, call: CallInfo) -> bytes:
        policy_pb2.PolicyExportRequest.FromString(request)
        await self._s.storage_open()
        info = await self._access.identify(call)
        with self._s.backend.read() as txn, self._access.checker(txn, info) as chk:
            chk.admin()
            with self._access.db.bound(txn):
                state = load_state(self._access.db)
        try:
            document = export(state).to_json()
        except PolicyError as e:
            raise invalid_policy(e.problems) from None
        return policy_pb2.PolicyExportResponse(document=document).SerializeToString()
