"""Serial numbers as people type and read them: hexadecimal, as ``openssl`` prints them."""

from __future__ import annotations

from pki.errors import InvalidInput


def format_serial(serial: int) -> str:
    """A serial number the way ``openssl`` prints it: upper-case hex, no separators."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def parse_serial(text: str) -> int:
    """A serial number written in hex, optionally with ``0x`` or ``:`` separators."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise InvalidInput(f"serial {text!r} is not a hexadecimal number") from None
    if value <= 0:
        raise InvalidInput(f"serial {text!r} must be positive")
    return value
