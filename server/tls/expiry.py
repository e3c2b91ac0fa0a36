"""The certificates this process serves, and when they expire, for /metrics.

Each listener's certificate reloader (``server.tls.credentials``) records what it loaded, at
start and on every reload, so ``ward_tls_certificate_expiry_timestamp_seconds`` shows the
certificate in use, not whatever the file holds now. Plain module state: one process serves one
member, and a reloader runs on gRPC's handshake threads (a dict assignment is atomic).
"""

from __future__ import annotations

import datetime as dt

# listener label ("client", "peer") -> (the leaf's CN, its notAfter as a Unix timestamp)
_served: dict[str, tuple[str, float]] = {}


def record(listener: str, common_name: str, not_after: dt.datetime) -> None:
    """``listener`` now serves a certificate for ``common_name`` valid until ``not_after``."""
    _served[listener] = (common_name, not_after.timestamp())


def served() -> list[tuple[str, str, float]]:
    """(listener, CN, expiry timestamp) of every listener's certificate, by listener."""
    return [(label, cn, ts) for label, (cn, ts) in sorted(_served.items())]
