"""A command tree that finds, parses and documents commands the way cobra does for etcdctl.

Commands are found by name or unique prefix; flags may appear anywhere; a group without a
subcommand prints its help; mistakes print cobra's messages, usage and exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO

from ward.cli.exits import EXIT_ERROR, CliExit
from ward.cli.flags import Flag, FlagError, FlagSet, Kind
from ward.cli.gofmt import quote
from ward.cli.usage import HelpPage, etcdctl_usage

__all__ = [
    "Command",
    "Invocation",
    "UnknownCommandError",
    "command_words",
    "execute",
    "find",
    "word_index",
]


@dataclass
class Invocation:
    """One run of a command: its parsed flags, positional arguments and streams."""

    command: Command
    flags: FlagSet
    args: list[str]
    stdin: IO[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]
    environ: Mapping[str, str]
    prog: str
    version: str
    # ETCDCTL_* variables are applied once, when the command first needs its client.
    env_applied: bool = False

    def out(self, text: str | bytes = b"") -> None:
        """Write a line to stdout (bytes go out untouched, like Go's fmt.Println of a string)."""
        data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
        self.stdout.write(data + b"\n")

    def err(self, text: str | bytes = b"") -> None:
        """Write a line to stderr."""
        data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
        self.stderr.write(data + b"\n")


Runner = Callable[[Invocation], int | None]


@dataclass(eq=False)
class Command:
    """A command or command group; `run` is None for groups."""

    use: str
    short: str
    long: str = ""
    run: Runner | None = None
    flags: list[Flag] = field(default_factory=list)
    persistent_flags: list[Flag] = field(default_factory=list)
    children: list[Command] = field(default_factory=list)
    parent: Command | None = None

    def __post_init__(self) -> None:
        self.help_flag = Flag("help", Kind.BOOL, False, f"help for {self.name}", shorthand="h")
        for child in self.children:
            child.parent = self

    @property
    def name(self) -> str:
        """The first word of `use`."""
        return self.use.split(" ", 1)[0]

    def add(self, *children: Command) -> None:
        """Attach subcommands."""
        for child in children:
            child.parent = self
            self.children.append(child)

    def sorted_children(self) -> list[Command]:
        """Subcommands in name order (cobra sorts them)."""
        return sorted(self.children, key=lambda c: c.name)

    @property
    def root(self) -> Command:
        """The top of the tree."""
        return self if self.parent is None else self.parent.root

    def path_below_root(self) -> str:
        """Names from below the root down to this command ("endpoint status")."""
        names: list[str] = []
        cmd: Command | None = self
        while cmd is not None and cmd.parent is not None:
            names.insert(0, cmd.name)
            cmd = cmd.parent
        return " ".join(names)

    def command_path(self) -> str:
        """The full command path, root name included."""
        return self.name if self.parent is None else f"{self.parent.command_path()} {self.name}"

    def use_line(self) -> str:
        """cobra's UseLine: the parent's path, this command's use, then "[flags]"."""
        line = self.use if self.parent is None else f"{self.parent.command_path()} {self.use}"
        return line if "[flags]" in line else f"{line} [flags]"

    def local_flags(self) -> list[Flag]:
        """Flags documented under OPTIONS: this command's own, persistent ones and help."""
        return [*self.flags, *self.persistent_flags, self.help_flag]

    def inherited_flags(self) -> list[Flag]:
        """Persistent flags of the ancestors (the global flags, a group's shared flags)."""
        flags: list[Flag] = []
        cmd = self.parent
        while cmd is not None:
            flags.extend(cmd.persistent_flags)
            cmd = cmd.parent
        return flags

    def flag_set(self) -> FlagSet:
        """Every flag this command accepts."""
        return FlagSet([*self.local_flags(), *self.inherited_flags()])

    def help_page(self, version: str) -> HelpPage:
        """What the help template shows for this command."""
        subcommands = [
            (sub.path_relative_to(self), sub.short)
            for sub in self._descendants()
            if sub.run is not None
        ]
        return HelpPage(
            name=self.name if self.parent is None else self.path_below_root(),
            short=self.short,
            use_line=self.use_line(),
            long=self.long,
            is_root=self.parent is None,
            version=version,
            subcommands=subcommands,
            local_flags=self.local_flags(),
            inherited_flags=self.inherited_flags(),
        )

    def path_relative_to(self, ancestor: Command) -> str:
        """Names from below `ancestor` down to this command."""
        names: list[str] = []
        cmd: Command | None = self
        while cmd is not None and cmd is not ancestor:
            names.insert(0, cmd.name)
            cmd = cmd.parent
        return " ".join(names)

    def _descendants(self) -> list[Command]:
        found: list[Command] = []
        for child in self.sorted_children():
            found.append(child)
            found.extend(child._descendants())
        return found

    def usage_text(self, version: str) -> str:
        """The help text etcdctl prints for this command."""
        return etcdctl_usage(self.help_page(version))


class UnknownCommandError(Exception):
    """The root was given a word that names none of its commands."""


def _takes_value(flag: Flag | None) -> bool:
    return flag is None or not flag.no_opt_default


def _strip_flags(args: list[str], flags: FlagSet) -> list[str]:
    # cobra's stripFlags: the words left once flags (and the values they take) are removed.
    words: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            break
        if arg.startswith("--") and "=" not in arg and _takes_value(flags.flags.get(arg[2:])):
            if len(rest) <= 1:
                break
            rest.pop(0)
            continue
        if (
            arg.startswith("-")
            and "=" not in arg
            and len(arg) == 2
            and _takes_value(flags.shorthands.get(arg[1:]))
        ):
            if len(rest) <= 1:
                break
            rest.pop(0)
            continue
        if arg and not arg.startswith("-"):
            words.append(arg)
    return words


def word_index(args: list[str], word: str, flags: FlagSet) -> int | None:
    """Where `word` first appears in `args` as a word rather than a flag's value (cobra's
    argsMinusFirstX scan)."""
    pos = 0
    while pos < len(args):
        arg = args[pos]
        if arg == "--":
            break
        if (arg.startswith("--") and "=" not in arg and _takes_value(flags.flags.get(arg[2:]))) or (
            arg.startswith("-")
            and "=" not in arg
            and len(arg) == 2
            and _takes_value(flags.shorthands.get(arg[1:]))
        ):
            pos += 2
            continue
        if not arg.startswith("-") and arg == word:
            return pos
        pos += 1
    return None


def _minus_first(args: list[str], word: str, flags: FlagSet) -> list[str]:
    pos = word_index(args, word, flags)
    return args if pos is None else args[:pos] + args[pos + 1 :]


def command_words(args: list[str], flags: FlagSet) -> list[str]:
    """The words of `args` once flags and their values are set aside (cobra's stripFlags)."""
    return _strip_flags(args, flags)


def _find_next(cmd: Command, word: str) -> Command | None:
    matches = []
    for child in cmd.sorted_children():
        if child.name == word:
            return child
        if child.name.startswith(word):
            matches.append(child)
    return matches[0] if len(matches) == 1 else None


def _levenshtein(a: str, b: str) -> int:
    a, b = a.lower(), b.lower()
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _suggestions(cmd: Command, typed: str) -> str:
    # In the order the commands were added: cobra sorts them only once help is shown.
    names = [
        child.name
        for child in cmd.children
        if child.name != "help"
        and (_levenshtein(typed, child.name) <= 2 or child.name.lower().startswith(typed.lower()))
    ]
    if not names:
        return ""
    return "\n\nDid you mean this?\n" + "".join(f"\t{name}\n" for name in names)


def find(root: Command, args: list[str]) -> tuple[Command, list[str]]:
    """The command `args` name, and the arguments left for it (cobra's Find)."""
    cmd, rest = root, list(args)
    while True:
        words = _strip_flags(rest, cmd.flag_set())
        if not words:
            break
        nxt = _find_next(cmd, words[0])
        if nxt is None:
            break
        rest = _minus_first(rest, words[0], cmd.flag_set())
        cmd = nxt
    if cmd.parent is None and cmd.children:
        words = _strip_flags(rest, cmd.flag_set())
        if words:
            raise UnknownCommandError(
                f"unknown command {quote(words[0])} for {quote(cmd.command_path())}"
                + _suggestions(cmd, words[0])
            )
    return cmd, rest


def execute(
    root: Command, args: list[str], make: Callable[[Command, FlagSet, list[str]], Invocation]
) -> int:
    """Find the command, parse its flags and run it; errors leave through `CliExit`.

    `make` builds the invocation (streams, environment) for the command found.
    """
    try:
        cmd, rest = find(root, args)
    except UnknownCommandError as exc:
        inv = make(root, root.flag_set(), [])
        inv.err(f"Error: {exc}")
        inv.err(f"Run '{root.command_path()} --help' for usage.")
        raise CliExit(EXIT_ERROR, str(exc)) from None
    flags = cmd.flag_set()
    try:
        positional = flags.parse(rest)
    except FlagError as exc:
        inv = make(cmd, flags, [])
        inv.err(f"Error: {exc}")
        # etcdctl's usage goes to stdout; cobra then prints the (empty) usage string it captured.
        inv.stdout.write(cmd.usage_text(inv.version).encode())
        inv.err()
        raise CliExit(EXIT_ERROR, str(exc)) from None
    inv = make(cmd, flags, positional)
    if flags.value("help") or cmd.run is None:
        inv.stdout.write(cmd.usage_text(inv.version).encode())
        return 0
    return cmd.run(inv) or 0
