"""How flag values are written: Go's syntax for booleans, integers and durations, and the kinds
of value etcd's flags take (each read from command-line text or from a YAML scalar).

etcd parses its flags with Go's ``flag`` and ``strconv`` packages and ``time.ParseDuration``;
Ward accepts exactly the same spellings so an etcd command line or unit file keeps working.
Errors are ``ValueError`` with a short reason; the caller names the flag and where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from server.config.urls import URL, parse_url_list

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

# go-yaml v2 (behind etcd's sigs.k8s.io/yaml) also reads these words as booleans in a bool field.
_YAML_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"})
_YAML_FALSE = frozenset({"n", "N", "no", "No", "NO", "off", "Off", "OFF"})

UINT64_MAX = (1 << 64) - 1
UINT32_MAX = (1 << 32) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def parse_go_bool(text: str) -> bool:
    """``strconv.ParseBool``: 1/t/T/TRUE/true/True and 0/f/F/FALSE/false/False."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("parse error")


_LEGACY_OCTAL = re.compile(r"0[0-7_]+")


def _parse_go_integer(text: str) -> int:
    # strconv.ParseInt/ParseUint with base 0: 0x/0o/0b prefixes, a bare leading 0 for octal,
    # and underscores between digits. Python's int(text, 0) differs only on the bare leading 0.
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or digits != digits.strip():
        raise ValueError("parse error")
    try:
        if _LEGACY_OCTAL.fullmatch(digits):
            value = int(digits[1:].lstrip("_") or "0", 8)
        else:
            value = int(digits, 0)
    except ValueError:
        raise ValueError("parse error") from None
    return -value if text.startswith("-") else value


def parse_go_uint(text: str, limit: int = UINT64_MAX) -> int:
    """``strconv.ParseUint(text, 0, 64)``; no sign allowed."""
    if text[:1] in "+-":
        raise ValueError("parse error")
    value = _parse_go_integer(text)
    if value > limit:
        raise ValueError("value out of range")
    return value


def parse_go_int(text: str) -> int:
    """``strconv.ParseInt(text, 0, 64)``."""
    value = _parse_go_integer(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("value out of range")
    return value


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu; Go accepts both
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]+)")


def parse_go_duration(text: str) -> float:
    """Seconds in a ``time.ParseDuration`` string: ``300ms``, ``1h30m``, ``1.5s``, or ``0``.

    Negative durations are refused here: no etcd flag gives them a meaning.
    """
    body = text[1:] if text[:1] == "+" else text
    if body == "0":
        return 0.0
    if body.startswith("-"):
        raise ValueError(f"negative duration {text!r}")
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            if body[pos:].replace(".", "").isdigit():
                raise ValueError(f"missing unit in duration {text!r}")
            raise ValueError(f"invalid duration {text!r}")
        whole, frac, unit = match.groups()
        if not whole and not frac:
            raise ValueError(f"invalid duration {text!r}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += float(f"{whole or '0'}.{frac or '0'}") * _DURATION_UNITS[unit]
        pos = match.end()
    return total


def format_go_duration(seconds: float) -> str:
    """A short Go-style spelling of a duration, for help text and messages."""
    if seconds == 0:
        return "0s"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        count = seconds / size
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds}s"


def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated list: items stripped, empty items and repeats dropped, order kept."""
    items: list[str] = []
    for item in text.split(","):
        item = item.strip()
        if item and item not in items:
            items.append(item)
    return tuple(items)


def _type_name(raw: object) -> str:
    return "a boolean" if isinstance(raw, bool) else type(raw).__name__


@dataclass(frozen=True, slots=True)
class ValueKind:
    """One kind of flag value: how to read it from command-line text and from a YAML scalar.

    ``is_bool`` flags may be given without a value (``--flag`` means true), as in Go.
    """

    name: str
    from_text: Callable[[str], object]
    from_yaml: Callable[[object], object]
    is_bool: bool = False


def _string_from_yaml(raw: object) -> object:
    # YAML may turn an unquoted scalar into a number; the text the user meant is its str().
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    raise ValueError(f"expected a string, got {_type_name(raw)}")


def _bool_from_yaml(raw: object) -> object:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        if raw in _YAML_TRUE:
            return True
        if raw in _YAML_FALSE:
            return False
        return parse_go_bool(raw)
    raise ValueError(f"expected true or false, got {_type_name(raw)}")


def _int_from_yaml(from_text: Callable[[str], int], lo: int, hi: int) -> Callable[[object], object]:
    def convert(raw: object) -> object:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError(f"expected an integer, got {_type_name(raw)}")
        value = from_text(raw) if isinstance(raw, str) else raw
        if not lo <= value <= hi:
            raise ValueError("value out of range")
        return value

    return convert


def _duration_from_yaml(raw: object) -> object:
    # etcd's config file holds a Go time.Duration as integer nanoseconds; a duration string
    # ("5s") is Ward's convenience and means what it means on the command line.
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"expected nanoseconds or a duration like 5s, got {_type_name(raw)}")
    if isinstance(raw, str):
        return parse_go_duration(raw)
    if raw < 0:
        raise ValueError("negative duration")
    return raw / 1e9


def _strings_from_text(text: str) -> object:
    return split_list(text)


def _strings_from_yaml(raw: object) -> object:
    if isinstance(raw, str):
        return split_list(raw)
    if isinstance(raw, list):
        items: list[str] = []
        for item in raw:
            if not isinstance(item, str):
                raise ValueError(f"expected a list of strings, found {_type_name(item)}")
            items.extend(i for i in split_list(item) if i not in items)
        return tuple(items)
    raise ValueError(f"expected a list of strings, got {_type_name(raw)}")


def _urls_from_text(text: str) -> object:
    urls: tuple[URL, ...] = parse_url_list(text)
    return urls


def _urls_from_yaml(raw: object) -> object:
    # etcd's file takes a comma-separated string; a YAML list is accepted as well.
    if isinstance(raw, list):
        if not all(isinstance(item, str) for item in raw):
            raise ValueError("expected a list of URL strings")
        return parse_url_list(",".join(raw))
    if isinstance(raw, str):
        return parse_url_list(raw)
    raise ValueError(f"expected comma-separated URLs, got {_type_name(raw)}")


def _legacy_from_yaml(raw: object) -> object:
    return None


STRING = ValueKind("string", lambda text: text, _string_from_yaml)
BOOL = ValueKind("bool", parse_go_bool, _bool_from_yaml, is_bool=True)
UINT = ValueKind("uint", parse_go_uint, _int_from_yaml(parse_go_uint, 0, UINT64_MAX))
UINT32 = ValueKind(
    "uint32",
    lambda text: parse_go_uint(text, UINT32_MAX),
    _int_from_yaml(lambda text: parse_go_uint(text, UINT32_MAX), 0, UINT32_MAX),
)
INT = ValueKind("int", parse_go_int, _int_from_yaml(parse_go_int, INT64_MIN, INT64_MAX))
DURATION = ValueKind("duration", parse_go_duration, _duration_from_yaml)
STRINGS = ValueKind("strings", _strings_from_text, _strings_from_yaml)
URLS = ValueKind("urls", _urls_from_text, _urls_from_yaml)
# etcd's IgnoredFlag: a boolean-looking flag that swallows any value and does nothing.
LEGACY = ValueKind("legacy", lambda text: None, _legacy_from_yaml, is_bool=True)


def choice(*allowed: str) -> ValueKind:
    """A string that must be one of ``allowed``."""

    def from_text(text: str) -> object:
        if text not in allowed:
            raise ValueError(f"valid values are {', '.join(repr(a) for a in allowed)}")
        return text

    def from_yaml(raw: object) -> object:
        text = _string_from_yaml(raw)
        assert isinstance(text, str)
        return from_text(text)

    return ValueKind("choice", from_text, from_yaml)
