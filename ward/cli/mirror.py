"""`make-mirror [options] <destination>`: etcdctl 3.4's one-way mirror into another cluster.

As etcdctl (with clientv3/mirror's syncer) does it: read every key under --prefix at one
revision, in pages of 1000, and put each into the destination; then watch the source from the
next revision and apply each revision's events to the destination in one transaction. Keys
get --dest-prefix in place of --prefix (by default --prefix itself; --no-dest-prefix drops
it). Every 30 seconds the number of keys synced so far is printed. It runs until it fails:
the source's history was compacted past the watch ("required revision has been compacted"),
or a request was refused. No request has a deadline, as in etcdctl.

Leases are not carried over (etcdctl's mirror puts values only). The destination client has
its own TLS flags; without any, like wardctl's own connections, it uses a local `ward`'s
credentials when there are some (`ward.credentials`) and plaintext otherwise.
"""

from __future__ import annotations

import math
import threading
import time

from ward import txn
from ward.cli.command import Command, Invocation
from ward.cli.config import add_local_credentials, apply_env, client_kwargs, new_client
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_ERROR, CliExit, error_text
from ward.cli.flags import Flag, Kind
from ward.client import Client
from ward.errors import CompactedError, EtcdError
from ward.requests import key_range
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2

__all__ = ["Renamer", "make_mirror_command"]

BATCH_LIMIT = 1000  # keys per read of the initial sync (clientv3/mirror's batchLimit)
REPORT_EVERY_S = 30.0


class Renamer:
    """Maps a source key to its destination key: Go's strings.Replace(key, prefix, dest, 1),
    which replaces the first occurrence (at the start, for keys under the prefix) and, for an
    empty prefix, puts `dest` in front."""

    def __init__(self, prefix: bytes, dest_prefix: bytes) -> None:
        self.prefix = prefix
        self.dest_prefix = dest_prefix

    def __call__(self, key: bytes) -> bytes:
        return key.replace(self.prefix, self.dest_prefix, 1)


class _Counter:
    """The running count of keys synced, printed every 30 s from a background thread."""

    def __init__(self, inv: Invocation) -> None:
        self._inv = inv
        self._lock = threading.Lock()
        self.total = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.total += n

    def start(self) -> None:
        threading.Thread(target=self._report, name="mirror-count", daemon=True).start()

    def _report(self) -> None:
        while True:
            time.sleep(REPORT_EVERY_S)
            with self._lock:
                total = self.total
            self._inv.out(str(total))
            self._inv.stdout.flush()


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _dest_kwargs(inv: Invocation, source: dict[str, object]) -> dict[str, object]:
    """The destination client's settings: the one endpoint given, the global timeouts and
    keepalives, its own TLS flags, no authentication (etcdctl 3.4 has no --dest-user)."""
    cacert = str(inv.flags.value("dest-cacert")) or None
    cert = str(inv.flags.value("dest-cert")) or None
    key = str(inv.flags.value("dest-key")) or None
    kwargs: dict[str, object] = {
        "endpoints": [inv.args[0]],
        "dial_timeout": source["dial_timeout"],
        "command_timeout": source["command_timeout"],
        "cacert": cacert,
        "cert": cert,
        "key": key,
        "secure": not inv.flags.value("dest-insecure-transport"),
    }
    for name in ("keepalive_time", "keepalive_timeout"):
        if name in source:
            kwargs[name] = source[name]
    if not (cacert or cert or key):
        add_local_credentials(inv, kwargs)
    return kwargs


def _base_revision(client: Client) -> int:
    # clientv3/mirror reads a key ("foo") only for the header's revision.
    try:
        return client.get(b"foo", timeout=math.inf).header.revision
    except EtcdError as exc:
        raise CliExit(EXIT_ERROR, error_text(exc)) from None


def _sync_base(
    client: Client, dest: Client, prefix: bytes, rev: int, rename: Renamer, count: _Counter
) -> None:
    """Copy every key under `prefix` (every key, for an empty one) as of `rev`, a page at a
    time, one put per key."""
    key, end = key_range(prefix, prefix=True)
    while True:
        resp = client.get(key, end, limit=BATCH_LIMIT, revision=rev, timeout=math.inf)
        for kv in resp.kvs:
            dest.put(rename(kv.key), kv.value, timeout=math.inf)
            count.add()
        if not resp.more:
            return
        # The next page starts right after the last key of this one.
        key = resp.kvs[-1].key + b"\x00"


def _apply(dest: Client, ops: list[txn.Op]) -> None:
    if ops:
        dest.txn(success=ops, timeout=math.inf)


def _sync_updates(
    client: Client, dest: Client, prefix: bytes, rev: int, rename: Renamer, count: _Counter
) -> None:
    """Apply the source's changes after `rev`, one destination txn per source revision."""
    with client.watch(prefix, prefix=True, start_revision=rev + 1) as watcher:
        responses = iter(watcher)
        while True:
            try:
                resp = next(responses)
            except StopIteration:
                return
            except CompactedError:
                raise
            except EtcdError:
                # etcdctl's loop ends, with no error, when a canceled watch closes its channel.
                return
            _apply_response(dest, resp, rename, count)


def _apply_response(
    dest: Client, resp: rpc_pb2.WatchResponse, rename: Renamer, count: _Counter
) -> None:
    ops: list[txn.Op] = []
    last_rev = 0
    for ev in resp.events:
        rev = ev.kv.mod_revision
        if last_rev and rev > last_rev:
            _apply(dest, ops)
            ops = []
        last_rev = rev
        if ev.type == kv_pb2.Event.PUT:
            ops.append(txn.put(rename(ev.kv.key), ev.kv.value))
        else:
            ops.append(txn.delete(rename(ev.kv.key)))
        count.add()
    _apply(dest, ops)


def _run_make_mirror(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "make-mirror takes one destination argument")
    apply_env(inv)
    source_kwargs = client_kwargs(inv)
    dest = new_client(inv, _dest_kwargs(inv, source_kwargs))
    try:
        client = new_client(inv, source_kwargs)
    except BaseException:
        dest.close()
        raise
    with dest, client:
        count = _Counter(inv)
        count.start()
        prefix = _raw(str(inv.flags.value("prefix")))
        rev = _base_revision(client)
        # etcdctl checks the two flags only here, once the source has answered.
        dest_prefix = _raw(str(inv.flags.value("dest-prefix")))
        no_dest_prefix = bool(inv.flags.value("no-dest-prefix"))
        if no_dest_prefix and dest_prefix:
            raise CliExit(
                EXIT_BAD_ARGS,
                "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
            )
        if not no_dest_prefix and not dest_prefix:
            dest_prefix = prefix
        rename = Renamer(prefix, dest_prefix)
        try:
            _sync_base(client, dest, prefix, rev, rename, count)
            _sync_updates(client, dest, prefix, rev, rename, count)
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    # Go prints the nil error it was handed when the watch ended without one.
    raise CliExit(EXIT_ERROR, "<nil>")


def make_mirror_command() -> Command:
    """The `make-mirror` command."""
    return Command(
        use="make-mirror [options] <destination>",
        short="Makes a mirror at the destination etcd cluster",
        run=_run_make_mirror,
        flags=[
            Flag("prefix", Kind.STRING, "", "Key-value prefix to mirror"),
            Flag(
                "dest-prefix",
                Kind.STRING,
                "",
                "destination prefix to mirror a prefix to a different prefix in the destination "
                "cluster",
            ),
            Flag(
                "no-dest-prefix",
                Kind.BOOL,
                False,
                "mirror key-values to the root of the destination cluster",
            ),
            Flag(
                "dest-cert",
                Kind.STRING,
                "",
                "Identify secure client using this TLS certificate file for the destination "
                "cluster",
            ),
            Flag("dest-key", Kind.STRING, "", "Identify secure client using this TLS key file"),
            Flag(
                "dest-cacert",
                Kind.STRING,
                "",
                "Verify certificates of TLS enabled secure servers using this CA bundle",
            ),
            Flag(
                "dest-insecure-transport",
                Kind.BOOL,
                True,
                "Disable transport security for client connections",
            ),
        ],
    )
