"""Password hashing with argon2id (argon2-cffi), with the cost as data.

etcd hashed with bcrypt, whose cost throttled every login; argon2id is memory-hard and its cost
is tunable. Hashing happens on the propose side, before anything is replicated, so only the hash
reaches the Raft log (SECURITY 11).

A minimum password length is enforced (SECURITY 14), default 8 characters. etcd had none, and
scripts written for etcdctl often use short passwords (``etcdctl user add root:root``); a
deployment that must keep accepting them sets a lower ``min_length`` and accepts the risk.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NoReturn

import argon2
import argon2.exceptions

from auth.errors import AuthFailed, PasswordTooShort

DEFAULT_MIN_LENGTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class HashCost:
    """argon2id cost parameters; ``memory_cost`` is in KiB."""

    time_cost: int
    memory_cost: int
    parallelism: int

    def __post_init__(self) -> None:
        if self.time_cost < 1:
            raise ValueError("time_cost must be at least 1")
        if self.parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        # argon2 needs 8 KiB of memory per lane.
        if self.memory_cost < 8 * self.parallelism:
            raise ValueError("memory_cost must be at least 8 KiB per lane")


DEFAULT_COST = HashCost(time_cost=3, memory_cost=64 * 1024, parallelism=4)
"""RFC 9106's second recommended profile (64 MiB, 3 passes, 4 lanes)."""

TEST_COST = HashCost(time_cost=1, memory_cost=8, parallelism=1)
"""The cheapest argon2id: for tests only, it protects nothing."""

BCRYPT_DEFAULT_COST = 10
"""etcd's ``--bcrypt-cost`` default."""

_OWASP_COST = HashCost(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def cost_from_bcrypt(bcrypt_cost: int) -> HashCost:
    """The argon2id cost Ward uses for etcd's ``--bcrypt-cost``.

    etcd's default (10) maps to OWASP's argon2id profile (19 MiB, 2 passes, 1 lane): memory-hard,
    and about as slow per check as bcrypt at 10 is on the same core, so logins cost what operators
    are used to. Each step of bcrypt's cost doubles its work, so each step here does too: above 10
    the passes double, below it the memory halves (down to argon2's floor), so ``--bcrypt-cost 4``
    (what etcd's own tests use) is cheap enough for tests.
    """
    if not 4 <= bcrypt_cost <= 31:
        raise ValueError("bcrypt cost must be between 4 and 31")
    base = _OWASP_COST
    if bcrypt_cost >= BCRYPT_DEFAULT_COST:
        return HashCost(
            time_cost=base.time_cost << (bcrypt_cost - BCRYPT_DEFAULT_COST),
            memory_cost=base.memory_cost,
            parallelism=base.parallelism,
        )
    memory = max(base.memory_cost >> (BCRYPT_DEFAULT_COST - bcrypt_cost), 8 * base.parallelism)
    return HashCost(time_cost=base.time_cost, memory_cost=memory, parallelism=base.parallelism)


_HASH_LEN = 32
_SALT_LEN = 16


class PasswordHasher:
    """Hashes and verifies passwords; ``verify`` raises instead of returning False."""

    __slots__ = ("_decoy", "_hasher", "cost", "min_length")

    def __init__(self, *, cost: HashCost = DEFAULT_COST, min_length: int = DEFAULT_MIN_LENGTH):
        if min_length < 0:
            raise ValueError("min_length must not be negative")
        self.cost = cost
        self.min_length = min_length
        self._hasher = argon2.PasswordHasher(
            time_cost=cost.time_cost,
            memory_cost=cost.memory_cost,
            parallelism=cost.parallelism,
            hash_len=_HASH_LEN,
            salt_len=_SALT_LEN,
            type=argon2.Type.ID,
        )
        self._decoy: str | None = None

    def __repr__(self) -> str:
        return f"PasswordHasher(cost={self.cost!r}, min_length={self.min_length})"

    def check_length(self, password: str) -> None:
        """Raise ``PasswordTooShort`` if the password has fewer than ``min_length`` characters."""
        if len(password) < self.min_length:
            raise PasswordTooShort(self.min_length)

    def hash(self, password: str) -> str:
        """The argon2id hash string (PHC format) of a password of acceptable length."""
        self.check_length(password)
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> None:
        """Return if the password matches the hash; raise ``AuthFailed`` otherwise.

        A hash that is not an argon2 hash (corrupt, or another scheme) also fails.
        """
        try:
            self._hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            # `from None`: the library's exception adds nothing and must not ride along.
            raise AuthFailed() from None

    def reject(self, password: str) -> NoReturn:
        """Spend what one verification costs, then raise ``AuthFailed``.

        For a user that does not exist: answering at once would tell an attacker which names
        exist.
        """
        if self._decoy is None:
            self._decoy = self._hasher.hash("ward decoy password")
        with contextlib.suppress(
            argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError
        ):
            self._hasher.verify(self._decoy, password)
        raise AuthFailed()

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than this hasher's cost."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except argon2.exceptions.InvalidHashError:
            return True
