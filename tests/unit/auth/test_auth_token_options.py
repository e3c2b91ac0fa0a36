"""etcd's --auth-token option string and Go durations parse as etcd parses them."""

from __future__ import annotations

import pytest

from auth import (
    JWTTokenProvider,
    SignMethod,
    SimpleTokenProvider,
    TokenKind,
    TokenOptions,
    parse_token_options,
    token_provider_from_options,
)
from auth.errors import InvalidAuthMethod, InvalidAuthOptions
from auth.tokens import parse_duration


def test_full_jwt_option_string() -> None:
    opts = parse_token_options(
        "jwt,pub-key=/etc/k/pub.pem,priv-key=/etc/k/priv.pem,sign-method=RS256,ttl=5m"
    )
    assert opts == TokenOptions(
        kind=TokenKind.JWT,
        sign_method=SignMethod.RS256,
        pub_key_path="/etc/k/pub.pem",
        priv_key_path="/etc/k/priv.pem",
        ttl=300.0,
    )


def test_simple_ignores_options() -> None:
    assert parse_token_options("simple") == TokenOptions(kind=TokenKind.SIMPLE)
    assert parse_token_options("simple,ttl=1m").ttl is None


def test_jwt_without_sign_method_defaults_to_es256() -> None:
    opts = parse_token_options("jwt")
    assert opts.sign_method is SignMethod.ES256
    assert opts.ttl is None
    assert opts.priv_key_path is None


@pytest.mark.parametrize("method", list(SignMethod))
def test_every_sign_method_name_is_accepted(method: SignMethod) -> None:
    assert parse_token_options(f"jwt,sign-method={method.value}").sign_method is method


def test_unknown_sign_method_is_invalid_auth_method() -> None:
    with pytest.raises(InvalidAuthMethod):
        parse_token_options("jwt,sign-method=none")


@pytest.mark.parametrize(
    "text",
    ["", "oauth", "jwt,ttl", "jwt,ttl=1m,ttl=2m", "jwt,a=b=c", "jwt,ttl=5x", "jwt,ttl=-5m"],
)
def test_malformed_option_strings_are_invalid(text: str) -> None:
    with pytest.raises(InvalidAuthOptions):
        parse_token_options(text)


def test_unknown_options_are_reported_not_fatal() -> None:
    assert parse_token_options("jwt,color=blue,ttl=1s").unknown == ("color",)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("300s", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("100ms", 0.1),
        ("10us", 1e-5),
        ("10\u00b5s", 1e-5),
        ("7ns", 7e-9),
        ("0", 0.0),
        (".5s", 0.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "1d", "-1s", "1s-"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(InvalidAuthOptions):
        parse_duration(text)


def test_provider_for_simple_uses_the_default_ttl() -> None:
    provider = token_provider_from_options(parse_token_options("simple"), default_ttl=42)
    assert isinstance(provider, SimpleTokenProvider)
    assert provider.ttl == 42


def test_provider_for_jwt_prefers_the_option_ttl() -> None:
    provider = token_provider_from_options(parse_token_options("jwt,ttl=1m"), default_ttl=42)
    assert isinstance(provider, JWTTokenProvider)
    assert provider.sign_method is SignMethod.ES256
    assert provider.ttl == 60
    other = token_provider_from_options(parse_token_options("jwt"), default_ttl=42)
    assert isinstance(other, JWTTokenProvider)
    assert other.ttl == 42
