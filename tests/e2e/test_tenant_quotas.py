"""Tenant watcher quotas on a real `ward` (a core and a worker serving one port), driven by the
real etcdctl 3.4 and by Ward's Python client, each logged in as a tenant user.

The quota counts a tenant's open watchers in the whole member, whichever serving process holds
them (server/watch_quota.py): watches opened on separate connections, which the kernel spreads
over the processes, count against one quota. A refused watch is told so in the create response
(created and canceled, with a cancel reason, as etcd refuses a watch); other tenants, and the
tenant's other watches, go on.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.e2e.line_process import LineProcess
from tests.e2e.tenant_setup import login, password, policy_ward
from tests.e2e.ward_process import ETCDCTL, WardProcess, etcdctl
from ward.client import Client
from ward.errors import EtcdError
from ward.watch import Watcher

pytestmark = pytest.mark.slow

QUOTA = 3
REFUSED = "ward: tenant quota exceeded: too many watchers"
# What etcdctl prints for a refused watch (the server's cancel reason, as clientv3 hands it on).
ETCDCTL_REFUSED = (
    "watch was canceled (rpc error: code = ResourceExhausted desc = ward: tenant quota exceeded:"
    " too many watchers)"
)
POLICY = f"""
tenants:
  - {{name: acme, prefix: /tenants/acme/, quota: {{watchers: {QUOTA}}}}}
  - {{name: globex, prefix: /tenants/globex/, quota: {{watchers: {QUOTA}}}}}
roles:
  - {{name: acme-rw, tenant: acme, permissions: [{{type: readwrite, key: "", prefix: true}}]}}
  - {{name: globex-rw, tenant: globex, permissions: [{{type: readwrite, key: "", prefix: true}}]}}
users:
  - {{name: acme-app, tenant: acme, roles: [acme-rw]}}
  - {{name: globex-app, tenant: globex, roles: [globex-rw]}}
"""
CREATED_S = 10.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WardProcess]:
    with policy_ward(tmp_path, POLICY, ["acme-app", "globex-app"]) as ward:
        yield ward


class Tenant:
    """Watches of one tenant user, each on a client (a connection) of its own."""

    def __init__(self, endpoint: str, user: str) -> None:
        self.endpoint = endpoint
        self.user = user
        self.open: list[tuple[Client, Watcher]] = []

    def watch(self, key: str) -> Watcher:
        client = Client(self.endpoint, user=self.user, password=password(self.user))
        watcher = client.watch(key)
        self.open.append((client, watcher))
        return watcher

    def created(self, key: str) -> Watcher:
        watcher = self.watch(key)
        refusal = outcome(watcher)
        assert refusal is None, f"{self.user}: watch on {key} refused: {refusal}"
        return watcher

    def refused(self, key: str) -> str:
        refusal = outcome(self.watch(key))
        assert refusal is not None, f"{self.user}: watch on {key} created"
        return refusal

    def close_all(self) -> None:
        for client, watcher in self.open:
            watcher.cancel()
            client.close()
        self.open.clear()


def outcome(watcher: Watcher) -> str | None:
    """None once the server has created the watch, else its refusal (the client ends a refused
    watch with an error carrying the server's cancel reason)."""
    assert watcher.wait_created(CREATED_S), "the server did not answer the watch"
    try:
        watcher.get(timeout=0.3)
    except EtcdError as e:
        return str(e)
    return None


def created_eventually(tenant: Tenant, key: str) -> Watcher:
    """A watch created once the server has seen the watches closed before it end (a closed
    client's stream ends on the server a moment later)."""
    deadline = time.monotonic() + CREATED_S
    while True:
        watcher = tenant.watch(key)
        if outcome(watcher) is None:
            return watcher
        if time.monotonic() > deadline:
            raise AssertionError(f"{tenant.user}: no watch slot came free")
        client, _ = tenant.open.pop()
        watcher.cancel()
        client.close()


def test_a_tenant_over_its_watcher_quota_is_refused_while_another_watches_on(
    server: WardProcess,
) -> None:
    acme = Tenant(server.endpoint, "acme-app")
    globex = Tenant(server.endpoint, "globex-app")
    try:
        # Up to the quota, on separate connections (so on both serving processes, most likely):
        # one count for the member.
        watchers = [acme.created(f"k{i}") for i in range(QUOTA)]
        assert REFUSED in acme.refused("one-more")
        # The real etcdctl, logged in as the tenant user, is refused with the same reason.
        out = etcdctl(server.endpoint, login("acme-app"), "watch", "from-etcdctl", timeout=30)
        assert out.returncode != 0
        assert ETCDCTL_REFUSED in out.stderr, out.stderr

        # Another tenant is not held back: its watches are created and see its events.
        globex_watchers = [globex.created(f"g{i}") for i in range(QUOTA - 1)]
        ctl_watch = LineProcess(
            [str(ETCDCTL), "--endpoints", server.endpoint, login("globex-app"), "watch", "g-ctl"]
        )
        try:
            time.sleep(1.0)  # etcdctl prints nothing until an event: give it time to create
            etcdctl(server.endpoint, login("globex-app"), "put", "g-ctl", "seen")
            assert ctl_watch.line() == "PUT"
            assert ctl_watch.line() == "g-ctl"
            assert ctl_watch.line() == "seen"
        finally:
            ctl_watch.kill()
        etcdctl(server.endpoint, login("globex-app"), "put", "g0", "v")
        event = globex_watchers[0].get(timeout=CREATED_S)
        assert event is not None and event.events[0].kv.key == b"g0"

        # The refused tenant's own watches go on.
        etcdctl(server.endpoint, login("acme-app"), "put", "k1", "v")
        event = watchers[1].get(timeout=CREATED_S)
        assert event is not None and event.events[0].kv.key == b"k1"
        # Users of no tenant have no watcher quota.
        for i in range(QUOTA + 1):
            root = etcdctl(server.endpoint, "--user=root:root-pass-1", "get", f"r{i}")
            assert root.returncode == 0
    finally:
        acme.close_all()
        globex.close_all()


def test_watchers_that_end_give_their_place_back(server: WardProcess) -> None:
    acme = Tenant(server.endpoint, "acme-app")
    try:
        for i in range(QUOTA):
            acme.created(f"k{i}")
        assert REFUSED in acme.refused("over")
        acme.open.pop()[1].cancel()  # the refused one: it holds nothing
        # A watch canceled by its client frees its place.
        client, watcher = acme.open.pop(0)
        watcher.cancel()
        client.close()
        created_eventually(acme, "again")
        assert REFUSED in acme.refused("over-again")
        # Streams that end (clients gone) free every place they held, in every process.
        acme.close_all()
        for i in range(QUOTA):
            if i == 0:
                created_eventually(acme, f"n{i}")
            else:
                acme.created(f"n{i}")
        assert REFUSED in acme.refused("over-once-more")
    finally:
        acme.close_all()


def test_etcdctl_refused_on_one_stream_past_the_quota(server: WardProcess) -> None:
    """One etcdctl stream with more watches than the quota (interactive `watch` sends each on
    the same stream): the last is refused, the stream and the watches it holds go on."""
    proc = subprocess.Popen(
        [str(ETCDCTL), "--endpoints", server.endpoint, login("acme-app"), "watch", "--interactive"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=_lines_into, args=(stream, lines), daemon=True).start()
    try:
        assert proc.stdin is not None
        for i in range(QUOTA + 1):
            proc.stdin.write(f"watch w{i}\n")
            proc.stdin.flush()
        seen = []
        while ETCDCTL_REFUSED not in seen:
            seen.append(lines.get(timeout=CREATED_S))
        etcdctl(server.endpoint, login("acme-app"), "put", "w0", "still-watched")
        while "still-watched" not in seen:
            seen.append(lines.get(timeout=CREATED_S))
        assert seen.count(ETCDCTL_REFUSED) == 1, seen
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _lines_into(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
    assert stream is not None
    for line in stream:
        lines.put(line.rstrip("\n"))
