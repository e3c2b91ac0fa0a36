"""A server's resident memory from its Prometheus `/metrics`, read as etcdctl 3.4 reads it.

etcdctl's `check datascale` GETs `http://<endpoint>/metrics` with Go's default HTTP client (no
deadline, any status), takes the first line starting with `process_resident_memory_bytes`, and
prints a reason on stdout when it cannot ("fetch error: ...", "could not find: ..."). The reasons
here are worded as Go's net/http words them, so that a failed fetch prints what etcdctl prints:
against Ward's gRPC port, which answers HTTP/1.1 with HTTP/2 frames, that is the same
`malformed HTTP response "..."` line.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from collections.abc import Callable

from ward.cli.gofmt import quote, quote_bytes

__all__ = ["RESIDENT_MEMORY", "endpoint_metrics_url", "resident_memory"]

RESIDENT_MEMORY = "process_resident_memory_bytes"


class _FetchError(Exception):
    """A failed GET, worded as Go's net/http words it."""


def _status_line_error(line: bytes) -> str:
    # net/http's readResponse: the checks on the status line, in its order.
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    proto, sep, status = line.partition(b" ")
    if not sep:
        return f"malformed HTTP response {quote_bytes(line)}"
    code = status.partition(b" ")[0]
    if len(code) != 3 or not code.isdigit():
        return f"malformed HTTP status code {quote_bytes(code)}"
    return f"malformed HTTP version {quote_bytes(proto)}"


def _http_get(url: str, context: ssl.SSLContext | None) -> bytes:
    """GET `url` without a deadline (as Go's http.Get) and return the body, whatever the status
    (etcdctl does not look at it)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    conn: http.client.HTTPConnection
    if secure:
        conn = http.client.HTTPSConnection(host, port, context=context)
    else:
        conn = http.client.HTTPConnection(host, port)
    where = f"Get {quote(url)}"
    try:
        try:
            conn.connect()
        except socket.gaierror:
            raise _FetchError(f"{where}: dial tcp: lookup {host}: no such host") from None
        except ssl.SSLError as exc:
            raise _FetchError(f"{where}: {exc}") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise _FetchError(
                f"{where}: dial tcp {host}:{port}: connect: {reason[:1].lower()}{reason[1:]}"
            ) from None
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", target, headers={"User-Agent": "wardctl"})
            resp = conn.getresponse()
        except http.client.BadStatusLine as exc:
            # What the server sent instead of a status line: a gRPC port's HTTP/2 frames.
            line = str(exc.args[0] if exc.args else "").encode("latin-1", "replace")
            raise _FetchError(
                f"{where}: net/http: HTTP/1.x transport connection broken: "
                + _status_line_error(line)
            ) from None
        except (http.client.RemoteDisconnected, ConnectionResetError):
            raise _FetchError(f"{where}: EOF") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _FetchError(f"{where}: {exc}") from None
        try:
            return resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise _FetchError(f"reading {url}: {exc}") from None
    finally:
        conn.close()


def endpoint_metrics_url(host: str) -> str:
    """etcdctl's URL for an endpoint: "http://" is added unless it is there (even before an
    "https://" endpoint: etcdctl 3.4 reads metrics over plain HTTP only)."""
    if not host.startswith("http://"):
        host = "http://" + host
    return host + "/metrics"


def resident_memory(
    say: Callable[[str], None], url: str, context: ssl.SSLContext | None = None
) -> float:
    """The server's process_resident_memory_bytes from the Prometheus text at `url`; 0 (after
    saying why through `say`, as etcdctl does on stdout) when it cannot be read."""
    try:
        body = _http_get(url, context)
    except _FetchError as exc:
        say(f"fetch error: {exc}")
        return 0.0
    found = ""
    for line in body.decode("utf-8", "replace").split("\n"):
        if line.startswith(RESIDENT_MEMORY):
            found = line[len(RESIDENT_MEMORY) :].strip()
            break
    if not found:
        say(f"could not find: {RESIDENT_MEMORY}")
        return 0.0
    try:
        return float(found)
    except ValueError:
        say(f"parse error: strconv.ParseFloat: parsing {quote(found)}: invalid syntax")
        return 0.0
