"""The permission interval index matches etcd's range semantics at every boundary."""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth import Permission, PermissionType, build_user_permissions
from auth.ranges import IntervalSet, grant_interval, is_valid_permission_range

R, W, RW = PermissionType.READ, PermissionType.WRITE, PermissionType.READWRITE
FROM = b"\x00"


def perms(*grants: tuple[PermissionType, bytes, bytes]) -> list[Permission]:
    return [Permission(t, k, e) for t, k, e in grants]


# --- single key grants (SECURITY 3) ---------------------------------------------------------


def test_single_key_grant_allows_that_key_only() -> None:
    p = build_user_permissions(perms((R, b"a", b"")))
    assert p.can_read(b"a")
    assert not p.can_read(b"a\x00")
    assert not p.can_read(b"b")
    assert not p.can_read(b"")


def test_single_key_grant_does_not_allow_from_key_request() -> None:
    # The etcd watch leak: a grant on "a" must not allow ["a", "\0").
    p = build_user_permissions(perms((R, b"a", b"")))
    assert not p.can_read(b"a", FROM)


def test_single_key_grant_does_not_allow_range_or_prefix_request() -> None:
    p = build_user_permissions(perms((R, b"a", b"")))
    assert not p.can_read(b"a", b"b")  # prefix "a"
    assert not p.can_read(b"a", b"a\x00\x00")
    # ...but the range holding exactly "a" is the key itself.
    assert p.can_read(b"a", b"a\x00")


# --- prefix and range grants ------------------------------------------------------------------


def test_prefix_grant_allows_keys_and_subranges_inside() -> None:
    p = build_user_permissions(perms((R, b"foo/", b"foo0")))
    assert p.can_read(b"foo/")
    assert p.can_read(b"foo/bar")
    assert p.can_read(b"foo/", b"foo0")
    assert p.can_read(b"foo/a", b"foo/b")


def test_prefix_grant_boundaries_are_half_open() -> None:
    p = build_user_permissions(perms((R, b"foo/", b"foo0")))
    assert not p.can_read(b"foo0")  # range_end excluded
    assert not p.can_read(b"foo.")  # just below key
    assert not p.can_read(b"foo/", b"foo0\x00")  # one key past the end
    assert not p.can_read(b"foo.", b"foo0")  # starts one key early
    assert not p.can_read(b"foo/", FROM)  # from-key runs past the end


def test_range_query_covered_by_adjacent_grants() -> None:
    p = build_user_permissions(perms((R, b"a", b"c"), (R, b"c", b"e")))
    assert p.can_read(b"a", b"e")
    assert p.can_read(b"b", b"d")


def test_range_query_with_gap_between_grants_is_denied() -> None:
    p = build_user_permissions(perms((R, b"a", b"c"), (R, b"d", b"e")))
    assert not p.can_read(b"a", b"e")
    assert not p.can_read(b"c")
    assert p.can_read(b"d")


def test_single_key_grant_fills_a_one_key_gap() -> None:
    # ["a","c") + "c" + ["c\0","e") hold every key of ["a","e").
    p = build_user_permissions(perms((R, b"a", b"c"), (R, b"c", b""), (R, b"c\x00", b"e")))
    assert p.can_read(b"a", b"e")


# --- from-key grants --------------------------------------------------------------------------


def test_from_key_grant_allows_every_key_from_its_key_on() -> None:
    p = build_user_permissions(perms((R, b"m", FROM)))
    assert p.can_read(b"m")
    assert p.can_read(b"\xff\xff\xff")
    assert p.can_read(b"m", FROM)
    assert p.can_read(b"x", FROM)
    assert p.can_read(b"m", b"z")
    assert not p.can_read(b"l")
    assert not p.can_read(b"l", FROM)
    assert not p.can_read(b"l\xff", b"z")


def test_grant_from_nul_allows_all_keys() -> None:
    # etcdctl role grant-permission --from-key r read "" sends key "\0", range_end "\0".
    p = build_user_permissions(perms((R, b"\x00", FROM)))
    assert p.can_read(b"\x00", FROM)
    assert p.can_read(b"anything")
    assert p.can_read(b"\x00")


def test_empty_key_request_is_never_allowed() -> None:
    # "" is not a key; etcd's interval tree never matches it either.
    p = build_user_permissions(perms((R, b"\x00", FROM)))
    assert not p.can_read(b"")
    assert not p.can_read(b"", FROM)
    assert not p.can_read(b"", b"b")


# --- types and roles --------------------------------------------------------------------------


def test_read_grant_does_not_allow_write_and_vice_versa() -> None:
    p = build_user_permissions(perms((R, b"r", b""), (W, b"w", b"")))
    assert p.can_read(b"r")
    assert not p.can_write(b"r")
    assert p.can_write(b"w")
    assert not p.can_read(b"w")


def test_readwrite_grant_allows_both() -> None:
    p = build_user_permissions(perms((RW, b"k", b"")))
    assert p.can_read(b"k")
    assert p.can_write(b"k")


def test_union_of_grants_from_several_roles() -> None:
    # Grants of two roles, merged: a read of the union needs both.
    role_a = perms((R, b"a", b"b"))
    role_b = perms((R, b"b", b"c"))
    assert build_user_permissions(role_a + role_b).can_read(b"a", b"c")
    assert not build_user_permissions(role_a).can_read(b"a", b"c")


def test_read_and_write_grants_are_not_merged_together() -> None:
    p = build_user_permissions(perms((R, b"a", b"b"), (W, b"b", b"c")))
    assert not p.can_read(b"a", b"c")
    assert not p.can_write(b"a", b"c")


def test_root_bypasses_every_range() -> None:
    p = build_user_permissions([], is_root=True)
    assert p.can_read(b"", FROM)
    assert p.can_write(b"anything", b"\xff")


def test_no_grants_allow_nothing() -> None:
    p = build_user_permissions([])
    assert not p.can_read(b"a")
    assert not p.can_write(b"a", FROM)


# --- requests that name no key -----------------------------------------------------------------


def test_empty_request_range_decided_as_etcd_interval_tree() -> None:
    # etcd allows ["b","a") when one grant starts below "a" and ends after "b".
    p = build_user_permissions(perms((R, b"0", b"z")))
    assert p.can_read(b"b", b"a")
    assert p.can_read(b"b", b"b")
    # A single-key grant on "a" does not reach across "a": etcd denies ["a","a").
    q = build_user_permissions(perms((R, b"a", b"")))
    assert not q.can_read(b"a", b"a")
    assert not build_user_permissions([]).can_read(b"b", b"a")


# --- grants etcd refuses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "range_end", "valid"),
    [
        (b"a", b"", True),
        (b"a", b"b", True),
        (b"a", FROM, True),
        (b"\x00", FROM, True),
        (b"", b"", False),
        (b"", FROM, False),
        (b"b", b"a", False),
        (b"a", b"a", False),
    ],
)
def test_is_valid_permission_range_matches_etcd(key: bytes, range_end: bytes, valid: bool) -> None:
    assert is_valid_permission_range(key, range_end) is valid


def test_invalid_stored_grants_grant_nothing() -> None:
    p = build_user_permissions(perms((R, b"", FROM), (R, b"b", b"a"), (R, b"c", b"c")))
    assert not p.can_read(b"a")
    assert not p.can_read(b"b")
    assert not p.can_read(b"c")
    assert grant_interval(b"", b"") is None


def test_merged_set_is_sorted_disjoint_and_not_touching() -> None:
    s = IntervalSet.of([(b"c", b"e"), (b"a", b"c"), (b"x", None), (b"f", b"g"), (b"y", b"z")])
    assert s.begins == (b"a", b"f", b"x")
    assert s.ends == (b"e", b"g", None)


# --- against a brute-force reference -----------------------------------------------------------

ALPHABET = [b"\x00", b"a", b"b", b"\xff"]
# Every string over the alphabet up to length 3: it holds every interval endpoint and query key
# the strategies below produce (at most 3 bytes), and a gap in coverage always starts at such an
# endpoint or at the query's key, so checking these keys is exact.
UNIVERSE = [b"".join(p) for n in range(4) for p in product(ALPHABET, repeat=n)]

short_keys = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=2).map(b"".join)
range_ends = st.one_of(st.just(b""), st.just(FROM), short_keys)
grants = st.lists(
    st.tuples(st.sampled_from(list(PermissionType)), short_keys, range_ends), max_size=8
)
query_keys = st.lists(st.sampled_from(ALPHABET), min_size=0, max_size=2).map(b"".join)


def in_grant(s: bytes, key: bytes, range_end: bytes) -> bool:
    if not key:
        return False
    if not range_end:
        return s == key
    if range_end == FROM:
        return s >= key
    return key <= s < range_end


def reference_allows(
    grants: list[tuple[PermissionType, bytes, bytes]], key: bytes, range_end: bytes
) -> bool:
    """Every key the request names lies in some grant (the request names at least one key)."""
    if not range_end:
        wanted = [key]
    elif range_end == FROM:
        wanted = [s for s in UNIVERSE if s >= key]
    else:
        wanted = [s for s in UNIVERSE if key <= s < range_end]
    return all(any(in_grant(s, k, e) for _, k, e in grants) for s in wanted)


def etcd_reaches_across(
    grants: list[tuple[PermissionType, bytes, bytes]], key: bytes, range_end: bytes
) -> bool:
    """etcd's answer for a request naming no key: one grant starts below range_end, ends after
    key."""
    for _, k, e in grants:
        iv = grant_interval(k, e)
        if iv is not None and iv[0] < range_end and (iv[1] is None or iv[1] > key):
            return True
    return False


def endpoints(grants: list[tuple[PermissionType, bytes, bytes]]) -> list[bytes]:
    """Keys at the edges of the grants: where a wrong boundary would show."""
    points = set()
    for _, k, e in grants:
        points.update((k, k + b"\x00"))
        if e and e != FROM:
            points.update((e, e + b"\x00"))
    return sorted(p for p in points if len(p) <= 3)


@settings(max_examples=200, deadline=None)
@given(grants=grants, data=st.data())
def test_can_read_and_write_match_brute_force(
    grants: list[tuple[PermissionType, bytes, bytes]], data: st.DataObject
) -> None:
    edges = endpoints(grants)
    near = st.sampled_from(edges) if edges else query_keys
    key = data.draw(st.one_of(query_keys, near), label="key")
    range_end = data.draw(st.one_of(range_ends, near), label="range_end")
    p = build_user_permissions(perms(*grants))
    reads = [g for g in grants if g[0] in (R, RW)]
    writes = [g for g in grants if g[0] in (W, RW)]
    names_keys = not range_end or range_end == FROM or key < range_end
    if names_keys:
        assert p.can_read(key, range_end) == reference_allows(reads, key, range_end)
        assert p.can_write(key, range_end) == reference_allows(writes, key, range_end)
    else:
        # Ward decides on merged grants: it allows at least what etcd allows.
        if etcd_reaches_across(reads, key, range_end):
            assert p.can_read(key, range_end)
        if etcd_reaches_across(writes, key, range_end):
            assert p.can_write(key, range_end)
