"""The command line, read as Go's ``flag`` package reads etcd's.

``-flag`` and ``--flag`` are the same; a value follows as ``--flag=value`` or as the next
argument; a boolean flag alone means true and takes a value only as ``--flag=false``. A bare
``--`` ends the flags. Parsing stops at the first argument that is not a flag, and etcd then
refuses it. The last of repeated flags wins. ``-h``/``--help`` stops parsing and asks for help.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.config.errors import ConfigError, ShowHelp
from server.config.flags import BY_NAME

_ETCD_SUBCOMMANDS = frozenset({"gateway", "grpc-proxy"})


def go_quote(text: str) -> str:
    """``text`` in double quotes, as Go's ``%q`` shows a value in flag errors."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True, slots=True)
class CommandLine:
    """The flags given on the command line: typed values by flag name, in the order first given."""

    values: dict[str, object]
    version: bool
    config_file: str


def parse_command_line(argv: Sequence[str], help_text: Callable[[], str]) -> CommandLine:
    """Read ``argv`` (without the program name); raise ShowHelp or ConfigError."""
    if argv and argv[0] in _ETCD_SUBCOMMANDS:
        raise ConfigError(f"'{argv[0]}' is not supported by Ward: it runs only as a server member")
    values: dict[str, object] = {}
    pos = 0
    while pos < len(argv):
        arg = argv[pos]
        if len(arg) < 2 or not arg.startswith("-"):
            break
        dashes = 2 if arg.startswith("--") else 1
        if arg == "--":
            pos += 1
            break
        name = arg[dashes:]
        if not name or name[0] in "-=":
            raise ConfigError(f"bad flag syntax: {arg}", show_usage=True)
        pos += 1
        name, has_value, value = name.partition("=")
        if name in ("h", "help"):
            raise ShowHelp(help_text())
        spec = BY_NAME.get(name)
        if spec is None:
            raise ConfigError(f"flag provided but not defined: -{name}", show_usage=True)
        if spec.kind.is_bool:
            if not has_value:
                value = "true"
        elif not has_value:
            if pos == len(argv):
                raise ConfigError(f"flag needs an argument: -{name}", show_usage=True)
            value = argv[pos]
            pos += 1
        try:
            values[name] = spec.kind.from_text(value)
        except ValueError as err:
            what = "boolean value" if spec.kind.is_bool else "value"
            raise ConfigError(
                f"invalid {what} {go_quote(value)} for flag -{name}: {err}", show_usage=True
            ) from None
    if pos < len(argv):
        raise ConfigError(f"'{argv[pos]}' is not a valid flag")
    version = values.pop("version", False)
    config_file = values.pop("config-file", "")
    assert isinstance(version, bool) and isinstance(config_file, str)
    return CommandLine(values, version, config_file)
