"""`watch [options] <key or prefix> [range_end]`: etcdctl 3.4's non-interactive watch.

Each response is printed as it arrives; the watch resumes after a lost connection from the
revision after the last event printed (`ward.watch`), so nothing is printed twice or missed.
"""

from __future__ import annotations

from ward.cli.command import Command, Invocation
from ward.cli.config import must_client
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_ERROR, CliExit, error_text
from ward.cli.flags import Flag, Kind
from ward.cli.lease import fields_header, unsupported
from ward.cli.output import Printer, go_json
from ward.errors import EtcdError
from wardpb.etcdserverpb import rpc_pb2
from wardpb.mvccpb import kv_pb2

__all__ = ["watch_command"]


def _kv_simple(display: Printer, kv: kv_pb2.KeyValue) -> None:
    key, value = kv.key, kv.value
    if display.hex_mode:
        key = "".join(f"\\x{b:02x}" for b in key).encode()
        value = "".join(f"\\x{b:02x}" for b in value).encode()
    display.out.write(key + b"\n" + value + b"\n")


def _kv_fields(display: Printer, prefix: str, kv: kv_pb2.KeyValue) -> None:
    from ward.cli.gofmt import quote_bytes

    lines = [
        f'"{prefix}Key" : {quote_bytes(kv.key)}',
        f'"{prefix}CreateRevision" : {kv.create_revision}',
        f'"{prefix}ModRevision" : {kv.mod_revision}',
        f'"{prefix}Version" : {kv.version}',
        f'"{prefix}Value" : {quote_bytes(kv.value)}',
        f'"{prefix}Lease" : {kv.lease}',
    ]
    display.out.write(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))


def print_watch(display: Printer, resp: rpc_pb2.WatchResponse) -> None:
    """One watch response in the chosen format."""
    name = display.format_name
    if name == "simple":
        for ev in resp.events:
            display.out.write(kv_pb2.Event.EventType.Name(ev.type).encode() + b"\n")
            if ev.HasField("prev_kv"):
                _kv_simple(display, ev.prev_kv)
            _kv_simple(display, ev.kv)
    elif name == "json":
        # clientv3.WatchResponse as Go's encoding/json writes it.
        events = ",".join(go_json(ev) for ev in resp.events)
        display.out.write(
            (
                f'{{"Header":{go_json(resp.header)},"Events":[{events}],'
                f'"CompactRevision":{resp.compact_revision},'
                f'"Canceled":{"true" if resp.canceled else "false"},'
                f'"Created":{"true" if resp.created else "false"}}}\n'
            ).encode()
        )
    elif name == "fields":
        fields_header(display, resp.header)
        for ev in resp.events:
            display.out.write(f'"Type" : {kv_pb2.Event.EventType.Name(ev.type)}\n'.encode())
            if ev.HasField("prev_kv"):
                _kv_fields(display, "Prev", ev.prev_kv)
            _kv_fields(display, "", ev.kv)
    elif name == "protobuf":
        display.out.write(resp.SerializeToString())
    else:
        raise unsupported(display)
    display.out.flush()


def _run_watch(inv: Invocation) -> int:
    if inv.flags.value("interactive"):
        raise CliExit(EXIT_BAD_ARGS, "interactive watch is not supported by wardctl")
    if not inv.args:
        raise CliExit(EXIT_BAD_ARGS, "watch in non-interactive mode requires an argument")
    if len(inv.args) > 2:
        raise CliExit(EXIT_BAD_ARGS, "bad number of arguments")
    prefix = bool(inv.flags.value("prefix"))
    if prefix and len(inv.args) == 2:
        raise CliExit(EXIT_BAD_ARGS, "`range_end` and `--prefix` are mutually exclusive")
    revision = inv.flags.value("rev")
    assert isinstance(revision, int)
    client, display = must_client(inv)
    with client:
        key = inv.args[0].encode("utf-8", "surrogateescape")
        end = inv.args[1].encode("utf-8", "surrogateescape") if len(inv.args) == 2 else None
        watcher = client.watch(
            key,
            end,
            prefix=prefix,
            start_revision=revision,
            prev_kv=bool(inv.flags.value("prev-kv")),
        )
        with watcher:
            try:
                for resp in watcher:
                    print_watch(display, resp)
            except EtcdError as exc:
                raise CliExit(EXIT_ERROR, error_text(exc)) from None
    raise CliExit(EXIT_ERROR, "watch is canceled by the server")


def watch_command() -> Command:
    """The `watch` command."""
    return Command(
        use="watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
        short="Watches events stream on keys or prefixes",
        run=_run_watch,
        flags=[
            Flag("interactive", Kind.BOOL, False, "Interactive mode", shorthand="i"),
            Flag("prefix", Kind.BOOL, False, "Watch on a prefix if prefix is set"),
            Flag("rev", Kind.INT64, 0, "Revision to start watching"),
            Flag(
                "prev-kv",
                Kind.BOOL,
                False,
                "get the previous key-value pair before the event happens",
            ),
        ],
    )
