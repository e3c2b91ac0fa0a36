"""`member add|remove|update|list|promote` and `move-leader`, as etcdctl 3.4 has them."""

from __future__ import annotations

from ward.cli.command import Command, Invocation
from ward.cli.config import client_kwargs, command_timeout, must_client, new_client
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_ERROR, CliExit, error_text
from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import quote_bytes
from ward.cli.lease import fields_header, unsupported
from ward.cli.output import Printer, go_json
from ward.cli.table import render_table
from ward.errors import ClientConfigError, EtcdError
from wardpb.etcdserverpb import rpc_pb2

__all__ = ["member_command", "move_leader_command"]

LIST_LONG = """When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
"""  # noqa: E501 (etcdctl's text)

PROMOTE_LONG = """Promotes a non-voting learner member to a voting one in the cluster.
"""


def parse_member_id(text: str) -> int:
    """A member ID as etcdctl reads it (strconv.ParseUint base 16)."""
    digits = text
    ok = bool(digits) and all(c in "0123456789abcdefABCDEF" for c in digits)
    if not ok:
        reason = f'strconv.ParseUint: parsing "{text}": invalid syntax'
    elif int(digits, 16) >= 1 << 64:
        reason = f'strconv.ParseUint: parsing "{text}": value out of range'
    else:
        return int(digits, 16)
    raise CliExit(EXIT_BAD_ARGS, f"bad member ID arg ({reason}), expecting ID in Hex")


def _member_rows(resp: rpc_pb2.MemberListResponse) -> list[list[str]]:
    return [
        [
            f"{m.ID:x}",
            "started" if m.name else "unstarted",
            m.name,
            ",".join(m.peerURLs),
            ",".join(m.clientURLs),
            "true" if m.isLearner else "false",
        ]
        for m in resp.members
    ]


def _print_list(display: Printer, resp: rpc_pb2.MemberListResponse) -> None:
    name = display.format_name
    out = display.out
    if name == "simple":
        for row in _member_rows(resp):
            out.write((", ".join(row) + "\n").encode())
    elif name == "json":
        out.write(go_json(resp).encode() + b"\n")
    elif name == "protobuf":
        out.write(resp.SerializeToString())
    elif name == "table":
        header = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"]
        out.write(render_table(header, _member_rows(resp)).encode())
    else:
        fields_header(display, resp.header)
        for m in resp.members:
            lines = [f'"ID" : {m.ID}', f'"Name" : {quote_bytes(m.name.encode())}']
            lines += [f'"PeerURL" : {quote_bytes(u.encode())}' for u in m.peerURLs]
            lines += [f'"ClientURL" : {quote_bytes(u.encode())}' for u in m.clientURLs]
            lines += [f'"IsLearner" : {"true" if m.isLearner else "false"}', ""]
            out.write(("\n".join(lines) + "\n").encode())


def _print_change(display: Printer, simple: str, resp: rpc_pb2.MemberAddResponse) -> None:
    # json and protobuf print the whole answer; fields and table have no printer for it.
    name = display.format_name
    if name == "simple":
        display.out.write(simple.encode() + b"\n")
    elif name == "json":
        display.out.write(go_json(resp).encode() + b"\n")
    elif name == "protobuf":
        display.out.write(resp.SerializeToString())
    else:
        raise unsupported(display)


def _peer_urls(inv: Invocation) -> list[str]:
    urls = str(inv.flags.value("peer-urls"))
    if not urls:
        raise CliExit(EXIT_BAD_ARGS, "member peer urls not provided")
    return urls.split(",")


def _run_add(inv: Invocation) -> int:
    if not inv.args:
        raise CliExit(EXIT_BAD_ARGS, "member name not provided")
    if len(inv.args) > 1:
        message = "too many arguments"
        for arg in inv.args:
            if arg.lower().startswith("http"):
                message += f", did you mean --peer-urls={arg}"
        raise CliExit(EXIT_BAD_ARGS, message)
    name = inv.args[0]
    urls = _peer_urls(inv)
    client, display = must_client(inv)
    with client:
        try:
            resp = client.member_add(
                urls, learner=bool(inv.flags.value("learner")), timeout=command_timeout(inv)
            )
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    _print_change(
        display, f"Member {resp.member.ID:16x} added to cluster {resp.header.cluster_id:16x}", resp
    )
    if display.format_name == "simple":
        conf = [
            f"{name if m.ID == resp.member.ID else m.name}={u}"
            for m in resp.members
            for u in m.peerURLs
        ]
        inv.out()
        inv.out(f'ETCD_NAME="{name}"')
        inv.out(f'ETCD_INITIAL_CLUSTER="{",".join(conf)}"')
        inv.out(f'ETCD_INITIAL_ADVERTISE_PEER_URLS="{inv.flags.value("peer-urls")}"')
        inv.out('ETCD_INITIAL_CLUSTER_STATE="existing"')
    return 0


def _one_id(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "member ID is not provided")
    return parse_member_id(inv.args[0])


def _run_remove(inv: Invocation) -> int:
    member_id = _one_id(inv)
    client, display = must_client(inv)
    with client:
        try:
            resp = client.member_remove(member_id, timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    _print_change(
        display,
        f"Member {member_id:16x} removed from cluster {resp.header.cluster_id:16x}",
        resp,  # type: ignore[arg-type]
    )
    return 0


def _run_update(inv: Invocation) -> int:
    member_id = _one_id(inv)
    urls = _peer_urls(inv)
    client, display = must_client(inv)
    with client:
        try:
            resp = client.member_update(member_id, urls, timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    _print_change(
        display,
        f"Member {member_id:16x} updated in cluster {resp.header.cluster_id:16x}",
        resp,  # type: ignore[arg-type]
    )
    return 0


def _run_promote(inv: Invocation) -> int:
    member_id = _one_id(inv)
    client, display = must_client(inv)
    with client:
        try:
            resp = client.member_promote(member_id, timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    _print_change(
        display,
        f"Member {member_id:16x} promoted in cluster {resp.header.cluster_id:16x}",
        resp,  # type: ignore[arg-type]
    )
    return 0


def _run_list(inv: Invocation) -> int:
    client, display = must_client(inv)
    with client:
        try:
            resp = client.member_list(timeout=command_timeout(inv))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    _print_list(display, resp)
    return 0


def member_command() -> Command:
    """The `member` group."""
    group = Command(use="member <subcommand>", short="Membership related commands")
    group.add(
        Command(
            use="add <memberName> [options]",
            short="Adds a member into the cluster",
            run=_run_add,
            flags=[
                Flag("peer-urls", Kind.STRING, "", "comma separated peer URLs for the new member."),
                Flag("learner", Kind.BOOL, False, "indicates if the new member is raft learner"),
            ],
        ),
        Command(
            use="remove <memberID>", short="Removes a member from the cluster", run=_run_remove
        ),
        Command(
            use="update <memberID> [options]",
            short="Updates a member in the cluster",
            run=_run_update,
            flags=[
                Flag(
                    "peer-urls",
                    Kind.STRING,
                    "",
                    "comma separated peer URLs for the updated member.",
                )
            ],
        ),
        Command(
            use="list", short="Lists all members in the cluster", long=LIST_LONG, run=_run_list
        ),
        Command(
            use="promote <memberID>",
            short="Promotes a non-voting member in the cluster",
            long=PROMOTE_LONG,
            run=_run_promote,
        ),
    )
    return group


# -- move-leader -----------------------------------------------------------------------------


def _run_move_leader(inv: Invocation) -> int:
    if len(inv.args) != 1:
        raise CliExit(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    text = inv.args[0]
    if not text or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise CliExit(EXIT_BAD_ARGS, f'strconv.ParseUint: parsing "{text}": invalid syntax')
    target = int(text, 16)
    client, display = must_client(inv)
    client.close()
    kwargs = client_kwargs(inv)
    endpoints = kwargs["endpoints"]
    assert isinstance(endpoints, list)
    # Only the leader transfers leadership: find it among --endpoints, as etcdctl does.
    for ep in endpoints:
        one = new_client(inv, {**kwargs, "endpoints": [ep]})
        with one:
            try:
                status = one.status(timeout=command_timeout(inv))
            except (EtcdError, ClientConfigError) as exc:
                raise CliExit(EXIT_ERROR, error_text(exc)) from None
            if status.header.member_id != status.leader:
                continue
            try:
                resp = one.move_leader(target, timeout=command_timeout(inv))
            except EtcdError as exc:
                raise CliExit(EXIT_ERROR, error_text(exc)) from None
            name = display.format_name
            if name == "simple":
                inv.out(f"Leadership transferred from {status.leader:x} to {target:x}")
            elif name == "json":
                inv.out(go_json(resp))
            elif name == "protobuf":
                inv.stdout.write(resp.SerializeToString())
            else:
                raise unsupported(display)
            return 0
    raise CliExit(EXIT_BAD_ARGS, f"no leader endpoint given at [{' '.join(endpoints)}]")


def move_leader_command() -> Command:
    """The `move-leader` command."""
    return Command(
        use="move-leader <transferee-member-id>",
        short="Transfers leadership to another etcd cluster member.",
        run=_run_move_leader,
    )
