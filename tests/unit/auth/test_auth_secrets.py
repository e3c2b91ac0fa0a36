"""No password, hash, token or key reaches an error message, a traceback or a repr (SECURITY 12)."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pytest
from auth_helpers import FakeClock, enable_with_root, make_store

from auth import (
    TEST_COST,
    AuthStore,
    JWTTokenProvider,
    PasswordHasher,
    SignMethod,
    SimpleTokenProvider,
    UserChangePassword,
)
from auth.errors import AuthError

SECRET = "s3cret-Pa55word-never-shown"


def everything_said_about(error: BaseException) -> str:
    """Every text a log line or debug page could show of an error."""
    return "\n".join(
        [str(error), repr(error), repr(error.args), *traceback.format_exception(error)]
    )


def raised_by(action: Callable[[], object]) -> AuthError:
    with pytest.raises(AuthError) as info:
        action()
    return info.value


@pytest.fixture
def store() -> AuthStore:
    store, _ = make_store()
    enable_with_root(store)
    store.apply(store.propose_user_add("alice", SECRET))
    return store


def test_failed_login_error_holds_no_password(store: AuthStore) -> None:
    wrong = SECRET + "-wrong"
    for name in ("alice", "ghost"):
        err = raised_by(lambda name=name: store.authenticate(name, wrong))  # type: ignore[misc]
        assert wrong not in everything_said_about(err)


def test_short_password_error_holds_no_password(store: AuthStore) -> None:
    short = "Xq7!"
    err = raised_by(lambda: store.propose_user_add("bob", short))
    assert short not in everything_said_about(err)


def test_unusable_hash_error_holds_no_hash_or_password() -> None:
    hasher = PasswordHasher(cost=TEST_COST)
    bogus_hash = "$argon2id$v=19$m=8,t=1,p=1$bogus-salt-value$bogus-hash-value"
    err = raised_by(lambda: hasher.verify(bogus_hash, SECRET))
    said = everything_said_about(err)
    assert SECRET not in said
    assert "bogus-hash-value" not in said


def test_invalid_jwt_error_holds_no_token() -> None:
    clock = FakeClock()
    issuer = JWTTokenProvider(clock=clock)
    token = issuer.assign("alice", 1)
    stranger = JWTTokenProvider(clock=clock)
    tampered = token[:-4] + "AAAA"
    for provider, bad in ((stranger, token), (issuer, tampered), (issuer, "x." + token)):
        said = everything_said_about(raised_by(lambda p=provider, b=bad: p.info(b)))  # type: ignore[misc]
        assert bad not in said
        assert token.split(".")[2] not in said


def test_expired_simple_token_error_holds_no_token() -> None:
    clock = FakeClock()
    provider = SimpleTokenProvider(ttl=1, clock=clock)
    token = provider.assign("alice", 1)
    clock.advance(2)
    assert token not in everything_said_about(raised_by(lambda: provider.info(token)))


def test_bad_key_error_holds_no_key_material() -> None:
    key_data = (
        b"-----BEGIN PRIVATE KEY-----\nTUlJQ2VjcmV0S2V5TWF0ZXJpYWw=\n-----END PRIVATE KEY-----\n"
    )
    err = raised_by(lambda: JWTTokenProvider(private_key=key_data))
    assert "TUlJQ2VjcmV0S2V5TWF0ZXJpYWw" not in everything_said_about(err)
    hmac_secret = b"too-short-hmac-secret"
    err = raised_by(lambda: JWTTokenProvider(sign_method=SignMethod.HS256, private_key=hmac_secret))
    assert "too-short-hmac-secret" not in everything_said_about(err)


def test_reprs_hold_no_secret() -> None:
    store, backend = make_store()
    enable_with_root(store)
    store.apply(store.propose_user_add("alice", SECRET))
    backend_user = backend.get_user("alice")
    assert backend_user is not None
    password_hash = backend_user.password_hash
    assert password_hash is not None
    command = store.propose_user_add("bob", SECRET)
    change = UserChangePassword("alice", password_hash)
    jwt_provider = JWTTokenProvider(sign_method=SignMethod.HS256, private_key=b"k" * 32)
    simple = SimpleTokenProvider()
    token = simple.assign("alice", 1)
    texts = [
        repr(backend_user),
        str(backend_user),
        repr(command),
        repr(change),
        repr(store),
        repr(backend),
        repr(PasswordHasher(cost=TEST_COST)),
        repr(jwt_provider),
        repr(simple),
    ]
    for text in texts:
        assert SECRET not in text
        assert password_hash not in text
        assert token not in text
        assert "k" * 32 not in text
