"""The auth tables in lmdb: users, roles, the auth revision, the enabled flag, JWT keys.

They live in the environment's `auth` database, so they are replicated state like the keyspace:
only the apply path writes them (inside the write transaction of the Raft `Ready` that commits
the entry), and every serving process reads them, workers included (lmdb readers are
multi-process). Nothing about auth is kept anywhere else, so a member's rules are exactly those
of its applied log, and caches above (keyed on the auth revision) can always tell they are stale.

Layout (keys are ASCII prefixes, so users, roles and keys list by cursor):

- `enabled`: one byte, 1 when authentication is on;
- `revision`: the auth revision, 8 bytes big-endian;
- `user/<name>`: an `authpb.User` whose `password` holds the argon2id hash (never a password);
- `role/<name>`: an `authpb.Role`;
- `jwtkey/<kid>`: a `wardpeerpb.AuthPublishKey`, a member's public JWT verification key;
- `tenant/<name>`: a `wardpeerpb.Tenant`; `tenantuse/<name>`: its live keys and their bytes
  (two 8-byte big-endian counters);
- `usertenant/<user>`, `roletenant/<role>`: the tenant a user or role belongs to (absent: none);
- `tenantlease/<tenant>/<lease ID>`: a lease a tenant user granted (for the lease quota).

`LmdbAuthBackend` is `auth.AuthBackend` over these tables. A caller binds it to the transaction
it works in (`bound(txn)`, per thread); unbound calls read from a short read transaction of their
own, which the auth store allows for (it reads the revision before the records that depend on it).
"""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import lmdb

from auth.jwt_tokens import PublishedKey
from auth.model import Permission, PermissionType, Role, User
from auth.tenants import Tenant, Usage
from auth.tokens import SignMethod
from server.storage.backend import MAX_KEY_SIZE, Backend
from wardpb.authpb import auth_pb2
from wardpb.peerpb import peer_pb2

if TYPE_CHECKING:
    from auth.backend import AuthBackend

ENABLED = b"enabled"
REVISION = b"revision"
USER_PREFIX = b"user/"
ROLE_PREFIX = b"role/"
KEY_PREFIX = b"jwtkey/"
TENANT_PREFIX = b"tenant/"
USAGE_PREFIX = b"tenantuse/"
USER_TENANT_PREFIX = b"usertenant/"
ROLE_TENANT_PREFIX = b"roletenant/"
TENANT_LEASE_PREFIX = b"tenantlease/"

# The longest user or role name, in UTF-8 bytes, that fits an lmdb key with its prefix.
MAX_NAME_BYTES = MAX_KEY_SIZE - len(USER_PREFIX) - 11

_U64 = struct.Struct(">Q")
_USAGE = struct.Struct(">QQ")
_I64 = struct.Struct(">q")


def name_fits(name: str) -> bool:
    """Whether a user or role name is short enough to be stored."""
    return len(name.encode()) <= MAX_NAME_BYTES


def encode_user(user: User) -> bytes:
    return auth_pb2.User(
        name=user.name.encode(),
        password=(user.password_hash or "").encode(),
        roles=list(user.roles),
        options=auth_pb2.UserAddOptions(no_password=user.no_password),
    ).SerializeToString()


def decode_user(raw: bytes) -> User:
    u = auth_pb2.User.FromString(raw)
    return User(
        u.name.decode(),
        password_hash=u.password.decode() or None,
        roles=tuple(u.roles),
        no_password=u.options.no_password,
    )


def perm_type(p: Permission) -> auth_pb2.Permission.Type:
    """The wire value of a permission's type (the auth core's enum uses the wire values)."""
    return cast("auth_pb2.Permission.Type", int(p.perm_type))


def encode_role(role: Role) -> bytes:
    return auth_pb2.Role(
        name=role.name.encode(),
        keyPermission=[
            auth_pb2.Permission(permType=perm_type(p), key=p.key, range_end=p.range_end)
            for p in role.permissions
        ],
    ).SerializeToString()


def decode_role(raw: bytes) -> Role:
    r = auth_pb2.Role.FromString(raw)
    return Role(
        r.name.decode(),
        tuple(Permission(PermissionType(p.permType), p.key, p.range_end) for p in r.keyPermission),
    )


def encode_tenant(t: Tenant) -> bytes:
    return peer_pb2.Tenant(
        name=t.name,
        prefix=t.prefix,
        quota_keys=t.quota_keys,
        quota_bytes=t.quota_bytes,
        admins=list(t.admins),
        quota_leases=t.quota_leases,
        quota_watchers=t.quota_watchers,
        quota_rps=t.quota_rps,
    ).SerializeToString()


def decode_tenant(raw: bytes) -> Tenant:
    t = peer_pb2.Tenant.FromString(raw)
    return Tenant(
        t.name,
        t.prefix,
        t.quota_keys,
        t.quota_bytes,
        tuple(t.admins),
        t.quota_leases,
        t.quota_watchers,
        t.quota_rps,
    )


class LmdbAuthBackend:
    """`auth.AuthBackend` over the `auth` database of one `Backend` (see the module docstring)."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"LmdbAuthBackend({self._b.path})"

    def read(self) -> lmdb.Transaction:
        """A read transaction of the environment the tables live in."""
        return self._b.read()

    @contextlib.contextmanager
    def bound(self, txn: lmdb.Transaction) -> Iterator[None]:
        """Make this thread's calls read (and write) through `txn` until the block ends."""
        previous = self.bind(txn)
        try:
            yield
        finally:
            self.unbind(previous)

    def bind(self, txn: lmdb.Transaction | None) -> lmdb.Transaction | None:
        """`bound` without a context manager (for hot paths): bind `txn`, return what was bound
        before, to give back to `unbind`."""
        local = self._local
        previous: lmdb.Transaction | None = getattr(local, "txn", None)
        local.txn = txn
        return previous

    def unbind(self, previous: lmdb.Transaction | None) -> None:
        self._local.txn = previous

    @contextlib.contextmanager
    def _txn(self) -> Iterator[lmdb.Transaction]:
        txn = getattr(self._local, "txn", None)
        if txn is not None:
            yield txn
            return
        with self._b.read() as own:
            yield own

    def _write_txn(self) -> lmdb.Transaction:
        txn = getattr(self._local, "txn", None)
        if txn is None:
            # The tables change only by applying entries, inside the apply transaction.
            raise RuntimeError("auth tables are written only inside a bound write transaction")
        return txn

    def _get(self, key: bytes) -> bytes | None:
        # Without the context manager: this runs several times per request.
        txn = getattr(self._local, "txn", None)
        if txn is not None:
            raw: bytes | None = txn.get(key, db=self._b.auth)
            return raw
        with self._b.read() as own:
            # The environment hands out bytes (Backend reads never ask for buffers).
            return own.get(key, db=self._b.auth)  # type: ignore[return-value]

    def _put(self, key: bytes, value: bytes) -> None:
        self._write_txn().put(key, value, db=self._b.auth)

    def _delete(self, key: bytes) -> None:
        self._write_txn().delete(key, db=self._b.auth)

    def _scan(self, prefix: bytes) -> list[bytes]:
        out: list[bytes] = []
        with self._txn() as txn:
            cur = txn.cursor(db=self._b.auth)
            if cur.set_range(prefix):
                for k, v in cur.iternext():
                    if not bytes(k).startswith(prefix):
                        break
                    out.append(bytes(v))
        return out

    # --- auth.AuthBackend ---

    def get_user(self, name: str) -> User | None:
        if not name_fits(name):
            return None
        raw = self._get(USER_PREFIX + name.encode())
        return None if raw is None else decode_user(raw)

    def put_user(self, user: User) -> None:
        self._put(USER_PREFIX + user.name.encode(), encode_user(user))

    def delete_user(self, name: str) -> None:
        self._delete(USER_PREFIX + name.encode())

    def list_users(self) -> list[User]:
        # lmdb orders keys by bytes, which is the order of their UTF-8 names.
        return [decode_user(raw) for raw in self._scan(USER_PREFIX)]

    def get_role(self, name: str) -> Role | None:
        if not name_fits(name):
            return None
        raw = self._get(ROLE_PREFIX + name.encode())
        return None if raw is None else decode_role(raw)

    def put_role(self, role: Role) -> None:
        self._put(ROLE_PREFIX + role.name.encode(), encode_role(role))

    def delete_role(self, name: str) -> None:
        self._delete(ROLE_PREFIX + name.encode())

    def list_roles(self) -> list[Role]:
        return [decode_role(raw) for raw in self._scan(ROLE_PREFIX)]

    def get_revision(self) -> int:
        raw = self._get(REVISION)
        return _U64.unpack(raw)[0] if raw else 0

    def set_revision(self, revision: int) -> None:
        self._put(REVISION, _U64.pack(revision))

    def get_enabled(self) -> bool:
        return self._get(ENABLED) == b"\x01"

    def set_enabled(self, enabled: bool) -> None:
        self._put(ENABLED, b"\x01" if enabled else b"\x00")

    # --- beyond the Protocol ---

    def state(self) -> tuple[bool, int]:
        """(enabled, revision), read together from one view."""
        txn = getattr(self._local, "txn", None)
        if txn is None:
            with self._b.read() as own:
                return self._state(own)
        return self._state(txn)

    def _state(self, txn: lmdb.Transaction) -> tuple[bool, int]:
        db = self._b.auth
        enabled = txn.get(ENABLED, db=db) == b"\x01"
        raw = txn.get(REVISION, db=db)
        return enabled, (_U64.unpack(raw)[0] if raw else 0)

    def published_keys(self) -> list[PublishedKey]:
        """Every member's published JWT verification key."""
        out = []
        for raw in self._scan(KEY_PREFIX):
            k = peer_pb2.AuthPublishKey.FromString(raw)
            out.append(PublishedKey(k.kid, SignMethod(k.sign_method), k.public_pem))
        return out

    def has_key(self, kid: str) -> bool:
        return self._get(KEY_PREFIX + kid.encode()) is not None

    def put_key(self, key: PublishedKey) -> None:
        record = peer_pb2.AuthPublishKey(
            kid=key.kid, sign_method=key.sign_method.value, public_pem=key.public_pem
        )
        self._put(KEY_PREFIX + key.kid.encode(), record.SerializeToString())

    # --- tenants (Ward's own; see auth.tenants) ---

    def get_tenant(self, name: str) -> Tenant | None:
        if not name_fits(name):
            return None
        raw = self._get(TENANT_PREFIX + name.encode())
        return None if raw is None else decode_tenant(raw)

    def put_tenant(self, tenant: Tenant) -> None:
        self._put(TENANT_PREFIX + tenant.name.encode(), encode_tenant(tenant))

    def delete_tenant(self, name: str) -> None:
        self._delete(TENANT_PREFIX + name.encode())
        self._delete(USAGE_PREFIX + name.encode())

    def list_tenants(self) -> list[Tenant]:
        return [decode_tenant(raw) for raw in self._scan(TENANT_PREFIX)]

    def get_usage(self, name: str) -> Usage:
        raw = self._get(USAGE_PREFIX + name.encode())
        if raw is None:
            return Usage()
        keys, size = _USAGE.unpack(raw)
        return Usage(keys, size)

    def put_usage(self, name: str, usage: Usage) -> None:
        # Two fixed-width counters rather than a message: written on every tenant key change.
        self._put(USAGE_PREFIX + name.encode(), _USAGE.pack(usage.keys, usage.bytes))

    def tenant_leases(self, tenant: str) -> list[int]:
        """The leases granted by the tenant's users (some may be gone since)."""
        prefix = TENANT_LEASE_PREFIX + tenant.encode() + b"/"
        out: list[int] = []
        with self._txn() as txn:
            cur = txn.cursor(db=self._b.auth)
            if cur.set_range(prefix):
                for k in cur.iternext(values=False):
                    if not bytes(k).startswith(prefix):
                        break
                    out.append(_I64.unpack(bytes(k)[len(prefix) :])[0])
        return out

    def set_tenant_lease(self, tenant: str, lease: int, held: bool) -> None:
        key = TENANT_LEASE_PREFIX + tenant.encode() + b"/" + _I64.pack(lease)
        if held:
            self._put(key, b"")
        else:
            self._delete(key)

    def user_tenant(self, user: str) -> str | None:
        """The tenant `user` belongs to, or None."""
        if not name_fits(user):
            return None
        raw = self._get(USER_TENANT_PREFIX + user.encode())
        return None if raw is None else raw.decode()

    def set_user_tenant(self, user: str, tenant: str | None) -> None:
        key = USER_TENANT_PREFIX + user.encode()
        if tenant is None:
            self._delete(key)
        else:
            self._put(key, tenant.encode())

    def role_tenant(self, role: str) -> str | None:
        """The tenant `role` belongs to, or None."""
        if not name_fits(role):
            return None
        raw = self._get(ROLE_TENANT_PREFIX + role.encode())
        return None if raw is None else raw.decode()

    def set_role_tenant(self, role: str, tenant: str | None) -> None:
        key = ROLE_TENANT_PREFIX + role.encode()
        if tenant is None:
            self._delete(key)
        else:
            self._put(key, tenant.encode())


if TYPE_CHECKING:
    # mypy proves the class satisfies the Protocol.
    _conforms: type[AuthBackend] = LmdbAuthBackend
