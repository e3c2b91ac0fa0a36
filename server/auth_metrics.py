"""`ward_auth_decisions_total`: what the auth checks decided, by kind of check and verdict.

Counted where the checks decide (`server.access.Checker`, Authenticate), in every serving
process; workers push their counts to the core with their RPC counters (`ipc.DECISIONS`), and
the core's `/metrics` shows the member's sum, as for `grpc_server_handled_total`.

Labels stay few and fixed, never a user or key: `kind` is one of `KINDS`, `result` is
``allowed`` or ``denied``. A check is one decision: a txn is checked op by op, a write on every
member where it applies. A stale token ("revision of auth store is old", which clients answer by
authenticating again) is neither allowed nor denied. Nothing is counted while auth is off.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable

from server.metrics import Registry, Sample

# read / write: key permissions; admin: the root role (or a tenant's delegated admin);
# user: calls that need a known user (lease grants, member lists); authenticate: Authenticate;
# token: a request refused for its token (forged, expired, unknown; never counted as allowed,
# as a token is verified several times in some requests).
KINDS = ("read", "write", "admin", "user", "authenticate", "token")
ALLOWED = "allowed"
DENIED = "denied"


class AuthDecisions:
    """This process's counts of auth decisions, keyed by (kind, result)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def count(self, kind: str, result: str) -> None:
        k = (kind, result)
        self.counts[k] = self.counts.get(k, 0) + 1

    def total(self) -> int:
        """Changes whenever a count does (workers push only then)."""
        return sum(self.counts.values())

    def encode(self) -> bytes:
        return json.dumps([[k, r, n] for (k, r), n in self.counts.items()]).encode()

    @classmethod
    def decode(cls, data: bytes) -> AuthDecisions:
        out = cls()
        # A malformed push counts as nothing.
        with contextlib.suppress(ValueError, TypeError):
            out.counts = {(str(k), str(r)): int(n) for k, r, n in json.loads(data)}
        return out

    def register(
        self, reg: Registry, others: Callable[[], Iterable[AuthDecisions]] = lambda: ()
    ) -> None:
        """Register this process's counts summed with `others` (the workers' last pushes)."""

        def samples() -> Iterable[Sample]:
            merged = dict(self.counts)
            for o in others():
                for k, n in o.counts.items():
                    merged[k] = merged.get(k, 0) + n
            for (kind, result), n in sorted(merged.items()):
                yield (("kind", kind), ("result", result)), n

        reg.add(
            "ward_auth_decisions_total",
            "counter",
            "Auth checks decided, by kind of check and result (allowed or denied).",
            samples,
        )


# This process's decisions (one per serving process, as `server.metrics.RPC`).
DECISIONS = AuthDecisions()
