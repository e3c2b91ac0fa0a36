"""etcdctl's membership commands against 3-member clusters of etcd 3.4 and of Ward: the same
script, the same output once IDs, ports and timings are normalized."""

from __future__ import annotations

import json
import re
import time

import pytest
from cluster import Cluster
from ward_process import ETCD, ETCDCTL, free_port

from server.api.cluster import HEALTH_INTERVAL_S

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ETCD.exists() and ETCDCTL.exists()), reason="needs etcd 3.4"),
]


class Normalizer:
    """Replaces what must differ between two clusters by stable placeholders."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _name(self, kind: str, raw: str) -> str:
        key = f"{kind}:{raw}"
        if key not in self.names:
            self.names[key] = f"<{kind}{sum(k.startswith(kind) for k in self.names)}>"
        return self.names[key]

    def __call__(self, text: str) -> str:
        text = re.sub(r"took = [0-9.]+[µmn]?s", "took = <t>", text)
        text = re.sub(r'"ts":"[^"]*"', '"ts":"<ts>"', text)
        text = re.sub(r"client-[0-9a-f-]{36}", "client-<uuid>", text)
        # The order of members follows their IDs, which differ between any two clusters.
        text = re.sub(
            r'ETCD_INITIAL_CLUSTER="([^"]*)"',
            lambda m: 'ETCD_INITIAL_CLUSTER="' + ",".join(sorted(m[1].split(","))) + '"',
            text,
        )
        port = re.compile(r"127\.0\.0\.1:(\d+)")
        text = port.sub(lambda m: "127.0.0.1:" + self._name("port", m[1]), text)
        text = re.sub(r"\b[0-9a-f]{13,16}\b", lambda m: self._name("id", m[0]), text)
        # etcdctl pads IDs to 16 columns (%16x); a shorter random ID leaves spaces before it.
        return re.sub(r" +<id", " <id", text)

    def seed(self, c: Cluster) -> None:
        """Name the members' IDs and ports in member-name order: the same placeholders on
        both clusters, whatever order their random IDs put them in."""
        from cluster import etcdctl

        raw = etcdctl([c.members[0].endpoint], "member", "list", "-w", "json").stdout
        ids = {m["name"]: m["ID"] for m in json.loads(raw)["members"]}
        for m in c.members:
            self._name("id", f"{ids[m.name]:x}")
            self._name("port", str(m.proc.peer_port))
            self._name("port", str(m.proc.client_port))


def run_script(c: Cluster, spare: list[int]) -> list[tuple[str, int, str, str]]:
    """The same commands on either kind of cluster; `spare` are free ports for new members."""
    a = c.members[0]
    eps = c.endpoints
    steps: list[tuple[str, int, str, str]] = []

    def ctl(label: str, *args: str, endpoints: list[str] | None = None) -> str:
        from cluster import etcdctl

        out = etcdctl(endpoints or [a.endpoint], *args, check=False)
        steps.append((label, out.returncode, out.stdout, out.stderr))
        return out.stdout

    def member_id(name_or_url: str) -> str:
        out = json.loads(ctl("list-json", "member", "list", "-w", "json"))
        for m in out["members"]:
            if m.get("name") == name_or_url or name_or_url in m.get("peerURLs", []):
                return f"{m['ID']:x}"
        raise AssertionError(f"no member {name_or_url}")

    ctl("list", "member", "list")
    # Both refuse membership changes until peers have been connected for 5 s (strict checks).
    time.sleep(HEALTH_INTERVAL_S + 1)
    ctl("list-table", "member", "list", "-w", "table")
    new_url = f"http://127.0.0.1:{spare[0]}"
    ctl("add", "member", "add", "m3", f"--peer-urls={new_url}")
    ctl("list-unstarted", "member", "list")
    new_id = member_id(new_url)
    ctl("update", "member", "update", new_id, f"--peer-urls=http://127.0.0.1:{spare[1]}")
    ctl("list-updated", "member", "list")
    ctl("remove", "member", "remove", new_id)
    ctl("remove-again", "member", "remove", new_id)
    ctl("remove-unknown", "member", "remove", "1234")
    ctl("add-existing-url", "member", "add", "dup", f"--peer-urls={a.peer_url}")
    ctl("add-bad-url", "member", "add", "bad", "--peer-urls=ftp://127.0.0.1:1")
    learner_url = f"http://127.0.0.1:{spare[2]}"
    ctl("add-learner", "member", "add", "l1", "--learner", f"--peer-urls={learner_url}")
    other_url = f"http://127.0.0.1:{spare[3]}"
    ctl("add-second-learner", "member", "add", "l2", "--learner", f"--peer-urls={other_url}")
    learner = member_id(learner_url)
    ctl("promote-not-ready", "member", "promote", learner)
    ctl("promote-voter", "member", "promote", member_id(a.peer_url))
    ctl("promote-unknown", "member", "promote", "1234")
    ctl("remove-learner", "member", "remove", learner)
    ctl("update-unknown", "member", "update", "1234", f"--peer-urls={new_url}")
    ctl("list-final", "member", "list")
    # Leadership: etcdctl sends MoveLeader to the leader among the endpoints it is given.
    status = json.loads(ctl("status-json", "endpoint", "status", "--cluster", "-w", "json"))
    leader = status[0]["Status"]["leader"]
    follower = next(s for s in status if s["Status"]["header"]["member_id"] != leader)
    follower_id = f"{follower['Status']['header']['member_id']:x}"
    ctl("move-leader", "move-leader", follower_id, endpoints=eps)
    ctl("move-leader-unknown", "move-leader", "1234", endpoints=eps)
    ctl("health-cluster", "endpoint", "health", "--cluster")
    return steps


def comparable(
    steps: list[tuple[str, int, str, str]], norm: Normalizer
) -> list[tuple[str, int, str, str]]:
    out = []
    for label, rc, stdout, stderr in steps:
        if label in ("list-json", "status-json"):
            continue  # values such as versions and sizes differ; used only to find IDs
        if label.startswith("list"):
            stdout = "\n".join(sorted(norm(stdout).splitlines(), key=_without_ids))
        if label.startswith("move-leader"):
            # Which member leads (and is asked) depends on the election, not on the server.
            stdout = re.sub(r"\b[0-9a-f]{13,16}\b", "<id>", stdout)
            stderr = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", stderr)
        if label == "health-cluster":
            stderr = "\n".join(sorted(norm(stderr).splitlines()))
        out.append((label, rc, norm(stdout), norm(stderr)))
    return out


def _without_ids(line: str) -> str:
    return re.sub(r"<id\d+>", "", line)


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, int, str, str]]]:
    results = {}
    for kind in ("etcd", "ward"):
        root = tmp_path_factory.mktemp(kind)
        c = Cluster(root, kind=kind).start()
        try:
            c.leader()
            norm = Normalizer()
            norm.seed(c)
            results[kind] = comparable(run_script(c, [free_port() for _ in range(4)]), norm)
        finally:
            c.stop()
    return results


LABELS = [
    "list",
    "list-table",
    "add",
    "list-unstarted",
    "update",
    "list-updated",
    "remove",
    "remove-again",
    "remove-unknown",
    "add-existing-url",
    "add-bad-url",
    "add-learner",
    "add-second-learner",
    "promote-not-ready",
    "promote-voter",
    "promote-unknown",
    "remove-learner",
    "update-unknown",
    "list-final",
    "move-leader",
    "move-leader-unknown",
    "health-cluster",
]


@pytest.mark.parametrize("label", LABELS)
def test_member_command_matches_etcd(scripts: dict[str, list], label: str) -> None:
    etcd = {s[0]: s[1:] for s in scripts["etcd"]}
    ward = {s[0]: s[1:] for s in scripts["ward"]}
    assert ward[label] == etcd[label]
