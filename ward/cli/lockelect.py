"""`lock` and `elect`, as etcdctl 3.4 has them.

etcdctl runs its concurrency recipes (a session lease, txns, watches) on the client; wardctl asks
the Lock and Election services, which keep the same keys (`<name>/<lease in hex>`) and the same
order (creation revision), so the two tools lock and elect against each other. As in etcdctl,
a session is a lease kept alive in the background: `lock --ttl` seconds (default 10), 60 for
`elect`; SIGINT or SIGTERM unlocks or resigns, and a lost session ends the command with an error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from ward.cli.command import Command, Invocation
from ward.cli.config import must_client
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_ERROR, CliExit, error_text
from ward.cli.flags import Flag, Kind
from ward.cli.output import Printer
from ward.client import Client
from ward.errors import EtcdError
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2

__all__ = ["elect_command", "lock_command"]

T = TypeVar("T")
_POLL_S = 0.1
_ELECT_TTL = 60  # concurrency.NewSession's default

LOCK_LONG = """
Acquires a named lock and prints its key; holds it until interrupted (SIGINT, SIGTERM), then
releases it. With a command, runs it while holding the lock (ETCD_LOCK_KEY and ETCD_LOCK_REV
in its environment) and releases the lock when it exits.

Examples:
  wardctl lock mylock
  wardctl lock --ttl 30 mylock ./critical-section.sh
"""

ELECT_LONG = """
Campaigns in a named election with a proposal, prints the leader's key and value once elected
and leads until interrupted (then resigns). With --listen, prints each leader as it is elected.

Examples:
  wardctl elect myelection alice
  wardctl elect -l myelection
"""


class _Session:
    """A lease kept alive until closed; `lost` is set when it can no longer be renewed."""

    def __init__(self, client: Client, ttl: int) -> None:
        self.client = client
        self.lease_id = client.lease_grant(ttl).ID
        self.lost = threading.Event()
        self._keepalive = client.keep_alive(self.lease_id)
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        try:
            for _ in self._keepalive:
                pass
        except EtcdError:
            pass
        self.lost.set()

    def close(self) -> None:
        """Stop renewing and revoke the lease (whatever it still holds goes with it)."""
        self._keepalive.close()
        with suppress(EtcdError):
            self.client.lease_revoke(self.lease_id, timeout=5)


@contextmanager
def _signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (handlers restored after)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _in_background(fn: Callable[[], T], stop: threading.Event) -> T | None:
    """Run a blocking call in a thread; None if `stop` is set first (the call is abandoned)."""
    result: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            result.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    while not done.wait(_POLL_S):
        if stop.is_set():
            return None
    if isinstance(result[0], BaseException):
        raise result[0]
    value: T = result[0]
    return value


def _wait(*events: threading.Event) -> threading.Event:
    while True:
        for ev in events:
            if ev.is_set():
                return ev
        events[0].wait(_POLL_S)


def _print_kv(display: Printer, header: rpc_pb2.ResponseHeader, kv: kv_pb2.KeyValue) -> None:
    display.get(rpc_pb2.RangeResponse(header=header, kvs=[kv], count=1))


def _run_lock(inv: Invocation) -> int:
    if not inv.args:
        raise CliExit(
            EXIT_BAD_ARGS, "lock takes a lock name argument and an optional command to execute"
        )
    ttl = int(str(inv.flags.value("ttl")))
    client, display = must_client(inv)
    with client, _signals() as stop:
        try:
            session = _Session(client, ttl)
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
        try:
            return _hold_lock(inv, client, display, session, stop)
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
        finally:
            session.close()


def _hold_lock(
    inv: Invocation, client: Client, display: Printer, session: _Session, stop: threading.Event
) -> int:
    name, command = inv.args[0], inv.args[1:]
    locked = _in_background(lambda: client.lock(name, session.lease_id), stop)
    if locked is None:
        raise CliExit(EXIT_ERROR, "context canceled")
    if command:
        env = {
            "ETCD_LOCK_KEY": locked.key.decode("utf-8", "surrogateescape"),
            "ETCD_LOCK_REV": str(locked.header.revision),
            **os.environ,
        }
        inv.stdout.flush()
        try:
            code = subprocess.run(command, env=env, check=False).returncode
        except OSError as exc:
            client.unlock(locked.key, timeout=5)
            raise CliExit(EXIT_ERROR, f"exec: {command[0]!r}: {exc.strerror}") from None
        client.unlock(locked.key, timeout=5)
        if code != 0:
            raise CliExit(EXIT_ERROR, f"exit status {code}")
        return 0
    got = client.get(locked.key)
    if not got.kvs:
        raise CliExit(EXIT_ERROR, "lock lost on init")
    display.get(got)
    inv.stdout.flush()
    if _wait(stop, session.lost) is stop:
        client.unlock(locked.key, timeout=5)
        return 0
    raise CliExit(EXIT_ERROR, "session expired")


def _run_elect(inv: Invocation) -> int:
    if len(inv.args) not in (1, 2):
        raise CliExit(
            EXIT_BAD_ARGS,
            "elect takes one election name argument and an optional proposal argument",
        )
    listen = bool(inv.flags.value("listen"))
    if len(inv.args) == 1 and not listen:
        raise CliExit(EXIT_BAD_ARGS, "no proposal argument but -l not set")
    if len(inv.args) == 2 and listen:
        raise CliExit(EXIT_BAD_ARGS, "proposal given but -l is set")
    client, display = must_client(inv)
    with client, _signals() as stop:
        try:
            if listen:
                return _observe(inv, client, display, stop)
            return _campaign(inv, client, display, stop)
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None


def _observe(inv: Invocation, client: Client, display: Printer, stop: threading.Event) -> int:
    ended = threading.Event()
    failure: list[EtcdError] = []

    def follow() -> None:
        try:
            for resp in client.observe(inv.args[0]):
                _print_kv(display, resp.header, resp.kv)
                inv.stdout.flush()
        except EtcdError as exc:
            failure.append(exc)
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    if _wait(stop, ended) is stop:
        return 0
    raise CliExit(EXIT_ERROR, error_text(failure[0]) if failure else "elect: observer lost")


def _campaign(inv: Invocation, client: Client, display: Printer, stop: threading.Event) -> int:
    name, proposal = inv.args
    session = _Session(client, _ELECT_TTL)
    try:
        won = _in_background(lambda: client.campaign(name, proposal, session.lease_id), stop)
        if won is None:
            raise CliExit(EXIT_ERROR, "context canceled")
        display.get(client.get(won.leader.key))
        inv.stdout.flush()
        if _wait(stop, session.lost) is not stop:
            raise CliExit(EXIT_ERROR, "elect: session expired")
        client.resign(won.leader, timeout=5)
        return 0
    finally:
        session.close()


def lock_command() -> Command:
    """The `lock` command."""
    return Command(
        use="lock <lockname> [exec-command arg1 arg2 ...]",
        short="Acquires a named lock",
        long=LOCK_LONG,
        run=_run_lock,
        flags=[Flag("ttl", Kind.INT64, 10, "timeout for session")],
    )


def elect_command() -> Command:
    """The `elect` command."""
    return Command(
        use="elect <election-name> [proposal]",
        short="Observes and participates in leader election",
        long=ELECT_LONG,
        run=_run_elect,
        flags=[Flag("listen", Kind.BOOL, False, "observation mode", shorthand="l")],
    )
