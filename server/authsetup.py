"""Builds a serving process's auth from the member's options: store, token provider, `Access`.

The core process issues tokens (Authenticate is answered there), hashes passwords and applies
auth entries; workers check tokens and permissions against the same replicated tables. Under
JWT without configured keys, the core publishes its member's verification key through the log
once it serves, so every member accepts the tokens it issues (`server.tokens`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from auth.passwords import BCRYPT_DEFAULT_COST, DEFAULT_MIN_LENGTH, PasswordHasher, cost_from_bcrypt
from auth.ratelimit import RateLimiter
from auth.store import AuthStore
from auth.tokens import DEFAULT_TTL, TokenKind, TokenOptions
from server.access import Access
from server.apply import Applier
from server.audit import DEFAULT_MAX_SIZE, AuditLog, load_key
from server.errors import EtcdError
from server.state import ENTRY_AUTH_PUBLISH_KEY
from server.storage.authdb import LmdbAuthBackend
from server.storage.backend import Backend
from server.tokens import (
    SIMPLE_WARNING,
    MemberTokens,
    TokenSettings,
    build_token_provider,
    token_settings,
)
from wardpb.peerpb import peer_pb2

log = logging.getLogger("ward.auth")

# The internal method a worker asks the core who a simple token names (see Access.token_info).
TOKEN_INFO_METHOD = "AuthTokenInfo"
PUBLISH_RETRY_S = 1.0
AUDIT_KEY_FILE = "audit.key"


@dataclass(frozen=True, slots=True)
class AuthOptions:
    """The member's auth configuration (etcd's `--auth-token`, `--auth-token-ttl`,
    `--bcrypt-cost`, and Ward's minimum password length)."""

    token: TokenOptions = field(default_factory=lambda: TokenOptions(kind=TokenKind.JWT))
    token_ttl: float = DEFAULT_TTL
    bcrypt_cost: int = BCRYPT_DEFAULT_COST
    min_password_length: int = DEFAULT_MIN_LENGTH
    # Ward's audit log (server.audit): off unless a path is given.
    audit_log: Path | None = None
    audit_log_max_size: int = DEFAULT_MAX_SIZE


@dataclass(frozen=True, slots=True)
class WorkerAuth:
    """What a worker process needs to check tokens (picklable; no signing key)."""

    tokens: TokenSettings
    bcrypt_cost: int
    min_password_length: int
    # The audit log and where its key is (the worker reads the key itself).
    audit_log: Path | None = None
    audit_key: Path | None = None
    audit_log_max_size: int = DEFAULT_MAX_SIZE


def _store(
    db: LmdbAuthBackend,
    settings: TokenSettings,
    bcrypt_cost: int,
    min_length: int,
    *,
    limiter: RateLimiter | None,
) -> AuthStore:
    return AuthStore(
        db,
        tokens=build_token_provider(settings, db),
        hasher=PasswordHasher(cost=cost_from_bcrypt(bcrypt_cost), min_length=min_length),
        rate_limiter=limiter,
    )


def core_access(
    backend: Backend, applier: Applier, options: AuthOptions, *, key_dir: Path
) -> tuple[Access, WorkerAuth]:
    """The core process's `Access`, and what its workers need to build theirs."""
    settings = token_settings(options.token, ttl=options.token_ttl, key_dir=key_dir)
    if settings.kind is TokenKind.SIMPLE:
        log.warning(SIMPLE_WARNING)
    db = LmdbAuthBackend(backend)
    store = _store(
        db, settings, options.bcrypt_cost, options.min_password_length, limiter=RateLimiter()
    )
    access = Access(db, store, lease_keys=applier.lease_keys)
    audit_key = key_dir / AUDIT_KEY_FILE if options.audit_log is not None else None
    if options.audit_log is not None and audit_key is not None:
        key = load_key(audit_key, create=True)
        access.audit = AuditLog(options.audit_log, key, max_size=options.audit_log_max_size)
    worker = WorkerAuth(
        settings.for_worker(),
        options.bcrypt_cost,
        options.min_password_length,
        audit_log=options.audit_log,
        audit_key=audit_key,
        audit_log_max_size=options.audit_log_max_size,
    )
    return access, worker


def worker_access(
    backend: Backend,
    applier: Applier,
    auth: WorkerAuth,
    *,
    call_core: Callable[[str], Awaitable[bytes]],
) -> Access:
    """A worker's `Access`: it checks JWTs itself, and asks the core about simple tokens (which
    only the core's memory holds). `call_core` sends a token to the core's TOKEN_INFO_METHOD."""
    db = LmdbAuthBackend(backend)
    store = _store(db, auth.tokens, auth.bcrypt_cost, auth.min_password_length, limiter=None)
    remote = call_core if auth.tokens.kind is TokenKind.SIMPLE else None
    access = Access(db, store, lease_keys=applier.lease_keys, remote=remote)
    if auth.audit_log is not None and auth.audit_key is not None:
        key = load_key(auth.audit_key)
        access.audit = AuditLog(auth.audit_log, key, max_size=auth.audit_log_max_size)
    return access


async def publish_key(
    access: Access, propose: Callable[[int, bytes], Awaitable[bytes]], done: asyncio.Event
) -> None:
    """Propose this member's JWT verification key until the tables hold it (or there is none
    to publish: simple tokens, an HMAC secret, a verify-only member)."""
    tokens = access.store.tokens
    if not isinstance(tokens, MemberTokens):
        return
    key = tokens.published_key()
    if key is None:
        return
    entry = peer_pb2.AuthPublishKey(
        kid=key.kid, sign_method=key.sign_method.value, public_pem=key.public_pem
    ).SerializeToString()
    while not done.is_set() and not access.db.has_key(key.kid):
        try:
            await propose(ENTRY_AUTH_PUBLISH_KEY, entry)
        except EtcdError as e:
            log.info("could not publish the JWT key yet; retrying", extra={"error": e.message})
            await asyncio.sleep(PUBLISH_RETRY_S)
