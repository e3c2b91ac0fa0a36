"""Who is calling, and what they may do: the auth checks every serving process runs.

`Access` belongs to one serving process (the core or a worker) and wraps that process's
`AuthStore`, whose tables are the replicated `auth` database (`server.storage.authdb`).

- **Identity** (`identify`): a token from the `token` metadata (etcd's clients send it there;
  `authorization` as etcd's gateway does), else the CN of a verified client certificate
  (`CallInfo.common_name`, the TLS layer's hook). A token takes precedence, as in etcd. With auth
  off, nobody is identified and tokens are ignored.
- **Checks** (`checker`): one `Checker` per request, bound to the lmdb transaction the request
  reads or applies in, so the permission check and the use of its answer see the same auth
  revision (SECURITY 10). Every request kind has its rule here, at every nesting depth of a txn;
  the apply path (`server.auth_apply`) runs the same rules on every member for every write, with
  the user and auth revision the entry carries.

- **Audit and metrics**: a refusal (permission denied, no or unknown user, a bad token) is
  written to the audit log with who (user, certificate CN, client address), what (the gRPC
  method and the check), which key range, the result and the auth revision, by the process that
  served the request: the call is found through `server.api.rpc.CURRENT_CALL`. Writes are
  checked where they apply, on every member, where the client is unknown: those checks count
  but do not write the line; the receiving process does (`server.denials`). Every decision is
  counted in `server.auth_metrics.DECISIONS`.

Errors leave as `EtcdError` with etcd's code and message.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
import lmdb

from auth import errors as auth_errors
from auth import tenant_names
from auth.errors import AuthError
from auth.model import FROM_KEY, TokenInfo
from auth.store import AuthStore
from auth.tenants import Tenant
from server.api.rpc import CURRENT_CALL
from server.auth_metrics import ALLOWED, DECISIONS, DENIED
from server.errors import EtcdError, from_auth
from server.storage.authdb import LmdbAuthBackend
from server.wire import field_bytes, field_varint
from wardpb.etcdserverpb import rpc_pb2
from wardpb.peerpb import peer_pb2

if TYPE_CHECKING:
    from server.api.rpc import CallInfo

LeaseKeys = Callable[[lmdb.Transaction, int], list[bytes]]
RemoteTokenInfo = Callable[[str], Awaitable[bytes]]

# How long a worker trusts what the core said a simple token names. Safe to cache: the answer
# names the auth revision the token was issued at, and the revision check refuses it once auth
# changes, so a stale answer can never grant more than a fresh one.
REMOTE_TOKEN_CACHE_S = 1.0
_REMOTE_CACHE_MAX = 4096


def request_header(info: TokenInfo | None, call: CallInfo | None = None) -> bytes:
    """The `wardpeerpb.RequestHeader` fields naming the caller, for a proposal. With `call`
    (auth and policy changes only: they are rare, and every member's audit log records them),
    also the client's address and certificate CN."""
    out = b""
    if info is not None:
        out = field_bytes(2, info.username.encode()) + field_varint(3, info.revision)
    if call is not None:
        client, cn = peer_address(call.peer), call.common_name
        if client:
            out += field_bytes(4, client.encode())
        if cn:
            out += field_bytes(5, cn.encode())
    return out


def info_from_header(header: peer_pb2.RequestHeader) -> TokenInfo | None:
    """The caller a replicated entry names (None: nobody, e.g. auth was off when proposed)."""
    if not header.username:
        return None
    return TokenInfo(header.username, header.auth_revision)


def peer_address(peer: str) -> str:
    """The client's address and port from gRPC's peer string, for the audit log.

    ``ipv4:10.0.0.1:5000`` -> ``10.0.0.1:5000``; ``ipv6:[::1]:5000`` -> ``[::1]:5000``; anything
    else (the gateway's ``host:port``, ``unix:...``) as it is.
    """
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest
    return peer


def who(user: str = "") -> dict[str, Any]:
    """The audit log's "who" and "what" of the call this task serves: the user, the client's
    address, its certificate's CN and the gRPC method ("" where there is no call, e.g. a check
    on the apply path)."""
    call = CURRENT_CALL.get()
    if call is None or call.trusted:
        return {"user": user, "cn": "", "client": "", "method": ""}
    return {
        "user": user,
        "cn": call.common_name,
        "client": peer_address(call.peer),
        "method": call.method,
    }


def client_address(peer: str) -> str:
    """The client's address without its port, from gRPC's peer string, for rate limiting.

    ``ipv4:10.0.0.1:5000`` -> ``10.0.0.1``; ``ipv6:[::1]:5000`` -> ``::1``; ``unix:...`` ->
    ``unix`` (every local socket client shares one bucket).
    """
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] or rest
        return host.strip("[]")
    return kind


class Access:
    """The auth checks of one serving process (see the module docstring)."""

    def __init__(
        self,
        db: LmdbAuthBackend,
        store: AuthStore,
        *,
        lease_keys: LeaseKeys,
        remote: RemoteTokenInfo | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self._lease_keys = lease_keys
        # Set in workers under `simple` tokens, which only the core process knows.
        self._remote = remote
        self._remote_cache: dict[bytes, tuple[TokenInfo | None, float]] = {}
        # user -> (belongs to a tenant, that tenant if it still exists), at one auth revision:
        # every change of a tenant or of who belongs to one bumps the revision.
        self._tenants: dict[str, tuple[bool, Tenant | None]] = {}
        self._tenants_rev = -1
        # Set where the member writes an audit log (server.audit): denied requests go there.
        self.audit: Callable[..., None] | None = None

    def __repr__(self) -> str:
        return f"Access({self.store!r})"

    def state(self) -> tuple[bool, int]:
        """(enabled, auth revision) as committed now."""
        return self.db.state()

    def reload(self) -> None:
        """The tables were replaced under this process (snapshot install): drop every cache."""
        self.store.reload()
        self._remote_cache.clear()
        self._tenants.clear()
        self._tenants_rev = -1

    def tenant_of(self, username: str, revision: int) -> tuple[bool, Tenant | None]:
        """(whether `username` belongs to a tenant, the tenant if it still exists), read
        through the transaction bound to `db` (or a short one of its own) and cached for
        `revision`: the current one for checks, the caller's for the namespacing layer."""
        if revision != self._tenants_rev:
            self._tenants = {}
            self._tenants_rev = revision
        found = self._tenants.get(username)
        if found is None:
            name = self.db.user_tenant(username)
            found = (False, None) if name is None else (True, self.db.get_tenant(name))
            if len(self._tenants) >= _REMOTE_CACHE_MAX:
                self._tenants.clear()
            self._tenants[username] = found
        return found

    def record_denied(self, *, user: str, result: str, **fields: Any) -> None:
        """One "denied" audit line for the current call (see `who`), if the member keeps a log."""
        audit = self.audit
        if audit is not None:
            audit("denied", **who(user), result=result, **fields)

    async def caller_tenant(
        self, call: CallInfo, *, remember: bool = False
    ) -> tuple[TokenInfo | None, Tenant | None]:
        """The caller and its tenant, for the namespacing layer (server.tenancy). A caller that
        belongs to a tenant that no longer exists is refused outright. `remember` keeps the
        identity on `call` for its handler (unary calls only).

        Looked up at the caller's own auth revision, without a transaction of its own: if the
        tables moved since, the request is refused where it is checked ("revision of auth store
        is old"), so an outdated answer can map a request but never let it through.
        """
        try:
            info = await self.identify(call, audited=False)
        except EtcdError:
            # Not for this layer to refuse: the handler identifies the caller again and refuses
            # in its own order (a malformed request before a bad token, as before tenants).
            return None, None
        if remember:
            # One unary call: its handler asks again who the caller is; answer from this.
            call.identity = (info,)
        if info is None:
            return None, None
        mapped, tenant = self.tenant_of(info.username, info.revision)
        if mapped and tenant is None:
            raise from_auth(auth_errors.PermissionDenied())
        return info, tenant

    # --- identity ---

    async def identify(self, call: CallInfo, *, audited: bool = True) -> TokenInfo | None:
        """Who the call runs as: None when auth is off or the caller presented nothing.

        Raises etcd's "invalid auth token" (Unauthenticated) for a token that is forged,
        expired or unknown while auth is on; that refusal is audited and counted unless not
        `audited` (a look-up whose caller refuses later, itself).
        """
        resolved = call.identity
        if resolved is not None:
            return resolved[0]  # type: ignore[return-value]
        token = call.token
        if token:
            try:
                if self._remote is not None:
                    return await self._remote_info(token)
                try:
                    return self.store.info_from_token(token)
                except AuthError as e:
                    raise from_auth(e) from None
            except EtcdError as e:
                if audited and e.code == grpc.StatusCode.UNAUTHENTICATED:
                    # Never the token itself: who presented it and where.
                    DECISIONS.count("token", DENIED)
                    self.record_denied(user="", action="identify", result=e.message)
                raise
        enabled, revision = self.db.state()
        if not enabled:
            return None
        # A verified client certificate names its user by CN, at the current auth revision, as
        # etcd's AuthInfoFromTLS does; a token, when given, wins.
        common_name = call.common_name
        if common_name:
            return TokenInfo(common_name, revision)
        return None

    async def header(self, call: CallInfo) -> bytes:
        """The proposal header naming the caller (see `request_header`)."""
        return request_header(await self.identify(call))

    async def _remote_info(self, token: str) -> TokenInfo | None:
        if not self.db.get_enabled():
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = time.monotonic()
        cached = self._remote_cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        raw = await self._remote(token)  # type: ignore[misc]
        header = peer_pb2.RequestHeader.FromString(raw)
        info = info_from_header(header)
        if len(self._remote_cache) >= _REMOTE_CACHE_MAX:
            self._remote_cache.clear()
        self._remote_cache[digest] = (info, now + REMOTE_TOKEN_CACHE_S)
        return info

    async def token_info(self, request: bytes, call: CallInfo) -> bytes:
        """The core's answer to a worker asking who a (simple) token names: a RequestHeader."""
        try:
            return request_header(self.store.info_from_token(request.decode()))
        except AuthError as e:
            raise from_auth(e) from None

    # --- checks ---

    async def check_call(self, call: CallInfo, check: Callable[[Checker], None]) -> None:
        """Run `check` for the caller of a call that reads no key (the caller awaits the
        storage gate first). A call another member forwarded was checked there."""
        if call.trusted:
            return
        info = await self.identify(call)
        with self.db.read() as txn, self.checker(txn, info) as chk:
            check(chk)

    def checker(
        self,
        txn: lmdb.Transaction,
        info: TokenInfo | None,
        *,
        audited: bool = True,
        counted: bool = True,
    ) -> Checker:
        """The checks of one request, reading the auth tables through `txn`. Refusals are
        written to the audit log unless not `audited` (the apply path: the process that received
        the request writes them), and decisions counted unless not `counted` (the receiving
        process checking again only to write that line)."""
        return Checker(self, txn, info, audited=audited, counted=counted)

    def lease_keys(self, txn: lmdb.Transaction, lease_id: int) -> list[bytes]:
        return self._lease_keys(txn, lease_id)


class Checker:
    """The checks of one request inside one lmdb transaction; a context manager.

    With auth off every check passes (and costs one lmdb get, at entry). Each check raises
    `EtcdError` with etcd's code and message when it fails.
    """

    __slots__ = (
        "_access",
        "_audited",
        "_counted",
        "_info",
        "_previous",
        "_quiet",
        "_store",
        "_tenant",
        "_txn",
        "enabled",
        "revision",
    )

    def __init__(
        self,
        access: Access,
        txn: lmdb.Transaction,
        info: TokenInfo | None,
        *,
        audited: bool = True,
        counted: bool = True,
    ) -> None:
        self._access = access
        self._store = access.store
        self._txn = txn
        self._info = info
        self._previous: lmdb.Transaction | None = None
        self._tenant: tuple[bool, Tenant | None] | None = None
        # Set while probing (can_read, is_admin): a probe is no decision on a request, it is
        # neither counted nor, when it fails, a denied request.
        self._quiet = False
        self._audited = audited
        self._counted = counted
        self.enabled = False
        self.revision = 0

    def __enter__(self) -> Checker:
        db = self._access.db
        self._previous = db.bind(self._txn)
        self.enabled, self.revision = db.state()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._access.db.unbind(self._previous)

    @property
    def info(self) -> TokenInfo | None:
        return self._info

    # --- primitives ---

    def read(self, key: bytes, range_end: bytes = b"") -> None:
        """Read permission on `key`/`range_end` (etcd's encoding; `\\0` is from-key)."""
        if self.enabled:
            self._permission(key, range_end, write=False)

    def write(self, key: bytes, range_end: bytes = b"") -> None:
        """Write permission on `key`/`range_end`."""
        if self.enabled:
            self._permission(key, range_end, write=True)

    def _permission(self, key: bytes, range_end: bytes, *, write: bool) -> None:
        action = "write" if write else "read"
        try:
            mapped, tenant = self.tenant()
            # A tenant user never reaches outside its tenant, whatever its roles grant (root
            # may have granted a tenant role more): the namespacing layer maps every key it
            # sends inside, and this check holds where requests are checked and applied.
            if mapped and (tenant is None or not tenant.namespace.contains(key, range_end)):
                raise auth_errors.PermissionDenied()
            self._store.check_permission(self._info, key, range_end, write=write)
        except AuthError as e:
            self._denied(action, key, range_end, e)
            raise from_auth(e) from None
        self._decided(action, ALLOWED)

    def tenant(self) -> tuple[bool, Tenant | None]:
        """(whether the caller belongs to a tenant, that tenant if it still exists)."""
        if self._tenant is None:
            info = self._info
            if not self.enabled or info is None or not info.username:
                self._tenant = (False, None)
            else:
                self._tenant = self._access.tenant_of(info.username, self.revision)
        return self._tenant

    def tenant_admin(self) -> Tenant | None:
        """The tenant the caller administers (delegated), or None."""
        mapped, tenant = self.tenant()
        info = self._info
        # The user -> tenant mapping goes with the user, so a deleted admin administers nothing.
        if mapped and tenant is not None and info is not None and info.username in tenant.admins:
            return tenant
        return None

    # --- names, as the caller means them (auth.tenant_names) ---

    def user_name(self, name: str) -> str:
        """The stored user the caller means by `name`: relative to its tenant, if it has one."""
        tenant = self.tenant()[1]
        if tenant is None:
            return name
        return tenant_names.user_name(self._access.db, tenant.name, name)

    def role_name(self, name: str) -> str:
        """The stored role the caller means by `name` (see `user_name`)."""
        tenant = self.tenant()[1]
        if tenant is None:
            return name
        return tenant_names.role_name(self._access.db, tenant.name, name)

    def shown(self, name: str) -> str:
        """How the caller sees a stored user or role name of its tenant."""
        tenant = self.tenant()[1]
        return name if tenant is None else tenant_names.shown(tenant.name, name)

    def _decided(self, kind: str, result: str) -> None:
        if self._counted and not self._quiet:
            DECISIONS.count(kind, result)

    def _denied(self, action: str, key: bytes, range_end: bytes, e: AuthError) -> None:
        """Count and audit a refusal by the rules: not a stale token ("revision of auth store
        is old"), which clients answer by authenticating again."""
        if not isinstance(e, _REFUSALS):
            return
        self._decided(action, DENIED)
        if self._audited and not self._quiet:
            info = self._info
            self._access.record_denied(
                user=info.username if info is not None else "",
                action=action,
                key=key,
                range_end=range_end,
                result=e.message,
                revision=self.revision,
            )

    def can_read(self, key: bytes, range_end: bytes = b"") -> bool:
        """Whether `read` would pass."""
        self._quiet = True
        try:
            self.read(key, range_end)
        except EtcdError:
            return False
        finally:
            self._quiet = False
        return True

    def user(self, *, fresh: bool = True) -> None:
        """An existing user (calls that touch no key but must not be open to anyone: lease
        grants, member lists), with a token of the current auth revision unless not `fresh`
        (keep-alives: an unrelated permission change must not make every lease expire)."""
        if not self.enabled:
            return
        info = self._info
        try:
            if info is None or not info.username or info.revision == 0:
                raise auth_errors.UserEmpty()
            if fresh and info.revision < self.revision:
                raise auth_errors.AuthOldRevision()
            if self._access.db.get_user(info.username) is None:
                raise auth_errors.UserNotFound()
        except AuthError as e:
            self._denied("user", b"", b"", e)
            raise from_auth(e) from None
        self._decided("user", ALLOWED)

    def admin(self) -> None:
        """The `root` role (etcd's IsAdminPermitted)."""
        if not self.enabled:
            return
        try:
            if self.tenant()[0]:
                # Tenant users are never cluster admins, even if granted the root role.
                raise auth_errors.PermissionDenied()
            self._store.check_admin(self._info)
        except AuthError as e:
            self._denied("admin", b"", b"", e)
            raise from_auth(e) from None
        self._decided("admin", ALLOWED)

    def is_admin(self) -> bool:
        self._quiet = True
        try:
            self.admin()
        except EtcdError:
            return False
        finally:
            self._quiet = False
        return True

    def self_or_admin(self, name: str) -> None:
        """The user `name` itself, with a current token, or an admin."""
        info = self._info
        if self.enabled and info is not None and info.username == name:
            self.user()
            return
        self.admin()

    # --- requests ---

    def range(self, r: rpc_pb2.RangeRequest) -> None:
        self.read(r.key, r.range_end)

    def put(self, r: rpc_pb2.PutRequest) -> None:
        """etcd's order: the key, the lease's other keys, then read for `prev_kv`."""
        if not self.enabled:
            return
        self.write(r.key)
        if r.lease:
            self.lease_attach(r.lease)
        if r.prev_kv:
            self.read(r.key)

    def delete(self, r: rpc_pb2.DeleteRangeRequest) -> None:
        if not self.enabled:
            return
        self.write(r.key, r.range_end)
        if r.prev_kv:
            self.read(r.key, r.range_end)

    def txn(self, r: rpc_pb2.TxnRequest) -> None:
        """Every compare (read) and every op of both branches, at every nesting depth.

        Both branches are checked, whichever will run: which one runs depends on data the
        caller may not be allowed to learn about (SECURITY 1, 2).
        """
        if not self.enabled:
            return
        for c in r.compare:
            self.read(c.key, c.range_end)
        for op in (*r.success, *r.failure):
            which = op.WhichOneof("request")
            if which == "request_range":
                self.range(op.request_range)
            elif which == "request_put":
                self.put(op.request_put)
            elif which == "request_delete_range":
                d = op.request_delete_range
                # etcd checks the read for prev_kv first inside a txn.
                if d.prev_kv:
                    self.read(d.key, d.range_end)
                self.write(d.key, d.range_end)
            elif which == "request_txn":
                self.txn(op.request_txn)

    def lease_attach(self, lease_id: int) -> None:
        """Attaching a key to a lease needs write on every key already attached: whoever holds
        the lease can delete them all by revoking it (etcd's checkLeasePuts)."""
        for key in self._access.lease_keys(self._txn, lease_id):
            self.write(key)

    def lease_revoke(self, lease_id: int) -> None:
        """A known user, and write on every key the revocation deletes (SECURITY 6)."""
        if not self.enabled:
            return
        self.user()
        self.lease_attach(lease_id)

    def compact(self) -> None:
        """Compaction drops the history of every key: write on every key (root, or a grant
        from the smallest key on)."""
        self.write(b"\x00", FROM_KEY)

    def readable(self, keys: list[bytes]) -> list[bytes]:
        """The keys of `keys` the caller may read (LeaseTimeToLive, SECURITY 5)."""
        if not self.enabled:
            return keys
        return [k for k in keys if self.can_read(k)]


# Refusals by the rules, counted and audited as denied requests.
_REFUSALS = (auth_errors.PermissionDenied, auth_errors.UserEmpty, auth_errors.UserNotFound)
