"""`endpoint status|health|hashkv`: per-member checks over `--endpoints` (or, with
`--cluster`, every client URL in the member list)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from ward.cli.command import Command, Invocation
from ward.cli.config import (
    apply_env,
    client_kwargs,
    command_timeout,
    must_client,
    new_client,
    printer,
)
from ward.cli.exits import EXIT_ERROR, CliExit, error_text
from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import format_duration
from ward.cli.output import EpHashKV, EpHealth, EpStatus
from ward.client import Client
from ward.errors import ClientConfigError, EtcdError, PermissionDeniedError

__all__ = ["endpoint_command"]

STATUS_LONG = """When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
"""  # noqa: E501 (etcdctl's text, one line per paragraph)


def endpoints_from_cluster(inv: Invocation) -> list[str]:
    """--endpoints, or with --cluster every member's client URLs (etcdctl's
    endpointsFromCluster; the member list needs no authentication)."""
    endpoints = inv.flags.value("endpoints")
    assert isinstance(endpoints, list)
    if not inv.flags.value("cluster"):
        return list(endpoints)
    kwargs = client_kwargs(inv, with_auth=False)
    try:
        client = Client(**kwargs)  # type: ignore[arg-type]
    except ClientConfigError as exc:
        raise CliExit(EXIT_ERROR, str(exc)) from None
    with client:
        try:
            members = client.member_list(timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(
                EXIT_ERROR,
                f"failed to fetch endpoints from etcd cluster member list: {error_text(exc)}",
            ) from None
    return [url for member in members.members for url in member.clientURLs]


def _run_status(inv: Invocation) -> int:
    client, display = must_client(inv)
    statuses: list[EpStatus] = []
    failed = False
    with client:
        for ep in endpoints_from_cluster(inv):
            try:
                statuses.append(EpStatus(ep, client.status(ep, timeout=command_timeout(inv))))
            except (EtcdError, ClientConfigError) as exc:
                failed = True
                inv.err(f"Failed to get the status of endpoint {ep} ({error_text(exc)})")
    display.endpoint_status(statuses)
    if failed:
        raise CliExit(EXIT_ERROR)
    return 0


def _check_health(inv: Invocation, kwargs: dict[str, object], ep: str) -> EpHealth:
    try:
        client = new_client(inv, {**kwargs, "endpoints": [ep]})
    except CliExit as exc:
        return EpHealth(ep, False, "", exc.message or "")
    with client:
        start = time.monotonic_ns()
        try:
            # Any answer to a linearizable read means the cluster committed a proposal;
            # a permission error still went through consensus.
            client.get("health", timeout=command_timeout(inv))
            error = ""
        except PermissionDeniedError:
            error = ""
        except EtcdError as exc:
            error = error_text(exc)
        took = format_duration(time.monotonic_ns() - start)
    return EpHealth(ep, not error, took, error)


def _run_health(inv: Invocation) -> int:
    apply_env(inv)
    display = printer(inv)
    kwargs = client_kwargs(inv)
    endpoints = endpoints_from_cluster(inv)
    healths: list[EpHealth] = []
    with ThreadPoolExecutor(max_workers=max(len(endpoints), 1)) as pool:
        futures = [pool.submit(_check_health, inv, kwargs, ep) for ep in endpoints]
        # Reported in the order the checks finish, as etcdctl collects them from a channel.
        healths.extend(f.result() for f in as_completed(futures))
    display.endpoint_health(healths)
    if any(h.error for h in healths):
        raise CliExit(EXIT_ERROR, "unhealthy cluster")
    return 0


def _run_hashkv(inv: Invocation) -> int:
    client, display = must_client(inv)
    hashes: list[EpHashKV] = []
    last_error: str | None = None
    revision = inv.flags.value("rev")
    assert isinstance(revision, int)
    with client:
        for ep in endpoints_from_cluster(inv):
            try:
                resp = client.hash_kv(ep, revision=revision, timeout=command_timeout(inv))
                hashes.append(EpHashKV(ep, resp))
            except (EtcdError, ClientConfigError) as exc:
                last_error = error_text(exc)
                inv.err(f"Failed to get the hash of endpoint {ep} ({last_error})")
    display.endpoint_hashkv(hashes)
    if last_error is not None:
        raise CliExit(EXIT_ERROR, last_error)
    return 0


def endpoint_command() -> Command:
    """The `endpoint` group."""
    group = Command(
        use="endpoint <subcommand>",
        short="Endpoint related commands",
        persistent_flags=[
            Flag("cluster", Kind.BOOL, False, "use all endpoints from the cluster member list")
        ],
    )
    group.add(
        Command(
            use="health",
            short="Checks the healthiness of endpoints specified in `--endpoints` flag",
            run=_run_health,
        ),
        Command(
            use="status",
            short="Prints out the status of endpoints specified in `--endpoints` flag",
            long=STATUS_LONG,
            run=_run_status,
        ),
        Command(
            use="hashkv",
            short="Prints the KV history hash for each endpoint in --endpoints",
            run=_run_hashkv,
            flags=[
                Flag(
                    "rev",
                    Kind.INT64,
                    0,
                    "maximum revision to hash (default: all revisions)",
                )
            ],
        ),
    )
    return group
