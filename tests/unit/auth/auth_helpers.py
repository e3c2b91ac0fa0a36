"""Shared builders for the auth tests: a store over memory with the cheapest hashing."""

from __future__ import annotations

from auth import (
    TEST_COST,
    AuthEnable,
    AuthStore,
    MemoryAuthBackend,
    PasswordHasher,
    RateLimiter,
    SimpleTokenProvider,
    TokenProvider,
    UserGrantRole,
)

ROOT_PASSWORD = "root-password-1"
PASSWORD = "alice-password-1"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_store(
    *,
    tokens: TokenProvider | None = None,
    rate_limiter: RateLimiter | None = None,
    min_length: int = 8,
    backend: MemoryAuthBackend | None = None,
) -> tuple[AuthStore, MemoryAuthBackend]:
    backend = backend if backend is not None else MemoryAuthBackend()
    store = AuthStore(
        backend,
        tokens=tokens if tokens is not None else SimpleTokenProvider(),
        hasher=PasswordHasher(cost=TEST_COST, min_length=min_length),
        rate_limiter=rate_limiter,
    )
    return store, backend


def enable_with_root(store: AuthStore) -> None:
    """Add ``root`` with the root role and turn auth on, as an operator would."""
    store.apply(store.propose_user_add("root", ROOT_PASSWORD))
    store.apply(UserGrantRole("root", "root"))
    store.apply(AuthEnable())
