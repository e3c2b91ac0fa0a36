"""The HTTP/JSON gateway, /metrics and /health, driven with `requests` against real processes
and compared with etcd 3.4's own gateway (served on its client port)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.tls_helpers import Certs, Credentials, ctl, start_tls_ward
from tests.e2e.ward_process import ETCD, EtcdProcess, WardProcess, etcdctl, eventually, free_port

pytestmark = pytest.mark.skipif(not Path(ETCD).exists(), reason="etcd 3.4 not installed")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class Gateways:
    def __init__(self, ward: WardProcess, http: int, metrics: int, etcd: EtcdProcess) -> None:
        self.ward = f"http://127.0.0.1:{http}"
        self.metrics = f"http://127.0.0.1:{metrics}"
        self.etcd = f"http://127.0.0.1:{etcd.client_url.rsplit(':', 1)[1]}"
        self.ward_process = ward


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateways]:
    http, mon = free_port(), free_port()
    ward = WardProcess(tmp_path / "w", workers=1)
    (tmp_path / "w").mkdir()
    etcd = EtcdProcess(tmp_path / "e")
    (tmp_path / "e").mkdir()
    try:
        ward.start(
            "--listen-client-http-urls",
            f"http://127.0.0.1:{http}",
            "--listen-metrics-urls",
            f"http://127.0.0.1:{mon}",
        )
        etcd.start()
        yield Gateways(ward, http, mon, etcd)
    finally:
        ward.stop()
        etcd.stop()


def _strip(value: object) -> object:
    """The answer without what differs between two clusters (IDs, terms)."""
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if k not in ("cluster_id", "member_id", "raft_term", "ID", "lease")
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def both(gw: Gateways, path: str, body: object | str) -> tuple[tuple[int, object], ...]:
    out = []
    for base in (gw.ward, gw.etcd):
        data = body if isinstance(body, str) else json.dumps(body)
        r = requests.post(base + path, data=data, timeout=10)
        try:
            parsed: object = _strip(r.json())
        except ValueError:
            parsed = r.text
        out.append((r.status_code, parsed))
    return tuple(out)


def test_kv_calls_answer_as_etcds_gateway(gw: Gateways) -> None:
    calls: list[tuple[str, object]] = [
        ("/v3/kv/put", {"key": b64("foo"), "value": b64("bar")}),
        ("/v3/kv/put", {"key": b64("foo"), "value": b64("baz"), "prev_kv": True}),
        ("/v3/kv/range", {"key": b64("foo")}),
        ("/v3/kv/range", {"key": b64("a"), "range_end": b64("z"), "count_only": True}),
        (
            "/v3/kv/txn",
            {
                "compare": [
                    {"key": b64("foo"), "result": "EQUAL", "target": "VALUE", "value": b64("baz")}
                ],
                "success": [{"request_put": {"key": b64("t"), "value": b64("1")}}],
                "failure": [{"request_range": {"key": b64("foo")}}],
            },
        ),
        ("/v3/kv/deleterange", {"key": b64("t"), "prev_kv": True}),
        ("/v3/kv/compaction", {"revision": "3"}),
        ("/v3/kv/compaction", {"revision": "100"}),
        ("/v3/kv/range", {"key": b64("foo"), "revision": "1"}),
        ("/v3/kv/range", {}),
    ]
    for path, body in calls:
        ward, etcd = both(gw, path, body)
        assert ward == etcd, (path, body)


@pytest.mark.parametrize(
    "body",
    [
        '{"key":"Zm9v',
        '{"key":"!!"}',
        '{"key":"Zm9"}',
        "[1]",
        '"text"',
        '{"key":5}',
        '{"key":"Zm9v","limit":"x"}',
        '{"bogus":1,"key":"Zm9v"}',
        "",
        "null",
        "{}",
    ],
)
def test_malformed_bodies_get_etcds_status(gw: Gateways, body: str) -> None:
    (ws, wb), (es, eb) = both(gw, "/v3/kv/range", body)
    assert ws == es, (body, wb, eb)
    if isinstance(eb, dict) and "code" in eb:
        assert isinstance(wb, dict) and wb["code"] == eb["code"]


def test_a_requests_program_written_for_etcd_works_unchanged(gw: Gateways) -> None:
    # As etcd's documentation shows: base64 keys, plain JSON over HTTP.
    for base in (gw.ward, gw.etcd):
        requests.post(
            f"{base}/v3/kv/put",
            json={"key": base64.b64encode(b"app/config").decode(), "value": "djE="},
            timeout=10,
        ).raise_for_status()
        r = requests.post(
            f"{base}/v3/kv/range",
            json={"key": base64.b64encode(b"app/config").decode()},
            timeout=10,
        )
        kv = r.json()["kvs"][0]
        assert base64.b64decode(kv["value"]) == b"v1"
        assert int(r.json()["header"]["revision"]) >= 2


def test_watch_streams_events_as_json_lines(gw: Gateways) -> None:
    lines: list[dict[str, object]] = []

    def watch() -> None:
        with requests.post(
            gw.ward + "/v3/watch",
            json={"create_request": {"key": b64("w"), "prev_kv": True}},
            stream=True,
            timeout=10,
        ) as r:
            for line in r.iter_lines():
                lines.append(json.loads(line))
                if len(lines) == 3:
                    return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.5)
    requests.post(gw.ward + "/v3/kv/put", json={"key": b64("w"), "value": b64("1")}, timeout=5)
    requests.post(gw.ward + "/v3/kv/put", json={"key": b64("w"), "value": b64("2")}, timeout=5)
    t.join(10)
    assert lines[0]["result"]["created"] is True  # type: ignore[index]
    ev = lines[2]["result"]["events"][0]  # type: ignore[index]
    assert base64.b64decode(ev["kv"]["value"]) == b"2"
    assert base64.b64decode(ev["prev_kv"]["value"]) == b"1"


def test_lease_grant_keepalive_timetolive_revoke(gw: Gateways) -> None:
    for base in (gw.ward, gw.etcd):
        g = requests.post(base + "/v3/lease/grant", json={"TTL": "60"}, timeout=5).json()
        lid = g["ID"]
        assert g["TTL"] == "60"
        requests.post(
            base + "/v3/kv/put", json={"key": b64("l"), "value": "", "lease": lid}, timeout=5
        ).raise_for_status()
        ka = requests.post(base + "/v3/lease/keepalive", json={"ID": lid}, timeout=5)
        assert json.loads(ka.text.splitlines()[0])["result"]["TTL"] == "60", base
        ttl = requests.post(
            base + "/v3/lease/timetolive", json={"ID": lid, "keys": True}, timeout=5
        ).json()
        assert ttl["keys"] == [b64("l")]
        leases = requests.post(base + "/v3/lease/leases", json={}, timeout=5).json()
        assert {"ID": lid} in leases["leases"]
        requests.post(base + "/v3/lease/revoke", json={"ID": lid}, timeout=5).raise_for_status()
        r = requests.post(base + "/v3/kv/range", json={"key": b64("l")}, timeout=5).json()
        assert "kvs" not in r
        gone = requests.post(base + "/v3/lease/revoke", json={"ID": lid}, timeout=5)
        assert gone.status_code == 404
        assert gone.json()["message"] == "etcdserver: requested lease not found"


def test_auth_with_authorization_header(gw: Gateways) -> None:
    for base in (gw.ward, gw.etcd):
        post = lambda p, b, base=base, **kw: requests.post(base + p, json=b, timeout=10, **kw)  # noqa: E731
        assert post("/v3/auth/user/add", {"name": "root", "password": "rootpw12"}).ok
        assert post("/v3/auth/user/grant", {"user": "root", "role": "root"}).ok
        assert post("/v3/auth/enable", {}).ok
        denied = post("/v3/kv/put", {"key": b64("a"), "value": b64("1")})
        tok = post("/v3/auth/authenticate", {"name": "root", "password": "rootpw12"})
        token = tok.json()["token"]
        ok = post(
            "/v3/kv/put", {"key": b64("a"), "value": b64("1")}, headers={"Authorization": token}
        )
        bad = post("/v3/auth/authenticate", {"name": "root", "password": "nope"})
        assert ok.status_code == 200, base
        assert (denied.status_code, denied.json()["code"]) == (400, 3), (base, denied.text)
        assert bad.status_code == 400 and "authentication failed" in bad.json()["message"]


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_move_with_traffic(gw: Gateways) -> None:
    before = requests.get(gw.metrics + "/metrics", timeout=5).text
    for name in (
        "etcd_server_has_leader",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_applied_total",
        "etcd_server_proposals_pending",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_debugging_mvcc_keys_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert f"# TYPE {name} " in before, name
    assert _metric(before, "etcd_server_has_leader") == 1
    for i in range(20):
        requests.post(
            gw.ward + "/v3/kv/put", json={"key": b64(f"m{i}"), "value": "eA=="}, timeout=5
        )
    after = requests.get(gw.ward + "/metrics", timeout=5).text
    assert (
        _metric(after, "etcd_debugging_mvcc_keys_total")
        == _metric(before, "etcd_debugging_mvcc_keys_total") + 20
    )
    assert (
        _metric(after, "etcd_server_proposals_applied_total")
        >= _metric(before, "etcd_server_proposals_applied_total") + 20
    )
    assert _metric(after, "etcd_server_proposals_committed_total") >= 20
    # The gateway's calls go through the same handlers; gRPC calls are counted by the RPC layer.
    assert "grpc_server_handled_total" in after or "grpc_server_started_total" not in after


def test_health_livez_readyz_of_a_healthy_member(gw: Gateways) -> None:
    for base in (gw.metrics, gw.etcd):
        r = requests.get(base + "/health", timeout=5)
        assert (r.status_code, r.json()) == (200, {"health": "true"})
    assert requests.get(gw.metrics + "/livez", timeout=5).status_code == 200
    assert requests.get(gw.metrics + "/readyz", timeout=5).text == "ok"
    # Metrics listeners carry no API.
    assert requests.post(gw.metrics + "/v3/kv/range", json={}, timeout=5).status_code == 404


def test_health_reports_the_nospace_alarm_as_etcd_does(tmp_path: Path) -> None:
    mon = free_port()
    ward = WardProcess(tmp_path, workers=1)
    etcd = EtcdProcess(tmp_path)
    ward.start(
        "--quota-backend-bytes", "300000", "--listen-metrics-urls", f"http://127.0.0.1:{mon}"
    )
    etcd.start("--quota-backend-bytes", "300000")
    try:
        for endpoint, health in (
            (ward.endpoint, f"http://127.0.0.1:{mon}/health"),
            (etcd.endpoint, f"{etcd.client_url}/health"),
        ):
            for i in range(40):
                if etcdctl(endpoint, "put", f"k{i}", "x" * 60_000).returncode != 0:
                    break
            h = requests.get(health, timeout=5)
            assert h.status_code == 503, (endpoint, h.text)
            assert h.json()["health"] == "false"
    finally:
        ward.stop()
        etcd.stop()


def test_gateway_over_mutual_tls_with_wards_own_ca(tmp_path: Path) -> None:
    """The HTTP listener takes the client listeners' TLS: no client certificate, no answer."""
    http = free_port()
    ward = WardProcess(tmp_path, workers=1)
    flags = ward.base_flags()
    url = ward.client_url.replace("http://", "https://")
    flags[flags.index(ward.client_url)] = url
    flags[flags.index(ward.client_url)] = url
    ward.start(*flags, "--listen-client-http-urls", f"https://127.0.0.1:{http}", base_flags=False)
    try:
        pki = ward.data_dir / "pki"
        cert = (str(pki / "client-root.crt"), str(pki / "client-root.key"))
        base = f"https://127.0.0.1:{http}"
        put = requests.post(
            base + "/v3/kv/put",
            json={"key": b64("s"), "value": b64("1")},
            verify=str(pki / "ca.crt"),
            cert=cert,
            timeout=10,
        )
        assert put.status_code == 200, put.text
        got = requests.post(
            base + "/v3/kv/range",
            json={"key": b64("s")},
            verify=str(pki / "ca.crt"),
            cert=cert,
            timeout=10,
        ).json()
        assert base64.b64decode(got["kvs"][0]["value"]) == b"1"
        # The refusal is a TLS alert the client reads (not a connection closed without a
        # word), on every new connection.
        for _ in range(5):
            with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_REQUIRED"):
                requests.post(
                    base + "/v3/kv/range",
                    json={"key": b64("s")},
                    verify=str(pki / "ca.crt"),
                    timeout=10,
                )
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(f"http://127.0.0.1:{http}/v3/kv/range", json={}, timeout=10)
    finally:
        ward.stop()


def test_gateway_tls_refuses_as_grpc_does_and_takes_cn_and_tokens_as_the_caller(
    tmp_path: Path,
) -> None:
    """SECURITY 15/16: the HTTP listener refuses what the gRPC listener refuses (no
    certificate, another CA, an expired one, a revoked one: CRL), and the caller is the
    certificate's CN unless an Authorization token names another user."""
    certs = Certs.create(tmp_path / "certs")
    http = free_port()
    ward = start_tls_ward(
        tmp_path / "w",
        *certs.server_flags(),
        "--bcrypt-cost",
        "4",
        "--listen-client-http-urls",
        f"https://127.0.0.1:{http}",
        workers=1,
    )
    grpc_url = f"https://127.0.0.1:{ward.client_port}"
    base = f"https://127.0.0.1:{http}"
    ca = str(certs.ca1.ca_cert_path)

    def post(creds: Credentials | None, path: str, body: object, **kw: object) -> requests.Response:
        cert = (str(creds.cert), str(creds.key)) if creds and creds.cert and creds.key else None
        return requests.post(base + path, json=body, verify=ca, cert=cert, timeout=10, **kw)  # type: ignore[arg-type]

    def grpc_refused(creds: Credentials) -> bool:
        return ctl(grpc_url, creds, "get", "k").returncode != 0

    try:
        root, alice, bob = (certs.client(certs.ca1, n) for n in ("root", "alice", "bob"))
        carol = certs.client(certs.ca2, "carol", cacert=certs.ca1.ca_cert_path)
        expired = certs.client(certs.ca1, "expired")
        assert post(bob, "/v3/kv/put", {"key": b64("k"), "value": b64("v")}).status_code == 200
        # Refused in the handshake, on both listeners.
        for creds, alert in (
            (None, "CERTIFICATE_REQUIRED"),
            (carol, "UNKNOWN_CA"),
            (expired, "EXPIRED"),
        ):
            with pytest.raises(requests.exceptions.SSLError, match=alert):
                post(creds, "/v3/kv/range", {"key": b64("k")})
            if creds is not None:
                assert grpc_refused(creds)
        # A revoked certificate: the CRL is re-read within a second, on both listeners.
        certs.ca1.revoke(name="bob")

        def bob_refused() -> bool:
            r = post(bob, "/v3/kv/range", {"key": b64("k")})
            return r.status_code == 401

        eventually(bob_refused)
        r = post(bob, "/v3/kv/range", {"key": b64("k")})
        assert r.json()["code"] == 16 and "revoked" in r.json()["message"], r.text
        assert post(bob, "/health", None).status_code == 401  # every path, not only the API
        assert grpc_refused(bob)

        # Auth on: the certificate's CN is the user; a token takes precedence.
        for path, body in (
            ("/v3/auth/user/add", {"name": "root", "password": "root-pass-1"}),
            ("/v3/auth/role/add", {"name": "root"}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/user/add", {"name": "alice", "options": {"no_password": True}}),
            ("/v3/auth/user/add", {"name": "dan", "password": "dan-pass-12"}),
            ("/v3/auth/role/add", {"name": "ra"}),
            (
                "/v3/auth/role/grant",
                {
                    "name": "ra",
                    "perm": {"permType": "READWRITE", "key": b64("a/"), "range_end": b64("a0")},
                },
            ),
            ("/v3/auth/user/grant", {"user": "alice", "role": "ra"}),
            ("/v3/auth/enable", {}),
        ):
            r = post(root, path, body)
            assert r.status_code == 200, (path, r.text)
        assert post(root, "/v3/kv/put", {"key": b64("secret"), "value": b64("s")}).ok
        assert post(alice, "/v3/kv/put", {"key": b64("a/x"), "value": b64("v")}).ok
        denied = post(alice, "/v3/kv/put", {"key": b64("secret"), "value": b64("v")})
        assert (denied.status_code, denied.json()["code"]) == (403, 7), denied.text
        assert denied.json()["message"] == "etcdserver: permission denied"
        # alice's certificate, dan's token: the request runs as dan (no permission at all),
        # and root's token over alice's certificate runs as root.
        dan = post(alice, "/v3/auth/authenticate", {"name": "dan", "password": "dan-pass-12"})
        as_dan = post(
            alice,
            "/v3/kv/put",
            {"key": b64("a/x"), "value": b64("w")},
            headers={"Authorization": dan.json()["token"]},
        )
        assert as_dan.status_code == 403, as_dan.text
        tok = post(alice, "/v3/auth/authenticate", {"name": "root", "password": "root-pass-1"})
        as_root = post(
            alice,
            "/v3/kv/put",
            {"key": b64("secret"), "value": b64("t")},
            headers={"Authorization": tok.json()["token"]},
        )
        assert as_root.status_code == 200, as_root.text
        bad = post(alice, "/v3/kv/range", {"key": b64("a/x")}, headers={"Authorization": "nope"})
        assert bad.status_code == 401 and bad.json()["message"] == "etcdserver: invalid auth token"
        # The gRPC listener agrees on every verdict.
        assert ctl(grpc_url, alice, "put", "secret", "v").returncode != 0
        assert ctl(grpc_url, alice, "get", "a/x", "--print-value-only").stdout == "v\n"
    finally:
        ward.stop()


@pytest.fixture
def two_wards(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh single-member Wards: (the first's gateway URL, the second's gRPC endpoint)."""
    http = free_port()
    a = WardProcess(tmp_path / "a", workers=1)
    b = WardProcess(tmp_path / "b", workers=1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        a.start("--listen-client-http-urls", f"http://127.0.0.1:{http}")
        b.start()
        yield f"http://127.0.0.1:{http}", b.endpoint
    finally:
        a.stop()
        b.stop()


def test_gateway_answers_are_the_grpc_answers(two_wards: tuple[str, str]) -> None:
    """The same requests, in the same order, to one Ward over the gateway and to another over
    gRPC: every answer is the gRPC answer in proto3 JSON (IDs of the member and cluster aside)."""
    import grpc
    from google.protobuf import json_format

    from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    base, endpoint = two_wards
    channel = grpc.insecure_channel(endpoint)
    kv = rpc_pb2_grpc.KVStub(channel)
    lease = rpc_pb2_grpc.LeaseStub(channel)
    watch = rpc_pb2_grpc.WatchStub(channel)

    def as_json(msg: object) -> object:
        return _strip(json_format.MessageToDict(msg, preserving_proto_field_name=True))  # type: ignore[arg-type]

    def same(path: str, body: dict[str, object], call: Callable[..., object], cls: type) -> dict:
        r = requests.post(base + path, json=body, timeout=10)
        assert r.status_code == 200, (path, r.text)
        want = as_json(call(json_format.ParseDict(body, cls()), timeout=10))
        assert _strip(r.json()) == want, (path, body)
        return r.json()  # type: ignore[no-any-return]

    # A watch on each side first, so both see every event.
    events: list[dict[str, object]] = []
    wbody = {"create_request": {"key": b64("k"), "range_end": b64("l"), "prev_kv": True}}

    def http_watch() -> None:
        with requests.post(base + "/v3/watch", json=wbody, stream=True, timeout=20) as r:
            for line in r.iter_lines():
                events.append(_strip(json.loads(line)["result"]))  # type: ignore[arg-type]
                if len(events) == 6:
                    return

    t = threading.Thread(target=http_watch, daemon=True)
    t.start()
    done = threading.Event()

    def watch_requests() -> Iterator[rpc_pb2.WatchRequest]:
        yield json_format.ParseDict(wbody, rpc_pb2.WatchRequest())
        done.wait(20)  # the stream stays open, as a client's does

    grpc_watch = watch.Watch(watch_requests(), timeout=20)
    time.sleep(0.5)

    same("/v3/kv/put", {"key": b64("k1"), "value": b64("a")}, kv.Put, rpc_pb2.PutRequest)
    same(
        "/v3/kv/put",
        {"key": b64("k1"), "value": b64("b"), "prev_kv": True},
        kv.Put,
        rpc_pb2.PutRequest,
    )
    same("/v3/kv/put", {"key": b64("k2"), "value": b64("c")}, kv.Put, rpc_pb2.PutRequest)
    for body in (
        {"key": b64("k1")},
        {"key": b64("k"), "range_end": b64("l"), "sort_order": "DESCEND", "sort_target": "KEY"},
        {"key": b64("k"), "range_end": b64("l"), "count_only": True},
        {"key": b64("k1"), "revision": "2"},
        {"key": b64("nope")},
    ):
        same("/v3/kv/range", body, kv.Range, rpc_pb2.RangeRequest)
    txn = {
        "compare": [{"key": b64("k1"), "result": "EQUAL", "target": "VALUE", "value": b64("b")}],
        "success": [
            {"request_put": {"key": b64("k3"), "value": b64("d"), "prev_kv": True}},
            {"request_range": {"key": b64("k"), "range_end": b64("l")}},
            {"request_delete_range": {"key": b64("k2"), "prev_kv": True}},
        ],
        "failure": [{"request_range": {"key": b64("k1")}}],
    }
    same("/v3/kv/txn", txn, kv.Txn, rpc_pb2.TxnRequest)
    same("/v3/kv/txn", txn, kv.Txn, rpc_pb2.TxnRequest)  # now the compare fails
    granted = same("/v3/lease/grant", {"TTL": "60"}, lease.LeaseGrant, rpc_pb2.LeaseGrantRequest)
    # Lease IDs differ between two members; each side uses its own.
    grpc_id = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10).ID
    http_id = requests.post(base + "/v3/lease/grant", json={"TTL": "60"}, timeout=10).json()["ID"]
    assert granted["TTL"] == "60"
    put_h = requests.post(
        base + "/v3/kv/put", json={"key": b64("k4"), "value": "", "lease": http_id}, timeout=10
    ).json()
    put_g = kv.Put(rpc_pb2.PutRequest(key=b"k4", lease=grpc_id), timeout=10)
    assert _strip(put_h) == as_json(put_g)
    ttl_h = requests.post(
        base + "/v3/lease/timetolive", json={"ID": http_id, "keys": True}, timeout=10
    ).json()
    ttl_g = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=grpc_id, keys=True), timeout=10)
    assert _strip(ttl_h) == as_json(ttl_g)
    ka_h = requests.post(base + "/v3/lease/keepalive", json={"ID": http_id}, timeout=10)
    ka_g = next(lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=grpc_id)])))
    assert _strip(json.loads(ka_h.text.splitlines()[0])["result"]) == as_json(ka_g)
    rv_h = requests.post(base + "/v3/lease/revoke", json={"ID": http_id}, timeout=10).json()
    assert _strip(rv_h) == as_json(
        lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=grpc_id), timeout=10)
    )
    # Errors: the gateway's code is the gRPC status code, with the same message.
    gone = requests.post(base + "/v3/lease/revoke", json={"ID": http_id}, timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=grpc_id), timeout=10)
    assert gone.json()["code"] == err.value.code().value[0]
    assert gone.json()["message"] == err.value.details()
    compacted = requests.post(base + "/v3/kv/range", json={"key": b64("k1"), "revision": "99"})
    with pytest.raises(grpc.RpcError) as err:
        kv.Range(rpc_pb2.RangeRequest(key=b"k1", revision=99), timeout=10)
    assert (compacted.json()["code"], compacted.json()["message"]) == (
        err.value.code().value[0],
        err.value.details(),
    )
    # Watch: the same responses, one per revision, in the same order.
    t.join(15)
    got = []
    for resp in grpc_watch:
        got.append(as_json(resp))
        if len(got) == len(events):
            break
    done.set()
    grpc_watch.cancel()
    channel.close()
    assert len(events) == 6
    assert events == got


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ward", "etcd"])
def test_health_of_a_member_that_lost_its_quorum(tmp_path: Path, kind: str) -> None:
    """Two of three members killed: the survivor's /health says 503 {"health":"false"} (no
    leader); once they are back it is healthy again. etcd 3.4 serves /health on its client
    URL, Ward on its metrics URL."""
    from cluster import Cluster

    c = Cluster(tmp_path, 3, kind=kind)
    ic = c.initial_cluster
    health: dict[str, str] = {}
    for m in c.members:
        extra: list[str] = []
        if kind == "ward":
            port = free_port()
            extra = ["--listen-metrics-urls", f"http://127.0.0.1:{port}"]
            health[m.name] = f"http://127.0.0.1:{port}/health"
        else:
            health[m.name] = f"{m.client_url}/health"
        m.launch([*m.flags(ic, "new", c.token), *extra])
    try:
        for m in c.members:
            m.proc.wait_ready()
        leader = c.leader()
        survivor = next(m for m in c.members if m is not leader)
        url = health[survivor.name]

        def get() -> tuple[int, dict[str, str]]:
            r = requests.get(url, timeout=10)
            return r.status_code, r.json()

        assert get() == (200, {"health": "true"})
        killed = [m for m in c.members if m is not survivor]
        for m in killed:
            m.proc.kill9()
        eventually(lambda: get()[0] == 503, timeout=20)
        _, body = get()
        assert body["health"] == "false", body
        if "reason" in body:  # etcd 3.5's field; 3.4 sends "health" alone
            assert body["reason"] == "RAFT NO LEADER"
        if kind == "ward":
            # A write without a leader fails, and /metrics counts it.
            assert etcdctl(survivor.endpoint, "put", "k", "v").returncode != 0
            text = requests.get(url.replace("/health", "/metrics"), timeout=10).text
            assert _metric(text, "etcd_server_proposals_failed_total") >= 1
            assert _metric(text, "etcd_server_has_leader") == 0
        for m in killed:
            m.proc._spawn()
        for m in killed:
            m.proc.wait_ready()
        eventually(lambda: get() == (200, {"health": "true"}), timeout=20)
    finally:
        c.stop()


def test_metrics_count_calls_of_every_serving_process_and_time_commits(tmp_path: Path) -> None:
    """Reads served by a worker process are counted in the core's /metrics (workers push
    their counters every second), and every fsync'd commit lands in etcd's disk histograms."""
    mon = free_port()
    ward = WardProcess(tmp_path, workers=2)
    ward.start("--listen-metrics-urls", f"http://127.0.0.1:{mon}")
    try:
        ward.wait_listening(2)
        url = f"http://127.0.0.1:{mon}/metrics"
        before = requests.get(url, timeout=5).text
        for name, kind in (
            ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
            ("etcd_disk_backend_commit_duration_seconds", "histogram"),
            ("etcd_server_proposals_failed_total", "counter"),
        ):
            assert f"# TYPE {name} {kind}" in before, name
        assert 'etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"}' in before
        n = 12
        for i in range(n):  # one etcdctl, one connection each: spread over both processes
            assert etcdctl(ward.endpoint, "put", f"c{i}", "v").returncode == 0
            assert etcdctl(ward.endpoint, "get", f"c{i}").returncode == 0
        # SO_REUSEPORT spreads the 12 connections: all on the core has odds of 1 in 4096, so
        # without the workers' counters this total would fall short.
        ranges = 'grpc_server_handled_total{grpc_code="OK",grpc_method="Range",'

        def counted() -> float:
            text = requests.get(url, timeout=5).text
            lines = [ln for ln in text.splitlines() if ln.startswith(ranges)]
            return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)

        eventually(lambda: counted() == n, timeout=10)
        after = requests.get(url, timeout=5).text
        commits = "etcd_disk_backend_commit_duration_seconds_count"
        assert _metric(after, commits) >= _metric(before, commits) + n
        assert _metric(after, "etcd_disk_wal_fsync_duration_seconds_sum") > 0
        assert _metric(after, "etcd_server_proposals_failed_total") == 0
    finally:
        ward.stop()
