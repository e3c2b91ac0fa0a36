"""Corruption checks: this member's keyspace hash against its peers' (etcd's corrupt.go).

- **At start** (`--experimental-initial-corrupt-check`), on a member that has data already and
  before it takes part in Raft or serves clients: its hash at its current revision is compared
  with each peer's at that revision. A peer whose hash differs while its compacted revision is
  the same holds different data: the member refuses to start ("<id> found data inconsistency
  with peers"). A peer that is behind, has compacted past the revision or cannot be reached is
  logged and skipped, as etcd does.
- **Periodically** (`--experimental-corrupt-check-time`), on the leader only: it hashes at its
  current revision, asks every follower for its hash at that revision, confirms with a
  linearizable read that it has applied everything committed meanwhile, and hashes again. It
  raises the CORRUPT alarm (one per pass, as etcd) for the first member found wrong: itself, if
  its own hash changed while its revision did not; a follower that is ahead of it (revision or
  compacted revision), or whose hash differs at the same compacted revision. While CORRUPT is
  raised, the apply path refuses every write ("etcdserver: corrupt cluster").

Hashes travel over the peer transport (`Peer.Call` "hashkv", a `HashKVRequest` in, a
`HashKVResponse` out with the answering member's current revision in its header), where etcd
uses an HTTP endpoint on its peer port. Hashing reads the whole history, so it runs on a thread,
holding the environment open (see `Backend.hold`), not on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server import errors
from server.errors import EtcdError
from server.slowlog import go_duration
from server.storage.backend import Backend
from server.storage.mvcc import KVStore
from wardpb.etcdserverpb import rpc_pb2

log = logging.getLogger("ward.corruption")

HASHKV_CALL = "hashkv"
"""The peer call answering a member's hash at a revision."""

PeerCall = Callable[[int, str, bytes, float], Awaitable[bytes]]


class CorruptionError(Exception):
    """This member's data differs from its peers': it must not start."""


@dataclass(frozen=True, slots=True)
class KVHash:
    """A hash of the keyspace at some revision, the member's current revision (etcd answers
    with it in the header, not with the revision hashed) and its compacted revision."""

    hash: int
    revision: int
    compact_revision: int


@dataclass(frozen=True, slots=True)
class PeerHash:
    """A peer's answer: its hash, or why there is none (``error``: the refusal's message)."""

    member: int
    urls: tuple[str, ...]
    hash: KVHash | None = None
    error: str = ""


def initial_mismatches(local: KVHash, peers: list[PeerHash]) -> list[PeerHash]:
    """The peers whose data differs from this member's at its revision: another hash with the
    same compacted revision (with different ones, the hashes cover different history)."""
    return [
        p
        for p in peers
        if p.hash is not None
        and p.hash.hash != local.hash
        and p.hash.compact_revision == local.compact_revision
    ]


def periodic_mismatch(
    me: int, before: KVHash, after: KVHash, peers: list[PeerHash]
) -> tuple[int, str] | None:
    """The member the leader raises CORRUPT for, and why, or None.

    ``before`` is the leader's hash when it asked the followers (at the revision they hashed),
    ``after`` its hash once a linearizable read confirmed it applied everything committed by
    the time they answered. As etcd, only the first finding counts.
    """
    if (
        after.hash != before.hash
        and after.revision == before.revision
        and after.compact_revision == before.compact_revision
    ):
        return me, "found hash mismatch"
    for p in peers:
        h = p.hash
        if h is None:
            continue
        if h.revision > after.revision:
            return p.member, "revision from follower must be less than or equal to leader's"
        if h.compact_revision > after.compact_revision:
            return (
                p.member,
                "compact revision from follower must be less than or equal to leader's",
            )
        if h.compact_revision == before.compact_revision and h.hash != before.hash:
            return p.member, "same compact revision then hashes must match"
    return None


class CorruptionChecker:
    """One member's side of the checks: answering peers, the start check, the periodic pass."""

    def __init__(
        self,
        backend: Backend,
        kv: KVStore,
        *,
        member_id: int,
        cluster_id: int,
        peers: Callable[[], dict[int, tuple[str, ...]]],
        call: PeerCall,
        timeout: float,
    ) -> None:
        self._b = backend
        self._kv = kv
        self.member_id = member_id
        self.cluster_id = cluster_id
        self._peers = peers
        self._call = call
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None

    # ---- hashing ----

    def _hash_now(self, revision: int) -> KVHash:
        with self._b.hold(), self._b.read() as txn:
            kv = self._kv
            current = kv.current_revision(txn)
            compacted = kv.compact_revision(txn)
            rev = revision or current
            if rev > current:
                raise errors.FUTURE_REV
            if rev < compacted:
                raise errors.COMPACTED
            return KVHash(kv.hash_kv(txn, rev), current, compacted)

    async def hash(self, revision: int = 0) -> KVHash:
        """This member's hash at ``revision`` (0: its current one), off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self._hash_now, revision)

    async def serve_hashkv(self, raw: bytes) -> bytes:
        """The "hashkv" peer call: a `HashKVResponse` (EtcdError for a future or compacted
        revision, which the transport hands back to the caller as such)."""
        r = rpc_pb2.HashKVRequest.FromString(raw)
        h = await self.hash(r.revision)
        header = rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id, member_id=self.member_id, revision=h.revision
        )
        resp = rpc_pb2.HashKVResponse(
            header=header, hash=h.hash, compact_revision=h.compact_revision
        )
        return resp.SerializeToString()

    async def peer_hashes(self, revision: int) -> list[PeerHash]:
        """Every peer's hash at ``revision``, asked at once; failures are logged and kept."""
        request = rpc_pb2.HashKVRequest(revision=revision).SerializeToString()

        async def ask(member: int, urls: tuple[str, ...]) -> PeerHash:
            try:
                raw = await self._call(member, HASHKV_CALL, request, self._timeout)
                resp = rpc_pb2.HashKVResponse.FromString(raw)
            except EtcdError as e:
                return PeerHash(member, urls, error=e.message)
            except Exception as e:  # unreachable, timed out, refused: skipped, as etcd
                log.warning(
                    "failed hash kv request",
                    extra={
                        "local-member-id": f"{self.member_id:x}",
                        "requested-revision": revision,
                        "remote-peer-id": f"{member:x}",
                        "remote-peer-endpoints": list(urls),
                        "error": str(e),
                    },
                )
                return PeerHash(member, urls, error=str(e))
            h = KVHash(resp.hash, resp.header.revision, resp.compact_revision)
            return PeerHash(resp.header.member_id or member, urls, h)

        peers = self._peers()
        return list(await asyncio.gather(*(ask(m, u) for m, u in sorted(peers.items()))))

    # ---- at start ----

    async def initial_check(self) -> None:
        """Compare with the peers before this member starts; raise `CorruptionError` when a
        peer's data differs (etcd's CheckInitialHashKV)."""
        me = f"{self.member_id:x}"
        log.info(
            "starting initial corruption check",
            extra={"local-member-id": me, "timeout": go_duration(self._timeout)},
        )
        local = await self.hash()
        peers = await self.peer_hashes(local.revision)
        for p in peers:
            fields: dict[str, object] = {
                "local-member-id": me,
                "local-member-revision": local.revision,
                "local-member-compact-revision": local.compact_revision,
                "local-member-hash": local.hash,
                "remote-peer-id": f"{p.member:x}",
                "remote-peer-endpoints": list(p.urls),
            }
            if p.hash is not None:
                if p.hash.hash == local.hash:
                    continue
                fields.update(
                    {
                        "remote-peer-revision": p.hash.revision,
                        "remote-peer-compact-revision": p.hash.compact_revision,
                        "remote-peer-hash": p.hash.hash,
                    }
                )
                if p.hash.compact_revision == local.compact_revision:
                    log.warning("found different hash values from remote peer", extra=fields)
                else:
                    log.warning(
                        "found different compact revision values from remote peer", extra=fields
                    )
            elif p.error == errors.FUTURE_REV.message:
                log.warning("cannot fetch hash from slow remote peer", extra=fields)
            elif p.error == errors.COMPACTED.message:
                log.warning(
                    "cannot fetch hash from remote peer; local member is behind", extra=fields
                )
        if initial_mismatches(local, peers):
            raise CorruptionError(f"{me} found data inconsistency with peers")
        log.info("initial corruption checking passed; no corruption", extra={"local-member-id": me})

    # ---- periodic, on the leader ----

    def start_periodic(
        self,
        interval: float,
        *,
        is_leader: Callable[[], bool],
        read_index: Callable[[], Awaitable[None] | None],
        raise_alarm: Callable[[int], Awaitable[object]],
    ) -> None:
        """Every ``interval`` seconds, while this member leads, run one pass (etcd's
        monitorKVHash)."""
        log.info(
            "enabled corruption checking",
            extra={"local-member-id": f"{self.member_id:x}", "interval": go_duration(interval)},
        )

        async def run() -> None:
            while True:
                await asyncio.sleep(interval)
                if not is_leader():
                    continue
                try:
                    await self.check(read_index, raise_alarm)
                except Exception as e:
                    log.warning("failed to check hash KV", extra={"error": str(e)})

        self._task = asyncio.create_task(run(), name="corruption-check")

    async def check(
        self,
        read_index: Callable[[], Awaitable[None] | None],
        raise_alarm: Callable[[int], Awaitable[object]],
    ) -> int | None:
        """One pass; the member it raised CORRUPT for, if any."""
        before = await self.hash()
        peers = await self.peer_hashes(before.revision)
        pending = read_index()
        if pending is not None:
            await pending
        after = await self.hash()
        found = periodic_mismatch(self.member_id, before, after, peers)
        checked = sum(1 for p in peers if p.hash is not None)
        if found is not None:
            member, reason = found
            log.warning(
                reason,
                extra={
                    "member-id": f"{member:x}",
                    "leader-revision": after.revision,
                    "leader-compact-revision": after.compact_revision,
                    "leader-hash": before.hash,
                    "hashes": {f"{p.member:x}": p.hash.hash for p in peers if p.hash},
                },
            )
            await raise_alarm(member)
        log.info("finished peer corruption check", extra={"number-of-peers-checked": checked})
        return None if found is None else found[0]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
