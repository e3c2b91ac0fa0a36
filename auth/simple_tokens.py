"""etcd's ``simple`` tokens: random strings the issuing member remembers for a while.

Unlike etcd's, the tokens come from ``secrets`` alone (SECURITY 13: etcd once used a
non-cryptographic source), and each remembers the auth revision it was issued at, so an auth
change refuses it like a JWT ("revision of auth store is old") instead of letting it run on under
the new rules. As in etcd, using a token renews its lifetime (``ttl`` after the last use).

The tokens are kept by a digest, so this object holds no usable token. The count is bounded:
past ``max_tokens`` the least recently used token is forgotten.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from auth.errors import InvalidAuthToken
from auth.model import TokenInfo
from auth.tokens import DEFAULT_TTL

DEFAULT_MAX_TOKENS = 100_000
_TOKEN_BYTES = 32


@dataclass(slots=True)
class _Entry:
    info: TokenInfo
    expires: float


class SimpleTokenProvider:
    """In-memory random tokens with a sliding ``ttl``; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.ttl = ttl
        self._clock = clock
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._tokens: OrderedDict[bytes, _Entry] = OrderedDict()

    def __repr__(self) -> str:
        return f"SimpleTokenProvider(ttl={self.ttl}, tokens={len(self._tokens)})"

    def assign(self, username: str, revision: int) -> str:
        """A new random token for ``username`` at auth revision ``revision``."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        now = self._clock()
        with self._lock:
            self._sweep(now)
            self._tokens[_digest(token)] = _Entry(TokenInfo(username, revision), now + self.ttl)
            while len(self._tokens) > self._max_tokens:
                self._tokens.popitem(last=False)
        return token

    def info(self, token: str) -> TokenInfo:
        """Who the token belongs to; renews its lifetime; ``InvalidAuthToken`` if unknown or
        expired."""
        digest = _digest(token)
        now = self._clock()
        with self._lock:
            entry = self._tokens.get(digest)
            if entry is None:
                raise InvalidAuthToken()
            if now >= entry.expires:
                del self._tokens[digest]
                raise InvalidAuthToken()
            entry.expires = now + self.ttl
            self._tokens.move_to_end(digest)
            return entry.info

    def invalidate_user(self, username: str) -> None:
        """Forget every token of the user."""
        with self._lock:
            for digest in [d for d, e in self._tokens.items() if e.info.username == username]:
                del self._tokens[digest]

    def disable(self) -> None:
        """Forget every token."""
        with self._lock:
            self._tokens.clear()

    def token_count(self) -> int:
        """How many tokens are remembered (expired ones may linger until the next assign)."""
        return len(self._tokens)

    def _sweep(self, now: float) -> None:
        # Entries are in order of last use, and every use extends by the same ttl, so the
        # expired ones are all at the front.
        while self._tokens:
            digest, entry = next(iter(self._tokens.items()))
            if now < entry.expires:
                break
            del self._tokens[digest]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
