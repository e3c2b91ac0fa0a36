"""JWT tokens (pyjwt): signed, so every member can check a token any member issued.

A token carries etcd's claims, ``username`` and ``revision`` (the auth revision when it was
issued), plus ``exp``, ``iat`` and a random ``jti``; its header names the signing key in ``kid``.
Each member signs with its own key and verifies with a set of keys by ``kid``: its own, the
public keys other members publish, and keys it rotated away from but still accepts until they
are removed. A token without ``kid`` (as etcd issues them) is checked against the current key.

Verifying ES256 costs ~84 µs, so verified tokens are cached, keyed on a digest of the token (so
the cache holds no token). A cached answer is re-checked against its ``exp`` on every hit, and
dropped when its key is removed, so the cache never extends a token's life.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from auth.errors import InvalidAuthToken, InvalidKey, KeyMismatch, MissingKey, VerifyOnly
from auth.model import TokenInfo
from auth.tokens import DEFAULT_TTL, SignMethod, TokenOptions

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

_CURVES: dict[SignMethod, type[ec.EllipticCurve]] = {
    SignMethod.ES256: ec.SECP256R1,
    SignMethod.ES384: ec.SECP384R1,
    SignMethod.ES512: ec.SECP521R1,
}
_HMAC_MIN_BYTES = {SignMethod.HS256: 32, SignMethod.HS384: 48, SignMethod.HS512: 64}
_RSA_MIN_BITS = 2048
_RSA_GENERATED_BITS = 2048
DEFAULT_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """A member's public verification key, as it publishes it to the others."""

    kid: str
    sign_method: SignMethod
    public_pem: bytes


@dataclass(frozen=True, slots=True)
class _VerifyKey:
    method: SignMethod
    key: PublicKey | bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Cached:
    info: TokenInfo
    expires: float
    kid: str


def _is_rsa_method(method: SignMethod) -> bool:
    return method.value[:2] in ("RS", "PS")


def _check_private(method: SignMethod, key: object) -> PrivateKey:
    """The key, if it suits the sign method; raise ``InvalidKey`` otherwise."""
    if method in _CURVES:
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, _CURVES[method]):
            return key
    elif _is_rsa_method(method):
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= _RSA_MIN_BITS:
            return key
    elif method is SignMethod.EdDSA and isinstance(
        key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
    ):
        return key
    raise InvalidKey()


def _check_public(method: SignMethod, key: object) -> PublicKey:
    """The key, if it suits the sign method; raise ``InvalidKey`` otherwise."""
    if method in _CURVES:
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _CURVES[method]):
            return key
    elif _is_rsa_method(method):
        if isinstance(key, rsa.RSAPublicKey) and key.key_size >= _RSA_MIN_BITS:
            return key
    elif method is SignMethod.EdDSA and isinstance(
        key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
    ):
        return key
    raise InvalidKey()


def _load_private(method: SignMethod, pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # `from None`: the parser's message is no help and the key data must not travel.
        raise InvalidKey() from None
    return _check_private(method, key)


def _load_public(method: SignMethod, pem: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidKey() from None
    return _check_public(method, key)


def _generate(method: SignMethod) -> PrivateKey:
    if method in _CURVES:
        return ec.generate_private_key(_CURVES[method]())
    if _is_rsa_method(method):
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_GENERATED_BITS)
    if method is SignMethod.EdDSA:
        return ed25519.Ed25519PrivateKey.generate()
    raise MissingKey()


def _public_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _kid_of(material: bytes) -> str:
    digest = hashlib.sha256(b"ward jwt kid\x00" + material).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode("ascii")


class JWTTokenProvider:
    """Issues and checks JWTs; see the module docstring for the key and cache rules.

    ``private_key`` is a PEM private key (or, for HS*, the shared secret itself, at least as long
    as the hash); ``public_key`` a PEM public key. With neither, an asymmetric key is generated;
    with only ``public_key`` the provider is verify-only and ``assign`` raises ``VerifyOnly``.
    ``clock`` gives wall-clock seconds: ``exp`` must mean the same on every member.
    """

    def __init__(
        self,
        *,
        sign_method: SignMethod = SignMethod.ES256,
        private_key: bytes | None = None,
        public_key: bytes | None = None,
        ttl: float = DEFAULT_TTL,
        key_id: str | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self.sign_method = SignMethod(sign_method)
        self.ttl = ttl
        self._clock = clock
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        # Replaced, never mutated, so `info` can read it without the lock.
        self._keys: dict[str, _VerifyKey] = {}
        # The signing key and its kid change together (rotation), so they live in one tuple.
        self._signer: tuple[PrivateKey | bytes | None, str] = (None, "")
        self._install(private_key, public_key, key_id)

    @classmethod
    def from_options(
        cls,
        options: TokenOptions,
        *,
        private_key: bytes | None = None,
        public_key: bytes | None = None,
        default_ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> JWTTokenProvider:
        """A provider for a parsed ``--auth-token``; the caller has read the key files."""
        return cls(
            sign_method=options.sign_method,
            private_key=private_key,
            public_key=public_key,
            ttl=options.ttl if options.ttl else default_ttl,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"JWTTokenProvider(sign_method={self.sign_method.value}, kid={self.key_id!r})"

    # --- keys -------------------------------------------------------------------------------

    def _install(
        self, private_pem: bytes | None, public_pem: bytes | None, kid: str | None
    ) -> None:
        method = self.sign_method
        if method.is_hmac:
            if not private_pem:
                raise MissingKey()
            if len(private_pem) < _HMAC_MIN_BYTES[method]:
                raise InvalidKey()
            verify: _VerifyKey = _VerifyKey(method, private_pem)
            signing: PrivateKey | bytes | None = private_pem
            kid = kid or _kid_of(private_pem)
        else:
            private = _load_private(method, private_pem) if private_pem else None
            public = _load_public(method, public_pem) if public_pem else None
            if private is None and public is None:
                private = _generate(method)
            if private is not None:
                if public is not None and _public_der(public) != _public_der(private.public_key()):
                    raise KeyMismatch()
                public = private.public_key()
            assert public is not None
            verify = _VerifyKey(method, public)
            signing = private
            kid = kid or _kid_of(_public_der(public))
        with self._lock:
            if kid in self._keys and self._keys[kid] != verify:
                raise KeyMismatch()
            self._keys = {**self._keys, kid: verify}
            self._signer = (signing, kid)

    @property
    def key_id(self) -> str:
        """The ``kid`` of the key this provider signs with now."""
        return self._signer[1]

    @property
    def can_sign(self) -> bool:
        """False for a verify-only provider (it was given only a public key)."""
        return self._signer[0] is not None

    def published_key(self) -> PublishedKey:
        """This member's current public key, for the other members; not for HS* methods."""
        kid = self.key_id
        key = self._keys[kid].key
        if isinstance(key, bytes):
            raise InvalidKey()
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return PublishedKey(kid, self.sign_method, pem)

    def add_verification_key(self, key: PublishedKey) -> None:
        """Accept tokens signed with another member's (or a rotated-away) key.

        Re-adding the same key is a no-op; a different key under a known ``kid`` is refused with
        ``KeyMismatch``.
        """
        if key.sign_method.is_hmac:
            raise InvalidKey()
        verify = _VerifyKey(key.sign_method, _load_public(key.sign_method, key.public_pem))
        with self._lock:
            known = self._keys.get(key.kid)
            if known is not None:
                if known != verify:
                    raise KeyMismatch()
                return
            self._keys = {**self._keys, key.kid: verify}

    def remove_verification_key(self, kid: str) -> None:
        """Stop accepting tokens signed with ``kid``, cached ones included.

        The current signing key cannot be removed; rotate first.
        """
        with self._lock:
            if kid == self.key_id:
                raise ValueError("cannot remove the current signing key")
            self._keys = {k: v for k, v in self._keys.items() if k != kid}
            for digest in [d for d, c in self._cache.items() if c.kid == kid]:
                del self._cache[digest]

    def verification_key_ids(self) -> frozenset[str]:
        """The ``kid`` of every key this provider accepts."""
        return frozenset(self._keys)

    def rotate(self, private_key: bytes | None = None, *, public_key: bytes | None = None) -> str:
        """Sign with a new key from now on (generated if none is given); return its ``kid``.

        The old key keeps verifying the tokens it signed until ``remove_verification_key``.
        """
        self._install(private_key, public_key, None)
        return self.key_id

    # --- tokens -----------------------------------------------------------------------------

    def assign(self, username: str, revision: int) -> str:
        """A signed token for ``username`` at auth revision ``revision``, living ``ttl``."""
        signing, kid = self._signer
        if signing is None:
            raise VerifyOnly()
        now = self._clock()
        expires = int(now + self.ttl)
        claims = {
            "username": username,
            "revision": revision,
            "iat": int(now),
            "exp": expires,
            "jti": secrets.token_urlsafe(16),
        }
        token = jwt.encode(claims, signing, algorithm=self.sign_method.value, headers={"kid": kid})
        # This member just made it: the first use here need not pay for a verify.
        self._remember(_digest(token), _Cached(TokenInfo(username, revision), expires, kid))
        return token

    def info(self, token: str) -> TokenInfo:
        """Who the token belongs to; raise ``InvalidAuthToken`` if it is forged, expired or
        signed with a key this member does not accept."""
        digest = _digest(token)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(digest)
            if cached is not None:
                if now < cached.expires:
                    self._cache.move_to_end(digest)
                    return cached.info
                del self._cache[digest]
        if cached is not None:
            raise InvalidAuthToken()
        info, expires, kid = self._verify(token, now)
        self._remember(digest, _Cached(info, expires, kid))
        return info

    def _verify(self, token: str, now: float) -> tuple[TokenInfo, float, str]:
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid", self.key_id)
            key = self._keys.get(kid) if isinstance(kid, str) else None
            # The key decides the algorithm, never the token (no alg confusion, no "none").
            if key is None or header.get("alg") != key.method.value:
                raise InvalidAuthToken()
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.method.value],
                # Expiry is checked below against the injected clock, not pyjwt's.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp"],
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidAuthToken() from None
        username = claims.get("username")
        revision = claims.get("revision")
        expires = claims.get("exp")
        if (
            not isinstance(username, str)
            or isinstance(revision, bool)
            or not isinstance(revision, int)
            or revision < 0
            or isinstance(expires, bool)
            or not isinstance(expires, int | float)
            or now >= expires
        ):
            raise InvalidAuthToken()
        return TokenInfo(username, revision), float(expires), kid

    def _remember(self, digest: bytes, entry: _Cached) -> None:
        if self._cache_size == 0:
            return
        with self._lock:
            if entry.kid not in self._keys:
                return
            self._cache[digest] = entry
            self._cache.move_to_end(digest)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def invalidate_user(self, username: str) -> None:
        """Drop the user's cached tokens (they stay valid until ``exp``: JWTs cannot be revoked,
        the auth revision check refuses them instead)."""
        with self._lock:
            for digest in [d for d, c in self._cache.items() if c.info.username == username]:
                del self._cache[digest]

    def disable(self) -> None:
        """Drop every cached token."""
        with self._lock:
            self._cache.clear()

    def cached_count(self) -> int:
        """How many verified tokens are cached (for metrics and tests)."""
        return len(self._cache)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
