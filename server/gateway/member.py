"""Wires a running member's state into the HTTP endpoints and its metrics registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server import metrics
from server.auth_metrics import DECISIONS, AuthDecisions
from server.gateway.jsonapi import JSONGateway
from server.gateway.service import Endpoints, HealthSource, HTTPListeners, start_http
from server.metrics import Registry, Sample
from server.state import API_VERSION, WARD_VERSION
from server.tls import expiry

if TYPE_CHECKING:
    from collections.abc import Iterable

    from server.server import Member

# A request body may carry the largest request plus JSON's base64 growth (4/3) and framing.
BODY_OVERHEAD = 512 * 1024


def member_registry(member: Member, leaders: metrics.LeaderWatch) -> Registry:
    """etcd's metric names, read from the member's state when scraped."""
    reg = Registry()
    d, b = member.driver, member.backend
    assert d is not None and b is not None
    mid = f"{d.member_id:x}"
    reg.gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        lambda: 1 if d.leader else 0,
    )
    reg.gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        lambda: 1 if d.is_leader else 0,
    )
    reg.counter(
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
        lambda: leaders.changes,
    )
    reg.gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        lambda: d.status().hard_state.commit,
    )
    reg.gauge(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        lambda: d.applied_index,
    )
    reg.gauge(
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        lambda: len(d._waiters),
    )  # requests proposed and not yet answered
    reg.add(
        "etcd_server_id",
        "gauge",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        lambda: [((("server_id", mid),), 1.0)],
    )
    reg.add(
        "etcd_server_version",
        "gauge",
        "Which version is running. 1 for 'server_version' label with current version.",
        lambda: [((("server_version", WARD_VERSION),), 1.0)],
    )
    reg.add(
        "etcd_cluster_version",
        "gauge",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        lambda: [((("cluster_version", API_VERSION),), 1.0)],
    )
    reg.gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        b.size,
    )
    reg.gauge(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        b.size_in_use,
    )
    reg.gauge(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes.",
        lambda: member.options.quota_bytes,
    )

    def keys() -> float:
        with b.read() as txn:
            return float(txn.stat(b.cur)["entries"])

    reg.gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", keys)
    reg.gauge(
        "etcd_debugging_mvcc_current_revision", "The current revision of store.", lambda: d.revision
    )

    def peer(attr: str, label: str) -> Iterable[Sample]:
        t = member.transport
        for peer_id, st in sorted((t.stats() if t is not None else {}).items()):
            yield ((label, f"{peer_id:x}"),), float(getattr(st, attr))

    reg.add(
        "etcd_network_peer_sent_bytes_total",
        "counter",
        "The total number of bytes sent to peers.",
        lambda: peer("sent_bytes", "To"),
    )
    reg.add(
        "etcd_network_peer_received_bytes_total",
        "counter",
        "The total number of bytes received from peers.",
        lambda: peer("received_bytes", "From"),
    )
    reg.add(
        "etcd_network_peer_sent_failures_total",
        "counter",
        "The total number of send failures from peers.",
        lambda: peer("send_failures", "To"),
    )
    reg.add(
        "etcd_network_peer_dropped_messages_total",
        "counter",
        "Ward: Raft messages dropped on a full queue or a broken stream.",
        lambda: peer("dropped_messages", "To"),
    )

    def rtt() -> Iterable[Sample]:
        # Each peer's histogram series, labelled with the peer ("To" as etcd) before "le".
        t = member.transport
        for peer_id, st in sorted((t.stats() if t is not None else {}).items()):
            for labels, value in st.rtt.samples():
                yield (labels[0], ("To", f"{peer_id:x}"), *labels[1:]), value

    reg.add(
        "etcd_network_peer_round_trip_time_seconds",
        "histogram",
        "Round-Trip-Time histogram between peers.",
        rtt,
    )

    def cert_expiry() -> Iterable[Sample]:
        for listener, cn, ts in expiry.served():
            yield (("listener", listener), ("cn", cn)), ts

    reg.add(
        "ward_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "Ward: when the certificate each listener serves expires (Unix time; updated when it"
        " is reloaded).",
        cert_expiry,
    )
    reg.counter(
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
        lambda: d.proposals_failed,
    )
    # One lmdb commit makes the Raft log and the applied state durable together (one fsync):
    # it is both etcd's WAL fsync and its backend commit, so both histograms observe it.
    wal = metrics.Histogram(metrics.exponential_buckets(0.001, 2, 14))
    commit = metrics.Histogram(metrics.exponential_buckets(0.001, 2, 14))

    def on_commit(seconds: float) -> None:
        wal.observe(seconds)
        commit.observe(seconds)

    d.on_commit = on_commit
    reg.add(
        "etcd_disk_wal_fsync_duration_seconds",
        "histogram",
        "The latency distributions of fsync called by WAL.",
        wal.samples,
    )
    reg.add(
        "etcd_disk_backend_commit_duration_seconds",
        "histogram",
        "The latency distributions of commit called by backend.",
        commit.samples,
    )
    hub = member.hub

    def workers() -> list[metrics.RPCCounters]:
        pushed = list(hub.counters.values()) if hub is not None else []
        return [metrics.RPCCounters.decode(p) for p in pushed]

    metrics.RPC.register(reg, workers)

    def worker_decisions() -> list[AuthDecisions]:
        pushed = list(hub.decisions.values()) if hub is not None else []
        return [AuthDecisions.decode(p) for p in pushed]

    DECISIONS.register(reg, worker_decisions)
    metrics.register_process(reg)
    return reg


async def serve_http(member: Member, impls: dict[str, dict[str, Any]]) -> HTTPListeners | None:
    """Start `--listen-client-http-urls` and `--listen-metrics-urls`, if any are configured."""
    o = member.options
    if not o.listen_client_http and not o.listen_metrics:
        return None
    d, state, listeners = member.driver, member.state, member.listeners
    assert d is not None and state is not None and listeners is not None
    leaders = metrics.LeaderWatch(lambda: d.leader, o.heartbeat_ms / 1000)
    leaders.start()
    member.leader_watch = leaders
    applier = state.reader

    def alarms() -> list[tuple[int, int]]:
        with state.backend.read() as txn:
            return list(applier.alarms(txn))

    def read_index() -> Any:
        # A linearizable read needs a leader's confirmation; a lone leader has it already.
        return d.read_index() if d.needs_read_index else None

    endpoints = Endpoints(
        gateway=JSONGateway(impls, max_request_bytes=o.max_request_bytes),
        registry=member_registry(member, leaders),
        health=HealthSource(leader=lambda: d.leader, alarms=alarms, read_index=read_index),
        guard=listeners.guard,
        cert_identity=o.client_tls is not None and o.client_tls.cert_identity,
    )
    return await start_http(
        endpoints,
        client_http=o.listen_client_http,
        metrics=o.listen_metrics,
        secure=o.listen_http_tls,
        tls=o.client_tls,
        max_body_bytes=4 * o.max_request_bytes // 3 + BODY_OVERHEAD,
    )
