"""JWT tokens: round trip, expiry on an injected clock, forgery, keys by kid, rotation, cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from auth_helpers import FakeClock
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from auth import JWTTokenProvider, PublishedKey, SignMethod, TokenInfo, parse_token_options
from auth.errors import InvalidAuthToken, InvalidKey, KeyMismatch, MissingKey, VerifyOnly

HMAC_SECRET = b"0123456789abcdef0123456789abcdef"


def private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified_claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(clock: FakeClock) -> JWTTokenProvider:
    return JWTTokenProvider(clock=clock)


# --- round trip -------------------------------------------------------------------------------


def test_default_is_es256_with_a_generated_key(provider: JWTTokenProvider) -> None:
    token = provider.assign("alice", 7)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert provider.info(token) == TokenInfo("alice", 7)


@pytest.mark.parametrize(
    "method",
    [
        SignMethod.ES256,
        SignMethod.ES384,
        SignMethod.ES512,
        SignMethod.RS256,
        SignMethod.PS256,
        SignMethod.EdDSA,
    ],
)
def test_round_trip_for_each_asymmetric_method(method: SignMethod, clock: FakeClock) -> None:
    issuer = JWTTokenProvider(sign_method=method, clock=clock)
    token = issuer.assign("bob", 3)
    assert jwt.get_unverified_header(token)["alg"] == method.value
    # A fresh verifier (no cache) with only the published key accepts it.
    verifier = JWTTokenProvider(clock=clock)
    verifier.add_verification_key(issuer.published_key())
    assert verifier.info(token) == TokenInfo("bob", 3)


@pytest.mark.parametrize("method", [SignMethod.HS256, SignMethod.HS384, SignMethod.HS512])
def test_round_trip_hmac_between_members_sharing_the_secret(
    method: SignMethod, clock: FakeClock
) -> None:
    secret = HMAC_SECRET * 2
    a = JWTTokenProvider(sign_method=method, private_key=secret, clock=clock)
    b = JWTTokenProvider(sign_method=method, private_key=secret, clock=clock)
    assert a.key_id == b.key_id
    assert b.info(a.assign("carol", 1)) == TokenInfo("carol", 1)


def test_claims_are_etcds_plus_iat_and_random_jti(
    provider: JWTTokenProvider, clock: FakeClock
) -> None:
    claims = unverified_claims(provider.assign("alice", 9))
    assert claims["username"] == "alice"
    assert claims["revision"] == 9
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] == int(clock.now) + 300
    assert claims["jti"] != unverified_claims(provider.assign("alice", 9))["jti"]


def test_header_names_the_key_id(provider: JWTTokenProvider) -> None:
    assert jwt.get_unverified_header(provider.assign("a", 1))["kid"] == provider.key_id


def test_from_options_uses_method_and_ttl(clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    opts = parse_token_options("jwt,sign-method=ES384,ttl=10s")
    p = JWTTokenProvider.from_options(opts, private_key=private_pem(key), clock=clock)
    assert p.ttl == 10.0
    claims = unverified_claims(p.assign("a", 1))
    assert claims["exp"] == int(clock.now) + 10


# --- expiry -----------------------------------------------------------------------------------


def test_token_expires_after_ttl_on_the_injected_clock(clock: FakeClock) -> None:
    issuer = JWTTokenProvider(ttl=60, clock=clock)
    verifier = JWTTokenProvider(clock=clock)
    verifier.add_verification_key(issuer.published_key())
    token = issuer.assign("alice", 1)
    clock.advance(59)
    assert verifier.info(token).username == "alice"
    clock.advance(1)
    with pytest.raises(InvalidAuthToken):
        verifier.info(token)


def test_cache_hit_does_not_skip_expiry(clock: FakeClock) -> None:
    provider = JWTTokenProvider(ttl=60, clock=clock)
    token = provider.assign("alice", 1)
    assert provider.info(token).username == "alice"
    assert provider.cached_count() == 1
    clock.advance(60)
    with pytest.raises(InvalidAuthToken):
        provider.info(token)
    assert provider.cached_count() == 0


def test_verified_token_is_cached(clock: FakeClock) -> None:
    issuer = JWTTokenProvider(clock=clock)
    verifier = JWTTokenProvider(clock=clock)
    verifier.add_verification_key(issuer.published_key())
    token = issuer.assign("alice", 1)
    assert verifier.cached_count() == 0
    verifier.info(token)
    assert verifier.cached_count() == 1
    verifier.info(token)
    assert verifier.cached_count() == 1


def test_cache_is_bounded(clock: FakeClock) -> None:
    provider = JWTTokenProvider(clock=clock, cache_size=3)
    tokens = [provider.assign(f"u{i}", 1) for i in range(5)]
    assert provider.cached_count() == 3
    # Evicted tokens are still valid: they are verified again.
    assert provider.info(tokens[0]).username == "u0"


# --- forgery ----------------------------------------------------------------------------------


def test_tampered_payload_is_refused(provider: JWTTokenProvider) -> None:
    header, _, signature = provider.assign("alice", 1).split(".")
    forged_payload = b64(json.dumps({"username": "root", "revision": 1, "exp": 2**40}).encode())
    with pytest.raises(InvalidAuthToken):
        provider.info(f"{header}.{forged_payload}.{signature}")


def test_tampered_signature_is_refused(provider: JWTTokenProvider, clock: FakeClock) -> None:
    verifier = JWTTokenProvider(clock=clock)
    verifier.add_verification_key(provider.published_key())
    token = provider.assign("alice", 1)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidAuthToken):
        verifier.info(flipped)


def test_token_from_an_unknown_key_is_refused(clock: FakeClock) -> None:
    stranger = JWTTokenProvider(clock=clock)
    provider = JWTTokenProvider(clock=clock)
    with pytest.raises(InvalidAuthToken):
        provider.info(stranger.assign("alice", 1))


def test_token_signed_by_a_wrong_key_under_a_known_kid_is_refused(clock: FakeClock) -> None:
    provider = JWTTokenProvider(clock=clock)
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(
        {"username": "root", "revision": 1, "exp": int(clock.now) + 60},
        other,
        algorithm="ES256",
        headers={"kid": provider.key_id},
    )
    with pytest.raises(InvalidAuthToken):
        provider.info(forged)


def test_hmac_token_made_with_the_public_key_is_refused(provider: JWTTokenProvider) -> None:
    # Algorithm confusion: the public key used as an HMAC secret.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": provider.key_id}).encode())
    payload = b64(json.dumps({"username": "root", "revision": 1, "exp": 2**40}).encode())
    secret = provider.published_key().public_pem
    sig = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidAuthToken):
        provider.info(f"{header}.{payload}.{sig}")


def test_unsigned_token_is_refused(provider: JWTTokenProvider) -> None:
    header = b64(json.dumps({"alg": "none", "kid": provider.key_id}).encode())
    payload = b64(json.dumps({"username": "root", "revision": 1, "exp": 2**40}).encode())
    with pytest.raises(InvalidAuthToken):
        provider.info(f"{header}.{payload}.")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "...", "\udcff.x.y"])
def test_garbage_is_refused(provider: JWTTokenProvider, garbage: str) -> None:
    with pytest.raises(InvalidAuthToken):
        provider.info(garbage)


@pytest.mark.parametrize(
    "claims",
    [
        {"revision": 1},
        {"username": "a"},
        {"username": 5, "revision": 1},
        {"username": "a", "revision": "1"},
        {"username": "a", "revision": True},
        {"username": "a", "revision": -1},
    ],
)
def test_missing_or_mistyped_claims_are_refused(
    clock: FakeClock, claims: dict[str, object]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    provider = JWTTokenProvider(private_key=private_pem(key), clock=clock)
    token = jwt.encode(
        {**claims, "exp": int(clock.now) + 60},
        key,
        algorithm="ES256",
        headers={"kid": provider.key_id},
    )
    with pytest.raises(InvalidAuthToken):
        provider.info(token)


def test_token_without_exp_is_refused(clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    provider = JWTTokenProvider(private_key=private_pem(key), clock=clock)
    token = jwt.encode({"username": "a", "revision": 1}, key, algorithm="ES256")
    with pytest.raises(InvalidAuthToken):
        provider.info(token)


def test_etcd_style_token_without_kid_is_checked_against_the_current_key(
    clock: FakeClock,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    provider = JWTTokenProvider(private_key=private_pem(key), clock=clock)
    token = jwt.encode(
        {"username": "alice", "revision": 4, "exp": int(clock.now) + 60}, key, algorithm="ES256"
    )
    assert provider.info(token) == TokenInfo("alice", 4)


# --- keys by kid, rotation ---------------------------------------------------------------------


def test_members_verify_each_others_tokens_by_kid(clock: FakeClock) -> None:
    a = JWTTokenProvider(clock=clock)
    b = JWTTokenProvider(clock=clock)
    assert a.key_id != b.key_id
    a.add_verification_key(b.published_key())
    b.add_verification_key(a.published_key())
    assert a.info(b.assign("x", 2)) == TokenInfo("x", 2)
    assert b.info(a.assign("y", 3)) == TokenInfo("y", 3)
    assert a.verification_key_ids() == {a.key_id, b.key_id}


def test_adding_the_same_key_twice_is_a_no_op(clock: FakeClock) -> None:
    a = JWTTokenProvider(clock=clock)
    b = JWTTokenProvider(clock=clock)
    a.add_verification_key(b.published_key())
    a.add_verification_key(b.published_key())
    assert len(a.verification_key_ids()) == 2


def test_another_key_under_a_known_kid_is_refused(clock: FakeClock) -> None:
    a = JWTTokenProvider(clock=clock)
    b = JWTTokenProvider(clock=clock)
    impostor = PublishedKey(a.key_id, SignMethod.ES256, b.published_key().public_pem)
    with pytest.raises(KeyMismatch):
        a.add_verification_key(impostor)


def test_rotation_keeps_old_tokens_until_the_old_key_is_removed(clock: FakeClock) -> None:
    provider = JWTTokenProvider(clock=clock)
    old_kid = provider.key_id
    old_token = provider.assign("alice", 1)
    new_kid = provider.rotate()
    assert new_kid != old_kid
    assert jwt.get_unverified_header(provider.assign("alice", 1))["kid"] == new_kid
    assert provider.info(old_token).username == "alice"  # cached, and still accepted
    provider.remove_verification_key(old_kid)
    with pytest.raises(InvalidAuthToken):
        provider.info(old_token)


def test_current_signing_key_cannot_be_removed(provider: JWTTokenProvider) -> None:
    with pytest.raises(ValueError):
        provider.remove_verification_key(provider.key_id)


# --- key configuration ------------------------------------------------------------------------


def test_verify_only_provider_checks_but_cannot_sign(clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = JWTTokenProvider(private_key=private_pem(key), clock=clock)
    verifier = JWTTokenProvider(public_key=public_pem(key), clock=clock)
    assert not verifier.can_sign
    assert verifier.key_id == signer.key_id
    assert verifier.info(signer.assign("alice", 1)).username == "alice"
    with pytest.raises(VerifyOnly):
        verifier.assign("alice", 1)


def test_mismatched_key_pair_is_refused() -> None:
    a = ec.generate_private_key(ec.SECP256R1())
    b = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(KeyMismatch):
        JWTTokenProvider(private_key=private_pem(a), public_key=public_pem(b))


def test_matching_key_pair_is_accepted(clock: FakeClock) -> None:
    a = ec.generate_private_key(ec.SECP256R1())
    p = JWTTokenProvider(private_key=private_pem(a), public_key=public_pem(a), clock=clock)
    assert p.info(p.assign("u", 1)).username == "u"


@pytest.mark.parametrize(
    ("method", "key"),
    [
        (SignMethod.ES256, ec.generate_private_key(ec.SECP384R1())),
        (SignMethod.RS256, ec.generate_private_key(ec.SECP256R1())),
        (SignMethod.ES256, rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        (SignMethod.RS256, rsa.generate_private_key(public_exponent=65537, key_size=1024)),
    ],
    ids=["wrong-curve", "ec-for-rsa", "rsa-for-ec", "rsa-1024"],
)
def test_key_unfit_for_method_is_refused(
    method: SignMethod, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> None:
    with pytest.raises(InvalidKey):
        JWTTokenProvider(sign_method=method, private_key=private_pem(key))


def test_ed25519_key_is_accepted_for_eddsa(clock: FakeClock) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    p = JWTTokenProvider(sign_method=SignMethod.EdDSA, private_key=pem, clock=clock)
    assert p.info(p.assign("u", 1)).username == "u"


def test_unparseable_key_is_refused() -> None:
    with pytest.raises(InvalidKey):
        JWTTokenProvider(
            private_key=b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"
        )


def test_hmac_needs_a_secret_as_long_as_the_hash() -> None:
    with pytest.raises(MissingKey):
        JWTTokenProvider(sign_method=SignMethod.HS256)
    with pytest.raises(InvalidKey):
        JWTTokenProvider(sign_method=SignMethod.HS256, private_key=b"short")
    with pytest.raises(InvalidKey):
        JWTTokenProvider(sign_method=SignMethod.HS512, private_key=HMAC_SECRET)


def test_hmac_provider_publishes_no_key() -> None:
    p = JWTTokenProvider(sign_method=SignMethod.HS256, private_key=HMAC_SECRET)
    with pytest.raises(InvalidKey):
        p.published_key()


# --- invalidation -----------------------------------------------------------------------------


def test_invalidate_user_and_disable_drop_cached_tokens(provider: JWTTokenProvider) -> None:
    provider.assign("alice", 1)
    provider.assign("bob", 1)
    provider.invalidate_user("alice")
    assert provider.cached_count() == 1
    provider.disable()
    assert provider.cached_count() == 0
