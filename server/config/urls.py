"""Client and peer URLs as etcd accepts them, and the ``--initial-cluster`` member list.

etcd's rules (``types.NewURLs`` and ``embed.Config.Validate``): the scheme is http, https, unix
or unixs; an http(s) URL is ``host:port`` with no path; a URL to listen on names an IP address
or ``localhost``; an advertised URL names a host. A unix URL names a socket file: its host,
port and path together (``unix://localhost:2379`` is the file ``localhost:2379``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

_TCP_SCHEMES = frozenset({"http", "https"})
_UNIX_SCHEMES = frozenset({"unix", "unixs"})
_TLS_SCHEMES = frozenset({"https", "unixs"})


@dataclass(frozen=True, slots=True)
class URL:
    """One parsed URL. ``port`` is None only for a unix socket URL that names none."""

    scheme: str
    host: str
    port: int | None
    path: str = ""

    @property
    def is_tls(self) -> bool:
        """Whether connections to this URL use TLS (https, unixs)."""
        return self.scheme in _TLS_SCHEMES

    @property
    def is_unix(self) -> bool:
        """Whether this URL names a Unix domain socket rather than a TCP address."""
        return self.scheme in _UNIX_SCHEMES

    @property
    def hostport(self) -> str:
        """``host:port`` as written in a URL (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        """The TCP ``(host, port)`` to bind or dial; only for http and https URLs."""
        if self.is_unix or self.port is None:
            raise ValueError(f"{self} is a unix socket URL, not a TCP address")
        return self.host, self.port

    @property
    def socket_path(self) -> str:
        """The socket file of a unix or unixs URL (host, port and path, as etcd uses them)."""
        if not self.is_unix:
            raise ValueError(f"{self} is not a unix socket URL")
        return self.hostport + self.path

    def __str__(self) -> str:
        return f"{self.scheme}://{self.hostport}{self.path}"


def _split_host_port(netloc: str, text: str) -> tuple[str, int]:
    # Go's net.SplitHostPort, plus the numeric port url.Parse insists on.
    form_error = ValueError(f'URL address does not have the form "host:port": {text}')
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0 or not netloc.startswith(":", end + 1):
            raise form_error
        host, port_text = netloc[1:end], netloc[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address in URL: {text}") from None
    else:
        if netloc.count(":") != 1:
            raise form_error
        host, port_text = netloc.split(":")
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"invalid port {port_text!r} in URL: {text}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"invalid port {port_text!r} in URL: {text}")
    return host, port


def parse_url(text: str) -> URL:
    """Parse one client or peer URL by etcd's rules; raise ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("empty URL")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError(f"URL must not contain spaces or control characters: {text!r}")
    try:
        parts = urlsplit(text)
    except ValueError as err:
        raise ValueError(f"invalid URL {text}: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in _TCP_SCHEMES | _UNIX_SCHEMES:
        raise ValueError(f"URL scheme must be http, https, unix, or unixs: {text}")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(f"URL must not contain a query or fragment: {text}")
    if "@" in parts.netloc:
        raise ValueError(f"URL must not contain user information: {text}")
    if scheme in _TCP_SCHEMES:
        host, port = _split_host_port(parts.netloc, text)
        if parts.path:
            raise ValueError(f"URL must not contain a path: {text}")
        # Host names are case-insensitive; one spelling lets URLs be compared as strings.
        return URL(scheme, host.lower(), port)
    # A socket file name keeps its case, and may or may not look like host:port.
    if not parts.netloc and not parts.path:
        raise ValueError(f"unix URL must name a socket file: {text}")
    if ":" in parts.netloc:
        host, port = _split_host_port(parts.netloc, text)
        return URL(scheme, host, port, parts.path)
    return URL(scheme, parts.netloc, None, parts.path)


def parse_url_list(text: str) -> tuple[URL, ...]:
    """A comma-separated list of URLs; empty text is the empty list; repeats are dropped."""
    urls: list[URL] = []
    for item in text.split(","):
        if not item.strip():
            if text.strip():
                raise ValueError(f"empty URL in list {text!r}")
            continue
        url = parse_url(item)
        if url not in urls:
            urls.append(url)
    return tuple(urls)


def check_bind_urls(flag: str, urls: Iterable[URL]) -> None:
    """A URL to listen on must name an IP address or ``localhost`` (etcd: checkBindURLs)."""
    for url in urls:
        if url.is_unix or url.host == "localhost":
            continue
        try:
            ipaddress.ip_address(url.host)
        except ValueError:
            raise ValueError(f"--{flag}: expected IP in URL for binding ({url})") from None


def check_advertise_urls(flag: str, urls: Iterable[URL]) -> None:
    """An advertised URL must name a host and a real port (etcd: checkHostURLs)."""
    for url in urls:
        if url.is_unix:
            continue
        if not url.host:
            raise ValueError(f'--{flag} must be "host:port" (unexpected empty host in {url})')
        if url.port == 0:
            raise ValueError(f"--{flag}: cannot advertise port 0 ({url})")


@dataclass(frozen=True, slots=True)
class ClusterMember:
    """One member of ``--initial-cluster``: its name and its advertised peer URLs."""

    name: str
    peer_urls: tuple[URL, ...]

    def __str__(self) -> str:
        return ",".join(f"{self.name}={url}" for url in self.peer_urls)


def parse_initial_cluster(text: str) -> tuple[ClusterMember, ...]:
    """Parse ``name=url,name=url,...``; a name given twice gathers several URLs, in order.

    Raise ValueError for a malformed entry, a bad URL, or one URL claimed twice (etcd refuses
    an initial cluster with a duplicate URL).
    """
    members: dict[str, list[URL]] = {}
    seen: set[URL] = set()
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, url_text = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--initial-cluster entry {entry!r} is not of the form name=peer-url")
        try:
            url = parse_url(url_text)
        except ValueError as err:
            raise ValueError(f"--initial-cluster entry {entry!r}: {err}") from None
        if url in seen:
            raise ValueError(f"--initial-cluster {text!r} has duplicate url {url}")
        seen.add(url)
        members.setdefault(name, []).append(url)
    return tuple(ClusterMember(name, tuple(urls)) for name, urls in members.items())


def format_initial_cluster(members: Iterable[ClusterMember]) -> str:
    """The ``--initial-cluster`` text for ``members``."""
    return ",".join(str(member) for member in members)
