"""What a token provider does, and etcd's ``--auth-token`` option string.

Two providers implement ``TokenProvider``: ``JWTTokenProvider`` (signed tokens any member can
check) and ``SimpleTokenProvider`` (random tokens remembered by the member that issued them).

``parse_token_options`` reads etcd's syntax, ``jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,
ttl=5m`` or ``simple``; reading the key files is the caller's job.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Protocol

from auth.errors import InvalidAuthMethod, InvalidAuthOptions
from auth.model import TokenInfo

DEFAULT_TTL = 300.0
"""Seconds a token lives; etcd's ``--auth-token-ttl`` default."""


class TokenProvider(Protocol):
    """Issues tokens to authenticated users and tells who a token belongs to."""

    def assign(self, username: str, revision: int) -> str:
        """A new token for ``username``, issued at auth revision ``revision``."""
        ...

    def info(self, token: str) -> TokenInfo:
        """Who the token belongs to; raise ``InvalidAuthToken`` if it is not valid now."""
        ...

    def invalidate_user(self, username: str) -> None:
        """Forget what is remembered of the user's tokens (the user was deleted or re-keyed)."""
        ...

    def disable(self) -> None:
        """Auth was turned off: forget every remembered token."""
        ...


class SignMethod(enum.StrEnum):
    """JWT signature algorithms, named as in the ``alg`` header and etcd's ``sign-method``."""

    ES256 = "ES256"
    ES384 = "ES384"
    ES512 = "ES512"
    RS256 = "RS256"
    RS384 = "RS384"
    RS512 = "RS512"
    PS256 = "PS256"
    PS384 = "PS384"
    PS512 = "PS512"
    EdDSA = "EdDSA"
    HS256 = "HS256"
    HS384 = "HS384"
    HS512 = "HS512"

    @property
    def is_hmac(self) -> bool:
        """Whether the method signs with a shared secret rather than a key pair."""
        return self.value.startswith("HS")


class TokenKind(enum.StrEnum):
    JWT = "jwt"
    SIMPLE = "simple"


_KNOWN_JWT_OPTIONS = frozenset({"sign-method", "pub-key", "priv-key", "ttl"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenOptions:
    """A parsed ``--auth-token`` value.

    ``ttl`` is None when the option string does not set one (then ``--auth-token-ttl``, default
    ``DEFAULT_TTL``, applies). ``unknown`` lists option names etcd would warn about and ignore.
    """

    kind: TokenKind
    sign_method: SignMethod = SignMethod.ES256
    pub_key_path: str | None = None
    priv_key_path: str | None = None
    ttl: float | None = None
    unknown: tuple[str, ...] = ()


def parse_token_options(text: str) -> TokenOptions:
    """Parse etcd's ``--auth-token`` syntax; raise ``InvalidAuthOptions``/``InvalidAuthMethod``.

    Unlike etcd, a missing ``sign-method`` means ES256 rather than an error.
    """
    kind_text, *pairs = text.split(",")
    try:
        kind = TokenKind(kind_text)
    except ValueError:
        raise InvalidAuthOptions() from None
    options: dict[str, str] = {}
    for pair in pairs:
        parts = pair.split("=")
        if len(parts) != 2 or parts[0] in options:
            raise InvalidAuthOptions()
        options[parts[0]] = parts[1]
    if kind is TokenKind.SIMPLE:
        # etcd ignores every option of a simple token.
        return TokenOptions(kind=kind)
    method_text = options.get("sign-method", "")
    try:
        method = SignMethod(method_text) if method_text else SignMethod.ES256
    except ValueError:
        raise InvalidAuthMethod() from None
    ttl_text = options.get("ttl", "")
    return TokenOptions(
        kind=kind,
        sign_method=method,
        pub_key_path=options.get("pub-key") or None,
        priv_key_path=options.get("priv-key") or None,
        ttl=parse_duration(ttl_text) if ttl_text else None,
        unknown=tuple(sorted(set(options) - _KNOWN_JWT_OPTIONS)),
    )


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    # Go accepts both micro signs.
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# Longest units first, so "ms" is not read as "m" followed by "s".
_DURATION_PART = re.compile(
    r"(\d+(?:\.\d*)?|\.\d+)(" + "|".join(sorted(_DURATION_UNITS, key=len, reverse=True)) + ")"
)


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``5m``, ``1h30m``, ``1.5s``, ``300ms``; ``0`` alone).

    Negative durations are refused: a token lifetime must be positive.
    """
    if text == "0":
        return 0.0
    if not text:
        raise InvalidAuthOptions()
    pos = 0
    total = 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise InvalidAuthOptions()
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return total
