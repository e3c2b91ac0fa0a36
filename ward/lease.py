"""Keeping a lease alive from a background thread, as etcd's Go client's KeepAlive does.

    lease = client.lease_grant(10)
    with client.keep_alive(lease.ID):
        ...  # the lease (and every key attached to it) lives until the block ends

The thread renews the lease a third of its TTL after each renewal over one LeaseKeepAlive
stream, and opens a new stream (on a live endpoint) when one breaks. It stops when the lease is
gone (the server answers TTL <= 0) or the object is closed; iterating the object yields each
renewal's answer, for callers that report them (`wardctl lease keep-alive`). The asyncio
client's `ward.aio.KeepAlive` follows the same rules (`renew_interval`, `renewed`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ward.errors import LeaseNotFoundError
from ward.retry import KEEPALIVE_TRANSIENT, StreamPolicy
from ward.stream import ThreadStream
from wardpb.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from ward.channels import Stubs
    from ward.client import Client

__all__ = ["KEEPALIVE", "KeepAlive", "LeaseKeeping", "renew_interval", "renewed"]

# How a keep-alive's stream is kept open (by either client): reopened half a second after it
# broke, unless the server's answer was an error.
KEEPALIVE = StreamPolicy(
    kind=rpc_pb2.LeaseKeepAliveResponse,
    retry_min_s=0.5,
    retry_max_s=0.5,
    transient=KEEPALIVE_TRANSIENT,
    name="ward-keepalive",
)


def renew_interval(ttl: int) -> float:
    """Seconds from one renewal to the next: a third of the TTL, as clientv3 waits, so two
    more tries fit before the lease runs out."""
    return max(ttl / 3.0, 0.5)


def renewed(resp: rpc_pb2.LeaseKeepAliveResponse | None) -> rpc_pb2.LeaseKeepAliveResponse:
    """A renewal's answer; raises `LeaseNotFoundError` when there is none or the lease is gone
    (TTL <= 0)."""
    if resp is None or resp.TTL <= 0:
        raise LeaseNotFoundError(LeaseNotFoundError.MESSAGE)
    return resp


class LeaseKeeping:
    """What both clients' `KeepAlive` know besides their stream (a mixin): the lease's ID, the
    TTL the last renewal granted, and what each answer means."""

    lease_id: int
    ttl: int

    def _keep(self, lease_id: int) -> None:
        self.lease_id = lease_id
        self.ttl = 0

    def _renewal(self) -> rpc_pb2.LeaseKeepAliveRequest:
        return rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id)

    def _deliver(self, resp: rpc_pb2.LeaseKeepAliveResponse, put: Callable[[object], None]) -> bool:
        """Hand a renewal's answer to the reader through `put`; True when the lease is gone
        (what is handed on is then its `LeaseNotFoundError`)."""
        try:
            self.ttl = renewed(resp).TTL
        except LeaseNotFoundError as gone:
            put(gone)
            return True
        put(resp)
        return False


class KeepAlive(LeaseKeeping, ThreadStream[rpc_pb2.LeaseKeepAliveResponse]):
    """Renews one lease until closed or until it expires; iterate for the renewals."""

    def __init__(self, client: Client, lease_id: int) -> None:
        self._keep(lease_id)
        super().__init__(client, KEEPALIVE)

    def _requests(self, renewals: threading.Event) -> Iterator[rpc_pb2.LeaseKeepAliveRequest]:
        request = self._renewal()
        while not self._closed.is_set():
            renewals.clear()
            yield request
            renewals.wait()
            if self._closed.wait(renew_interval(self.ttl)):
                return

    def _stream(self, conn: Stubs) -> bool:
        """Renew over one stream until it ends; True when renewing is over."""
        renewals = threading.Event()
        call = self._open(conn.lease.LeaseKeepAlive, self._requests(renewals))
        if call is None:
            return True
        try:
            for resp in call:
                if self._deliver(resp, self._put):
                    return True
                renewals.set()
        finally:
            renewals.set()
        return self._closed.is_set()
