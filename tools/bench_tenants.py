"""Put throughput of a tenant user (namespacing and quotas on) against a plain user, same run.

Starts one `ward` (auth on, `--bcrypt-cost 4`), applies a policy with a tenant `bench` (key and
byte quotas set, far from reached) and a plain user with read-write on every key, then runs
`ward-bench run --workload put` alternately as each user against the same server, and prints the
medians and their ratio (the target is tenant >= 0.9 x plain)::

    python tools/bench_tenants.py --runs 5 --duration 5 --clients 32 --conns 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from ward_process import ETCDCTL, start_ward  # noqa: E402 (the test helpers' own path)

POLICY = """
tenants:
  - {name: bench, prefix: /tenants/bench/, quota: {keys: 10000000, bytes: 10000000000}}
roles:
  - {name: plain-rw, permissions: [{type: readwrite, key: "\\0", from_key: true}]}
  - {name: bench-rw, tenant: bench, permissions: [{type: readwrite, key: "", prefix: true}]}
users:
  - {name: plain, roles: [plain-rw]}
  - {name: tuser, tenant: bench, roles: [bench-rw]}
"""
USERS = ("plain", "tuser")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    d = Path(tempfile.mkdtemp(prefix="ward-bench-tenants-"))
    w = start_ward(d, "--bcrypt-cost", "4", workers=args.workers)
    env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}

    def ctl(*a: str, stdin: str | None = None) -> None:
        cmd = [str(ETCDCTL), "--endpoints", w.endpoint, *a]
        subprocess.run(cmd, check=True, capture_output=True, text=True, input=stdin, env=env)

    root = "--user=root:root-pass-1"
    try:
        ctl("user", "add", "root:root-pass-1")
        ctl("role", "add", "root")
        ctl("user", "grant-role", "root", "root")
        ctl("auth", "enable")
        (d / "policy.yaml").write_text(POLICY)
        wardctl = [sys.executable, "-m", "ward.cli", "--endpoints", w.endpoint, root]
        subprocess.run([*wardctl, "policy", "apply", str(d / "policy.yaml")], check=True, cwd=REPO)
        for user in USERS:
            ctl(root, "user", "passwd", user, "--interactive=false", stdin=f"{user}-pass-1")
        throughput: dict[str, list[float]] = {u: [] for u in USERS}
        cpu: dict[str, list[float]] = {u: [] for u in USERS}
        bench_env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'proto'}"}
        for i in range(args.runs):
            # Alternating, so drift in the machine's load hits both users alike.
            for user in USERS:
                out = d / f"{user}-{i}.json"
                cmd = [sys.executable, "-m", "bench", "run", "--workload", "put"]
                cmd += ["--endpoints", f"http://{w.endpoint}", "--pid", str(w.pid)]
                cmd += ["--user", f"{user}:{user}-pass-1", "--clients", str(args.clients)]
                cmd += ["--conns", str(args.conns), "--duration", str(args.duration)]
                cmd += ["--json", str(out)]
                subprocess.run(cmd, check=True, capture_output=True, cwd=REPO, env=bench_env)
                doc = json.loads(out.read_text())
                if doc["errors"]:
                    raise SystemExit(f"{user}: {doc['errors']} errors: {doc['first_error']}")
                throughput[user].append(doc["throughput"])
                cpu[user].append(doc["metrics"]["server_cpu_us_per_op"])
        for user in USERS:
            print(
                f"{user:6} put/s {[round(x) for x in throughput[user]]}"
                f"  server CPU us/op {[round(x) for x in cpu[user]]}"
            )
        tp = statistics.median(throughput["tuser"]) / statistics.median(throughput["plain"])
        cp = statistics.median(cpu["tuser"]) / statistics.median(cpu["plain"])
        print(f"tenant/plain: throughput {tp:.3f}x, server CPU per put {cp:.3f}x")
        return 0
    finally:
        w.stop()


if __name__ == "__main__":
    raise SystemExit(main())
