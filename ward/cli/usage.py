"""Help and usage text, laid out exactly as etcdctl lays it out.

etcdctl renders its help from a template through Go's text/tabwriter (tab-padded columns, tab
width 8); the txn command's op parser falls back to cobra's default usage template, whose flag
list is pflag's FlagUsages. Both are reproduced here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import quote

__all__ = ["HelpPage", "cobra_usage", "etcdctl_usage", "tabwrite"]


def tabwrite(text: str, *, tabwidth: int = 8, padding: int = 1) -> str:
    """Go's tabwriter with padchar '\\t' and minwidth 0: tab-terminated cells padded with tabs
    so each column lines up within its block of consecutive lines."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts: list[str] = []
            for j, cell in enumerate(cells):
                parts.append(cell)
                if j < len(cells) - 1 and j < len(widths):
                    cellw = -(-widths[j] // tabwidth) * tabwidth
                    pad = cellw - len(cell)
                    parts.append("\t" * (-(-pad // tabwidth)))
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = 0
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)


def _etcd_flag_lines(flags: Sequence[Flag]) -> str:
    # etcdctl's etcdFlagUsages: "  -w, --write-out=\"simple\"\tusage" per flag, sorted by name.
    lines = []
    for flag in sorted((f for f in flags if not f.hidden), key=lambda f: f.name):
        head = f"  -{flag.shorthand}, --{flag.name}" if flag.shorthand else f"      --{flag.name}"
        default = quote(flag.default_text()) if flag.kind is Kind.STRING else flag.default_text()
        value = f"[={default}]" if flag.no_opt_default else f"={default}"
        lines.append(f"{head}{value}\t{flag.usage}\n")
    return "".join(lines)


@dataclass(frozen=True)
class HelpPage:
    """What the etcdctl help template needs to know about one command."""

    name: str  # the command path below the root ("endpoint status"), or the root's name
    short: str
    use_line: str
    long: str
    is_root: bool
    version: str
    subcommands: Sequence[tuple[str, str]]  # (path relative to this command, short)
    local_flags: Sequence[Flag]
    inherited_flags: Sequence[Flag]


def etcdctl_usage(page: HelpPage) -> str:
    """The help text etcdctl prints for a command (its usage function, through tabwriter)."""
    parts = [f"NAME:\n\t{page.name} - {page.short}\n\nUSAGE:\n\t{page.use_line}\n\n"]
    if page.is_root:
        parts.append(f"VERSION:\n\t{page.version}\n\n")
    if page.subcommands:
        parts.append("API VERSION:\n\t3.4\n\n\nCOMMANDS:\n")
        parts.extend(f"\t{name}\t{short}\n" for name, short in page.subcommands)
        parts.append("\n")
    if page.long:
        parts.append("DESCRIPTION:\n")
        parts.extend(f"\t{line}\n" for line in page.long.strip("\n\t ").split("\n"))
        parts.append("\n")
    if page.local_flags:
        parts.append("OPTIONS:\n" + _etcd_flag_lines(page.local_flags) + "\n")
    if page.inherited_flags:
        parts.append("GLOBAL OPTIONS:\n" + _etcd_flag_lines(page.inherited_flags) + "\n")
    return tabwrite("".join(parts))


# pflag leaves "(default ...)" out when the default is its type's zero value.
_ZERO_DEFAULTS = {
    Kind.BOOL: {"false"},
    Kind.STRING: {""},
    Kind.INT64: {"0"},
    Kind.DURATION: {"0", "0s"},
    Kind.STRING_SLICE: {"[]"},
}


def _pflag_usages(flags: Sequence[Flag]) -> str:
    # pflag's FlagUsages: names, a type hint, then the usage aligned two spaces after the longest.
    rows: list[tuple[str, str]] = []
    for flag in sorted((f for f in flags if not f.hidden), key=lambda f: f.name):
        line = f"  -{flag.shorthand}, --{flag.name}" if flag.shorthand else f"      --{flag.name}"
        type_name = {
            Kind.BOOL: "",
            Kind.INT64: "int",
            Kind.STRING: "string",
            Kind.DURATION: "duration",
            Kind.STRING_SLICE: "strings",
        }[flag.kind]
        if type_name:
            line += " " + type_name
        usage = flag.usage
        default = flag.default_text()
        if default not in _ZERO_DEFAULTS[flag.kind]:
            shown = quote(default) if flag.kind is Kind.STRING else default
            usage += f" (default {shown})"
        rows.append((line, usage))
    width = max(len(line) for line, _ in rows)
    return "".join(f"{line}{' ' * (width - len(line))}   {usage}\n" for line, usage in rows)


def cobra_usage(use_line: str, flags: Sequence[Flag]) -> str:
    """cobra's default usage text for a command with no parent name (txn's op parser)."""
    return f"Usage:\n  {use_line}\n\nFlags:\n{_pflag_usages(flags)}\n"
