"""The Raft peer transport: one gRPC stream per peer for Raft messages, and unary peer calls.

Sending follows etcd's rafthttp: every peer has a bounded queue and a sender task that writes
whatever is queued as one ``MessageBatch`` on a long-lived client stream (``Peer.Raft``), so
that under load many messages share one gRPC write. Nothing waits for a peer: a full queue, or
a peer that cannot be reached, drops the messages and reports the peer unreachable, and the
Raft core retransmits (etcd: "dropped internal Raft message since sending buffer is full").

Receiving checks each batch before the driver sees it: the cluster ID, the receiver's ID, and
that the sender was not removed from the cluster. A removed sender is refused with a status its
own transport recognizes, so that it stops (etcd's HTTP 410 and ``errMemberRemoved``).

Liveness of an idle or blackholed stream is gRPC keepalive's job: pings every
``KEEPALIVE_S`` that go unanswered for ``KEEPALIVE_TIMEOUT_S`` close the connection, which
fails the stream, which reports the peer unreachable and starts reconnecting.

Round-trip times (``etcd_network_peer_round_trip_time_seconds``) come from a probe, as etcd's:
every ``PROBE_INTERVAL_S`` a "ping" ``Peer.Call`` on the peer's connection, when it is up,
timed into the peer's histogram (``PeerStats.rtt``).

Everything runs on the event loop that calls :meth:`PeerTransport.start`, :meth:`set_peers`
and :meth:`send`; none of them is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
from google.protobuf.message import DecodeError

from server.errors import EtcdError
from server.metrics import Histogram, exponential_buckets
from server.peer.codec import decode_batch, encode_batch
from server.raft.types import Entry, Message, MessageType
from wardpb.peerpb import raft_pb2

__all__ = [
    "CLUSTER_ID_MISMATCH",
    "MEMBER_REMOVED",
    "PeerCallError",
    "PeerStats",
    "PeerTransport",
]

log = logging.getLogger("ward.peer")

RAFT_METHOD = "/wardpeerpb.Peer/Raft"
CALL_METHOD = "/wardpeerpb.Peer/Call"

MEMBER_REMOVED = "the member has been permanently removed from the cluster"
"""The refusal a removed member's transport recognizes (etcd's ``errMemberRemoved``)."""
CLUSTER_ID_MISMATCH = "cluster ID mismatch"
"""The start of the refusal of a batch or call from another cluster (as etcd logs it)."""
_REMOVED_CODE = grpc.StatusCode.PERMISSION_DENIED
# Statuses of a call that did not reach the peer (or got no answer from it).
_NO_ANSWER = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)

# Trailing metadata marking a status raised by a call handler (an EtcdError), as opposed to one
# of the transport (unreachable, deadline), so the caller knows which to pass on to its client.
_ETCD_ERROR_KEY = "ward-etcd-error"

DEFAULT_QUEUE_SIZE = 4096  # etcd's streamBufSize
# A batch stops growing past this many bytes of payload (one larger message goes alone).
DEFAULT_MAX_BATCH_BYTES = 4 << 20
# Peers are trusted members of the cluster; the limit only has to clear the largest batch (a
# full batch plus one maximal message: an append of max-request-size entries, a whole image).
MAX_MESSAGE_BYTES = 512 << 20
DIAL_TIMEOUT_S = 1.0  # etcd's peer dial timeout
MIN_BACKOFF_S = 0.1  # etcd's stream readers redial every 100 ms
MAX_BACKOFF_S = 1.0
KEEPALIVE_S = 1.0
KEEPALIVE_TIMEOUT_S = 2.0
CALL_CLOSE_GRACE_S = 5.0  # a channel replaced under in-flight calls lets them finish
# etcd's prober interval (its peer read timeout, 5 s, less a second); a probe gives up after
# the read timeout.
PROBE_INTERVAL_S = 4.0
PROBE_TIMEOUT_S = 5.0
PING_CALL = "ping"
"""The peer call the prober times; the transport answers it itself."""
# etcd's buckets for etcd_network_peer_round_trip_time_seconds: 0.1 ms to 3.2768 s.
RTT_BUCKETS = exponential_buckets(0.0001, 2, 16)


class PeerCallError(Exception):
    """A peer call failed in transport (unreachable, deadline, refused), not in its handler.

    A handler's own ``EtcdError`` reaches the caller as that ``EtcdError`` instead.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass(slots=True)
class PeerStats:
    """Counters of the traffic with one peer (etcd's etcd_network_peer_* metrics)."""

    sent_batches: int = 0
    sent_messages: int = 0
    sent_bytes: int = 0
    dropped_messages: int = 0
    send_failures: int = 0
    received_batches: int = 0
    received_messages: int = 0
    received_bytes: int = 0
    # Probed round-trip times to the peer, in seconds.
    rtt: Histogram = field(default_factory=lambda: Histogram(RTT_BUCKETS))


MessageHandler = Callable[[Message], None]
CallHandler = Callable[[bytes], Awaitable[bytes]]


def _client_options() -> list[tuple[str, int]]:
    ms = 1000
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", int(KEEPALIVE_S * ms)),
        ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT_S * ms)),
        # gRPC core times an unanswered ping out by this one (default 60 s), keepalive or not.
        ("grpc.http2.ping_timeout_ms", int(KEEPALIVE_TIMEOUT_S * ms)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Without this, gRPC stops pinging after two pings with no data sent, and a blackholed
        # idle stream would never be noticed.
        ("grpc.http2.max_pings_without_data", 0),
        # gRPC's own reconnect backoff (default 1 s growing to 120 s) must not outlast ours.
        # "min_reconnect_backoff" is in fact the connect timeout (default 20 s).
        ("grpc.initial_reconnect_backoff_ms", int(MIN_BACKOFF_S * ms)),
        ("grpc.max_reconnect_backoff_ms", int(MAX_BACKOFF_S * ms)),
        ("grpc.min_reconnect_backoff_ms", int(DIAL_TIMEOUT_S * ms)),
        # Subchannels (and their backoff state) are otherwise shared process-wide between
        # channels to the same address; each peer channel keeps its own.
        ("grpc.use_local_subchannel_pool", 1),
    ]


def _server_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Peers ping every KEEPALIVE_S, idle or not: a default server would answer that with
        # GOAWAY "too_many_pings".
        ("grpc.http2.min_ping_interval_without_data_ms", int(KEEPALIVE_S * 500)),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        # The receiver drops a stream whose sender went silent behind a blackhole.
        ("grpc.keepalive_time_ms", 5000),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.http2.ping_timeout_ms", 5000),
        # Only the core process listens for peers: a second bind of the port must fail loudly.
        ("grpc.so_reuseport", 0),
    ]


def _payload_size(m: Message) -> int:
    """Roughly the encoded size of ``m``; only has to be good enough to bound a batch."""
    n = 48 + len(m.context)
    if m.entries:
        n += sum([len(e.data) for e in m.entries]) + 24 * len(m.entries)
    if m.chunk is not None:
        n += len(m.chunk.data) + 64
    if m.snapshot is not None:
        n += len(m.snapshot.data) + 64
    return n


def coalesce(msgs: list[Message], max_bytes: int) -> list[Message]:
    """``msgs`` (for one peer, in order) with what Raft does the same with fewer messages.

    Under load the leader queues several appends per follower between two writes (one per
    proposal batch, one per commit advance), and a follower one acknowledgement per append:
    each costs an encode, a decode, a step and, on the follower, an answer. Only adjacent
    messages are combined, and only where the result is what Raft would reach from the parts:

    * an append whose entries follow on from the previous append's (same term, its previous
      index the other's last) joins it: one append of both entry lists, the later commit
      index. The follower appends and acknowledges the same; if it would have refused or
      ignored the first part, it refuses or ignores the whole, as if the second were lost,
      which Raft recovers from (the transport may drop any message);
    * an acknowledgement (not a rejection) followed by a later one of the same term is dropped:
      the later one says everything it says.

    Nothing is reordered; an append grows to ``max_bytes`` of entry data at most.
    """
    if len(msgs) < 2:
        return msgs
    out = [msgs[0]]
    app, resp = MessageType.APP, MessageType.APP_RESP
    for m in msgs[1:]:
        prev = out[-1]
        if m.type != prev.type or m.term != prev.term:
            out.append(m)
        elif m.type == app:
            ents = prev.entries
            last = ents[-1] if ents else None
            if (
                m.index == (last.index if last else prev.index)
                and m.log_term == (last.term if last else prev.log_term)
                and m.commit >= prev.commit
                and (not m.entries or _entry_bytes(ents) + _entry_bytes(m.entries) <= max_bytes)
            ):
                out[-1] = Message(
                    type=app,
                    to=prev.to,
                    from_=prev.from_,
                    term=prev.term,
                    log_term=prev.log_term,
                    index=prev.index,
                    entries=ents + m.entries,
                    commit=m.commit,
                )
            else:
                out.append(m)
        elif m.type == resp and not m.reject and not prev.reject and m.index >= prev.index:
            out[-1] = m
        else:
            out.append(m)
    return out


def _entry_bytes(entries: tuple[Entry, ...]) -> int:
    return sum([len(e.data) for e in entries])


def _split_url(url: str) -> tuple[str, bool]:
    """A peer URL ("http://host:port", "https://host:port") as a gRPC target and whether TLS."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported peer URL {url!r} (want http://host:port or https://...)")
    tls = parts.scheme == "https"
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port or (443 if tls else 80)}", tls


async def _dial(channel: grpc.aio.Channel) -> bool:
    """Connect ``channel``; False as soon as an attempt fails (``channel_ready`` would wait on
    through gRPC's own retries, hiding a refused connection until the dial timeout)."""
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        await channel.wait_for_state_change(state)
        new = channel.get_state(try_to_connect=True)
        if new == grpc.ChannelConnectivity.TRANSIENT_FAILURE and (
            state == grpc.ChannelConnectivity.CONNECTING
        ):
            return False
        state = new
    return True


class _Peer:
    """Sending state of one peer: its queue, its sender task and its channel."""

    __slots__ = (
        "active",
        "active_since",
        "channel",
        "channel_url",
        "down",
        "dropping",
        "id",
        "last_error",
        "prober",
        "queue",
        "task",
        "url_index",
        "urls",
        "wake",
    )

    def __init__(self, member_id: int, urls: tuple[str, ...]) -> None:
        self.id = member_id
        self.urls = urls
        self.url_index = 0
        self.queue: deque[Message] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.prober: asyncio.Task[None] | None = None
        self.channel: grpc.aio.Channel | None = None
        self.channel_url = ""
        # The last connection attempt failed: messages are dropped at once until one succeeds.
        self.down = False
        # For logging transitions only, not every retry: stream up, queue full, last failure.
        self.active = False
        # When the message stream last came up, while it stays up (etcd's ActiveSince).
        self.active_since: float | None = None
        self.dropping = False
        self.last_error = ""


class PeerTransport:
    """Raft messages and unary calls between this member and its peers, over gRPC.

    The driver gives it the peers (:meth:`set_peers`), hands it each Ready's messages
    (:meth:`send`) and gets every received message through ``on_message``. See the module
    docstring for the delivery guarantees (none: Raft retransmits).
    """

    def __init__(
        self,
        *,
        member_id: int,
        cluster_id: int,
        on_message: MessageHandler,
        on_unreachable: Callable[[int], None],
        is_removed: Callable[[int], bool],
        on_removed: Callable[[], None],
        calls: dict[str, CallHandler],
        channel_credentials: grpc.ChannelCredentials | None = None,
        server_credentials: grpc.ServerCredentials | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self._interceptors = list(interceptors)
        self.member_id = member_id
        # Public and writable: a member joining an existing cluster learns the ID from its
        # first call (made with 0, "unknown"), then sets it here.
        self.cluster_id = cluster_id
        self._on_message = on_message
        self._on_unreachable = on_unreachable
        self._is_removed = is_removed
        self._on_removed = on_removed
        self._calls = calls
        self._channel_credentials = channel_credentials
        self._server_credentials = server_credentials
        self._queue_size = queue_size
        self._max_batch_bytes = max_batch_bytes
        self._peers: dict[int, _Peer] = {}
        self._stats: dict[int, PeerStats] = {}
        self._server: grpc.aio.Server | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._unreachable: set[int] = set()
        self._removed_signalled = False
        self._stopped = False
        # Senders found not removed (a read of the members table each): forgotten whenever the
        # membership changes, which always comes with set_peers.
        self._not_removed: set[int] = set()

    # -- serving ------------------------------------------------------------------------------

    async def start(self, listen: list[str]) -> list[int]:
        """Serve the Peer service on each address; return the bound ports, in order.

        An address is "host:port" (TLS when ``server_credentials`` were given), or a URL
        "http://host:port" / "https://host:port" as etcd's --listen-peer-urls. Port 0 binds a
        free port.
        """
        server = grpc.aio.server(options=_server_options(), interceptors=self._interceptors)
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "wardpeerpb.Peer",
                    {
                        "Raft": grpc.stream_unary_rpc_method_handler(self._serve_raft),
                        "Call": grpc.unary_unary_rpc_method_handler(self._serve_call),
                    },
                ),
            )
        )
        ports = []
        for addr in listen:
            tls = self._server_credentials is not None
            if "://" in addr:
                parts = urlsplit(addr)
                if parts.scheme not in ("http", "https"):
                    raise ValueError(f"unsupported peer listen URL {addr!r}")
                tls = parts.scheme == "https"
                addr = parts.netloc
            if tls:
                if self._server_credentials is None:
                    raise ValueError(f"{addr}: https peer listener without server credentials")
                ports.append(server.add_secure_port(addr, self._server_credentials))
            else:
                ports.append(server.add_insecure_port(addr))
        await server.start()
        self._server = server
        return ports

    async def _serve_raft(
        self, batches: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        stats: PeerStats | None = None
        async for data in batches:
            try:
                cluster, sender, to, msgs = decode_batch(data)
            except ValueError as e:
                log.warning(
                    "refused a malformed message batch",
                    extra={"remote-addr": context.peer(), "error": str(e)},
                )
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            refusal = self._refusal(cluster, sender, to)
            if refusal is not None:
                await context.abort(*refusal)
            if stats is None:
                stats = self._stats_of(sender)
                log.debug("accepted a message stream", extra={"remote-peer-id": f"{sender:x}"})
            stats.received_batches += 1
            stats.received_messages += len(msgs)
            stats.received_bytes += len(data)
            for m in msgs:
                try:
                    self._on_message(m)
                except Exception:
                    log.exception("handling a message from %x failed", sender)
        return b""  # an empty RaftAck

    def _refusal(self, cluster: int, sender: int, to: int) -> tuple[grpc.StatusCode, str] | None:
        if cluster != self.cluster_id:
            log.warning(
                "request cluster ID mismatch",
                extra={
                    "remote-peer-id": f"{sender:x}",
                    "remote-peer-cluster-id": f"{cluster:x}",
                    "local-member-cluster-id": f"{self.cluster_id:x}",
                },
            )
            return (
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{CLUSTER_ID_MISMATCH}: sender's {cluster:x}, receiver's {self.cluster_id:x}",
            )
        if to != self.member_id:
            return (
                grpc.StatusCode.FAILED_PRECONDITION,
                f"member ID mismatch: messages for {to:x} reached {self.member_id:x}",
            )
        if sender == 0 or sender == self.member_id:
            return grpc.StatusCode.INVALID_ARGUMENT, f"invalid sender ID {sender:x}"
        if sender in self._not_removed:
            return None
        if self._is_removed(sender):
            log.warning(
                "rejected stream from remote peer because it was removed",
                extra={"remote-peer-id": f"{sender:x}"},
            )
            return _REMOVED_CODE, MEMBER_REMOVED
        self._not_removed.add(sender)
        return None

    async def _serve_call(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            req = raft_pb2.PeerCall.FromString(request)
        except DecodeError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed peer call: {e}")
        sender = getattr(req, "from")
        # A joining member does not know the cluster ID yet and sends 0.
        if req.cluster_id and req.cluster_id != self.cluster_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{CLUSTER_ID_MISMATCH}: caller's {req.cluster_id:x}, "
                f"receiver's {self.cluster_id:x}",
            )
        if sender and self._is_removed(sender):
            await context.abort(_REMOVED_CODE, MEMBER_REMOVED)
        if req.method == PING_CALL:
            return b""  # an empty PeerCallResponse: the prober times the round trip
        handler = self._calls.get(req.method)
        if handler is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"unknown peer call {req.method}")
            raise AssertionError("unreachable")  # abort raises
        try:
            response = await handler(req.request)
        except EtcdError as e:
            await context.abort(e.code, e.message, ((_ETCD_ERROR_KEY, "1"),))
        except Exception as e:
            log.exception("peer call %s from %x failed", req.method, sender)
            await context.abort(grpc.StatusCode.UNKNOWN, f"peer call {req.method} failed: {e}")
        return raft_pb2.PeerCallResponse(response=response).SerializeToString()

    # -- peers --------------------------------------------------------------------------------

    def set_peers(self, peers: dict[int, tuple[str, ...]]) -> None:
        """Make ``peers`` (member ID to peer URLs) the members to talk to.

        Peers no longer listed are disconnected and their queued messages dropped; a peer whose
        URLs changed reconnects. This member's own ID is ignored. Call it on the event loop.
        """
        if self._stopped:
            return
        self._not_removed.clear()
        wanted = {mid: tuple(urls) for mid, urls in peers.items() if mid != self.member_id}
        for mid in list(self._peers):
            if wanted.get(mid) != self._peers[mid].urls:
                self._close_peer(self._peers.pop(mid))
        for mid, urls in wanted.items():
            if mid not in self._peers:
                peer = _Peer(mid, urls)
                peer.task = asyncio.create_task(self._run_peer(peer), name=f"peer-{mid:x}")
                peer.prober = asyncio.create_task(self._probe(peer), name=f"probe-{mid:x}")
                self._peers[mid] = peer

    def _close_peer(self, peer: _Peer) -> None:
        async def close() -> None:
            if peer.prober is not None:
                peer.prober.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await peer.prober
            if peer.task is not None:
                peer.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await peer.task
            if peer.channel is not None:
                await peer.channel.close()

        peer.queue.clear()
        task = asyncio.create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def active_since(self, member: int) -> float | None:
        """Since when (``time.monotonic()``) the stream to ``member`` has been up; None while it
        is down. The strict reconfiguration checks ask this, as etcd asks its transport."""
        peer = self._peers.get(member)
        return None if peer is None else peer.active_since

    def stats(self) -> dict[int, PeerStats]:
        """Traffic counters by peer member ID (live objects: read, do not keep)."""
        return self._stats

    def _stats_of(self, member: int) -> PeerStats:
        s = self._stats.get(member)
        if s is None:
            s = self._stats[member] = PeerStats()
        return s

    # -- sending ------------------------------------------------------------------------------

    def send(self, msgs: list[Message]) -> None:
        """Queue ``msgs`` for their peers (``Message.to``); never blocks, never raises.

        A message for an unknown peer, a peer that is down, or a peer whose queue is full is
        dropped and the peer reported unreachable (soon, not from within this call).
        """
        for m in msgs:
            peer = self._peers.get(m.to)
            if peer is None:
                if m.to != self.member_id and not self._stopped:
                    log.debug("dropped a message to unknown member %x", m.to)
                    self._report_unreachable(m.to)
                continue
            if peer.down or len(peer.queue) >= self._queue_size:
                self._drop(peer, 1)
                continue
            peer.queue.append(m)
            peer.wake.set()

    def _drop(self, peer: _Peer, count: int) -> None:
        self._stats_of(peer.id).dropped_messages += count
        if not peer.down and not peer.dropping:
            peer.dropping = True
            log.warning(
                "dropped internal Raft message since sending buffer is full (overloaded network)",
                extra={"remote-peer-id": f"{peer.id:x}"},
            )
        self._report_unreachable(peer.id)

    def _report_unreachable(self, member: int) -> None:
        # Deferred: the driver calls send() in the middle of handling a Ready, and reporting
        # steps the Raft node; reports for one peer are coalesced until they run.
        if not self._unreachable:
            asyncio.get_running_loop().call_soon(self._flush_unreachable)
        self._unreachable.add(member)

    def _flush_unreachable(self) -> None:
        members, self._unreachable = self._unreachable, set()
        for member in members:
            if self._stopped:
                return
            try:
                self._on_unreachable(member)
            except Exception:
                log.exception("on_unreachable(%x) failed", member)

    def _signal_removed(self) -> None:
        if self._removed_signalled or self._stopped:
            return
        self._removed_signalled = True
        log.error(f"{MEMBER_REMOVED}; this member stops")
        asyncio.get_running_loop().call_soon(self._on_removed)

    def _take(self, queue: deque[Message]) -> list[Message]:
        if len(queue) == 1:
            return [queue.popleft()]
        out = [queue.popleft()]
        size = _payload_size(out[0])
        limit = self._max_batch_bytes
        while queue and size < limit:
            size += _payload_size(queue[0])
            if size > limit:
                break
            out.append(queue.popleft())
        return coalesce(out, limit)

    def _channel(self, peer: _Peer) -> grpc.aio.Channel:
        url = peer.urls[peer.url_index % len(peer.urls)]
        if peer.channel is not None and peer.channel_url == url:
            return peer.channel
        if peer.channel is not None:
            self._close_later(peer.channel)
        peer.channel = self._open_channel(url)
        peer.channel_url = url
        return peer.channel

    def _open_channel(self, url: str) -> grpc.aio.Channel:
        target, tls = _split_url(url)
        if not tls:
            return grpc.aio.insecure_channel(target, options=_client_options())
        if self._channel_credentials is None:
            raise ValueError(f"{url}: https peer URL without channel credentials")
        return grpc.aio.secure_channel(target, self._channel_credentials, _client_options())

    def _close_later(self, channel: grpc.aio.Channel) -> None:
        task = asyncio.create_task(channel.close(CALL_CLOSE_GRACE_S))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _run_peer(self, peer: _Peer) -> None:
        """The sender task of one peer: stream, and on failure report, back off, reconnect."""
        backoff = MIN_BACKOFF_S
        while True:
            code, details, streamed_s = await self._stream(peer)
            peer.down = True
            peer.dropping = False
            if peer.queue:
                self._stats_of(peer.id).dropped_messages += len(peer.queue)
                peer.queue.clear()
            self._stats_of(peer.id).send_failures += 1
            self._report_unreachable(peer.id)
            refused = code in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.UNIMPLEMENTED,
                _REMOVED_CODE,
            )
            if code == _REMOVED_CODE and details == MEMBER_REMOVED:
                self._signal_removed()
            error = f"{code.name}: {details}"
            fields = {"peer-id": f"{peer.id:x}", "error": error}
            peer.active_since = None
            if peer.active:
                peer.active = False
                log.warning("peer became inactive (message send to peer failed)", extra=fields)
            elif error != peer.last_error:
                level = logging.ERROR if refused else logging.WARNING
                log.log(level, "failed to reach the peer", extra=fields)
            peer.last_error = error
            if streamed_s is None and len(peer.urls) > 1:
                peer.url_index += 1  # try the next URL of the peer
            if refused:
                delay = MAX_BACKOFF_S
            elif streamed_s is not None and streamed_s >= MAX_BACKOFF_S:
                delay = backoff = MIN_BACKOFF_S  # it had been working: retry soon
            else:
                delay = backoff
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            await asyncio.sleep(delay)

    async def _stream(self, peer: _Peer) -> tuple[grpc.StatusCode, str, float | None]:
        """Connect and stream ``peer``'s queue until the stream fails.

        Returns the final status, and for how long the stream was open (None: never opened).
        """
        try:
            channel = self._channel(peer)
        except ValueError as e:
            return grpc.StatusCode.INVALID_ARGUMENT, str(e), None
        try:
            connected = await asyncio.wait_for(_dial(channel), DIAL_TIMEOUT_S)
        except TimeoutError:
            connected = False
        if not connected:
            return (
                grpc.StatusCode.UNAVAILABLE,
                f"could not connect to {peer.channel_url}",
                None,
            )
        loop = asyncio.get_running_loop()
        opened = loop.time()
        call = channel.stream_unary(RAFT_METHOD)()
        call.add_done_callback(lambda _: peer.wake.set())
        peer.down = False
        if peer.active_since is None:
            peer.active_since = time.monotonic()
        if not peer.active:
            peer.active = True
            peer.last_error = ""
            log.info(
                "peer became active", extra={"peer-id": f"{peer.id:x}", "url": peer.channel_url}
            )
        stats = self._stats_of(peer.id)
        queue = peer.queue
        try:
            while not call.done():
                if not queue:
                    peer.wake.clear()
                    await peer.wake.wait()
                    continue
                msgs = self._take(queue)
                try:
                    data = encode_batch(self.cluster_id, self.member_id, peer.id, msgs)
                except (ValueError, TypeError) as e:
                    log.error(
                        "dropped Raft messages that cannot be encoded",
                        extra={"remote-peer-id": f"{peer.id:x}", "count": len(msgs), "error": e},
                    )
                    stats.dropped_messages += len(msgs)
                    continue
                await call.write(data)
                stats.sent_batches += 1
                stats.sent_messages += len(msgs)
                stats.sent_bytes += len(data)
                peer.dropping = False
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the status says why, below
        except asyncio.CancelledError:
            call.cancel()
            raise
        except Exception:
            log.exception("message stream failed", extra={"peer-id": f"{peer.id:x}"})
            call.cancel()
        if not call.done():
            call.cancel()
        return await call.code(), await call.details() or "", loop.time() - opened

    # -- probing ------------------------------------------------------------------------------

    async def _probe(self, peer: _Peer) -> None:
        """Time a ping to ``peer`` every PROBE_INTERVAL_S while its stream is up.

        Only a connection that is up is probed, without waiting for one: a probe must time the
        network, not a reconnection. Any answer from the peer counts, a refusal included (a
        member that does not know "ping" still answered).
        """
        loop = asyncio.get_running_loop()
        rtt = self._stats_of(peer.id).rtt
        while True:
            channel = peer.channel
            if (
                not peer.down
                and channel is not None
                and channel.get_state() == grpc.ChannelConnectivity.READY
            ):
                started = loop.time()
                try:
                    await self._invoke(
                        channel, PING_CALL, b"", PROBE_TIMEOUT_S, wait_for_ready=False
                    )
                    answered = True
                except EtcdError:
                    answered = True
                except PeerCallError as e:
                    answered = e.code not in _NO_ANSWER
                if answered:
                    rtt.observe(loop.time() - started)
            await asyncio.sleep(PROBE_INTERVAL_S)

    # -- calls --------------------------------------------------------------------------------

    async def call(self, member: int, method: str, request: bytes, timeout: float) -> bytes:
        """Call ``method`` on peer ``member`` with ``request``; return its response bytes.

        Raises the handler's ``EtcdError`` (same code and message) if it raised one, and
        :class:`PeerCallError` if the call failed in transport or the peer is unknown.
        """
        peer = self._peers.get(member)
        if peer is None:
            raise PeerCallError(grpc.StatusCode.NOT_FOUND, f"unknown peer {member:x}")
        try:
            channel = self._channel(peer)
        except ValueError as e:
            raise PeerCallError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        return await self._invoke(channel, method, request, timeout)

    async def call_url(self, url: str, method: str, request: bytes, timeout: float) -> bytes:
        """Like :meth:`call`, on the member serving peer URL ``url`` (whose ID is not known)."""
        try:
            channel = self._open_channel(url)
        except ValueError as e:
            raise PeerCallError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        try:
            return await self._invoke(channel, method, request, timeout)
        finally:
            await channel.close()

    async def _invoke(
        self,
        channel: grpc.aio.Channel,
        method: str,
        request: bytes,
        timeout: float,
        *,
        wait_for_ready: bool = True,
    ) -> bytes:
        req = raft_pb2.PeerCall(cluster_id=self.cluster_id, method=method, request=request)
        setattr(req, "from", self.member_id)
        try:
            raw = await channel.unary_unary(CALL_METHOD)(
                req.SerializeToString(), timeout=timeout, wait_for_ready=wait_for_ready
            )
        except grpc.aio.AioRpcError as e:
            code, details = e.code(), e.details() or ""
            if any(k == _ETCD_ERROR_KEY for k, _ in e.trailing_metadata() or ()):
                raise EtcdError(code, details) from None
            if code == _REMOVED_CODE and details == MEMBER_REMOVED:
                self._signal_removed()
            raise PeerCallError(code, details) from None
        try:
            return raft_pb2.PeerCallResponse.FromString(raw).response
        except DecodeError as e:
            raise PeerCallError(grpc.StatusCode.INTERNAL, f"malformed peer response: {e}") from None

    # -- stopping -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop serving and sending; queued messages are dropped. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for peer in self._peers.values():
            self._close_peer(peer)
        self._peers.clear()
        if self._server is not None:
            await self._server.stop(grace=0.2)
            self._server = None
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
