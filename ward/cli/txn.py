"""`txn`: read compares and the two branches from stdin, as etcdctl 3.4 reads them.

Input is three blocks, each ended by an empty line: compares like `mod("key1") > "0"`, then the
success operations, then the failure operations, each a `put`, `get` or `del` command line. The
compare syntax is Go's `fmt.Sscanf(rest, "%q) %s %q")` and operation lines are split by
etcdctl's `argify`; both are reproduced here down to their error messages and quirks.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass
from typing import IO

from ward.cli.command import Command, Invocation, UnknownCommandError, find
from ward.cli.config import command_timeout, must_client
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INVALID_INPUT, CliExit, error_text
from ward.cli.flags import Flag, FlagError, Kind
from ward.cli.gofmt import GoParseError, parse_int, quote_bytes, unquote
from ward.cli.kv import (
    DEL_USE,
    GET_USE,
    PUT_USE,
    del_flags,
    del_op,
    get_flags,
    get_op,
    put_flags,
    put_op,
)
from ward.cli.usage import cobra_usage
from ward.errors import EtcdError
from ward.txn import Cmp, CmpSubject, create_revision, lease, mod_revision, value, version
from wardpb.etcdserverpb import rpc_pb2

__all__ = ["ScanResult", "argify", "parse_compare", "parse_op", "read_line", "txn_command"]


# -- reading lines ---------------------------------------------------------------------------


def read_line(stdin: IO[bytes]) -> bytes:
    """bufio.Reader.ReadString('\\n') then strings.TrimSpace: a last line without its newline
    makes etcdctl stop with "EOF", whatever it holds."""
    line = stdin.readline()
    if not line.endswith(b"\n"):
        raise CliExit(EXIT_INVALID_INPUT, "EOF")
    return os.fsencode(os.fsdecode(line).strip(_GO_SPACE_CHARS))


# Go's unicode.IsSpace.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_GO_SPACE_CHARS = "".join(sorted(_GO_SPACES))


# -- compares: Go's fmt.Sscanf("%q) %s %q") ------------------------------------------------


class _ScanError(Exception):
    pass


class _Scanner:
    """Just enough of Go's fmt scanning state for the compare format."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def read(self) -> str:
        ch = self.peek()
        if ch is None:
            raise _ScanError("unexpected EOF")
        self.pos += 1
        return ch

    def skip_space(self) -> None:
        while (ch := self.peek()) is not None and ch in _GO_SPACES:
            self.pos += 1

    def quoted(self) -> str:
        self.skip_space()
        quote = self.read()
        if quote == "`":
            chars = []
            while (ch := self.read()) != "`":
                chars.append(ch)
            return "".join(chars)
        if quote != '"':
            raise _ScanError("expected quoted string")
        chars = ['"']
        while True:
            ch = self.read()
            chars.append(ch)
            if ch == "\\":
                chars.append(self.read())
            elif ch == '"':
                break
        try:
            raw = unquote("".join(chars).encode("utf-8", "surrogateescape"))
        except GoParseError as exc:
            raise _ScanError(str(exc)) from None
        return raw.decode("utf-8", "surrogateescape")

    def word(self) -> str:
        self.skip_space()
        if self.peek() is None:
            raise _ScanError("unexpected EOF")
        start = self.pos
        while (ch := self.peek()) is not None and ch not in _GO_SPACES:
            self.pos += 1
        return self.text[start : self.pos]

    def literal(self, expected: str) -> None:
        if self.read() != expected:
            raise _ScanError("input does not match format")

    def space(self) -> None:
        # A space in the format needs at least one space in the input, or its end.
        ch = self.peek()
        if ch is not None and ch not in _GO_SPACES:
            raise _ScanError("expected space in input to match format")
        self.skip_space()


@dataclass(frozen=True)
class ScanResult:
    """What Sscanf("%q) %s %q") made of a compare's tail: how many items, and their values."""

    count: int
    key: str
    op: str
    value: str


def scan_compare(rest: str) -> ScanResult:
    """Go's fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val), stopping at the first failure."""
    scanner = _Scanner(rest)
    found: list[str] = []
    with contextlib.suppress(_ScanError):
        found.append(scanner.quoted())
        scanner.literal(")")
        scanner.space()
        found.append(scanner.word())
        scanner.space()
        found.append(scanner.quoted())
    padded = [*found, "", "", ""]
    return ScanResult(len(found), padded[0], padded[1], padded[2])


def _subject(target: str, key: bytes) -> tuple[CmpSubject, bool] | None:
    # (subject, operand is an integer) per etcdctl's target spellings.
    if target in ("ver", "version"):
        return version(key), True
    if target in ("c", "create"):
        return create_revision(key), True
    if target in ("m", "mod"):
        return mod_revision(key), True
    if target in ("val", "value"):
        return value(key), False
    if target == "lease":
        return lease(key), True
    return None


def parse_compare(line: bytes) -> Cmp:
    """One compare line, e.g. `mod("key1") > "0"`; exits with etcdctl's message if malformed."""
    text = os.fsdecode(line)
    target, paren, rest = text.partition("(")
    if not paren:
        raise CliExit(EXIT_INVALID_INPUT, f"malformed comparison: {text}")
    scan = scan_compare(rest)
    if scan.count != 3:
        got = f"{target}({_q(scan.key)}) {scan.op} {_q(scan.value)}"
        raise CliExit(EXIT_INVALID_INPUT, f"malformed comparison: {text}; got {got}")
    key = os.fsencode(scan.key)
    found = _subject(target, key)
    if found is None:
        raise CliExit(EXIT_INVALID_INPUT, f"malformed comparison: {text} (unknown target {target})")
    subject, numeric = found
    operand: int | bytes
    if numeric:
        try:
            # Leases are written in hex, as everywhere in etcdctl. (etcdctl 3.4 crashes on lease
            # compares; 3.5 parses them like this.)
            operand = parse_int(scan.value, 16 if target == "lease" else 10, 64)
        except GoParseError:
            raise CliExit(EXIT_INVALID_INPUT, f"invalid txn compare request: {text}") from None
    else:
        operand = os.fsencode(scan.value)
    if scan.op not in ("=", "!=", "<", ">"):
        # etcdctl 3.4 panics here ("Unknown result op"); report it as bad input instead.
        raise CliExit(EXIT_INVALID_INPUT, f"invalid txn compare request: {text}")
    return subject.compare(scan.op, operand)


def _q(text: str) -> str:
    return quote_bytes(os.fsencode(text))


# -- operations: etcdctl's argify and a nested put/get/del command line -----------------------

# etcdctl's argify pattern, with RE2's ASCII-only \s spelled out.
_ARG_RE = re.compile(rb'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^\'"\t\n\f\r ][^\t\n\f\r ]*[^\'"\t\n\f\r ]?')


def argify(line: bytes) -> list[bytes]:
    """Split an operation line into arguments as etcdctl's argify does.

    Double-quoted arguments are unquoted with Go's rules. Single-quoted ones keep etcdctl 3.4's
    slicing quirk, `arg[1:len(args)-1]` (the length of the argument list, not of the argument),
    so that the same input stores the same keys with both tools.
    """
    args = _ARG_RE.findall(line)
    for i, arg in enumerate(args):
        if arg.startswith(b"'"):
            end = len(args) - 1
            if end < 1:
                raise CliExit(2, f"runtime error: slice bounds out of range [1:{end}]")
            if end > len(arg):
                raise CliExit(
                    2, f"runtime error: slice bounds out of range [:{end}] with length {len(arg)}"
                )
            args[i] = arg[1:end]
        elif arg.startswith(b'"'):
            scan = _Scanner(os.fsdecode(arg))
            try:
                args[i] = os.fsencode(scan.quoted())
            except _ScanError as exc:
                raise CliExit(EXIT_INVALID_INPUT, str(exc)) from None
    return args


def _no_input() -> bytes:
    # Inside txn, stdin is the transaction itself: a put without a value finds nothing to read.
    return b""


def _op_tree(captured: list[rpc_pb2.RequestOp]) -> Command:
    # A fresh nameless root with put/get/del, as etcdctl builds one per operation line.
    def run_put(inv: Invocation) -> None:
        captured.append(rpc_pb2.RequestOp(request_put=put_op(inv.flags, inv.args, _no_input)))

    def run_get(inv: Invocation) -> None:
        captured.append(rpc_pb2.RequestOp(request_range=get_op(inv.flags, inv.args)))

    def run_del(inv: Invocation) -> None:
        captured.append(rpc_pb2.RequestOp(request_delete_range=del_op(inv.flags, inv.args)))

    root = Command(use="", short="")
    root.add(
        Command(use=PUT_USE, short="", run=run_put, flags=put_flags()),
        Command(use=GET_USE, short="", run=run_get, flags=get_flags()),
        Command(use=DEL_USE, short="", run=run_del, flags=del_flags()),
    )
    return root


def parse_op(line: bytes, stderr: IO[bytes]) -> rpc_pb2.RequestOp:
    """One operation line (`put k v`, `get k --prefix`, `del k`) as a RequestOp."""
    text = os.fsdecode(line)
    args = [os.fsdecode(a) for a in argify(line)]
    if len(args) < 2:
        raise CliExit(EXIT_INVALID_INPUT, f"invalid txn compare request: {text}")
    invalid = CliExit(EXIT_INVALID_INPUT, f"invalid txn request: {text}")
    captured: list[rpc_pb2.RequestOp] = []
    root = _op_tree(captured)
    try:
        cmd, rest = find(root, args)
    except UnknownCommandError:
        raise invalid from None
    if cmd.run is None:
        raise invalid
    flags = cmd.flag_set()
    try:
        positional = flags.parse(rest)
    except FlagError:
        # cobra's default usage for the nested command, then etcdctl's own error.
        stderr.write(cobra_usage(cmd.use_line(), cmd.local_flags()).encode())
        raise invalid from None
    if flags.value("help"):
        # etcdctl prints help here and then waits forever for an operation; refuse instead.
        raise invalid
    cmd.run(Invocation(cmd, flags, positional, io.BytesIO(), stderr, stderr, {}, "", ""))
    return captured[0]


# -- the command -----------------------------------------------------------------------------


def _read_compares(stdin: IO[bytes]) -> list[Cmp]:
    compares = []
    while line := read_line(stdin):
        compares.append(parse_compare(line))
    return compares


def _read_ops(stdin: IO[bytes], stderr: IO[bytes]) -> list[rpc_pb2.RequestOp]:
    ops = []
    while line := read_line(stdin):
        ops.append(parse_op(line, stderr))
    return ops


def _run_txn(inv: Invocation) -> int:
    if inv.args:
        raise CliExit(EXIT_BAD_ARGS, "txn command does not accept argument")
    client, display = must_client(inv)
    interactive = bool(inv.flags.value("interactive"))
    with client:

        def prompt(text: str) -> None:
            if interactive:
                inv.out(text)
                inv.stdout.flush()

        prompt("compares:")
        compares = _read_compares(inv.stdin)
        prompt("success requests (get, put, del):")
        success = _read_ops(inv.stdin, inv.stderr)
        prompt("failure requests (get, put, del):")
        failure = _read_ops(inv.stdin, inv.stderr)
        try:
            resp = client.txn(compares, success, failure, timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    display.txn(resp)
    return 0


def txn_command() -> Command:
    """The `txn` command."""
    return Command(
        use="txn [options]",
        short="Txn processes all the requests in one transaction",
        run=_run_txn,
        flags=[
            Flag(
                "interactive",
                Kind.BOOL,
                False,
                "Input transaction in interactive mode",
                shorthand="i",
            )
        ],
    )
