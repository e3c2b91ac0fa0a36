"""`snapshot status` and `snapshot restore`: etcdctl 3.4's commands over Ward's snapshot files.

Both work offline on a file written by `snapshot save` (an lmdb image plus its SHA-256, see
`server.storage.restore`); etcdctl reads bbolt files instead, so the two tools cannot read each
other's snapshots. Flags, messages, output shapes and exit codes are etcdctl's; the hash
`status` reports is Ward's own (the member's `Hash` at the snapshot's revision).
"""

from __future__ import annotations

import json
import time

from ward.cli.command import Command, Invocation
from ward.cli.config import printer
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_ERROR, CliExit
from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import humanize_bytes
from ward.cli.lease import unsupported
from ward.cli.table import render_table

__all__ = ["snapshot_restore_command", "snapshot_status_command"]

STATUS_LONG = """
Shows the status of a given snapshot file: its hash, revision, total keys and total size.
The hash is Ward's (the member's Hash at the snapshot's revision), not etcd's bbolt hash.

Example:
  wardctl snapshot status backup.db -w table
"""

RESTORE_LONG = """
Restores a snapshot file written by "snapshot save" into the data directory of a member of a
new cluster. Run it once per member, with the same --initial-cluster and
--initial-cluster-token, then start each member on its data directory with those flags.

Example:
  wardctl snapshot restore backup.db --name m1 --data-dir m1.ward \\
    --initial-cluster m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380 \\
    --initial-advertise-peer-urls http://10.0.0.1:2380
"""


def _run_status(inv: Invocation) -> int:
    # Imported here: the server's storage modules are needed by these two commands only.
    from server.storage.restore import RestoreError, snapshot_status

    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "snapshot status requires exactly one argument")
    display = printer(inv)
    try:
        st = snapshot_status(inv.args[0])
    except (RestoreError, OSError) as exc:
        raise CliExit(EXIT_ERROR, str(exc)) from None
    name = display.format_name
    row = [f"{st.hash:x}", str(st.revision), str(st.total_keys), humanize_bytes(st.total_size)]
    if name == "simple":
        inv.out(", ".join(row))
    elif name == "table":
        header = ["hash", "revision", "total keys", "total size"]
        inv.stdout.write(render_table(header, [row]).encode())
    elif name == "json":
        inv.out(
            json.dumps(
                {
                    "hash": st.hash,
                    "revision": st.revision,
                    "totalKey": st.total_keys,
                    "totalSize": st.total_size,
                },
                separators=(",", ":"),
            )
        )
    elif name == "fields":
        inv.out(f'"Hash" : {st.hash}')
        inv.out(f'"Revision" : {st.revision}')
        inv.out(f'"Keys" : {st.total_keys}')
        inv.out(f'"Size" : {st.total_size}')
    else:
        raise unsupported(display)
    return 0


def _log(inv: Invocation, msg: str, **fields: object) -> None:
    # etcdctl logs restore progress as zap JSON lines on stderr.
    line = {"level": "info", "ts": time.time(), "caller": "wardctl/snapshot", "msg": msg}
    line.update(fields)
    inv.err(json.dumps(line, separators=(",", ":")))


def _run_restore(inv: Invocation) -> int:
    from server.config.urls import parse_initial_cluster
    from server.storage.restore import RestoreError, plan_restore, restore

    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "snapshot restore requires exactly one argument")
    if inv.flags.value("wal-dir"):
        raise CliExit(
            EXIT_BAD_ARGS, "--wal-dir is not supported: Ward keeps its Raft log in the database"
        )
    try:
        cluster = {
            m.name: [str(u) for u in m.peer_urls]
            for m in parse_initial_cluster(str(inv.flags.value("initial-cluster")))
        }
    except ValueError as exc:
        raise CliExit(EXIT_BAD_ARGS, str(exc)) from None
    name = str(inv.flags.value("name"))
    data_dir = str(inv.flags.value("data-dir")) or f"{name}.ward"
    advertise = [
        u.strip()
        for u in str(inv.flags.value("initial-advertise-peer-urls")).split(",")
        if u.strip()
    ]
    path = inv.args[0]
    _log(inv, "restoring snapshot", path=path, **{"data-dir": data_dir})
    try:
        plan = plan_restore(
            name, cluster, str(inv.flags.value("initial-cluster-token")), advertise
        )
        meta = restore(
            path, data_dir, plan, skip_hash_check=bool(inv.flags.value("skip-hash-check"))
        )
    except (RestoreError, OSError) as exc:
        raise CliExit(EXIT_ERROR, str(exc)) from None
    for m in plan.members:
        _log(
            inv,
            "added member",
            **{
                "cluster-id": f"{plan.cluster_id:x}",
                "local-member-id": "0",
                "added-peer-id": f"{m.ID:x}",
                "added-peer-peer-urls": list(m.peerURLs),
            },
        )
    _log(inv, "restored snapshot", path=path, index=meta.index, **{"data-dir": data_dir})
    return 0


def snapshot_status_command() -> Command:
    """`snapshot status <filename>`."""
    return Command(
        use="status <filename>",
        short="Gets backend snapshot status of a given file",
        long=STATUS_LONG,
        run=_run_status,
    )


def snapshot_restore_command() -> Command:
    """`snapshot restore <filename> [options]`."""
    return Command(
        use="restore <filename> [options]",
        short="Restores an etcd member snapshot to an etcd directory",
        long=RESTORE_LONG,
        run=_run_restore,
        flags=[
            Flag("data-dir", Kind.STRING, "", "Path to the data directory"),
            Flag("wal-dir", Kind.STRING, "", "Path to the WAL directory (not supported by Ward)"),
            Flag(
                "initial-cluster",
                Kind.STRING,
                "default=http://localhost:2380",
                "Initial cluster configuration for restore bootstrap",
            ),
            Flag(
                "initial-cluster-token",
                Kind.STRING,
                "etcd-cluster",
                "Initial cluster token for the etcd cluster during restore bootstrap",
            ),
            Flag(
                "initial-advertise-peer-urls",
                Kind.STRING,
                "http://localhost:2380",
                "List of this member's peer URLs to advertise to the rest of the cluster",
            ),
            Flag("name", Kind.STRING, "default", "Human-readable name for this member"),
            Flag(
                "skip-hash-check",
                Kind.BOOL,
                False,
                "Ignore snapshot integrity hash value (required if copied from data directory)",
            ),
        ],
    )
