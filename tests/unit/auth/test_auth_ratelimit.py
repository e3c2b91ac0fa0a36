"""Failed-authentication limits: per user name and per address, refilling, isolated."""

from __future__ import annotations

import pytest
from auth_helpers import FakeClock

from auth import RateLimit, RateLimiter
from auth.errors import TooManyRequests


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(0.0)


def limiter(clock: FakeClock, **kwargs: object) -> RateLimiter:
    return RateLimiter(
        per_user=RateLimit(burst=3, per_second=1.0),
        per_address=RateLimit(burst=5, per_second=1.0),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def fail(rl: RateLimiter, user: str, address: str, times: int) -> None:
    for _ in range(times):
        rl.check(user=user, address=address)
        rl.record_failure(user=user, address=address)


def test_user_is_limited_after_burst_failures(clock: FakeClock) -> None:
    rl = limiter(clock)
    fail(rl, "alice", "10.0.0.1", 3)
    with pytest.raises(TooManyRequests):
        rl.check(user="alice", address="10.0.0.1")


def test_user_limit_applies_from_every_address(clock: FakeClock) -> None:
    rl = limiter(clock)
    fail(rl, "alice", "10.0.0.1", 3)
    with pytest.raises(TooManyRequests):
        rl.check(user="alice", address="10.0.0.2")


def test_one_users_failures_never_limit_another_user(clock: FakeClock) -> None:
    rl = limiter(clock)
    fail(rl, "alice", "10.0.0.1", 3)
    rl.check(user="bob", address="10.0.0.2")


def test_address_is_limited_across_user_names(clock: FakeClock) -> None:
    rl = limiter(clock)
    for name in ["a", "b", "c", "d", "e"]:
        fail(rl, name, "10.0.0.9", 1)
    with pytest.raises(TooManyRequests):
        rl.check(user="f", address="10.0.0.9")
    rl.check(user="f", address="10.0.0.10")


def test_bucket_refills_over_time(clock: FakeClock) -> None:
    rl = limiter(clock)
    fail(rl, "alice", "", 3)
    clock.advance(0.9)
    with pytest.raises(TooManyRequests):
        rl.check(user="alice")
    clock.advance(0.1)
    rl.check(user="alice")


def test_empty_address_is_not_limited_by_address(clock: FakeClock) -> None:
    rl = limiter(clock)
    for name in ["a", "b", "c", "d", "e", "f"]:
        fail(rl, name, "", 1)
    rl.check(user="g")


def test_table_is_bounded(clock: FakeClock) -> None:
    rl = limiter(clock, max_entries=2)
    fail(rl, "a", "", 3)
    fail(rl, "b", "", 1)
    fail(rl, "c", "", 1)
    # "a" was touched longest ago and was forgotten: the limit got milder, never stricter.
    rl.check(user="a")


@pytest.mark.parametrize(
    "kwargs", [{"burst": 0.5, "per_second": 1.0}, {"burst": 1, "per_second": 0}]
)
def test_rate_limit_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimit(**kwargs)
