"""Simple tokens: unguessable, remembered with a sliding TTL, forgotten on invalidation."""

from __future__ import annotations

import pytest
from auth_helpers import FakeClock

from auth import SimpleTokenProvider, TokenInfo
from auth.errors import InvalidAuthToken


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(0.0)


def test_round_trip_keeps_user_and_revision(clock: FakeClock) -> None:
    p = SimpleTokenProvider(clock=clock)
    assert p.info(p.assign("alice", 5)) == TokenInfo("alice", 5)


def test_tokens_are_long_random_and_unique() -> None:
    p = SimpleTokenProvider()
    tokens = {p.assign("alice", 1) for _ in range(500)}
    assert len(tokens) == 500
    # 32 bytes from `secrets`, URL-safe base64: at least 256 bits of entropy each.
    assert all(len(t) >= 43 for t in tokens)
    assert all("alice" not in t for t in tokens)


def test_unknown_token_is_refused(clock: FakeClock) -> None:
    p = SimpleTokenProvider(clock=clock)
    p.assign("alice", 1)
    with pytest.raises(InvalidAuthToken):
        p.info("not-a-token")


def test_token_expires_after_ttl_without_use(clock: FakeClock) -> None:
    p = SimpleTokenProvider(ttl=10, clock=clock)
    token = p.assign("alice", 1)
    clock.advance(10)
    with pytest.raises(InvalidAuthToken):
        p.info(token)


def test_use_renews_the_ttl_as_etcd_does(clock: FakeClock) -> None:
    p = SimpleTokenProvider(ttl=10, clock=clock)
    token = p.assign("alice", 1)
    for _ in range(5):
        clock.advance(9)
        assert p.info(token).username == "alice"
    clock.advance(10)
    with pytest.raises(InvalidAuthToken):
        p.info(token)


def test_invalidate_user_forgets_only_that_users_tokens(clock: FakeClock) -> None:
    p = SimpleTokenProvider(clock=clock)
    a = p.assign("alice", 1)
    b = p.assign("bob", 1)
    p.invalidate_user("alice")
    with pytest.raises(InvalidAuthToken):
        p.info(a)
    assert p.info(b).username == "bob"


def test_disable_forgets_every_token(clock: FakeClock) -> None:
    p = SimpleTokenProvider(clock=clock)
    a = p.assign("alice", 1)
    p.disable()
    with pytest.raises(InvalidAuthToken):
        p.info(a)
    assert p.token_count() == 0


def test_expired_tokens_are_swept_on_assign(clock: FakeClock) -> None:
    p = SimpleTokenProvider(ttl=10, clock=clock)
    for _ in range(3):
        p.assign("alice", 1)
    clock.advance(11)
    p.assign("bob", 1)
    assert p.token_count() == 1


def test_count_is_bounded_by_forgetting_least_recently_used(clock: FakeClock) -> None:
    p = SimpleTokenProvider(clock=clock, max_tokens=2)
    first = p.assign("a", 1)
    second = p.assign("b", 1)
    p.info(first)  # now `second` is the least recently used
    p.assign("c", 1)
    assert p.info(first).username == "a"
    with pytest.raises(InvalidAuthToken):
        p.info(second)


def test_repr_holds_no_token(clock: FakeClock) -> None:
    p = SimpleTokenProvider(clock=clock)
    token = p.assign("alice", 1)
    assert token not in repr(p)
