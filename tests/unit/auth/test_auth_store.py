"""The auth store follows etcd 3.5's rules and errors; checks see the current auth revision."""

from __future__ import annotations

import pytest
from auth_helpers import PASSWORD, ROOT_PASSWORD, FakeClock, enable_with_root, make_store

from auth import (
    AuthDisable,
    AuthEnable,
    AuthStore,
    JWTTokenProvider,
    Permission,
    PermissionType,
    RateLimit,
    RateLimiter,
    Role,
    RoleAdd,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
    TokenInfo,
    UserAdd,
    UserDelete,
    UserGrantRole,
    UserRevokeRole,
)
from auth import errors as e
from auth.model import ROOT_PERMISSION

R, W, RW = PermissionType.READ, PermissionType.WRITE, PermissionType.READWRITE


@pytest.fixture
def store() -> AuthStore:
    return make_store()[0]


def add_user(store: AuthStore, name: str, password: str = PASSWORD) -> None:
    store.apply(store.propose_user_add(name, password))


def grant(store: AuthStore, role: str, t: PermissionType, key: bytes, end: bytes = b"") -> None:
    store.apply(store.propose_role_grant_permission(role, Permission(t, key, end)))


def user_with_role(store: AuthStore, user: str, role: str, *grants: Permission) -> None:
    add_user(store, user)
    store.apply(RoleAdd(role))
    for p in grants:
        store.apply(RoleGrantPermission(role, p))
    store.apply(UserGrantRole(user, role))


def login(store: AuthStore, name: str, password: str = PASSWORD) -> TokenInfo:
    info = store.info_from_token(store.authenticate(name, password))
    assert info is not None
    return info


# --- enable / disable -------------------------------------------------------------------------


def test_enable_without_root_user_is_refused(store: AuthStore) -> None:
    with pytest.raises(e.RootUserNotExist):
        store.apply(AuthEnable())
    assert not store.is_enabled()


def test_enable_with_root_lacking_root_role_is_refused(store: AuthStore) -> None:
    add_user(store, "root", ROOT_PASSWORD)
    with pytest.raises(e.RootRoleNotExist):
        store.apply(AuthEnable())


def test_enable_with_root_role_granted_before_a_root_role_exists(store: AuthStore) -> None:
    add_user(store, "root", ROOT_PASSWORD)
    store.apply(UserGrantRole("root", "root"))  # etcd lets "root" be granted without RoleAdd
    store.apply(AuthEnable())
    assert store.is_enabled()


def test_enable_does_not_bump_revision_and_twice_is_a_no_op(store: AuthStore) -> None:
    add_user(store, "root", ROOT_PASSWORD)
    store.apply(UserGrantRole("root", "root"))
    rev = store.revision()
    assert store.apply(AuthEnable()).changed
    assert store.revision() == rev
    assert not store.apply(AuthEnable()).changed


def test_disable_bumps_revision_and_twice_is_a_no_op(store: AuthStore) -> None:
    enable_with_root(store)
    rev = store.revision()
    store.apply(AuthDisable())
    assert not store.is_enabled()
    assert store.revision() == rev + 1
    assert not store.apply(AuthDisable()).changed
    assert store.revision() == rev + 1


def test_disable_forgets_issued_tokens(store: AuthStore) -> None:
    enable_with_root(store)
    token = store.authenticate("root", ROOT_PASSWORD)
    store.apply(AuthDisable())
    store.apply(AuthEnable())
    with pytest.raises(e.InvalidAuthToken):
        store.info_from_token(token)


def test_status_reports_enabled_and_revision(store: AuthStore) -> None:
    enable_with_root(store)
    status = store.status()
    assert status.enabled
    assert status.revision == store.revision() == 2


# --- users ------------------------------------------------------------------------------------


def test_user_add_bumps_revision_and_user_is_listed(store: AuthStore) -> None:
    add_user(store, "bob")
    add_user(store, "alice")
    assert store.revision() == 2
    assert store.user_list() == ["alice", "bob"]
    assert store.user_get("alice") == ()


def test_user_add_with_empty_name_is_refused(store: AuthStore) -> None:
    with pytest.raises(e.UserEmpty):
        store.propose_user_add("", PASSWORD)
    with pytest.raises(e.UserEmpty):
        store.apply(UserAdd("", "hash"))


def test_user_add_twice_is_refused(store: AuthStore) -> None:
    add_user(store, "alice")
    with pytest.raises(e.UserAlreadyExists):
        add_user(store, "alice")
    assert store.revision() == 1


def test_user_get_of_missing_user(store: AuthStore) -> None:
    with pytest.raises(e.UserNotFound):
        store.user_get("ghost")


def test_user_delete(store: AuthStore) -> None:
    add_user(store, "alice")
    store.apply(UserDelete("alice"))
    assert store.user_list() == []
    with pytest.raises(e.UserNotFound):
        store.apply(UserDelete("alice"))


def test_root_cannot_be_deleted_while_auth_is_on(store: AuthStore) -> None:
    enable_with_root(store)
    with pytest.raises(e.InvalidAuthMgmt):
        store.apply(UserDelete("root"))
    store.apply(AuthDisable())
    store.apply(UserDelete("root"))


def test_delete_ends_the_users_tokens(store: AuthStore) -> None:
    enable_with_root(store)
    add_user(store, "alice")
    token = store.authenticate("alice", PASSWORD)
    store.apply(UserDelete("alice"))
    with pytest.raises(e.InvalidAuthToken):
        store.info_from_token(token)


def test_change_password(store: AuthStore) -> None:
    enable_with_root(store)
    add_user(store, "alice")
    old_token = store.authenticate("alice", PASSWORD)
    store.apply(store.propose_user_change_password("alice", "new-password-2"))
    with pytest.raises(e.AuthFailed):
        store.authenticate("alice", PASSWORD)
    store.authenticate("alice", "new-password-2")
    with pytest.raises(e.InvalidAuthToken):
        store.info_from_token(old_token)


def test_change_password_of_missing_user(store: AuthStore) -> None:
    with pytest.raises(e.UserNotFound):
        store.propose_user_change_password("ghost", "new-password-2")


def test_change_password_keeps_no_password_user_passwordless(store: AuthStore) -> None:
    enable_with_root(store)
    store.apply(store.propose_user_add("cert-user", "", no_password=True))
    rev = store.revision()
    store.apply(store.propose_user_change_password("cert-user", "new-password-2"))
    assert store.revision() == rev + 1
    with pytest.raises(e.NoPasswordUser):
        store.authenticate("cert-user", "new-password-2")


def test_grant_role_errors(store: AuthStore) -> None:
    add_user(store, "alice")
    with pytest.raises(e.UserNotFound):
        store.apply(UserGrantRole("ghost", "r"))
    with pytest.raises(e.RoleNotFound):
        store.apply(UserGrantRole("alice", "r"))


def test_grant_role_twice_is_a_no_op_without_revision_bump(store: AuthStore) -> None:
    add_user(store, "alice")
    store.apply(RoleAdd("r"))
    store.apply(UserGrantRole("alice", "r"))
    rev = store.revision()
    assert not store.apply(UserGrantRole("alice", "r")).changed
    assert store.revision() == rev
    assert store.user_get("alice") == ("r",)
    assert store.has_role("alice", "r")
    assert not store.has_role("ghost", "r")


def test_revoke_role(store: AuthStore) -> None:
    add_user(store, "alice")
    store.apply(RoleAdd("r"))
    store.apply(UserGrantRole("alice", "r"))
    store.apply(UserRevokeRole("alice", "r"))
    assert store.user_get("alice") == ()
    with pytest.raises(e.RoleNotGranted):
        store.apply(UserRevokeRole("alice", "r"))
    with pytest.raises(e.UserNotFound):
        store.apply(UserRevokeRole("ghost", "r"))


def test_root_keeps_root_role_while_auth_is_on(store: AuthStore) -> None:
    enable_with_root(store)
    with pytest.raises(e.InvalidAuthMgmt):
        store.apply(UserRevokeRole("root", "root"))
    store.apply(AuthDisable())
    store.apply(UserRevokeRole("root", "root"))


# --- roles ------------------------------------------------------------------------------------


def test_role_add_errors(store: AuthStore) -> None:
    with pytest.raises(e.RoleEmpty):
        store.apply(RoleAdd(""))
    store.apply(RoleAdd("r"))
    with pytest.raises(e.RoleAlreadyExists):
        store.apply(RoleAdd("r"))
    assert store.revision() == 1


def test_role_get_and_list(store: AuthStore) -> None:
    store.apply(RoleAdd("b"))
    store.apply(RoleAdd("a"))
    grant(store, "a", R, b"k")
    assert store.role_list() == ["a", "b"]
    assert store.role_get("a") == (Permission(R, b"k"),)
    with pytest.raises(e.RoleNotFound):
        store.role_get("ghost")


def test_root_role_reports_all_keys_readwrite(store: AuthStore) -> None:
    store.apply(RoleAdd("root"))
    assert store.role_get("root") == (ROOT_PERMISSION,)


def test_role_delete_removes_it_from_every_user(store: AuthStore) -> None:
    add_user(store, "alice")
    add_user(store, "bob")
    store.apply(RoleAdd("r"))
    store.apply(RoleAdd("s"))
    store.apply(UserGrantRole("alice", "r"))
    store.apply(UserGrantRole("bob", "r"))
    store.apply(UserGrantRole("bob", "s"))
    store.apply(RoleDelete("r"))
    assert store.role_list() == ["s"]
    assert store.user_get("alice") == ()
    assert store.user_get("bob") == ("s",)
    with pytest.raises(e.RoleNotFound):
        store.apply(RoleDelete("r"))


def test_root_role_cannot_be_deleted_while_auth_is_on(store: AuthStore) -> None:
    store.apply(RoleAdd("root"))
    enable_with_root(store)
    with pytest.raises(e.InvalidAuthMgmt):
        store.apply(RoleDelete("root"))


def test_grant_permission_errors(store: AuthStore) -> None:
    with pytest.raises(e.PermissionNotGiven):
        store.propose_role_grant_permission("r", None)
    for bad in (Permission(R, b""), Permission(R, b"b", b"a"), Permission(R, b"", b"\x00")):
        with pytest.raises(e.InvalidAuthMgmt):
            store.propose_role_grant_permission("r", bad)
        with pytest.raises(e.InvalidAuthMgmt):
            store.apply(RoleGrantPermission("r", bad))
    with pytest.raises(e.RoleNotFound):
        grant(store, "r", R, b"k")


def test_regrant_of_same_range_replaces_its_type(store: AuthStore) -> None:
    store.apply(RoleAdd("r"))
    grant(store, "r", R, b"a", b"b")
    grant(store, "r", W, b"a", b"b")
    grant(store, "r", R, b"a")
    assert store.role_get("r") == (Permission(R, b"a"), Permission(W, b"a", b"b"))


def test_revoke_permission(store: AuthStore) -> None:
    store.apply(RoleAdd("r"))
    grant(store, "r", R, b"a", b"b")
    grant(store, "r", R, b"c")
    store.apply(RoleRevokePermission("r", b"a", b"b"))
    assert store.role_get("r") == (Permission(R, b"c"),)
    with pytest.raises(e.PermissionNotGranted):
        store.apply(RoleRevokePermission("r", b"a", b"b"))
    with pytest.raises(e.PermissionNotGranted):
        store.apply(RoleRevokePermission("r", b"c", b"d"))
    with pytest.raises(e.RoleNotFound):
        store.apply(RoleRevokePermission("ghost", b"c"))


def test_refused_request_leaves_tables_and_revision_unchanged() -> None:
    store, backend = make_store()
    add_user(store, "alice")
    before = (backend.list_users(), backend.list_roles(), backend.get_revision())
    for command in (UserGrantRole("alice", "missing"), UserAdd("alice", "h"), RoleDelete("x")):
        with pytest.raises(e.AuthError):
            store.apply(command)
    assert (backend.list_users(), backend.list_roles(), backend.get_revision()) == before


def test_apply_is_deterministic_across_members() -> None:
    leader, _ = make_store()
    commands = [
        leader.propose_user_add("root", ROOT_PASSWORD),
        UserGrantRole("root", "root"),
        RoleAdd("r"),
        leader.propose_role_grant_permission("r", Permission(RW, b"a", b"\x00")),
        leader.propose_user_add("alice", PASSWORD),
        UserGrantRole("alice", "r"),
        AuthEnable(),
        RoleRevokePermission("r", b"a", b"\x00"),
    ]
    replicas = [make_store() for _ in range(2)]
    for replica, _ in replicas:
        for command in commands:
            replica.apply(command)
    (_, a), (_, b) = replicas
    assert a.list_users() == b.list_users()
    assert a.list_roles() == b.list_roles()
    assert (a.get_revision(), a.get_enabled()) == (b.get_revision(), b.get_enabled())


# --- propose side ----------------------------------------------------------------------------


def test_replicated_user_add_carries_an_argon2id_hash_not_the_password(store: AuthStore) -> None:
    command = store.propose_user_add("alice", PASSWORD)
    assert command.password_hash is not None
    assert command.password_hash.startswith("$argon2id$")
    assert PASSWORD not in command.password_hash
    assert PASSWORD not in repr(command)
    assert command.password_hash not in repr(command)


def test_replicated_password_change_carries_only_a_hash(store: AuthStore) -> None:
    add_user(store, "alice")
    command = store.propose_user_change_password("alice", "new-password-2")
    assert command.password_hash.startswith("$argon2id$")
    assert "new-password-2" not in repr(command)


def test_short_password_is_refused_before_proposing(store: AuthStore) -> None:
    with pytest.raises(e.PasswordTooShort):
        store.propose_user_add("alice", "short")
    add_user(store, "alice")
    with pytest.raises(e.PasswordTooShort):
        store.propose_user_change_password("alice", "short")


def test_no_password_user_gets_no_hash(store: AuthStore) -> None:
    command = store.propose_user_add("cert-user", "ignored", no_password=True)
    assert command.password_hash is None
    assert command.no_password


def test_user_add_command_requires_hash_unless_no_password() -> None:
    with pytest.raises(ValueError):
        UserAdd("alice", None)
    with pytest.raises(ValueError):
        UserAdd("alice", "hash", no_password=True)


# --- authenticate -----------------------------------------------------------------------------


def test_authenticate_needs_auth_on(store: AuthStore) -> None:
    add_user(store, "alice")
    with pytest.raises(e.AuthNotEnabled):
        store.authenticate("alice", PASSWORD)


def test_authenticate_issues_a_token_at_the_current_revision(store: AuthStore) -> None:
    enable_with_root(store)
    add_user(store, "alice")
    assert login(store, "alice") == TokenInfo("alice", store.revision())


def test_wrong_password_and_unknown_user_fail_alike(store: AuthStore) -> None:
    enable_with_root(store)
    add_user(store, "alice")
    with pytest.raises(e.AuthFailed):
        store.authenticate("alice", "wrong-password")
    with pytest.raises(e.AuthFailed):
        store.authenticate("ghost", PASSWORD)
    with pytest.raises(e.AuthFailed):
        store.authenticate("", PASSWORD)


def test_no_password_user_cannot_authenticate_with_a_password(store: AuthStore) -> None:
    enable_with_root(store)
    store.apply(store.propose_user_add("cert-user", "", no_password=True))
    with pytest.raises(e.NoPasswordUser):
        store.authenticate("cert-user", "")


def test_failed_logins_are_rate_limited_per_user() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(
        per_user=RateLimit(burst=2, per_second=0.1),
        per_address=RateLimit(burst=100, per_second=1),
        clock=clock,
    )
    store, _ = make_store(rate_limiter=limiter)
    enable_with_root(store)
    add_user(store, "alice")
    add_user(store, "bob")
    for _ in range(2):
        with pytest.raises(e.AuthFailed):
            store.authenticate("alice", "wrong-password", client_address="10.0.0.1")
    # Even the right password is refused while the bucket is empty...
    with pytest.raises(e.TooManyRequests):
        store.authenticate("alice", PASSWORD, client_address="10.0.0.1")
    # ...but bob, from the same address, is not affected.
    store.authenticate("bob", PASSWORD, client_address="10.0.0.1")
    clock.advance(10)
    store.authenticate("alice", PASSWORD, client_address="10.0.0.1")


def test_failed_logins_for_unknown_names_are_limited_too() -> None:
    limiter = RateLimiter(per_user=RateLimit(burst=1, per_second=0.01), clock=FakeClock(0.0))
    store, _ = make_store(rate_limiter=limiter)
    enable_with_root(store)
    with pytest.raises(e.AuthFailed):
        store.authenticate("ghost", PASSWORD)
    with pytest.raises(e.TooManyRequests):
        store.authenticate("ghost", PASSWORD)


def test_info_from_token_follows_etcd(store: AuthStore) -> None:
    assert store.info_from_token("anything") is None  # auth off: tokens are ignored
    enable_with_root(store)
    assert store.info_from_token(None) is None
    assert store.info_from_token("") is None
    with pytest.raises(e.InvalidAuthToken):
        store.info_from_token("not-a-token")


# --- permission checks ------------------------------------------------------------------------


def test_everything_is_allowed_with_auth_off(store: AuthStore) -> None:
    store.check_permission(None, b"k", write=True)
    store.check_admin(None)


def test_check_without_user_is_user_empty(store: AuthStore) -> None:
    enable_with_root(store)
    with pytest.raises(e.UserEmpty):
        store.check_permission(None, b"k", write=False)
    with pytest.raises(e.UserEmpty):
        store.check_permission(TokenInfo("root", 0), b"k", write=False)
    with pytest.raises(e.UserEmpty):
        store.check_permission(TokenInfo("", store.revision()), b"k", write=False)


def test_check_with_an_old_revision_is_refused(store: AuthStore) -> None:
    enable_with_root(store)
    user_with_role(store, "alice", "r", Permission(R, b"k"))
    info = login(store, "alice")
    store.check_permission(info, b"k", write=False)
    store.apply(RoleAdd("unrelated"))  # any change moves the revision
    with pytest.raises(e.AuthOldRevision):
        store.check_permission(info, b"k", write=False)
    store.check_permission(login(store, "alice"), b"k", write=False)


def test_read_grant_allows_read_not_write(store: AuthStore) -> None:
    enable_with_root(store)
    user_with_role(store, "alice", "r", Permission(R, b"k"))
    info = login(store, "alice")
    store.check_permission(info, b"k", write=False)
    with pytest.raises(e.PermissionDenied):
        store.check_permission(info, b"k", write=True)
    with pytest.raises(e.PermissionDenied):
        store.check_permission(info, b"other", write=False)


def test_single_key_grant_denies_from_key_request(store: AuthStore) -> None:
    enable_with_root(store)
    user_with_role(store, "alice", "r", Permission(R, b"a"))
    info = login(store, "alice")
    with pytest.raises(e.PermissionDenied):
        store.check_permission(info, b"a", b"\x00", write=False)


def test_grants_of_several_roles_are_united(store: AuthStore) -> None:
    enable_with_root(store)
    user_with_role(store, "alice", "r1", Permission(R, b"a", b"b"))
    store.apply(RoleAdd("r2"))
    grant(store, "r2", R, b"b", b"c")
    store.apply(UserGrantRole("alice", "r2"))
    store.check_permission(login(store, "alice"), b"a", b"c", write=False)


def test_root_role_bypasses_ranges(store: AuthStore) -> None:
    enable_with_root(store)
    info = login(store, "root", ROOT_PASSWORD)
    store.check_permission(info, b"", b"\x00", write=True)


def test_deleted_user_is_denied(store: AuthStore) -> None:
    enable_with_root(store)
    user_with_role(store, "alice", "r", Permission(R, b"k"))
    store.apply(UserDelete("alice"))
    with pytest.raises(e.PermissionDenied):
        store.check_permission(TokenInfo("alice", store.revision()), b"k", write=False)


def test_revoked_grant_is_denied_at_once(store: AuthStore) -> None:
    enable_with_root(store)
    user_with_role(store, "alice", "r", Permission(RW, b"k"))
    store.check_permission(login(store, "alice"), b"k", write=True)
    store.apply(RoleRevokePermission("r", b"k"))
    with pytest.raises(e.PermissionDenied):
        store.check_permission(login(store, "alice"), b"k", write=True)


def test_cache_follows_changes_applied_by_another_process() -> None:
    # A worker process shares the storage; it never sees the apply, only the revision move.
    core, backend = make_store()
    worker, _ = make_store(backend=backend)
    enable_with_root(core)
    user_with_role(core, "alice", "r", Permission(R, b"k"))
    rev = backend.get_revision()
    worker.check_permission(TokenInfo("alice", rev), b"k", write=False)
    core.apply(RoleRevokePermission("r", b"k"))
    with pytest.raises(e.PermissionDenied):
        worker.check_permission(TokenInfo("alice", rev + 1), b"k", write=False)


def test_reload_drops_the_permission_cache() -> None:
    # A snapshot restore replaces the tables, possibly at the same revision (SECURITY 9).
    store, backend = make_store()
    enable_with_root(store)
    user_with_role(store, "alice", "r", Permission(R, b"k"))
    info = TokenInfo("alice", backend.get_revision())
    store.check_permission(info, b"k", write=False)
    backend.put_role(Role("r", ()))  # the restored tables, same revision
    store.reload()
    with pytest.raises(e.PermissionDenied):
        store.check_permission(info, b"k", write=False)


def test_reload_of_disabled_store_forgets_tokens() -> None:
    store, backend = make_store()
    enable_with_root(store)
    token = store.authenticate("root", ROOT_PASSWORD)
    backend.set_enabled(False)
    store.reload()
    backend.set_enabled(True)
    with pytest.raises(e.InvalidAuthToken):
        store.info_from_token(token)


def test_check_admin(store: AuthStore) -> None:
    enable_with_root(store)
    add_user(store, "alice")
    with pytest.raises(e.UserEmpty):
        store.check_admin(None)
    with pytest.raises(e.UserNotFound):
        store.check_admin(TokenInfo("ghost", store.revision()))
    with pytest.raises(e.PermissionDenied):
        store.check_admin(TokenInfo("alice", store.revision()))
    store.check_admin(TokenInfo("root", store.revision()))
    assert store.is_admin(TokenInfo("root", store.revision()))
    assert not store.is_admin(TokenInfo("alice", store.revision()))


def test_store_with_jwt_tokens_end_to_end() -> None:
    clock = FakeClock()
    store, _ = make_store(tokens=JWTTokenProvider(ttl=30, clock=clock))
    enable_with_root(store)
    user_with_role(store, "alice", "r", Permission(RW, b"app/", b"app0"))
    token = store.authenticate("alice", PASSWORD)
    info = store.info_from_token(token)
    assert info == TokenInfo("alice", store.revision())
    store.check_permission(info, b"app/x", write=True)
    clock.advance(30)
    with pytest.raises(e.InvalidAuthToken):
        store.info_from_token(token)
