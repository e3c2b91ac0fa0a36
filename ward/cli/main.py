"""`wardctl`: etcdctl 3.4's commands, flags and output, plus Ward's own command groups.

Commands are declared as a cobra-like tree (`ward.cli.command`) so that lookup, flag parsing,
help and every error read exactly as etcdctl's. Ward's own groups that bring an argparse parser
(`pki`, from `ward.cli.pki` when it is installed) are handed the command line from their name
on.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import IO

from ward import __version__
from ward.cli.authcmd import auth_command, role_command, user_command
from ward.cli.check import check_command
from ward.cli.command import (
    Command,
    Invocation,
    UnknownCommandError,
    command_words,
    execute,
    find,
    word_index,
)
from ward.cli.completion import completion_command
from ward.cli.config import global_flags
from ward.cli.endpoint import endpoint_command
from ward.cli.exits import EXIT_ERROR, CliExit
from ward.cli.flags import FlagSet
from ward.cli.kv import del_command, get_command, put_command
from ward.cli.lease import lease_command
from ward.cli.lockelect import elect_command, lock_command
from ward.cli.maintenance import (
    alarm_command,
    compaction_command,
    defrag_command,
    snapshot_command,
)
from ward.cli.member import member_command, move_leader_command
from ward.cli.mirror import make_mirror_command
from ward.cli.policy import audit_command, policy_command
from ward.cli.txn import txn_command
from ward.cli.watch import watch_command

__all__ = ["build_root", "main", "run"]

PROG = "wardctl"
API_VERSION = "3.4"

HELP_LONG = """
Help provides help for any command in the application.
Simply type {prog} help [path to command] for full details."""


def _load_pki() -> ModuleType | None:
    # ward/cli/pki.py is written separately and may not exist yet.
    try:
        return importlib.import_module("ward.cli.pki")
    except ModuleNotFoundError as exc:
        if exc.name != "ward.cli.pki":
            raise
        return None


def _version(inv: Invocation) -> int:
    inv.out(f"{inv.prog} version: {inv.version}")
    inv.out(f"API version: {API_VERSION}")
    return 0


def _help(inv: Invocation) -> int:
    root = inv.command.root
    try:
        cmd, _ = find(root, inv.args)
    except UnknownCommandError:
        cmd = None
    if cmd is None or (cmd is root and inv.args):
        topics = " ".join(f"`{arg}`" for arg in inv.args)
        inv.err(f"Unknown help topic [{topics}]")
        cmd = root
    inv.stdout.write(cmd.usage_text(inv.version).encode())
    return 0


def build_root(prog: str = PROG, *, with_pki: bool = True) -> Command:
    """The command tree."""
    root = Command(
        use=prog,
        short="A simple command line client for Ward (and etcd3).",
        persistent_flags=global_flags(),
    )
    # etcdctl's order of adding commands, which its "Did you mean" suggestions follow.
    root.add(
        get_command(),
        put_command(),
        del_command(),
        txn_command(),
        compaction_command(),
        alarm_command(),
        defrag_command(),
        endpoint_command(),
        move_leader_command(),
        watch_command(),
        Command(use="version", short=f"Prints the version of {prog}", run=_version),
        lease_command(),
        member_command(),
        snapshot_command(),
        make_mirror_command(),
        lock_command(),
        elect_command(),
        auth_command(),
        user_command(),
        role_command(),
        check_command(),
        # Ward's own: declarative policies and the audit log.
        policy_command(),
        audit_command(),
    )
    if with_pki and importlib.util.find_spec("ward.cli.pki") is not None:
        root.add(
            Command(
                use="pki <subcommand>",
                short="Manages Ward's certificate authorities and certificates",
                run=lambda inv: 0,  # replaced by the argparse hand-over in run()
            )
        )
    root.add(
        completion_command(prog),
        Command(
            use="help [command]",
            short="Help about any command",
            long=HELP_LONG.format(prog=prog),
            run=_help,
        ),
    )
    return root


def _run_pki(pki: ModuleType, argv: list[str], words_from: int, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog)
    subparsers = parser.add_subparsers(dest="command")
    pki.add_pki_parser(subparsers)
    # The user may have typed a prefix of "pki"; argparse wants the full name.
    args = parser.parse_args(["pki", *argv[words_from + 1 :]])
    try:
        return int(pki.run_pki(args))
    finally:
        sys.stdout.flush()


def run(
    argv: list[str],
    *,
    stdin: IO[bytes],
    stdout: IO[bytes],
    stderr: IO[bytes],
    environ: Mapping[str, str],
    prog: str = PROG,
) -> int:
    """Run one command line with the given streams and environment; returns the exit code."""
    env = dict(environ)
    # etcdctl reads ETCDCTL_API and removes it before looking at ETCDCTL_* variables.
    api = env.pop("ETCDCTL_API", "")
    if api not in ("", "3"):
        stderr.write(f"unsupported API version {api}\n".encode())
        return EXIT_ERROR
    root = build_root(prog)

    def make(cmd: Command, flags: FlagSet, args: list[str]) -> Invocation:
        return Invocation(cmd, flags, args, stdin, stdout, stderr, env, prog, __version__)

    try:
        try:
            found, _ = find(root, argv)
        except UnknownCommandError:
            found = root
        if found.name == "pki" and found.parent is root:
            pki = _load_pki()
            assert pki is not None
            flags = root.flag_set()
            start = word_index(argv, command_words(argv, flags)[0], flags)
            assert start is not None
            return _run_pki(pki, argv, start, prog)
        return execute(root, argv, make)
    except CliExit as exc:
        if exc.message is not None:
            stderr.write(f"Error: {exc.message}\n".encode("utf-8", "surrogateescape"))
        return exc.code
    finally:
        stdout.flush()
        stderr.flush()


def _environ_in_process_order() -> dict[str, str]:
    # etcdctl warns about ETCDCTL_* variables in the order of the process environment, which
    # os.environ does not keep; /proc has it (elsewhere os.environ's order will do).
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read().split(b"\0")
    except OSError:
        return dict(os.environ)
    order = {os.fsdecode(item.partition(b"=")[0]): i for i, item in enumerate(raw) if item}
    keys = sorted(os.environ, key=lambda k: order.get(k, len(order)))
    return {k: os.environ[k] for k in keys}


def main(argv: list[str] | None = None) -> int:
    """The `wardctl` console script."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return run(
            args,
            stdin=sys.stdin.buffer,
            stdout=sys.stdout.buffer,
            stderr=sys.stderr.buffer,
            environ=_environ_in_process_order(),
        )
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`wardctl get --prefix "" | head`); nothing left to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
