"""Round-trip times between peers (etcd_network_peer_round_trip_time_seconds), probed by the
transport over real gRPC on loopback."""

from __future__ import annotations

import asyncio

import pytest

from server.peer import transport as transport_module
from server.peer.transport import PeerTransport


def _transport(member_id: int) -> PeerTransport:
    return PeerTransport(
        member_id=member_id,
        cluster_id=0xC1,
        on_message=lambda m: None,
        on_unreachable=lambda m: None,
        is_removed=lambda m: False,
        on_removed=lambda: None,
        calls={},
    )


def _count(t: PeerTransport, peer: int) -> int:
    samples = dict((labels[0][1], v) for labels, v in t.stats()[peer].rtt.samples() if labels)
    return int(samples["_count"])


def test_a_connected_peer_is_probed_and_its_round_trips_timed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "PROBE_INTERVAL_S", 0.05)

    async def scenario() -> None:
        a, b = _transport(1), _transport(2)
        (pa,) = await a.start(["127.0.0.1:0"])
        (pb,) = await b.start(["127.0.0.1:0"])
        a.set_peers({2: (f"http://127.0.0.1:{pb}",)})
        b.set_peers({1: (f"http://127.0.0.1:{pa}",)})
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not (2 in a.stats() and _count(a, 2) >= 3):
                assert loop.time() < deadline, "no round trips timed"
                await asyncio.sleep(0.05)
            samples = list(a.stats()[2].rtt.samples())
            total = next(v for labels, v in samples if labels == (("", "_sum"),))
            count = next(v for labels, v in samples if labels == (("", "_count"),))
            # Loopback: well under a second each, and more than nothing.
            assert 0 < total / count < 1.0
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_an_unreachable_peer_records_no_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "PROBE_INTERVAL_S", 0.05)

    async def scenario() -> None:
        a = _transport(1)
        await a.start(["127.0.0.1:0"])
        a.set_peers({2: ("http://127.0.0.1:1",)})  # nothing listens on port 1
        try:
            await asyncio.sleep(1.0)
            assert 2 not in a.stats() or _count(a, 2) == 0
        finally:
            await a.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
