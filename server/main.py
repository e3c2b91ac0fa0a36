"""`ward`: the server process. Accepts etcd's flags and ETCD_* variables."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

import uvloop

from server import logs
from server.authsetup import AuthOptions
from server.config import Config, ConfigError, ShowHelp, ShowVersion, parse_config
from server.corruption import CorruptionError
from server.datadir import DataDirError
from server.server import Member, ServerOptions
from server.state import API_VERSION, WARD_VERSION
from server.tls import TLSSetupError, cipher_suites_value, client_listener_tls, use_cipher_suites
from server.tls.peer import peer_tls

log = logging.getLogger("ward.main")


def options_from_config(cfg: Config) -> ServerOptions:
    """What the member needs, from the validated configuration."""
    listen = []
    secure = []
    for u in cfg.listen_client_urls:
        address = f"unix:{u.socket_path}" if u.is_unix else u.hostport
        listen.append(address)
        if u.is_tls:
            secure.append(address)
    http_tls = tuple(
        u.hostport for u in cfg.listen_client_http_urls + cfg.listen_metrics_urls if u.is_tls
    )
    if http_tls and not any(u.is_tls for u in cfg.listen_client_urls):
        # The HTTP listeners take the client listeners' TLS (same certificates, CA, CRL).
        raise ConfigError(
            "https:// on --listen-client-http-urls or --listen-metrics-urls needs an https://"
            " --listen-client-urls (their TLS settings are shared)"
        )
    return ServerOptions(
        name=cfg.name,
        listen_client_http=tuple(u.hostport for u in cfg.listen_client_http_urls),
        listen_metrics=tuple(u.hostport for u in cfg.listen_metrics_urls),
        listen_http_tls=http_tls,
        data_dir=str(cfg.data_dir),
        listen_client=tuple(listen),
        listen_client_tls=tuple(secure),
        client_tls=client_listener_tls(cfg),
        advertise_client_urls=tuple(str(u) for u in cfg.advertise_client_urls),
        initial_cluster={m.name: tuple(str(u) for u in m.peer_urls) for m in cfg.initial_cluster},
        initial_cluster_token=cfg.initial_cluster_token,
        initial_cluster_state=cfg.initial_cluster_state,
        listen_peer=tuple(_peer_listen(cfg)),
        strict_reconfig=cfg.strict_reconfig_check,
        peer_tls=peer_tls(cfg),
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
        auto_compaction_period=cfg.auto_compaction_period,
        auto_compaction_revisions=cfg.auto_compaction_revisions,
        warning_apply_s=cfg.experimental_warning_apply_duration,
        initial_corrupt_check=cfg.experimental_initial_corrupt_check,
        corrupt_check_s=cfg.experimental_corrupt_check_time,
        auth=AuthOptions(
            token=cfg.auth_token,
            token_ttl=float(cfg.auth_token_ttl),
            bcrypt_cost=cfg.bcrypt_cost,
            min_password_length=cfg.auth_min_password_length,
            audit_log=cfg.audit_log,
            audit_log_max_size=cfg.audit_log_max_size,
        ),
    )


def _peer_listen(cfg: Config) -> list[str]:
    # The transport takes URLs: https:// ones get the peer TLS credentials.
    return [str(u) for u in cfg.listen_peer_urls]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg, warnings = parse_config(args, os.environ)
        options = options_from_config(cfg)
        if use_cipher_suites(cipher_suites_value(cfg)):
            if argv is not None:
                raise ConfigError("--cipher-suites takes effect in a new process only")
            # gRPC read its cipher list when it was imported: start again with the new one.
            os.execv(sys.executable, [sys.executable, "-m", "server.main", *args])
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
    try:
        # uvloop: the event loop carries every request (gRPC glue, worker links, futures);
        # measured ~20% less CPU per put than the standard loop on this workload.
        uvloop.run(_run(options))
    except (DataDirError, TLSSetupError, ValueError, CorruptionError) as e:
        log.error(str(e))
        return 1
    return 0


async def _run(options: ServerOptions) -> None:
    member = Member(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    signalled = asyncio.ensure_future(stop.wait())
    done = asyncio.ensure_future(member.done.wait())
    # Starting waits for a quorum (to publish this member): a signal meanwhile must still stop.
    starting = asyncio.ensure_future(member.start())
    try:
        await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a start failure propagates
            await asyncio.wait((done, signalled), return_when=asyncio.FIRST_COMPLETED)
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        if stop.is_set():
            log.info("received signal; shutting down")
    finally:
        done.cancel()
        signalled.cancel()
        await member.stop()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
