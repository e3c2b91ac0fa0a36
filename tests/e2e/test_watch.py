"""Watch against a real `ward`: etcd's semantics over the stubs and through the real etcdctl."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from tests.e2e.ward_process import WardProcess, etcdctl
from wardpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from wardpb.mvccpb import kv_pb2

WR = rpc_pb2.WatchRequest
WCR = rpc_pb2.WatchCreateRequest


class Stream:
    """One Watch stream: requests go in through a queue, responses come out of another."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        self.responses: queue.Queue[rpc_pb2.WatchResponse] = queue.Queue()
        call = rpc_pb2_grpc.WatchStub(channel).Watch(self._iter())
        self._call = call
        threading.Thread(target=self._pump, args=(call,), daemon=True).start()

    def _iter(self) -> Iterator[rpc_pb2.WatchRequest]:
        while (r := self._requests.get()) is not None:
            yield r

    def _pump(self, call: Iterator[rpc_pb2.WatchResponse]) -> None:
        try:
            for resp in call:
                self.responses.put(resp)
        except grpc.RpcError:
            pass

    def send(self, req: rpc_pb2.WatchRequest) -> None:
        self._requests.put(req)

    def create(self, **kw: object) -> rpc_pb2.WatchResponse:
        self.send(WR(create_request=WCR(**kw)))
        resp = self.next()
        assert resp.created
        return resp

    def next(self, timeout: float = 5.0) -> rpc_pb2.WatchResponse:
        return self.responses.get(timeout=timeout)

    def events(self, n: int, timeout: float = 5.0) -> list[rpc_pb2.WatchResponse]:
        """Responses until `n` events have arrived."""
        out, seen = [], 0
        while seen < n:
            r = self.next(timeout)
            out.append(r)
            seen += len(r.events)
        return out

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()


@pytest.fixture
def chan(ward: WardProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(ward.endpoint) as ch:
        yield ch


def kv(ch: grpc.Channel) -> rpc_pb2_grpc.KVStub:
    return rpc_pb2_grpc.KVStub(ch)


def test_watch_ids_start_at_zero_and_a_client_chosen_id_is_kept(chan: grpc.Channel) -> None:
    s = Stream(chan)
    assert s.create(key=b"a").watch_id == 0
    assert s.create(key=b"b").watch_id == 1
    assert s.create(key=b"c", watch_id=42).watch_id == 42
    dup = (s.send(WR(create_request=WCR(key=b"d", watch_id=42))), s.next())[1]
    assert dup.canceled and dup.watch_id == 42
    s.close()


def test_events_in_order_once_each_and_one_response_per_revision(chan: grpc.Channel) -> None:
    s = Stream(chan)
    s.create(key=b"k", range_end=b"l")
    kv(chan).Put(rpc_pb2.PutRequest(key=b"k1", value=b"1"))
    txn = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k2", value=b"2")),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k3", value=b"3")),
        ]
    )
    kv(chan).Txn(txn)
    kv(chan).DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"k", range_end=b"l"))
    resps = s.events(6)
    assert [len(r.events) for r in resps] == [1, 2, 3]
    revs = [ev.kv.mod_revision for r in resps for ev in r.events]
    assert revs == sorted(revs)
    assert {ev.kv.mod_revision for ev in resps[1].events} == {resps[1].header.revision}
    assert [ev.type for ev in resps[2].events] == [kv_pb2.Event.DELETE] * 3
    s.close()


def test_history_replay_then_live_without_gap_or_duplicate(chan: grpc.Channel) -> None:
    for i in range(5):
        kv(chan).Put(rpc_pb2.PutRequest(key=b"h", value=b"%d" % i))  # revisions 2..6
    s = Stream(chan)
    s.create(key=b"h", start_revision=3)
    for i in range(5, 8):
        kv(chan).Put(rpc_pb2.PutRequest(key=b"h", value=b"%d" % i))  # 7..9
    values = [ev.kv.value for r in s.events(7) for ev in r.events]
    assert values == [b"%d" % i for i in range(1, 8)]
    s.close()


def test_watch_from_a_compacted_revision_is_canceled_with_the_compact_revision(
    chan: grpc.Channel,
) -> None:
    for i in range(6):
        kv(chan).Put(rpc_pb2.PutRequest(key=b"c", value=b"%d" % i))  # 2..7
    kv(chan).Compact(rpc_pb2.CompactionRequest(revision=5, physical=True))
    s = Stream(chan)
    s.create(key=b"c", start_revision=2)
    r = s.next()
    assert r.canceled and r.compact_revision == 5
    # At the compaction boundary itself the history is still there.
    s2 = Stream(chan)
    s2.create(key=b"c", start_revision=5)
    assert [ev.kv.value for r in s2.events(3) for ev in r.events] == [b"3", b"4", b"5"]
    s.close()
    s2.close()


def test_prev_kv_and_filters(chan: grpc.Channel) -> None:
    kv(chan).Put(rpc_pb2.PutRequest(key=b"p", value=b"old"))
    s = Stream(chan)
    s.create(key=b"p", prev_kv=True)
    s.create(key=b"p", filters=[WCR.NOPUT])
    kv(chan).Put(rpc_pb2.PutRequest(key=b"p", value=b"new"))
    kv(chan).DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"p"))
    got: dict[int, list[rpc_pb2.Event]] = {0: [], 1: []}
    while len(got[0]) < 2 or len(got[1]) < 1:
        r = s.next()
        got[r.watch_id].extend(r.events)
    assert [e.prev_kv.value for e in got[0]] == [b"old", b"new"]
    assert [e.type for e in got[1]] == [kv_pb2.Event.DELETE]  # NOPUT: only the delete
    s.close()


def test_cancel_and_progress_request(chan: grpc.Channel) -> None:
    s = Stream(chan)
    s.create(key=b"x")
    s.send(WR(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=0)))
    r = s.next()
    assert r.canceled and r.watch_id == 0
    kv(chan).Put(rpc_pb2.PutRequest(key=b"x", value=b"1"))
    s.send(WR(progress_request=rpc_pb2.WatchProgressRequest()))
    r = s.next()
    assert r.watch_id == -1 and not r.events and r.header.revision == 2
    s.close()


def test_fragmented_responses_carry_every_event(tmp_path) -> None:
    from tests.e2e.ward_process import start_ward

    w = start_ward(tmp_path, "--max-request-bytes", "2048")
    try:
        with grpc.insecure_channel(w.endpoint) as ch:
            ops = [
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"f%d" % i, value=b"v" * 600))
                for i in range(3)
            ]
            kv(ch).Txn(rpc_pb2.TxnRequest(success=ops))
            s = Stream(ch)
            # With the previous versions, the three events of one revision exceed 2 KiB.
            s.create(key=b"f", range_end=b"g", fragment=True, prev_kv=True)
            kv(ch).Txn(rpc_pb2.TxnRequest(success=ops))
            resps = s.events(3)
            assert len(resps) > 1
            assert all(r.fragment for r in resps[:-1]) and not resps[-1].fragment
            s.close()
    finally:
        w.stop()


def test_a_watcher_that_reads_nothing_during_a_burst_loses_nothing(chan: grpc.Channel) -> None:
    """A stalled reader neither blocks writers nor misses events once it reads again."""
    s = Stream(chan)
    s.create(key=b"b", range_end=b"c")
    # Responses pile up in the client's queue unread while writers go on.
    stub = kv(chan)
    t0 = time.monotonic()
    for i in range(300):
        stub.Put(rpc_pb2.PutRequest(key=b"b%03d" % (i % 30), value=b"x" * 200))
    writes_took = time.monotonic() - t0
    assert writes_took < 60
    revs = [ev.kv.mod_revision for r in s.events(300, timeout=10) for ev in r.events]
    assert revs == list(range(2, 302))
    s.close()


def test_etcdctl_watch_prefix_rev_and_prev_kv(ward: WardProcess) -> None:
    for v in ("1", "2"):
        assert etcdctl(ward.endpoint, "put", "wa", v).returncode == 0
    proc = subprocess.Popen(
        [
            "/usr/bin/etcdctl",
            "--endpoints",
            ward.endpoint,
            "watch",
            "w",
            "--prefix",
            "--rev",
            "2",
            "--prev-kv",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ETCDCTL_ENV,
    )
    try:
        time.sleep(1.0)
        etcdctl(ward.endpoint, "put", "wb", "3")
        time.sleep(1.0)
    finally:
        proc.terminate()
    out = proc.communicate(timeout=5)[0]
    assert out.splitlines() == ["PUT", "wa", "1", "PUT", "wa", "1", "wa", "2", "PUT", "wb", "3"]


ETCDCTL_ENV = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}


def test_etcdctl_watch_exec_form_runs_the_command_per_event(ward: WardProcess, tmp_path) -> None:
    marker = tmp_path / "events"
    proc = subprocess.Popen(
        [
            "/usr/bin/etcdctl",
            "--endpoints",
            ward.endpoint,
            "watch",
            "e",
            "--",
            "sh",
            "-c",
            f'echo "$ETCD_WATCH_KEY=$ETCD_WATCH_VALUE" >> {marker}',
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ETCDCTL_ENV,
    )
    try:
        time.sleep(1.0)
        etcdctl(ward.endpoint, "put", "e", "fired")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert marker.read_text().strip() == '"e"="fired"'  # etcdctl quotes both


def test_etcdctl_interactive_watch(ward: WardProcess) -> None:
    proc = subprocess.Popen(
        ["/usr/bin/etcdctl", "--endpoints", ward.endpoint, "watch", "-i"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ETCDCTL_ENV,
    )
    assert proc.stdin is not None
    proc.stdin.write("watch iw\n")
    proc.stdin.flush()
    time.sleep(1.0)
    etcdctl(ward.endpoint, "put", "iw", "v")
    time.sleep(1.0)
    proc.terminate()
    out = proc.communicate(timeout=5)[0]
    assert out.splitlines() == ["PUT", "iw", "v"]


def test_progress_notify_sends_empty_responses_while_idle(tmp_path) -> None:
    from tests.e2e.ward_process import start_ward

    w = start_ward(tmp_path, "--experimental-watch-progress-notify-interval", "1s")
    try:
        with grpc.insecure_channel(w.endpoint) as ch:
            kv(ch).Put(rpc_pb2.PutRequest(key=b"q", value=b"1"))
            s = Stream(ch)
            s.create(key=b"idle", progress_notify=True)
            s.create(key=b"quiet")  # no progress_notify: never notified
            t0 = time.monotonic()
            r = s.next(timeout=5)
            assert not r.events and r.watch_id == 0 and r.header.revision == 2
            assert time.monotonic() - t0 >= 0.7  # not before the interval has passed
            later = []
            deadline = time.monotonic() + 3.0
            while (left := deadline - time.monotonic()) > 0:
                try:
                    later.append(s.next(timeout=left))
                except queue.Empty:
                    break
            # Notifications keep coming about once a second, only for the watch that asked.
            assert len(later) >= 2 and {r.watch_id for r in later} == {0}
            s.close()
    finally:
        w.stop()


def test_from_key_watch_sees_every_key_at_or_after_its_key(chan: grpc.Channel) -> None:
    s = Stream(chan)
    s.create(key=b"m", range_end=b"\0")
    for key in (b"a", b"m", b"mz", b"z", b"l\xff"):
        kv(chan).Put(rpc_pb2.PutRequest(key=key, value=b"v"))
    got = [ev.kv.key for r in s.events(3) for ev in r.events]
    assert got == [b"m", b"mz", b"z"]
    kv(chan).Put(rpc_pb2.PutRequest(key=b"zz", value=b"v"))
    assert [ev.kv.key for ev in s.next().events] == [b"zz"]  # nothing before "m" slipped in
    s.close()
