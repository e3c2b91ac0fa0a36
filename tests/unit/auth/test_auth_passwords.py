"""Passwords are hashed with argon2id at the configured cost, and verify raises on mismatch."""

from __future__ import annotations

import argon2
import pytest

from auth import DEFAULT_COST, TEST_COST, HashCost, PasswordHasher
from auth.errors import AuthFailed, PasswordTooShort

PASSWORD = "correct horse battery"


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(cost=TEST_COST)


def test_hash_is_argon2id_with_the_configured_cost(hasher: PasswordHasher) -> None:
    encoded = hasher.hash(PASSWORD)
    assert encoded.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    params = argon2.extract_parameters(encoded)
    assert params.type is argon2.Type.ID
    assert (params.time_cost, params.memory_cost, params.parallelism) == (1, 8, 1)
    assert params.hash_len == 32
    assert params.salt_len == 16


def test_other_cost_profile_is_applied() -> None:
    cost = HashCost(time_cost=2, memory_cost=16, parallelism=2)
    params = argon2.extract_parameters(PasswordHasher(cost=cost).hash(PASSWORD))
    assert (params.time_cost, params.memory_cost, params.parallelism) == (2, 16, 2)


def test_default_cost_is_rfc9106_low_memory_profile() -> None:
    assert (DEFAULT_COST.time_cost, DEFAULT_COST.memory_cost, DEFAULT_COST.parallelism) == (
        3,
        65536,
        4,
    )


def test_hash_is_salted(hasher: PasswordHasher) -> None:
    assert hasher.hash(PASSWORD) != hasher.hash(PASSWORD)


def test_hash_does_not_contain_the_password(hasher: PasswordHasher) -> None:
    assert PASSWORD not in hasher.hash(PASSWORD)


def test_verify_accepts_the_right_password(hasher: PasswordHasher) -> None:
    hasher.verify(hasher.hash(PASSWORD), PASSWORD)


def test_verify_raises_auth_failed_on_wrong_password(hasher: PasswordHasher) -> None:
    with pytest.raises(AuthFailed):
        hasher.verify(hasher.hash(PASSWORD), PASSWORD + "x")


@pytest.mark.parametrize("bad_hash", ["", "not a hash", "$2a$10$abcdefghijklmnopqrstuv"])
def test_verify_raises_auth_failed_on_unusable_hash(hasher: PasswordHasher, bad_hash: str) -> None:
    with pytest.raises(AuthFailed):
        hasher.verify(bad_hash, PASSWORD)


def test_verify_accepts_hash_made_at_another_cost(hasher: PasswordHasher) -> None:
    # Raising the cost later must not lock existing users out.
    other = PasswordHasher(cost=HashCost(time_cost=2, memory_cost=16, parallelism=1))
    hasher.verify(other.hash(PASSWORD), PASSWORD)
    assert hasher.needs_rehash(other.hash(PASSWORD))
    assert not hasher.needs_rehash(hasher.hash(PASSWORD))


def test_reject_always_fails_even_for_the_decoy(hasher: PasswordHasher) -> None:
    with pytest.raises(AuthFailed):
        hasher.reject(PASSWORD)
    with pytest.raises(AuthFailed):
        hasher.reject("ward decoy password")


def test_minimum_length_default_is_eight(hasher: PasswordHasher) -> None:
    with pytest.raises(PasswordTooShort) as info:
        hasher.hash("1234567")
    assert info.value.min_length == 8
    hasher.hash("12345678")


def test_minimum_length_counts_characters_not_bytes() -> None:
    hasher = PasswordHasher(cost=TEST_COST, min_length=4)
    hasher.hash("äöüß")  # 4 characters, 8 bytes
    with pytest.raises(PasswordTooShort):
        hasher.hash("äöü")


def test_minimum_length_can_be_lowered_for_etcdctl_habits() -> None:
    hasher = PasswordHasher(cost=TEST_COST, min_length=1)
    hasher.verify(hasher.hash("x"), "x")
    with pytest.raises(PasswordTooShort):
        hasher.hash("")


def test_verify_does_not_apply_minimum_length(hasher: PasswordHasher) -> None:
    # A user created under a lower minimum can still log in.
    short_hash = PasswordHasher(cost=TEST_COST, min_length=1).hash("abc")
    hasher.verify(short_hash, "abc")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_cost": 0, "memory_cost": 8, "parallelism": 1},
        {"time_cost": 1, "memory_cost": 8, "parallelism": 0},
        {"time_cost": 1, "memory_cost": 15, "parallelism": 2},
    ],
)
def test_hash_cost_is_validated(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        HashCost(**kwargs)


def test_negative_min_length_is_refused() -> None:
    with pytest.raises(ValueError):
        PasswordHasher(cost=TEST_COST, min_length=-1)


def test_bcrypt_cost_maps_to_argon2_with_etcds_default_at_owasps_profile() -> None:
    from auth import cost_from_bcrypt

    assert cost_from_bcrypt(10) == HashCost(time_cost=2, memory_cost=19 * 1024, parallelism=1)
    # Each bcrypt step doubles the work: passes above 10, memory below.
    assert cost_from_bcrypt(12).time_cost == 8
    assert cost_from_bcrypt(9).memory_cost == 19 * 512
    # etcd's tests use 4: cheap, and still a valid argon2id cost.
    assert cost_from_bcrypt(4).memory_cost == 304
    for bad in (3, 32):
        with pytest.raises(ValueError):
            cost_from_bcrypt(bad)
