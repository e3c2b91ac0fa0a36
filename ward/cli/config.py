"""etcdctl's global flags, their ETCDCTL_* environment variables, and the client they configure.

Environment variables are applied as etcdctl 3.4 applies them (pkg/flags.SetPflagsFromEnv), at
the moment a command first needs its client: a variable fills a global flag that was not given
on the command line; one that is also given on the command line is a fatal conflict; an
ETCDCTL_* variable naming no global flag earns a warning. Both are logged in capnslog's format.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import math

from ward.cli.command import Invocation
from ward.cli.exits import (
    EXIT_BAD_ARGS,
    EXIT_BAD_CONNECTION,
    EXIT_BAD_FEATURE,
    EXIT_ERROR,
    CliExit,
    error_text,
)
from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import GoParseError, quote
from ward.cli.output import Printer, new_printer
from ward.client import Client
from ward.credentials import find_local_credentials
from ward.errors import ClientConfigError, EtcdError, NoEndpointsError

__all__ = ["apply_env", "client_kwargs", "global_flags", "must_client", "printer"]

ENV_PREFIX = "ETCDCTL"


def global_flags() -> list[Flag]:
    """etcdctl 3.4's global (root persistent) flags, with its defaults and help texts."""
    seconds = 1_000_000_000
    return [
        Flag(
            "cacert",
            Kind.STRING,
            "",
            "verify certificates of TLS-enabled secure servers using this CA bundle",
        ),
        Flag("cert", Kind.STRING, "", "identify secure client using this TLS certificate file"),
        Flag(
            "command-timeout",
            Kind.DURATION,
            5 * seconds,
            "timeout for short running command (excluding dial timeout)",
        ),
        Flag("debug", Kind.BOOL, False, "enable client-side debug logging"),
        Flag("dial-timeout", Kind.DURATION, 2 * seconds, "dial timeout for client connections"),
        Flag(
            "discovery-srv",
            Kind.STRING,
            "",
            "domain name to query for SRV records describing cluster endpoints",
            shorthand="d",
        ),
        Flag(
            "discovery-srv-name", Kind.STRING, "", "service name to query when using DNS discovery"
        ),
        Flag("endpoints", Kind.STRING_SLICE, ["127.0.0.1:2379"], "gRPC endpoints"),
        Flag("hex", Kind.BOOL, False, "print byte strings as hex encoded strings"),
        Flag(
            "insecure-discovery",
            Kind.BOOL,
            True,
            "accept insecure SRV records describing cluster endpoints",
        ),
        Flag(
            "insecure-skip-tls-verify",
            Kind.BOOL,
            False,
            "skip server certificate verification (CAUTION: this option should be enabled only "
            "for testing purposes)",
        ),
        Flag(
            "insecure-transport",
            Kind.BOOL,
            True,
            "disable transport security for client connections",
        ),
        Flag("keepalive-time", Kind.DURATION, 2 * seconds, "keepalive time for client connections"),
        Flag(
            "keepalive-timeout",
            Kind.DURATION,
            6 * seconds,
            "keepalive timeout for client connections",
        ),
        Flag("key", Kind.STRING, "", "identify secure client using this TLS key file"),
        Flag(
            "password",
            Kind.STRING,
            "",
            "password for authentication (if this option is used, --user option shouldn't "
            "include password)",
        ),
        Flag(
            "user",
            Kind.STRING,
            "",
            "username[:password] for authentication (prompt if password is not supplied)",
        ),
        Flag(
            "write-out",
            Kind.STRING,
            "simple",
            "set the output format (fields, json, protobuf, simple, table)",
            shorthand="w",
        ),
    ]


def env_name(flag_name: str) -> str:
    """ETCDCTL_ plus the flag name upper-cased with dashes as underscores."""
    return f"{ENV_PREFIX}_{flag_name.upper().replace('-', '_')}"


def _log(inv: Invocation, level: str, message: str) -> None:
    # capnslog's line format, which etcdctl 3.4's pkg/flags logs through.
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    inv.err(f"{stamp} {level} | pkg/flags: {message}")


def apply_env(inv: Invocation) -> None:
    """Fill unset inherited flags from ETCDCTL_* variables (once per invocation)."""
    if inv.env_applied:
        return
    inv.env_applied = True
    given: set[str] = set()
    used: set[str] = set()
    for flag in inv.command.inherited_flags():
        name = env_name(flag.name)
        if flag.changed:
            given.add(name)
            continue
        value = inv.environ.get(name, "")
        if value:
            used.add(name)
            # etcdctl ignores a value it cannot parse and keeps the default.
            with contextlib.suppress(GoParseError):
                flag.set(value)
    for name, value in inv.environ.items():
        if name in used:
            continue
        if name in given:
            _log(
                inv,
                "C",
                f"conflicting environment variable {quote(name)} is shadowed by "
                "corresponding command-line flag (either unset environment variable or "
                "disable flag)",
            )
            raise CliExit(EXIT_ERROR)
        if name.startswith(ENV_PREFIX + "_"):
            _log(inv, "W", f"unrecognized environment variable {name}={value}")
    if inv.flags.value("debug"):
        for flag in sorted(inv.command.inherited_flags(), key=lambda f: f.name):
            inv.err(f"{env_name(flag.name)}={flag.value_text()}")


def printer(inv: Invocation) -> Printer:
    """The printer for --write-out, or exit 4 for a format etcdctl does not have."""
    found = new_printer(
        str(inv.flags.value("write-out")), bool(inv.flags.value("hex")), inv.stdout, inv.stderr
    )
    if found is None:
        raise CliExit(EXIT_BAD_FEATURE, "unsupported output format")
    return found


def _auth(inv: Invocation) -> tuple[str | None, str | None]:
    user = str(inv.flags.value("user"))
    password = str(inv.flags.value("password"))
    if not user:
        return None, None
    if password:
        # etcdctl 3.4 then takes the whole --user value as the name, colon and all.
        return user, password
    name, sep, secret = user.partition(":")
    if sep:
        return name, secret
    try:
        return user, getpass.getpass("Password: ")
    except (EOFError, OSError) as exc:
        raise CliExit(EXIT_ERROR, str(exc) or "EOF") from None


def _seconds(inv: Invocation, name: str) -> float:
    value = inv.flags.value(name)
    assert isinstance(value, int)
    return value / 1e9


def command_timeout(inv: Invocation) -> float:
    """--command-timeout in seconds."""
    return _seconds(inv, "command-timeout")


def client_kwargs(inv: Invocation, *, with_auth: bool = True) -> dict[str, object]:
    """Keyword arguments for `ward.Client` from the global flags."""
    if inv.flags.value("discovery-srv"):
        raise CliExit(EXIT_ERROR, "--discovery-srv is not supported by this client")
    endpoints = inv.flags.value("endpoints")
    assert isinstance(endpoints, list)
    kwargs: dict[str, object] = {
        "endpoints": list(endpoints),
        "dial_timeout": _seconds(inv, "dial-timeout"),
        "command_timeout": _seconds(inv, "command-timeout"),
        "cacert": inv.flags.value("cacert") or None,
        "cert": inv.flags.value("cert") or None,
        "key": inv.flags.value("key") or None,
        "insecure_skip_verify": bool(inv.flags.value("insecure-skip-tls-verify")),
        # --insecure-transport=false asks for TLS even without certificates.
        "secure": not inv.flags.value("insecure-transport"),
    }
    if kwargs["insecure_skip_verify"]:
        # SECURITY 19: never skip verification silently (etcdctl says nothing).
        inv.err(
            "warning: --insecure-skip-tls-verify: the server's certificate is not verified;"
            " anyone between you and the server can impersonate it"
        )
    if not (kwargs["cacert"] or kwargs["cert"] or kwargs["key"]):
        add_local_credentials(inv, kwargs)
    # etcd answers pings more often than every 5s with GOAWAY; only ping when asked to.
    if inv.flags["keepalive-time"].changed:
        kwargs["keepalive_time"] = _seconds(inv, "keepalive-time")
    if inv.flags["keepalive-timeout"].changed:
        kwargs["keepalive_timeout"] = _seconds(inv, "keepalive-timeout")
    if with_auth:
        kwargs["user"], kwargs["password"] = _auth(inv)
    return kwargs


def new_client(inv: Invocation, kwargs: dict[str, object]) -> Client:
    """A client from `client_kwargs`, authenticated; exits as etcdctl does when that fails."""
    try:
        client = Client(**kwargs)  # type: ignore[arg-type]
    except NoEndpointsError as exc:
        # etcd's Go client reports this while connecting, not while configuring.
        raise CliExit(EXIT_BAD_CONNECTION, str(exc)) from None
    except ClientConfigError as exc:
        raise CliExit(EXIT_BAD_ARGS, str(exc)) from None
    if kwargs.get("user"):
        try:
            # etcd's Go client authenticates while connecting, within the dial timeout.
            client.authenticate(timeout=max(_seconds(inv, "dial-timeout"), 0.0) or math.inf)
        except EtcdError as exc:
            client.close()
            raise CliExit(EXIT_BAD_CONNECTION, error_text(exc)) from None
    return client


def must_client(inv: Invocation) -> tuple[Client, Printer]:
    """etcdctl's mustClientFromCmd: environment, output format, then a connected client."""
    apply_env(inv)
    kwargs = client_kwargs(inv)
    display = printer(inv)
    return new_client(inv, kwargs), display


def add_local_credentials(inv: Invocation, kwargs: dict[str, object]) -> None:
    """Ward's secure default, for a command given no TLS files: a local `ward` made a CA and an
    admin certificate in its data directory; use them (ward.credentials says where it looks)."""
    try:
        found = find_local_credentials(inv.environ)
    except ClientConfigError as exc:
        raise CliExit(EXIT_BAD_ARGS, str(exc)) from None
    if found is not None:
        kwargs.update(found.as_kwargs())
