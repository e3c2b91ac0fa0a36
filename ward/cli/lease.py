"""`lease grant|revoke|timetolive|list|keep-alive`, printed as etcdctl 3.4 prints them.

etcdctl prints clientv3's lease responses, Go structs that embed the response header: their
JSON is flat ({"cluster_id":..,"ID":..}), and their protobuf encoding is the header's alone.
"""

from __future__ import annotations

from google.protobuf.message import Message

from ward.cli.command import Command, Invocation
from ward.cli.config import command_timeout, must_client
from ward.cli.exits import (
    EXIT_BAD_ARGS,
    EXIT_BAD_CONNECTION,
    EXIT_BAD_FEATURE,
    EXIT_ERROR,
    CliExit,
    error_text,
)
from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import GoParseError, json_string, parse_int, quote_bytes
from ward.cli.output import Printer, go_json
from ward.errors import EtcdError
from wardpb.etcdserverpb import rpc_pb2

__all__ = ["fields_header", "lease_command", "lease_id_arg"]


def fields_header(display: Printer, header: rpc_pb2.ResponseHeader) -> None:
    """The four header lines every fields-format answer starts with."""
    out = display.out
    for name, value in (
        ("ClusterID", header.cluster_id),
        ("MemberID", header.member_id),
        ("Revision", header.revision),
        ("RaftTerm", header.raft_term),
    ):
        out.write(f'"{name}" : {value}\n'.encode())


def _flat_header(header: rpc_pb2.ResponseHeader) -> str:
    inner = go_json(header)[1:-1]
    return inner + "," if inner else ""


def unsupported(display: Printer) -> CliExit:
    """etcdctl's answer for a format the command cannot print."""
    return CliExit(EXIT_BAD_FEATURE, f"{display.format_name} not supported as output format")


def lease_id_arg(text: str) -> int:
    """A lease ID as etcdctl reads it: hexadecimal."""
    try:
        return parse_int(text, 16, 64)
    except GoParseError as exc:
        raise CliExit(EXIT_BAD_ARGS, f"bad lease ID arg ({exc}), expecting ID in Hex") from None


def _header_pb(display: Printer, header: rpc_pb2.ResponseHeader) -> None:
    display.out.write(header.SerializeToString())


def _print(
    display: Printer,
    simple: str,
    fields: list[tuple[str, object]],
    js: str,
    header: rpc_pb2.ResponseHeader,
    whole: Message | None = None,
) -> None:
    name = display.format_name
    if name == "simple":
        display.out.write(simple.encode("utf-8", "surrogateescape") + b"\n")
    elif name == "json":
        display.out.write(js.encode() + b"\n")
    elif name == "fields":
        fields_header(display, header)
        for key, value in fields:
            display.out.write(f'"{key}" : {value}\n'.encode("utf-8", "surrogateescape"))
    elif name == "protobuf":
        if whole is not None:
            display.out.write(whole.SerializeToString())
        else:
            _header_pb(display, header)
    else:
        raise unsupported(display)


def _run_grant(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "lease grant command needs TTL argument")
    try:
        ttl = parse_int(inv.args[0], 10, 64)
    except GoParseError as exc:
        raise CliExit(EXIT_BAD_ARGS, f"bad TTL ({exc})") from None
    client, display = must_client(inv)
    with client:
        try:
            resp = client.lease_grant(ttl, timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, f"failed to grant lease ({error_text(exc)})") from None
    _print(
        display,
        f"lease {resp.ID:016x} granted with TTL({resp.TTL}s)",
        [("ID", resp.ID), ("TTL", resp.TTL)],
        "{" + _flat_header(resp.header) + f'"ID":{resp.ID},"TTL":{resp.TTL},'
        f'"Error":{json_string(resp.error.encode())}' + "}",
        resp.header,
    )
    return 0


def _run_revoke(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "lease revoke command needs 1 argument")
    lease_id = lease_id_arg(inv.args[0])
    client, display = must_client(inv)
    with client:
        try:
            resp = client.lease_revoke(lease_id, timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, f"failed to revoke lease ({error_text(exc)})") from None
    if display.format_name == "protobuf":
        # clientv3.LeaseRevokeResponse has no Marshal of its own in etcdctl 3.4.
        raise CliExit(
            EXIT_ERROR,
            "marshal unsupported for type clientv3.LeaseRevokeResponse "
            f"({{{_header_text(resp.header)}}})",
        )
    _print(
        display,
        f"lease {lease_id:016x} revoked",
        [],
        go_json(resp),
        resp.header,
    )
    return 0


def _header_text(header: rpc_pb2.ResponseHeader) -> str:
    parts = [
        f"{name}:{getattr(header, name)}"
        for name in ("cluster_id", "member_id", "revision", "raft_term")
        if getattr(header, name)
    ]
    return " ".join(parts) + " "


def _run_timetolive(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "lease timetolive command needs lease ID as argument")
    lease_id = lease_id_arg(inv.args[0])
    keys = bool(inv.flags.value("keys"))
    client, display = must_client(inv)
    with client:
        try:
            resp = client.lease_time_to_live(lease_id, keys=keys, timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_BAD_CONNECTION, error_text(exc)) from None
    if resp.grantedTTL == 0 and resp.TTL == -1:
        simple = f"lease {resp.ID:016x} already expired"
    else:
        simple = (
            f"lease {resp.ID:016x} granted with TTL({resp.grantedTTL}s), remaining({resp.TTL}s)"
        )
        if keys:
            names = " ".join(k.decode("utf-8", "surrogateescape") for k in resp.keys)
            simple += f", attached keys([{names}])"
    keys_json = (
        "[" + ",".join(go_json_bytes(k) for k in resp.keys) + "]" if len(resp.keys) else "null"
    )
    _print(
        display,
        simple,
        [("ID", resp.ID), ("TTL", resp.TTL), ("GrantedTTL", resp.grantedTTL)]
        + [("Key", quote_bytes(k)) for k in resp.keys],
        "{" + _flat_header(resp.header) + f'"id":{resp.ID},"ttl":{resp.TTL},'
        f'"granted-ttl":{resp.grantedTTL},"keys":{keys_json}' + "}",
        resp.header,
    )
    return 0


def go_json_bytes(data: bytes) -> str:
    """A []byte as Go's encoding/json writes it: base64 in a string."""
    import base64

    return '"' + base64.b64encode(data).decode() + '"'


def _run_list(inv: Invocation) -> int:
    client, display = must_client(inv)
    with client:
        try:
            resp = client.lease_leases(timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_BAD_CONNECTION, error_text(exc)) from None
    simple = f"found {len(resp.leases)} leases" + "".join(
        f"\n{item.ID:016x}" for item in resp.leases
    )
    leases_json = "[" + ",".join(f'{{"id":{item.ID}}}' for item in resp.leases) + "]"
    _print(
        display,
        simple,
        [("ID", item.ID) for item in resp.leases],
        "{" + _flat_header(resp.header) + f'"leases":{leases_json}' + "}",
        resp.header,
    )
    return 0


def _print_keepalive(display: Printer, resp: rpc_pb2.LeaseKeepAliveResponse) -> None:
    _print(
        display,
        f"lease {resp.ID:016x} keepalived with TTL({resp.TTL})",
        [("ID", resp.ID), ("TTL", resp.TTL)],
        "{" + _flat_header(resp.header) + f'"ID":{resp.ID},"TTL":{resp.TTL}' + "}",
        resp.header,
    )
    display.out.flush()


def _run_keepalive(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as argument")
    lease_id = lease_id_arg(inv.args[0])
    client, display = must_client(inv)
    with client:
        if inv.flags.value("once"):
            try:
                resp = client.lease_keep_alive_once(lease_id, timeout=command_timeout(inv))
            except EtcdError as exc:
                raise CliExit(EXIT_BAD_CONNECTION, error_text(exc)) from None
            _print_keepalive(display, resp)
            return 0
        with client.keep_alive(lease_id) as keeper:
            try:
                for resp in keeper:
                    _print_keepalive(display, resp)
            except EtcdError:
                pass
    if display.format_name == "simple":
        inv.out(f"lease {lease_id:016x} expired or revoked.")
    return 0


def lease_command() -> Command:
    """The `lease` group."""
    group = Command(use="lease <subcommand>", short="Lease related commands")
    group.add(
        Command(use="grant <ttl>", short="Creates leases", run=_run_grant),
        Command(use="revoke <leaseID>", short="Revokes leases", run=_run_revoke),
        Command(
            use="timetolive <leaseID> [options]",
            short="Get lease information",
            run=_run_timetolive,
            flags=[Flag("keys", Kind.BOOL, False, "Get keys attached to this lease")],
        ),
        Command(use="list", short="List all active leases", run=_run_list),
        Command(
            use="keep-alive [options] <leaseID>",
            short="Keeps leases alive (renew)",
            run=_run_keepalive,
            flags=[
                Flag(
                    "once",
                    Kind.BOOL,
                    False,
                    "Resets the keep-alive time to its original value and exits immediately",
                )
            ],
        ),
    )
    return group
