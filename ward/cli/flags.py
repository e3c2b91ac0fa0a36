"""Command-line flags with the syntax and messages of spf13/pflag, which etcdctl parses with.

argparse cannot reproduce pflag's behaviour closely enough for byte-identical errors: bool flags
take a value only as `--flag=value`, `-wjson` and `-w=json` are shorthand forms, and every
failure has its own wording (`unknown flag: --x`, `flag needs an argument: 'w' in -w`,
`invalid argument "x" for "--rev" flag: ...`). This module is that parser.
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from ward.cli.gofmt import (
    GoParseError,
    format_duration,
    parse_bool,
    parse_duration,
    parse_int,
    quote,
)

__all__ = ["Flag", "FlagError", "FlagSet", "Kind"]


class FlagError(Exception):
    """A command line that does not parse; the message is pflag's."""


class Kind(enum.Enum):
    """The value type of a flag (pflag's Value.Type())."""

    BOOL = "bool"
    STRING = "string"
    INT64 = "int64"
    DURATION = "duration"
    STRING_SLICE = "stringSlice"


@dataclass(eq=False)
class Flag:
    """One flag definition and its current value."""

    name: str
    kind: Kind
    default: object
    usage: str
    shorthand: str = ""
    # Accepted but left out of help (for additions etcdctl 3.4 does not have).
    hidden: bool = False
    value: object = None
    changed: bool = False
    # A stringSlice flag's first Set replaces the default, later ones append.
    _slice_set: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the default, as if never given."""
        self.value = list(self.default) if isinstance(self.default, list) else self.default
        self.changed = False
        self._slice_set = False

    @property
    def no_opt_default(self) -> str:
        """The value used when the flag is given without one (bools only, as in etcdctl)."""
        return "true" if self.kind is Kind.BOOL else ""

    def set(self, raw: str) -> None:
        """Set from text; raises `GoParseError` with Go's message if it does not parse."""
        if self.kind is Kind.BOOL:
            self.value = parse_bool(raw)
        elif self.kind is Kind.STRING:
            self.value = raw
        elif self.kind is Kind.INT64:
            self.value = parse_int(raw, 0, 64)
        elif self.kind is Kind.DURATION:
            self.value = parse_duration(raw)
        else:
            items = _read_csv(raw)
            if self._slice_set:
                assert isinstance(self.value, list)
                self.value.extend(items)
            else:
                self.value = items
                self._slice_set = True
        self.changed = True

    def default_text(self) -> str:
        """pflag's DefValue: the default as its Value.String() prints it."""
        return _value_text(self.kind, self.default)

    def value_text(self) -> str:
        """The current value as Value.String() prints it."""
        return _value_text(self.kind, self.value)


def _read_csv(raw: str) -> list[str]:
    if raw == "":
        return []
    try:
        return next(csv.reader([raw], strict=True))
    except csv.Error as exc:
        raise GoParseError(str(exc)) from None


def _value_text(kind: Kind, value: object) -> str:
    if kind is Kind.BOOL:
        return "true" if value else "false"
    if kind is Kind.DURATION:
        assert isinstance(value, int)
        return format_duration(value)
    if kind is Kind.STRING_SLICE:
        assert isinstance(value, list)
        return "[" + ",".join(value) + "]"
    return str(value)


class FlagSet:
    """The flags a command accepts (its own and the ones it inherits), parsed as pflag does."""

    def __init__(self, flags: Iterable[Flag]) -> None:
        self.flags: dict[str, Flag] = {}
        self.shorthands: dict[str, Flag] = {}
        for flag in flags:
            self.flags[flag.name] = flag
            if flag.shorthand:
                self.shorthands[flag.shorthand] = flag

    def __getitem__(self, name: str) -> Flag:
        return self.flags[name]

    def value(self, name: str) -> object:
        """The current value of flag `name`."""
        return self.flags[name].value

    def parse(self, args: list[str]) -> list[str]:
        """Set flags from `args` and return the positional arguments, in order."""
        positional: list[str] = []
        rest = list(args)
        while rest:
            arg = rest.pop(0)
            if len(arg) < 2 or arg[0] != "-":
                positional.append(arg)
            elif arg == "--":
                positional.extend(rest)
                break
            elif arg[1] == "-":
                self._parse_long(arg, rest)
            else:
                shorthands = arg[1:]
                while shorthands:
                    shorthands = self._parse_short(shorthands, rest)
        return positional

    def _parse_long(self, arg: str, rest: list[str]) -> None:
        body = arg[2:]
        if not body or body[0] in "-=":
            raise FlagError(f"bad flag syntax: {arg}")
        name, has_value, text = body.partition("=")
        flag = self.flags.get(name)
        if flag is None:
            raise FlagError(f"unknown flag: --{name}")
        if has_value:
            value = text
        elif flag.no_opt_default:
            value = flag.no_opt_default
        elif rest:
            value = rest.pop(0)
        else:
            raise FlagError(f"flag needs an argument: {arg}")
        self._set(flag, value)

    def _parse_short(self, shorthands: str, rest: list[str]) -> str:
        char = shorthands[0]
        flag = self.shorthands.get(char)
        if flag is None:
            raise FlagError(f"unknown shorthand flag: {_go_char(char)} in -{shorthands}")
        remaining = shorthands[1:]
        if len(shorthands) > 2 and shorthands[1] == "=":
            value, remaining = shorthands[2:], ""
        elif flag.no_opt_default:
            value = flag.no_opt_default
        elif len(shorthands) > 1:
            value, remaining = shorthands[1:], ""
        elif rest:
            value = rest.pop(0)
        else:
            raise FlagError(f"flag needs an argument: {_go_char(char)} in -{shorthands}")
        self._set(flag, value)
        return remaining

    @staticmethod
    def _set(flag: Flag, value: str) -> None:
        try:
            flag.set(value)
        except GoParseError as exc:
            name = f"-{flag.shorthand}, --{flag.name}" if flag.shorthand else f"--{flag.name}"
            raise FlagError(
                f"invalid argument {quote(value)} for {quote(name)} flag: {exc}"
            ) from None


def _go_char(char: str) -> str:
    # %q of a byte: a Go character literal.
    if char == "'":
        return "'\\''"
    if char == "\\":
        return "'\\\\'"
    return f"'{char}'" if char.isprintable() else f"'\\x{ord(char) & 0xFF:02x}'"
