"""Multi-member clusters of real `ward` (or etcd) processes on loopback, for process tests."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ward_process import ETCD, ETCDCTL, ETCDCTL_TIMEOUT_S, EtcdProcess, WardProcess

# Short timeouts keep failover tests quick; the ratio is etcd's default (1:10).
HEARTBEAT_MS = 50
ELECTION_MS = 500


class Member:
    """One member: a ward or etcd process in its own directory, with its own ports."""

    def __init__(self, root: Path, name: str, kind: str, workers: int) -> None:
        self.name = name
        self.kind = kind
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        self.proc: WardProcess | EtcdProcess
        if kind == "ward":
            self.proc = WardProcess(d, workers=workers, name=name)
        else:
            self.proc = EtcdProcess(d)
        self.extra_env: dict[str, str] = {}

    @property
    def endpoint(self) -> str:
        return self.proc.endpoint

    @property
    def client_url(self) -> str:
        return self.proc.client_url

    @property
    def peer_url(self) -> str:
        return self.proc.peer_url

    @property
    def data_dir(self) -> Path:
        return self.proc.data_dir

    def flags(self, initial_cluster: str, state: str, token: str) -> list[str]:
        p = self.proc
        flags = [
            "--name",
            self.name,
            "--data-dir",
            str(p.data_dir),
            "--listen-client-urls",
            p.client_url,
            "--advertise-client-urls",
            p.client_url,
            "--listen-peer-urls",
            p.peer_url,
            "--initial-advertise-peer-urls",
            p.peer_url,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            token,
            "--heartbeat-interval",
            str(HEARTBEAT_MS),
            "--election-timeout",
            str(ELECTION_MS),
        ]
        if isinstance(p, WardProcess):
            flags += ["--workers", str(p.workers)]
        return flags

    def launch(self, flags: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        if isinstance(self.proc, WardProcess):
            self.proc.start(*flags, base_flags=False, wait=False, env=env)
        else:
            self.proc.launch([str(ETCD), *flags])

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return etcdctl([self.endpoint], *args, check=check)


def etcdctl(
    endpoints: Sequence[str], *args: str, check: bool = True, timeout: float = ETCDCTL_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(ETCDCTL), "--endpoints", ",".join(endpoints), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    if check and out.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed: {out.stderr}")
    return out


class Cluster:
    """`n` members started together as a new cluster (`kind` "ward" or "etcd")."""

    def __init__(
        self,
        root: Path,
        n: int = 3,
        kind: str = "ward",
        workers: int = 1,
        token: str = "test-cluster",
        env: Mapping[str, str] | None = None,
        extra_flags: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.kind = kind
        self.workers = workers
        self.token = token
        self.env = dict(env or {})
        self.extra_flags = list(extra_flags)
        self.members = [Member(root, f"m{i}", kind, workers) for i in range(n)]

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self) -> Cluster:
        ic = self.initial_cluster
        for m in self.members:
            m.launch([*m.flags(ic, "new", self.token), *self.extra_flags], self.env_for(m))
        for m in self.members:
            m.proc.wait_ready()
        return self

    def env_for(self, m: Member) -> dict[str, str]:
        return {**self.env, **m.extra_env}

    def add(
        self,
        name: str,
        *,
        learner: bool = False,
        via: Member | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Member:
        """`etcdctl member add`, then start the new member with the settings it printed."""
        new = Member(self.root, name, self.kind, self.workers)
        new.extra_env.update(env or {})
        via = via or self.members[0]
        args = ["member", "add", name, f"--peer-urls={new.peer_url}"]
        if learner:
            args.append("--learner")
        out = via.etcdctl(*args).stdout
        ic = next(
            line.split("=", 1)[1].strip('"')
            for line in out.splitlines()
            if line.startswith("ETCD_INITIAL_CLUSTER=")
        )
        self.members.append(new)
        new.launch([*new.flags(ic, "existing", self.token), *self.extra_flags], self.env_for(new))
        return new

    def restart(self, m: Member) -> None:
        m.proc.stop()
        m.proc._spawn()
        m.proc.wait_ready()

    def stop(self) -> None:
        for m in self.members:
            with contextlib.suppress(Exception):
                m.proc.stop()

    def status(self, m: Member) -> dict[str, object] | None:
        out = m.etcdctl("endpoint", "status", "-w", "json", check=False)
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)[0]["Status"]  # type: ignore[no-any-return]

    def leader(self, timeout: float = 10.0, among: Sequence[Member] | None = None) -> Member:
        """The member that leads, once the members asked agree on one."""
        among = list(among or [m for m in self.members if m.proc.returncode is None])
        deadline = time.monotonic() + timeout
        while True:
            leads = set()
            ids = {}
            for m in among:
                st = self.status(m)
                if st is None:
                    leads.add(0)
                    continue
                # etcdctl's JSON leaves zero fields out: no "leader" means none is known.
                leads.add(st.get("leader", 0))
                ids[st["header"]["member_id"]] = m  # type: ignore[index]
            if len(leads) == 1 and (lead := leads.pop()) and lead in ids:
                return ids[lead]
            if time.monotonic() > deadline:
                raise AssertionError(f"no agreed leader among {[m.name for m in among]}")
            time.sleep(0.1)


@contextlib.contextmanager
def running_cluster(root: Path, n: int = 3, **kw: object) -> Iterator[Cluster]:
    c = Cluster(root, n, **kw)  # type: ignore[arg-type]
    try:
        yield c.start()
    finally:
        c.stop()
