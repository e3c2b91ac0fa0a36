"""Go's formatting and parsing rules that etcdctl's output and messages depend on.

etcdctl prints with Go's fmt, strconv, time and encoding/json packages; byte-identical output
needs their exact rules: `%q` quoting, JSON string escaping, `time.Duration` strings, number and
duration parsing with their error messages, and go-humanize's byte sizes.
"""

from __future__ import annotations

import math

__all__ = [
    "GoParseError",
    "format_duration",
    "humanize_bytes",
    "json_string",
    "parse_bool",
    "parse_duration",
    "parse_int",
    "quote",
    "quote_bytes",
    "unquote",
]

_HEX = "0123456789abcdef"


class GoParseError(ValueError):
    """A parse failure worded exactly as Go's strconv/time packages word it."""


def _is_print(ch: str) -> bool:
    # Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space;
    # Python's isprintable() draws the same line.
    return ch.isprintable()


def quote_bytes(data: bytes) -> str:
    """Go's strconv.Quote of a string holding `data` (as `%q` prints it)."""
    out = ['"']
    i = 0
    while i < len(data):
        width, ch = _decode_rune(data, i)
        if ch is None:
            out.append(f"\\x{data[i]:02x}")
            i += 1
            continue
        i += width
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif _is_print(ch):
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        else:
            code = ord(ch)
            if code < 0x20 or code == 0x7F:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def quote(text: str) -> str:
    """Go's strconv.Quote of `text` (lone surrogates stand for raw bytes, as from argv)."""
    return quote_bytes(text.encode("utf-8", "surrogateescape"))


_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _decode_rune(data: bytes, i: int) -> tuple[int, str | None]:
    """The UTF-8 sequence at `data[i:]`: (length, character), or (1, None) if invalid."""
    first = data[i]
    if first < 0x80:
        return 1, chr(first)
    for width in (2, 3, 4):
        chunk = data[i : i + width]
        try:
            ch = chunk.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if len(ch) == 1:
            return width, ch
    return 1, None


def json_string(data: bytes) -> str:
    """A JSON string as Go's encoding/json writes it (HTML-safe, invalid UTF-8 as U+FFFD)."""
    out = ['"']
    i = 0
    while i < len(data):
        width, ch = _decode_rune(data, i)
        i += width
        if ch is None:
            out.append("\\ufffd")
            continue
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif code < 0x20:
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\u{code:04x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# -- strconv parsing -------------------------------------------------------------------------


def parse_bool(text: str) -> bool:
    """strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise GoParseError(f"strconv.ParseBool: parsing {quote(text)}: invalid syntax")


def parse_int(text: str, base: int = 10, bits: int = 64) -> int:
    """strconv.ParseInt, including base 0 (prefixes and underscores) as pflag uses it."""
    syntax = GoParseError(f"strconv.ParseInt: parsing {quote(text)}: invalid syntax")
    body = text
    negative = False
    if body[:1] in ("+", "-"):
        negative = body[0] == "-"
        body = body[1:]
    if not body:
        raise syntax
    digits = body
    if base == 0:
        base = 10
        lowered = body.lower()
        if lowered.startswith("0x"):
            base, digits = 16, body[2:]
        elif lowered.startswith("0b"):
            base, digits = 2, body[2:]
        elif lowered.startswith("0o"):
            base, digits = 8, body[2:]
        elif body.startswith("0") and len(body) > 1:
            base, digits = 8, body[1:]
        if "_" in body and not _underscores_ok(body):
            raise syntax
        digits = digits.replace("_", "")
    if not digits:
        raise syntax
    value = 0
    for ch in digits:
        d = int(ch, 36) if ch.isascii() and ch.isalnum() else 99
        if d >= base:
            raise syntax
        value = value * base + d
    limit = 1 << (bits - 1)
    if (not negative and value >= limit) or (negative and value > limit):
        raise GoParseError(f"strconv.ParseInt: parsing {quote(text)}: value out of range")
    return -value if negative else value


def _underscores_ok(body: str) -> bool:
    # Go's rule: "_" only between digits, or right after a base prefix.
    saw = "^"
    i = 0
    hexadecimal = False
    if len(body) >= 2 and body[0] == "0" and body[1].lower() in "box":
        i = 2
        saw = "0"
        hexadecimal = body[1].lower() == "x"
    for ch in body[i:]:
        if ch.isascii() and (ch.isdigit() or (hexadecimal and ch.lower() in "abcdef")):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def unquote(text: bytes) -> bytes:
    """strconv.Unquote of a double-quoted or back-quoted Go string literal."""
    if len(text) < 2 or text[:1] != text[-1:] or text[:1] not in (b'"', b"`"):
        raise GoParseError("invalid syntax")
    body = text[1:-1]
    if text[:1] == b"`":
        if b"`" in body:
            raise GoParseError("invalid syntax")
        return body.replace(b"\r", b"")
    if b"\n" in body:
        raise GoParseError("invalid syntax")
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == 0x22:  # an unescaped quote inside
            raise GoParseError("invalid syntax")
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise GoParseError("invalid syntax")
        e = chr(body[i])
        i += 1
        simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
        if e in simple:
            out.append(simple[e])
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            chunk = body[i : i + n].decode("ascii", "replace")
            if len(chunk) != n or any(ch not in "0123456789abcdefABCDEF" for ch in chunk):
                raise GoParseError("invalid syntax")
            i += n
            value = int(chunk, 16)
            if e == "x":
                out.append(value)
            else:
                if value > 0x10FFFF or 0xD800 <= value < 0xE000:
                    raise GoParseError("invalid syntax")
                out.extend(chr(value).encode())
        elif e in "01234567":
            chunk = body[i - 1 : i + 2].decode("ascii", "replace")
            if len(chunk) != 3 or any(ch not in "01234567" for ch in chunk):
                raise GoParseError("invalid syntax")
            value = int(chunk, 8)
            if value > 255:
                raise GoParseError("invalid syntax")
            out.append(value)
            i += 2
        else:
            raise GoParseError("invalid syntax")
    return bytes(out)


# -- time.Duration ---------------------------------------------------------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_DURATION = (1 << 63) - 1


def _time_quote(text: str) -> str:
    # The time package's own quoting: bytes outside printable ASCII as \x escapes.
    out = ['"']
    for byte in text.encode("utf-8", "surrogateescape"):
        if byte >= 0x80 or byte < 0x20:
            out.append(f"\\x{byte:02x}")
        else:
            ch = chr(byte)
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def parse_duration(text: str) -> int:
    """time.ParseDuration: nanoseconds from strings like "5s", "1m30s", "500ms", "1.5h"."""
    invalid = GoParseError(f"time: invalid duration {_time_quote(text)}")
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or (s[0].isdigit() and s[0].isascii())):
            raise invalid
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        whole = int(s[:i]) if i else 0
        pre = i > 0
        if whole > _MAX_DURATION + 1:
            raise invalid
        s = s[i:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            j = 0
            overflow = False
            while j < len(s) and s[j].isascii() and s[j].isdigit():
                if not overflow:
                    bigger = frac * 10 + int(s[j])
                    if frac > _MAX_DURATION // 10 or bigger > 1 << 63:
                        overflow = True
                    else:
                        frac = bigger
                        scale *= 10
                j += 1
            post = j > 0
            s = s[j:]
        if not pre and not post:
            raise invalid
        j = 0
        while j < len(s) and not (s[j] == "." or (s[j].isascii() and s[j].isdigit())):
            j += 1
        if j == 0:
            raise GoParseError(f"time: missing unit in duration {_time_quote(text)}")
        unit_text, s = s[:j], s[j:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise GoParseError(
                f"time: unknown unit {_time_quote(unit_text)} in duration {_time_quote(text)}"
            )
        if whole > (1 << 63) // unit:
            raise invalid
        value = whole * unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / scale))
            if value > 1 << 63:
                raise invalid
        total += value
        if total > 1 << 63:
            raise invalid
    if negative:
        return -total
    if total > _MAX_DURATION:
        raise invalid
    return total


def _fmt_frac(value: int, digits: int) -> tuple[str, int]:
    # The fractional part of value / 10**digits, trailing zeros dropped, and the integer part.
    frac = []
    printed = False
    for _ in range(digits):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            frac.append(str(digit))
        value //= 10
    text = ("." + "".join(reversed(frac))) if printed else ""
    return text, value


def format_duration(nanos: int) -> str:
    """time.Duration.String: "1.5s", "2m3s", "740.076µs", "0s"."""
    negative = nanos < 0
    u = -nanos if negative else nanos
    if u < 1_000_000_000:
        if u == 0:
            return "0s"
        if u < 1_000:
            text = f"{u}ns"
        elif u < 1_000_000:
            frac, whole = _fmt_frac(u, 3)
            text = f"{whole}{frac}µs"
        else:
            frac, whole = _fmt_frac(u, 6)
            text = f"{whole}{frac}ms"
        return ("-" if negative else "") + text
    frac, seconds = _fmt_frac(u, 9)
    parts = f"{seconds % 60}{frac}s"
    minutes = seconds // 60
    if minutes:
        parts = f"{minutes % 60}m" + parts
        hours = minutes // 60
        if hours:
            parts = f"{hours}h" + parts
    return ("-" if negative else "") + parts


# -- go-humanize -----------------------------------------------------------------------------

_SIZES = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]


def humanize_bytes(size: int) -> str:
    """humanize.Bytes: SI sizes like "20 kB", "1.5 MB"."""
    if size < 10:
        return f"{size} B"
    exponent = math.floor(math.log(size) / math.log(1000))
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    fmt = "{:.0f} {}" if value >= 10 else "{:.1f} {}"
    return fmt.format(value, _SIZES[int(exponent)])
