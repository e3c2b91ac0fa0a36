"""Choosing the token provider a parsed ``--auth-token`` asks for."""

from __future__ import annotations

from auth.jwt_tokens import JWTTokenProvider
from auth.simple_tokens import SimpleTokenProvider
from auth.tokens import DEFAULT_TTL, TokenKind, TokenOptions, TokenProvider


def token_provider_from_options(
    options: TokenOptions,
    *,
    private_key: bytes | None = None,
    public_key: bytes | None = None,
    default_ttl: float = DEFAULT_TTL,
) -> TokenProvider:
    """The provider for ``options``; the caller has read the key files it names.

    ``default_ttl`` is ``--auth-token-ttl``; a ``ttl=`` in the JWT options overrides it.
    """
    if options.kind is TokenKind.SIMPLE:
        return SimpleTokenProvider(ttl=default_ttl)
    return JWTTokenProvider.from_options(
        options, private_key=private_key, public_key=public_key, default_ttl=default_ttl
    )
