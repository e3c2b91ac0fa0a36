"""Auth tokens as a member issues and checks them: keys, providers, and key publication.

JWT is the default. Without configured keys, a member signs with its own key, kept in its data
directory (0600) so that a restart does not invalidate the tokens it issued, and publishes the
public half through the replicated log (an `AuthPublishKey` entry). Every serving process of every
member then accepts the token: a verifier that meets an unknown `kid` reloads the published keys
from the `auth` table once before refusing (`MemberTokens`). With configured keys (etcd's
`jwt,pub-key=,priv-key=`), members that share a key pair share its `kid`, and tokens without a
`kid` (as etcd issues them) are checked against the configured key.

Only the core process signs (Authenticate is answered there); workers get the public key alone,
except for the HMAC methods, whose shared secret is also what verifies.

`simple` tokens (only when an operator asks for them) are random strings the core process keeps
in memory; workers ask the core who a token names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from auth.errors import AuthError, InvalidAuthToken, InvalidKey
from auth.jwt_tokens import JWTTokenProvider, PublishedKey
from auth.model import TokenInfo
from auth.simple_tokens import SimpleTokenProvider
from auth.tokens import DEFAULT_TTL, SignMethod, TokenKind, TokenOptions, TokenProvider
from server.storage.authdb import LmdbAuthBackend

log = logging.getLogger("ward.tokens")

SIMPLE_WARNING = (
    "--auth-token=simple: tokens are random strings kept in the memory of the member that issued"
    " them; they are not valid on other members and are lost on restart. Use the default, jwt"
)

_CURVES: dict[SignMethod, ec.EllipticCurve] = {
    SignMethod.ES256: ec.SECP256R1(),
    SignMethod.ES384: ec.SECP384R1(),
    SignMethod.ES512: ec.SECP521R1(),
}


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """What the serving processes of a member need to issue (core) and check tokens.

    `private_key` is a PEM private key, or the secret of an HMAC method; `public_key` a PEM
    public key. Picklable: workers get theirs through `for_worker`.
    """

    kind: TokenKind = TokenKind.JWT
    sign_method: SignMethod = SignMethod.ES256
    ttl: float = DEFAULT_TTL
    private_key: bytes | None = field(default=None, repr=False)
    public_key: bytes | None = None

    def for_worker(self) -> TokenSettings:
        """The settings without the signing key (workers only verify), unless it is the HMAC
        secret that verification needs too."""
        if self.sign_method.is_hmac:
            return self
        return replace(self, private_key=None)


def token_settings(options: TokenOptions, *, ttl: float, key_dir: Path) -> TokenSettings:
    """Read the keys `--auth-token` names, or load (creating it on first start) the member's own
    signing key in `key_dir`. `ttl` is `--auth-token-ttl`; a JWT `ttl=` option overrides it."""
    if options.kind is TokenKind.SIMPLE:
        return TokenSettings(kind=TokenKind.SIMPLE, ttl=ttl)
    method = options.sign_method
    private = _read(options.priv_key_path)
    public = _read(options.pub_key_path)
    if private is None and public is None:
        private = _member_key(method, key_dir)
    if private is not None and not method.is_hmac:
        public = _public_of(private) if public is None else public
    return TokenSettings(
        kind=TokenKind.JWT,
        sign_method=method,
        ttl=options.ttl or ttl,
        private_key=private,
        public_key=public,
    )


def _read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def _member_key(method: SignMethod, key_dir: Path) -> bytes:
    """The member's own PEM signing key for `method`, generated on first use."""
    path = key_dir / f"jwt-{method.value.lower()}.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    pem = _generate(method)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return pem


def _generate(method: SignMethod) -> bytes:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if method in _CURVES:
        key = ec.generate_private_key(_CURVES[method])
    elif method.value[:2] in ("RS", "PS"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif method is SignMethod.EdDSA:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        # An HMAC method signs with a secret every member must share: it cannot be made up.
        raise InvalidKey()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_of(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class MemberTokens:
    """A JWT provider that also accepts the keys other members published (see the module
    docstring); a `TokenProvider`."""

    def __init__(self, provider: JWTTokenProvider, db: LmdbAuthBackend) -> None:
        self.provider = provider
        self._db = db

    def __repr__(self) -> str:
        return f"MemberTokens({self.provider!r})"

    def assign(self, username: str, revision: int) -> str:
        return self.provider.assign(username, revision)

    def info(self, token: str) -> TokenInfo:
        try:
            return self.provider.info(token)
        except InvalidAuthToken:
            if not self._learn(token):
                raise
        return self.provider.info(token)

    def _learn(self, token: str) -> bool:
        """Load the published keys if the token names a `kid` this process does not know yet;
        whether it knows it now."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return False
        known = self.provider.verification_key_ids()
        if not isinstance(kid, str) or kid in known:
            return False
        for key in self._db.published_keys():
            if key.kid not in known and key.sign_method is self.provider.sign_method:
                try:
                    self.provider.add_verification_key(key)
                except AuthError:
                    # A malformed or clashing record must not stop the others from loading.
                    log.warning("ignoring an unusable published JWT key", extra={"kid": key.kid})
        return kid in self.provider.verification_key_ids()

    def invalidate_user(self, username: str) -> None:
        self.provider.invalidate_user(username)

    def disable(self) -> None:
        self.provider.disable()

    def published_key(self) -> PublishedKey | None:
        """This member's key, for the others; None when it cannot sign or signs with a secret."""
        if not self.provider.can_sign or self.provider.sign_method.is_hmac:
            return None
        return self.provider.published_key()


def build_token_provider(settings: TokenSettings, db: LmdbAuthBackend) -> TokenProvider:
    """The provider one serving process issues and checks tokens with."""
    if settings.kind is TokenKind.SIMPLE:
        return SimpleTokenProvider(ttl=settings.ttl)
    provider = JWTTokenProvider(
        sign_method=settings.sign_method,
        private_key=settings.private_key,
        public_key=settings.public_key,
        ttl=settings.ttl,
    )
    return MemberTokens(provider, db)
