"""`ward`: the server process. Accepts etcd's flags and ETCD_* variables."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

import uvloop

from server import logs
from server.config import Config, ConfigError, ShowHelp, ShowVersion, parse_config
from server.datadir import DataDirError
from server.server import Member, ServerOptions
from server.state import API_VERSION, WARD_VERSION

log = logging.getLogger("ward.main")


def options_from_config(cfg: Config) -> ServerOptions:
    """What the member needs, from the validated configuration."""
    listen = []
    for u in cfg.listen_client_urls:
        if u.is_unix:
            listen.append(f"unix:{u.socket_path}")
        elif u.is_tls:
            raise ConfigError(
                f"{u}: TLS client listeners come with Ward's PKI support; use http:// for now"
            )
        else:
            listen.append(u.hostport)
    return ServerOptions(
        name=cfg.name,
        data_dir=str(cfg.data_dir),
        listen_client=tuple(listen),
        advertise_client_urls=tuple(str(u) for u in cfg.advertise_client_urls),
        initial_cluster={m.name: tuple(str(u) for u in m.peer_urls) for m in cfg.initial_cluster},
        initial_cluster_token=cfg.initial_cluster_token,
        heartbeat_ms=cfg.heartbeat_interval,
        election_ms=cfg.election_timeout,
        snapshot_count=cfg.snapshot_count,
        quota_bytes=cfg.quota_bytes,
        max_request_bytes=cfg.max_request_bytes,
        max_txn_ops=cfg.max_txn_ops,
        workers=cfg.effective_workers,
        fsync=not cfg.unsafe_no_fsync,
        max_concurrent_streams=cfg.max_concurrent_streams,
        log_level=cfg.log_level,
        log_outputs=tuple(cfg.log_outputs),
        watch_progress_interval=cfg.experimental_watch_progress_notify_interval,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg, warnings = parse_config(args, os.environ)
        options = options_from_config(cfg)
    except ShowHelp as h:
        print(h.text)
        return 0
    except ShowVersion:
        print(f"ward Version: {WARD_VERSION}\netcd API Version: {API_VERSION}")
        return 0
    except ConfigError as e:
        print(e.message, file=sys.stderr)
        return e.exit_code
    logs.setup(level=cfg.log_level, outputs=list(cfg.log_outputs), logger=cfg.logger)
    for w in warnings:
        log.warning(w)
    if len(cfg.initial_cluster) > 1:
        log.error(
            "multi-member clusters come with Raft replication between members; "
            "this build serves a single member"
        )
        return 1
    try:
        # uvloop: the event loop carries every request (gRPC glue, worker links, futures);
        # measured ~20% less CPU per put than the standard loop on this workload.
        uvloop.run(_run(options))
    except DataDirError as e:
        log.error(str(e))
        return 1
    return 0


async def _run(options: ServerOptions) -> None:
    member = Member(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await member.start()
    try:
        await stop.wait()
        log.info("received signal; shutting down")
    finally:
        await member.stop()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
