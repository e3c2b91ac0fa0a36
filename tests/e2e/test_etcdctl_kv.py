"""The real etcdctl 3.4 against Ward: every command prints what it prints against etcd 3.4.

Each test runs against both servers (`server` is parametrized), so every expected output below
is checked against the real etcd in the same run; where a member's IDs, term or sizes differ
by nature, the test asserts their shape instead. Tests share one server per module and keep to
keys of their own.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.ward_process import ETCD, EtcdProcess, WardProcess, etcdctl, start_etcd, start_ward

COMPACTED = "Error: etcdserver: mvcc: required revision has been compacted"
FUTURE_REV = "Error: etcdserver: mvcc: required revision is a future revision"


@dataclass(frozen=True, slots=True)
class Server:
    """A server under test, driven through the real etcdctl."""

    kind: str  # "ward" or "etcd"
    process: WardProcess | EtcdProcess

    @property
    def endpoint(self) -> str:
        return self.process.endpoint

    def ctl(self, *args: str, input: str | None = None) -> str:
        """etcdctl's stdout for a command that must succeed with nothing on stderr."""
        res = etcdctl(self.endpoint, *args, input=input)
        assert (res.returncode, res.stderr) == (0, ""), res
        return res.stdout

    def ctl_error(self, *args: str, input: str | None = None) -> tuple[int, str]:
        """(exit code, last stderr line) of a command that must fail, with nothing on stdout."""
        res = etcdctl(self.endpoint, *args, input=input)
        assert res.returncode != 0, res
        assert res.stdout == "", res
        return res.returncode, res.stderr.strip().splitlines()[-1]

    def json(self, *args: str, input: str | None = None) -> object:
        """The decoded `-w json` output of a command that must succeed."""
        return json.loads(self.ctl(*args, "-w", "json", input=input))


@pytest.fixture(scope="module", params=["etcd", "ward"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One etcd 3.4 or one Ward (two processes) per module."""
    tmp: Path = tmp_path_factory.mktemp(request.param)
    if request.param == "etcd":
        if not ETCD.exists():
            pytest.skip("etcd is not installed")
        process: WardProcess | EtcdProcess = start_etcd(tmp)
    else:
        process = start_ward(tmp)
    try:
        yield Server(request.param, process)
    finally:
        process.stop()


def _b64(text: str) -> str:
    """How etcdctl's JSON output spells bytes."""
    return base64.b64encode(text.encode()).decode()


def _put_rev(server: Server, key: str, value: str) -> int:
    """Put and return the revision it created."""
    out = server.json("put", key, value)
    assert isinstance(out, dict)
    return int(out["header"]["revision"])


def _lines(*items: str) -> str:
    """etcdctl's simple output: one item per line."""
    return "".join(f"{i}\n" for i in items)


# ---- put, get ----


def test_put_prints_ok(server: Server) -> None:
    assert server.ctl("put", "put/k", "v") == "OK\n"
    assert server.ctl("get", "put/k") == _lines("put/k", "v")


def test_put_prev_kv_prints_the_replaced_pair(server: Server) -> None:
    server.ctl("put", "pkv/k", "old")
    assert server.ctl("put", "pkv/k", "new", "--prev-kv") == _lines("OK", "pkv/k", "old")


def test_get_missing_key_prints_nothing(server: Server) -> None:
    assert server.ctl("get", "missing/k") == ""


def test_get_prefix(server: Server) -> None:
    for k, v in (("pre/b", "2"), ("pre/a", "1"), ("pre/c", "3"), ("prf", "x")):
        server.ctl("put", k, v)
    assert server.ctl("get", "pre/", "--prefix") == _lines("pre/a", "1", "pre/b", "2", "pre/c", "3")


def test_get_from_key(server: Server) -> None:
    # "~" sorts after every other test's keys, so from-key sees only these.
    for k in ("~fk/a", "~fk/b", "~fk/c"):
        server.ctl("put", k, k[-1])
    assert server.ctl("get", "~fk/b", "--from-key") == _lines("~fk/b", "b", "~fk/c", "c")


def test_get_range_end_argument(server: Server) -> None:
    for k in ("rng/a", "rng/b", "rng/c"):
        server.ctl("put", k, k[-1])
    assert server.ctl("get", "rng/a", "rng/c") == _lines("rng/a", "a", "rng/b", "b")


def test_get_limit(server: Server) -> None:
    for k in ("lim/a", "lim/b", "lim/c"):
        server.ctl("put", k, k[-1])
    assert server.ctl("get", "lim/", "--prefix", "--limit", "2") == _lines(
        "lim/a", "a", "lim/b", "b"
    )
    out = server.json("get", "lim/", "--prefix", "--limit", "2")
    assert isinstance(out, dict)
    assert (out["more"], out["count"], len(out["kvs"])) == (True, 3, 2)


def test_get_rev_reads_the_past(server: Server) -> None:
    first = _put_rev(server, "rev/k", "v1")
    server.ctl("put", "rev/k", "v2")
    assert server.ctl("get", "rev/k", "--rev", str(first)) == _lines("rev/k", "v1")
    assert server.ctl("get", "rev/k", "--rev", str(first - 1)) == ""
    assert server.ctl("get", "rev/k") == _lines("rev/k", "v2")


def test_get_future_rev_fails(server: Server) -> None:
    current = _put_rev(server, "fut/k", "v")
    assert server.ctl_error("get", "fut/k", "--rev", str(current + 100)) == (1, FUTURE_REV)


def test_get_keys_only(server: Server) -> None:
    for k in ("ko/a", "ko/b"):
        server.ctl("put", k, "value")
    # etcdctl prints an empty line where the value would be.
    assert server.ctl("get", "ko/", "--prefix", "--keys-only") == _lines("ko/a", "", "ko/b", "")


def test_get_print_value_only(server: Server) -> None:
    server.ctl("put", "pvo/k", "just-this")
    assert server.ctl("get", "pvo/k", "--print-value-only") == "just-this\n"


@pytest.fixture(scope="module")
def sort_keys(server: Server) -> None:
    """s/a, s/b, s/c whose versions, create and mod revisions and values all order differently.

    s/a: version 3, created 2nd, modified 5th, value "m"
    s/b: version 1, created 4th, modified 4th, value "z"
    s/c: version 2, created 1st, modified 6th, value "a"
    """
    for k, v in (
        ("s/c", "q"),
        ("s/a", "x"),
        ("s/a", "y"),
        ("s/b", "z"),
        ("s/a", "m"),
        ("s/c", "a"),
    ):
        server.ctl("put", k, v)


ASCENDING = {
    "KEY": ["s/a", "s/b", "s/c"],
    "VERSION": ["s/b", "s/c", "s/a"],
    "CREATE": ["s/c", "s/a", "s/b"],
    "MODIFY": ["s/b", "s/a", "s/c"],
    "VALUE": ["s/c", "s/a", "s/b"],
}


@pytest.mark.parametrize("order", ["ASCEND", "DESCEND"])
@pytest.mark.parametrize("target", list(ASCENDING))
def test_get_sort_by(server: Server, sort_keys: None, target: str, order: str) -> None:
    out = server.ctl("get", "s/", "--prefix", "--keys-only", "--sort-by", target, "--order", order)
    want = ASCENDING[target] if order == "ASCEND" else ASCENDING[target][::-1]
    assert out.split() == want


def test_get_sort_by_without_order_ascends(server: Server, sort_keys: None) -> None:
    # etcd sorts ascending when a target other than KEY comes without an order.
    out = server.ctl("get", "s/", "--prefix", "--keys-only", "--sort-by", "VERSION")
    assert out.split() == ASCENDING["VERSION"]


def test_get_json(server: Server) -> None:
    rev1 = _put_rev(server, "js/a", "1")
    rev2 = _put_rev(server, "js/a", "22")
    rev3 = _put_rev(server, "js/b", "3")
    out = server.json("get", "js/", "--prefix")
    assert isinstance(out, dict)
    assert set(out) == {"header", "kvs", "count"}  # "more" is left out when false
    header = out["header"]
    assert set(header) == {"cluster_id", "member_id", "revision", "raft_term"}
    assert all(isinstance(v, int) and v > 0 for v in header.values())
    assert header["revision"] == rev3
    assert out["count"] == 2
    assert out["kvs"] == [
        {
            "key": _b64("js/a"),
            "create_revision": rev1,
            "mod_revision": rev2,
            "version": 2,
            "value": _b64("22"),
        },
        {
            "key": _b64("js/b"),
            "create_revision": rev3,
            "mod_revision": rev3,
            "version": 1,
            "value": _b64("3"),
        },
    ]


def test_json_header_names_the_member_endpoint_status_reports(server: Server) -> None:
    out = server.json("get", "js/none")
    status = server.json("endpoint", "status")
    assert isinstance(out, dict) and isinstance(status, list)
    assert out["header"]["member_id"] == status[0]["Status"]["header"]["member_id"]
    assert out["header"]["cluster_id"] == status[0]["Status"]["header"]["cluster_id"]


def test_put_empty_key_fails(server: Server) -> None:
    assert server.ctl_error("put", "", "v") == (1, "Error: etcdserver: key is not provided")


def test_put_with_missing_lease_fails(server: Server) -> None:
    assert server.ctl_error("put", "lease/k", "v", "--lease", "123") == (
        1,
        "Error: etcdserver: requested lease not found",
    )
    assert server.ctl("get", "lease/k") == ""


# ---- del ----


def test_del_prints_the_count(server: Server) -> None:
    server.ctl("put", "del1/k", "v")
    assert server.ctl("del", "del1/k") == "1\n"
    assert server.ctl("del", "del1/k") == "0\n"


def test_del_prev_kv(server: Server) -> None:
    server.ctl("put", "del2/k", "v")
    assert server.ctl("del", "del2/k", "--prev-kv") == _lines("1", "del2/k", "v")


def test_del_prefix(server: Server) -> None:
    for k in ("del3/a", "del3/b", "del3/c", "del3x"):
        server.ctl("put", k, "v")
    assert server.ctl("del", "del3/", "--prefix") == "3\n"
    assert server.ctl("get", "del3", "--prefix", "--keys-only").split() == ["del3x"]


def test_del_prefix_prev_kv_json(server: Server) -> None:
    rev = _put_rev(server, "del4/a", "v")
    out = server.json("del", "del4/", "--prefix", "--prev-kv")
    assert isinstance(out, dict)
    assert out["deleted"] == 1
    assert out["header"]["revision"] == rev + 1
    assert out["prev_kvs"] == [
        {
            "key": _b64("del4/a"),
            "create_revision": rev,
            "mod_revision": rev,
            "version": 1,
            "value": _b64("v"),
        }
    ]


# ---- txn ----

TXN_PROMPTS = _lines(
    "compares:", "success requests (get, put, del):", "failure requests (get, put, del):"
)


def test_txn_interactive_success(server: Server) -> None:
    server.ctl("put", "txn1/k", "v1")
    script = 'value("txn1/k") = "v1"\n\nput txn1/r yes\nget txn1/k\n\nput txn1/r no\n\n'
    out = server.ctl("txn", "-i", input=script)
    assert out == TXN_PROMPTS + _lines("SUCCESS", "", "OK", "", "txn1/k", "v1")
    assert server.ctl("get", "txn1/r", "--print-value-only") == "yes\n"


def test_txn_interactive_failure(server: Server) -> None:
    server.ctl("put", "txn2/k", "v1")
    script = 'value("txn2/k") = "other"\n\nput txn2/r yes\n\nput txn2/r no\ndel txn2/k\n\n'
    out = server.ctl("txn", "-i", input=script)
    assert out == TXN_PROMPTS + _lines("FAILURE", "", "OK", "", "1")
    assert server.ctl("get", "txn2/", "--prefix") == _lines("txn2/r", "no")


def test_txn_compares_versions_and_revisions(server: Server) -> None:
    rev = _put_rev(server, "txn3/k", "v")
    script = (
        f'mod("txn3/k") = "{rev}"\nversion("txn3/k") = "1"\ncreate("txn3/k") > "0"\n\n'
        "put txn3/r ok\n\n\n"
    )
    assert server.ctl("txn", input=script) == _lines("SUCCESS", "", "OK")
    # Comparing a missing key's version with 0 holds.
    script = 'version("txn3/missing") = "0"\n\nget txn3/r\n\n\n'
    assert server.ctl("txn", input=script) == _lines("SUCCESS", "", "txn3/r", "ok")


def test_txn_json(server: Server) -> None:
    rev = _put_rev(server, "txn4/k", "v")
    script = 'version("txn4/k") = "1"\n\nput txn4/r a\nget txn4/k\ndel txn4/none\n\n\n'
    out = server.json("txn", input=script)
    assert isinstance(out, dict)
    assert out["succeeded"] is True
    assert out["header"]["revision"] == rev + 1
    assert out["responses"] == [
        {"Response": {"ResponsePut": {"header": {"revision": rev + 1}}}},
        {
            "Response": {
                "ResponseRange": {
                    "header": {"revision": rev + 1},
                    "kvs": [
                        {
                            "key": _b64("txn4/k"),
                            "create_revision": rev,
                            "mod_revision": rev,
                            "version": 1,
                            "value": _b64("v"),
                        }
                    ],
                    "count": 1,
                }
            }
        },
        {"Response": {"ResponseDeleteRange": {"header": {"revision": rev + 1}}}},
    ]


def test_txn_json_failure_leaves_out_succeeded(server: Server) -> None:
    rev = _put_rev(server, "txn5/k", "v")
    out = server.json("txn", input='value("txn5/k") = "x"\n\n\nget txn5/k --keys-only\n\n')
    assert isinstance(out, dict)
    assert "succeeded" not in out
    assert out["header"]["revision"] == rev
    rng = out["responses"][0]["Response"]["ResponseRange"]
    assert rng["kvs"][0]["key"] == _b64("txn5/k") and "value" not in rng["kvs"][0]


def test_txn_duplicate_key_fails(server: Server) -> None:
    script = "\nput txn6/k a\nput txn6/k b\n\n\n"
    assert server.ctl_error("txn", input=script) == (
        1,
        "Error: etcdserver: duplicate key given in txn request",
    )


def test_txn_malformed_compare_fails_in_etcdctl(server: Server) -> None:
    # Exit code 3 is etcdctl's ExitInvalidInput; the request never reaches the server.
    assert server.ctl_error("txn", input="bogus\n\n\n\n") == (
        3,
        "Error: malformed comparison: bogus",
    )


# ---- compaction, maintenance ----


def test_compaction_then_get_below_it_fails(server: Server) -> None:
    old = _put_rev(server, "cmp/k", "v1")
    new = _put_rev(server, "cmp/k", "v2")
    assert server.ctl("compaction", str(new)) == f"compacted revision {new}\n"
    assert server.ctl_error("get", "cmp/k", "--rev", str(old)) == (1, COMPACTED)
    # The compacted revision itself stays readable.
    assert server.ctl("get", "cmp/k", "--rev", str(new)) == _lines("cmp/k", "v2")
    assert server.ctl_error("compaction", str(new)) == (1, COMPACTED)


def test_compaction_of_a_future_revision_fails(server: Server) -> None:
    current = _put_rev(server, "cmp2/k", "v")
    assert server.ctl_error("compaction", str(current + 1000)) == (1, FUTURE_REV)


def test_defrag(server: Server) -> None:
    server.ctl("put", "defrag/k", "v")
    out = server.ctl("defrag")
    assert out == f"Finished defragmenting etcd member[{server.endpoint}]\n"
    assert server.ctl("get", "defrag/k") == _lines("defrag/k", "v")


STATUS_COLUMNS = (
    "ENDPOINT",
    "ID",
    "VERSION",
    "DB SIZE",
    "IS LEADER",
    "IS LEARNER",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "ERRORS",
)


def _table(out: str) -> list[list[str]]:
    """The cells of etcdctl's ASCII table, header row first."""
    rows = [line for line in out.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows]


def test_endpoint_status_table(server: Server) -> None:
    header, row = _table(server.ctl("endpoint", "status", "-w", "table"))
    assert tuple(header) == STATUS_COLUMNS
    cells = dict(zip(header, row, strict=True))
    assert cells["ENDPOINT"] == server.endpoint
    assert re.fullmatch(r"[0-9a-f]{1,16}", cells["ID"])
    assert re.fullmatch(r"3\.\d+\.\d+", cells["VERSION"])
    assert re.fullmatch(r"\d+(\.\d+)? [kMG]?B", cells["DB SIZE"])
    assert (cells["IS LEADER"], cells["IS LEARNER"], cells["ERRORS"]) == ("true", "false", "")
    assert int(cells["RAFT TERM"]) >= 1
    assert int(cells["RAFT APPLIED INDEX"]) <= int(cells["RAFT INDEX"])


def test_endpoint_status_simple_format(server: Server) -> None:
    fields = server.ctl("endpoint", "status").rstrip("\n").split(", ")
    # endpoint, ID, version, db size, is leader, is learner, term, index, applied, errors
    assert fields[0] == server.endpoint and fields[4:6] == ["true", "false"]
    assert len(fields) == 10 and fields[9] == ""


def test_endpoint_status_json_and_raft_index_increases(server: Server) -> None:
    first = server.json("endpoint", "status")
    server.ctl("put", "status/k", "v")
    second = server.json("endpoint", "status")
    assert isinstance(first, list) and isinstance(second, list)
    assert [e["Endpoint"] for e in first] == [server.endpoint]
    s1, s2 = first[0]["Status"], second[0]["Status"]
    for key in ("header", "version", "dbSize", "leader", "raftIndex", "raftTerm"):
        assert key in s1, key
    assert s1["leader"] == s1["header"]["member_id"]  # a single member leads
    assert re.fullmatch(r"3\.\d+\.\d+", s1["version"])
    assert s1["dbSize"] > 0
    assert s2["raftIndex"] > s1["raftIndex"]
    assert s2["header"]["revision"] == s1["header"]["revision"] + 1
    assert "errors" not in s2  # no alarm raised


def test_endpoint_health(server: Server) -> None:
    res = etcdctl(server.endpoint, "endpoint", "health")
    # etcdctl prints the health line on stderr, even for a healthy endpoint.
    assert (res.returncode, res.stdout) == (0, ""), res
    healthy = "is healthy: successfully committed proposal: took = "
    assert re.fullmatch(rf"{re.escape(server.endpoint)} {healthy}\S+\n", res.stderr), res
    health = server.json("endpoint", "health")
    assert isinstance(health, list)
    assert health[0]["endpoint"] == server.endpoint and health[0]["health"] is True


def test_endpoint_hashkv(server: Server) -> None:
    server.ctl("put", "hash/k", "v")
    out = server.ctl("endpoint", "hashkv")
    assert re.fullmatch(rf"{re.escape(server.endpoint)}, \d+\n", out), out
    first = server.json("endpoint", "hashkv")
    again = server.json("endpoint", "hashkv")
    assert isinstance(first, list) and isinstance(again, list)
    assert first[0]["Endpoint"] == server.endpoint
    assert first[0]["HashKV"]["hash"] == again[0]["HashKV"]["hash"]  # nothing changed between
    server.ctl("put", "hash/k", "changed")
    after = server.json("endpoint", "hashkv")
    assert isinstance(after, list)
    assert after[0]["HashKV"]["hash"] != first[0]["HashKV"]["hash"]


def test_snapshot_save(server: Server, tmp_path: Path) -> None:
    server.ctl("put", "snap/k", "v")
    target = tmp_path / "snap.db"
    res = etcdctl(server.endpoint, "snapshot", "save", str(target))
    assert res.returncode == 0, res
    assert res.stdout == f"Snapshot saved at {target}\n"
    assert target.stat().st_size > 0
    assert not (tmp_path / "snap.db.part").exists()


def test_alarm_list_is_empty(server: Server) -> None:
    assert server.ctl("alarm", "list") == ""


def test_alarm_disarm_with_no_alarm(server: Server) -> None:
    assert server.ctl("alarm", "disarm") == ""
    assert server.ctl("alarm", "list") == ""
