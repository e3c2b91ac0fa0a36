"""Maintenance commands: `compaction`, `defrag`, `snapshot save` and `alarm list|disarm`."""

from __future__ import annotations

import contextlib
import os
from typing import IO, cast

from ward.cli.command import Command, Invocation
from ward.cli.config import (
    apply_env,
    client_kwargs,
    command_timeout,
    must_client,
    new_client,
    printer,
)
from ward.cli.endpoint import endpoints_from_cluster
from ward.cli.exits import (
    EXIT_BAD_ARGS,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    CliExit,
    error_text,
    grpc_error_text,
)
from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import GoParseError, parse_int
from ward.cli.progress import Progress, progress_bar
from ward.cli.snapshot import snapshot_restore_command, snapshot_status_command
from ward.errors import ClientConfigError, EtcdError

__all__ = ["alarm_command", "compaction_command", "defrag_command", "snapshot_command"]


# -- compaction ------------------------------------------------------------------------------


def _run_compaction(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    try:
        revision = parse_int(inv.args[0], 10, 64)
    except GoParseError as exc:
        raise CliExit(EXIT_ERROR, str(exc)) from None
    client, _ = must_client(inv)
    with client:
        try:
            client.compact(
                revision,
                physical=bool(inv.flags.value("physical")),
                timeout=command_timeout(inv),
            )
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    inv.out(f"compacted revision {revision}")
    return 0


def compaction_command() -> Command:
    """The `compaction` command."""
    return Command(
        use="compaction [options] <revision>",
        short="Compacts the event history in etcd",
        run=_run_compaction,
        flags=[
            Flag(
                "physical",
                Kind.BOOL,
                False,
                "'true' to wait for compaction to physically remove all old revisions",
            )
        ],
    )


# -- defrag ----------------------------------------------------------------------------------


def _run_defrag(inv: Invocation) -> int:
    if inv.flags.value("data-dir"):
        # etcdctl defragments an offline bbolt file here; Ward's storage is not bbolt.
        raise CliExit(EXIT_ERROR, "defragmenting a data directory (--data-dir) is not supported")
    client, _ = must_client(inv)
    failures = 0
    with client:
        for ep in endpoints_from_cluster(inv):
            try:
                client.defragment(ep, timeout=command_timeout(inv))
            except (EtcdError, ClientConfigError) as exc:
                inv.err(f"Failed to defragment etcd member[{ep}] ({error_text(exc)})")
                failures += 1
            else:
                inv.out(f"Finished defragmenting etcd member[{ep}]")
    if failures:
        raise CliExit(EXIT_ERROR)
    return 0


def defrag_command() -> Command:
    """The `defrag` command."""
    return Command(
        use="defrag",
        short="Defragments the storage of the etcd members with given endpoints",
        run=_run_defrag,
        flags=[
            Flag("cluster", Kind.BOOL, False, "use all endpoints from the cluster member list"),
            Flag(
                "data-dir",
                Kind.STRING,
                "",
                "Optional. If present, defragments a data directory not in use by etcd.",
            ),
        ],
    )


# -- snapshot --------------------------------------------------------------------------------


def _run_snapshot_save(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "snapshot save expects one argument")
    apply_env(inv)
    kwargs = client_kwargs(inv)
    printer(inv)
    path = inv.args[0]
    endpoints = kwargs["endpoints"]
    assert isinstance(endpoints, list)
    if len(endpoints) != 1:
        listed = " ".join(endpoints)
        raise CliExit(
            EXIT_INTERRUPTED,
            f"snapshot must be requested to one selected node, not multiple [{listed}]",
        )
    try:
        client = new_client(inv, kwargs)
    except CliExit as exc:
        raise CliExit(
            EXIT_BAD_ARGS if exc.code == EXIT_BAD_ARGS else EXIT_INTERRUPTED, exc.message
        ) from None
    # Without an explicit --command-timeout the download may take as long as it needs.
    timeout = command_timeout(inv) if inv.flags["command-timeout"].changed else float("inf")
    part = path + ".part"
    with client:
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise CliExit(
                EXIT_INTERRUPTED, f"could not open {part} ({_os_error(part, exc)})"
            ) from None
        try:
            with os.fdopen(fd, "wb") as out:
                # Bytes received so far, on a terminal only (etcdctl shows no progress here).
                bar = progress_bar(inv, None, unit="B")
                try:
                    with bar:
                        client.snapshot(cast(IO[bytes], _Counted(out, bar)), timeout=timeout)
                except EtcdError as exc:
                    # etcd's Go client passes snapshot stream errors on unconverted, so even
                    # etcd's own errors read in gRPC's wording here.
                    raise CliExit(EXIT_INTERRUPTED, grpc_error_text(exc)) from None
                out.flush()
                os.fsync(out.fileno())
            try:
                os.replace(part, path)
            except OSError as exc:
                reason = _os_error(f"{part} {path}", exc, "rename")
                raise CliExit(
                    EXIT_INTERRUPTED, f"could not rename {part} to {path} ({reason})"
                ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(part)
    inv.out(f"Snapshot saved at {path}")
    return 0


class _Counted:
    """A writer that passes everything on to `out` and counts it on `bar` (the snapshot
    stream only writes to its output)."""

    def __init__(self, out: IO[bytes], bar: Progress) -> None:
        self._out = out
        self._bar = bar

    def write(self, data: bytes) -> int:
        written = self._out.write(data)
        self._bar.add(len(data))
        return written


def _os_error(path: str, exc: OSError, op: str = "open") -> str:
    # Go's *PathError text: "open <path>: no such file or directory".
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"{op} {path}: {reason[:1].lower()}{reason[1:]}"


def snapshot_command() -> Command:
    """The `snapshot` group: save (here), status and restore (`ward.cli.snapshot`)."""
    group = Command(use="snapshot <subcommand>", short="Manages etcd node snapshots")
    group.add(
        Command(
            use="save <filename>",
            short="Stores an etcd node backend snapshot to a given file",
            run=_run_snapshot_save,
        ),
        snapshot_restore_command(),
        snapshot_status_command(),
    )
    return group


# -- alarm -----------------------------------------------------------------------------------


def _run_alarm_list(inv: Invocation) -> int:
    if inv.args:
        raise CliExit(EXIT_BAD_ARGS, "alarm list command accepts no arguments")
    client, display = must_client(inv)
    with client:
        try:
            resp = client.alarm_list(timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    display.alarm(resp)
    return 0


def _run_alarm_disarm(inv: Invocation) -> int:
    if inv.args:
        raise CliExit(EXIT_BAD_ARGS, "alarm disarm command accepts no arguments")
    client, display = must_client(inv)
    with client:
        try:
            resp = client.alarm_disarm(timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    display.alarm(resp)
    return 0


def alarm_command() -> Command:
    """The `alarm` group."""
    group = Command(use="alarm <subcommand>", short="Alarm related commands")
    group.add(
        Command(use="disarm", short="Disarms all alarms", run=_run_alarm_disarm),
        Command(use="list", short="Lists all alarms", run=_run_alarm_list),
    )
    return group
