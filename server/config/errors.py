"""What parsing the configuration can end in other than a configuration."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is wrong: print the message to stderr and exit with ``exit_code``.

    ``show_usage`` is set for command-line syntax errors, after which etcd (Go's ``flag``
    package) also prints its short usage text.
    """

    exit_code = 2

    def __init__(self, message: str, *, show_usage: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.show_usage = show_usage

    def __str__(self) -> str:
        return self.message


class ShowHelp(Exception):
    """``-h``/``--help`` was given: print ``text`` to stdout and exit 0."""

    exit_code = 0

    def __init__(self, text: str) -> None:
        super().__init__("help requested")
        self.text = text


class ShowVersion(Exception):
    """``--version`` was given: print the version and exit 0."""

    exit_code = 0

    def __init__(self) -> None:
        super().__init__("version requested")
