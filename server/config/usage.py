"""The ``--help`` text, laid out like etcd's: a usage block, then each group of flags with its
default in quotes, then the etcd flags Ward accepts and ignores, and those it refuses."""

from __future__ import annotations

import textwrap

from server.config.flags import FLAGS, Disposition, FlagSpec, Group
from server.config.urls import URL
from server.config.values import format_go_duration

USAGE_LINE = """Usage:

  ward [flags]
    Start a Ward server (an etcd v3 compatible member).

  ward --version
    Show the version of Ward.

  ward -h | --help
    Show the help information about Ward.

  ward --config-file PATH
    Path to the server configuration file (YAML, etcd's keys). Note that if a configuration
    file is provided, other command line flags and environment variables will be ignored.

Every flag --some-flag may also be set as the environment variable ETCD_SOME_FLAG;
a flag on the command line wins over the variable.
"""


def _shown_default(spec: FlagSpec) -> str:
    if spec.shown_default is not None:
        return spec.shown_default
    value = spec.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_go_duration(value)
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value if isinstance(item, URL | str))
    return str(value)


def _fill(text: str, indent: str) -> str:
    # Flag names contain hyphens: never break a line inside one.
    return textwrap.fill(
        text,
        width=96,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def _describe(spec: FlagSpec) -> str:
    body = _fill(spec.help, "    ")
    return f"  --{spec.name} '{_shown_default(spec)}'\n{body}"


def _name_list(specs: list[FlagSpec]) -> str:
    names = " ".join(f"--{spec.name}" for spec in specs)
    return _fill(names, "  ")


def usage_text() -> str:
    """The full help text that ``--help`` prints."""
    parts = [USAGE_LINE]
    for group in Group:
        specs = [s for s in FLAGS if s.group is group and s.disposition is Disposition.WARD]
        if specs:
            parts.append(f"{group.value}:\n" + "\n".join(_describe(s) for s in specs) + "\n")
    ignored = [s for s in FLAGS if s.disposition is Disposition.IGNORED]
    parts.append(
        "Accepted for etcd compatibility and ignored (with a warning):\n"
        + _name_list(ignored)
        + "\n"
    )
    refused = [s for s in FLAGS if s.disposition is Disposition.REFUSED]
    parts.append(
        "Not supported by Ward (an error unless left at etcd's default):\n"
        + _name_list(refused)
        + "\n"
    )
    parts.append(
        "CAUTIOUS with unsafe flags! They may break the guarantees given by the consensus"
        " protocol!\n"
    )
    return "\n".join(parts)
