"""The pure parts of `check perf|datascale` and `make-mirror`: etcd's pkg/report statistics,
Go's number and key formats, net/http's status-line errors, and the mirror's key renaming.

Expected values are what etcdctl 3.4 (Go) computes or prints for the same inputs.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Iterator

import pytest

from ward.cli.check import DATASCALE_LOADS, PERF_LOADS, go_float, summarize, varint_key
from ward.cli.metrics import endpoint_metrics_url, resident_memory
from ward.cli.mirror import Renamer

# -- statistics ------------------------------------------------------------------------------


def test_summarize_is_pkg_report_stats() -> None:
    stats = summarize([0.1, 0.2, 0.3, 0.4], {"boom": 2}, total_s=2.0)
    assert stats.rps == 2.0  # successes only, over the whole run
    assert stats.slowest == 0.4
    assert stats.stddev == pytest.approx(math.sqrt(0.0125))  # population deviation
    assert stats.errors == {"boom": 2}


def test_summarize_without_successes_gives_go_nan_deviation() -> None:
    stats = summarize([], {"x": 1}, total_s=1.0)
    assert (stats.rps, stats.slowest) == (0.0, 0.0)
    assert math.isnan(stats.stddev)
    # etcdctl then prints "PASS: Stddev is NaNs" (NaN > 0.1 is false in Go too).
    assert go_float(stats.stddev) == "NaN"


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.046182, "0.046182"), (1e-7, "0.000000"), (2.5, "2.500000"), (math.inf, "+Inf")],
)
def test_go_float_is_percent_f(value: float, text: str) -> None:
    assert go_float(value) == text


def test_loads_are_etcdctl_34s() -> None:
    assert [(c.limit, c.clients, c.duration) for c in PERF_LOADS.values()] == [
        (150, 50, 60),
        (1000, 200, 60),
        (8000, 500, 60),
        (15000, 1000, 60),
    ]
    assert [(c.limit, c.kv_size, c.clients) for c in DATASCALE_LOADS.values()] == [
        (10_000, 1024, 50),
        (100_000, 1024, 200),
        (1_000_000, 1024, 500),
        (3_000_000, 1024, 1000),
    ]


def test_varint_key_is_go_put_varint_into_a_reused_buffer() -> None:
    buf = bytearray(12)
    varint_key(buf, 300)  # zigzag 600 = 0xd8 0x04
    assert bytes(buf) == b"\xd8\x04" + bytes(10)
    varint_key(buf, 1)  # one byte: the tail of the previous key stays, as in etcdctl
    assert bytes(buf) == b"\x02\x04" + bytes(10)
    varint_key(buf, (1 << 63) - 2)  # the largest rand.Int63n(MaxInt64) takes ten bytes
    assert bytes(buf) == b"\xfc" + b"\xff" * 8 + b"\x01" + bytes(2)


# -- /metrics --------------------------------------------------------------------------------


def test_endpoint_metrics_url_adds_http_as_etcdctl_does() -> None:
    assert endpoint_metrics_url("127.0.0.1:2379") == "http://127.0.0.1:2379/metrics"
    assert endpoint_metrics_url("http://h:1") == "http://h:1/metrics"
    # etcdctl 3.4 reads metrics over plain HTTP only, even from an https endpoint.
    assert endpoint_metrics_url("https://h:1") == "http://https://h:1/metrics"


@pytest.fixture
def one_shot_server() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server that answers one connection with the bytes put in its list, then closes."""
    replies: list[bytes] = []
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(replies[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, replies
    thread.join(timeout=5)
    sock.close()


def _read(port: int) -> tuple[float, list[str]]:
    said: list[str] = []
    value = resident_memory(said.append, f"http://127.0.0.1:{port}/metrics")
    return value, said


def test_resident_memory_takes_the_first_matching_line(
    one_shot_server: tuple[int, list[bytes]],
) -> None:
    port, replies = one_shot_server
    body = (
        b"# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        b"# TYPE process_resident_memory_bytes gauge\n"
        b"process_resident_memory_bytes 6.5568768e+07\n"
        b"process_resident_memory_bytes 1\n"
    )
    replies.append(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert _read(port) == (65568768.0, [])


def test_resident_memory_missing_or_unparsable(one_shot_server: tuple[int, list[bytes]]) -> None:
    port, replies = one_shot_server
    # Any status will do, as with Go's http.Get; the line is simply not there.
    replies.append(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n")
    assert _read(port) == (0.0, ["could not find: process_resident_memory_bytes"])


def test_a_grpc_port_gives_go_malformed_response_error(
    one_shot_server: tuple[int, list[bytes]],
) -> None:
    port, replies = one_shot_server
    # An HTTP/2 server's SETTINGS frame where a status line should be, then the close.
    replies.append(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00@\x00\x00")
    value, said = _read(port)
    assert value == 0.0
    assert said == [
        f'fetch error: Get "http://127.0.0.1:{port}/metrics": net/http: HTTP/1.x transport'
        ' connection broken: malformed HTTP response "\\x00\\x00\\x06\\x04\\x00\\x00\\x00\\x00'
        '\\x00\\x00\\x04\\x00@\\x00\\x00"'
    ]


def test_a_refused_connection_reads_as_go_dial_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    value, said = _read(port)
    assert value == 0.0
    assert said == [
        f'fetch error: Get "http://127.0.0.1:{port}/metrics": dial tcp 127.0.0.1:{port}:'
        " connect: connection refused"
    ]


# -- make-mirror -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "dest", "key", "renamed"),
    [
        (b"src/", b"src/", b"src/a", b"src/a"),
        (b"src/", b"dst/", b"src/a", b"dst/a"),
        (b"src/", b"", b"src/a/src/b", b"a/src/b"),  # --no-dest-prefix; first occurrence only
        (b"", b"copy/", b"a", b"copy/a"),  # Go puts the new text in front of an empty prefix
        (b"", b"", b"a", b"a"),
    ],
)
def test_renamer_is_go_strings_replace_once(
    prefix: bytes, dest: bytes, key: bytes, renamed: bytes
) -> None:
    assert Renamer(prefix, dest)(key) == renamed
