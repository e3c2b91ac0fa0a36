"""`put`, `get` and `del`: etcdctl's key-value commands.

The request builders (`put_op`, `get_op`, `del_op`) are shared with `txn`, which parses each of
its operation lines as one of these commands, as etcdctl does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from ward.cli.command import Command, Invocation
from ward.cli.config import command_timeout, must_client
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, CliExit, error_text
from ward.cli.flags import Flag, FlagSet, Kind
from ward.cli.gofmt import GoParseError, parse_int, quote
from ward.cli.output import FieldsPrinter, Printer, SimplePrinter
from ward.errors import EtcdError
from ward.requests import SortOrder, SortTarget, delete_request, put_request, range_request
from wardpb.etcdserverpb import rpc_pb2

__all__ = [
    "DEL_USE",
    "GET_USE",
    "PUT_USE",
    "del_command",
    "del_op",
    "get_command",
    "get_op",
    "put_command",
    "put_op",
]

PUT_LONG = """
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
"""


PUT_USE = "put [options] <key> <value> (<value> can also be given from stdin)"
GET_USE = "get [options] <key> [range_end]"
DEL_USE = "del [options] <key> [range_end]"


def arg_bytes(arg: str) -> bytes:
    """A command-line argument as the bytes the user typed (argv is decoded losslessly)."""
    return os.fsencode(arg)


# -- put -------------------------------------------------------------------------------------


def put_flags() -> list[Flag]:
    """put's own flags."""
    return [
        Flag("ignore-lease", Kind.BOOL, False, "updates the key using its current lease"),
        Flag("ignore-value", Kind.BOOL, False, "updates the key using its current value"),
        Flag("lease", Kind.STRING, "0", "lease ID (in hexadecimal) to attach to the key"),
        Flag("prev-kv", Kind.BOOL, False, "return the previous key-value pair before modification"),
    ]


def put_op(flags: FlagSet, args: list[str], read_stdin: Callable[[], bytes]) -> rpc_pb2.PutRequest:
    """etcdctl's getPutOp: the PutRequest for put's arguments (value from stdin if missing)."""
    usage = "put command needs 1 argument and input from stdin or 2 arguments"
    if not args:
        raise CliExit(EXIT_BAD_ARGS, usage)
    ignore_value = bool(flags.value("ignore-value"))
    if ignore_value and len(args) > 1:
        raise CliExit(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    value = b""
    if not ignore_value:
        value = arg_bytes(args[1]) if len(args) > 1 else read_stdin()
        if len(args) < 2 and not value:
            raise CliExit(EXIT_BAD_ARGS, usage)
    try:
        lease = parse_int(str(flags.value("lease")), 16, 64)
    except GoParseError as exc:
        raise CliExit(EXIT_BAD_ARGS, f"bad lease ID ({exc}), expecting ID in Hex") from None
    return put_request(
        arg_bytes(args[0]),
        value,
        lease=lease,
        prev_kv=bool(flags.value("prev-kv")),
        ignore_value=ignore_value,
        ignore_lease=bool(flags.value("ignore-lease")),
    )


def _send(inv: Invocation, request: Message) -> tuple[Any, Printer]:
    """Send one KV request with the command timeout; etcd errors end the command as etcdctl's
    do. Returns the response (of the type `Client.request` pairs with `request`) and the
    printer."""
    client, display = must_client(inv)
    with client:
        try:
            return client.request(request, timeout=command_timeout(inv)), display
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None


def _run_put(inv: Invocation) -> int:
    request = put_op(inv.flags, inv.args, inv.stdin.read)
    resp, display = _send(inv, request)
    display.put(resp)
    return 0


def put_command() -> Command:
    """The `put` command."""
    return Command(
        use=PUT_USE,
        short="Puts the given key into the store",
        long=PUT_LONG,
        run=_run_put,
        flags=put_flags(),
    )


# -- get -------------------------------------------------------------------------------------


def get_flags() -> list[Flag]:
    """get's own flags (--count-only is Ward's addition, from etcdctl 3.5)."""
    return [
        Flag("consistency", Kind.STRING, "l", "Linearizable(l) or Serializable(s)"),
        # etcdctl 3.5's flag; hidden so that help reads as etcdctl 3.4's.
        Flag("count-only", Kind.BOOL, False, "Get only the count", hidden=True),
        Flag(
            "from-key",
            Kind.BOOL,
            False,
            "Get keys that are greater than or equal to the given key using byte compare",
        ),
        Flag("keys-only", Kind.BOOL, False, "Get only the keys"),
        Flag("limit", Kind.INT64, 0, "Maximum number of results"),
        Flag("order", Kind.STRING, "", "Order of results; ASCEND or DESCEND (ASCEND by default)"),
        Flag("prefix", Kind.BOOL, False, "Get keys with matching prefix"),
        Flag(
            "print-value-only",
            Kind.BOOL,
            False,
            'Only write values when using the "simple" output format',
        ),
        Flag("rev", Kind.INT64, 0, "Specify the kv revision"),
        Flag("sort-by", Kind.STRING, "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
    ]


_SORT_ORDERS = {"ASCEND": SortOrder.ASCEND, "DESCEND": SortOrder.DESCEND, "": SortOrder.NONE}
_SORT_TARGETS = {
    "CREATE": SortTarget.CREATE,
    "KEY": SortTarget.KEY,
    "MODIFY": SortTarget.MOD,
    "VALUE": SortTarget.VALUE,
    "VERSION": SortTarget.VERSION,
    "": SortTarget.KEY,
}


def get_op(flags: FlagSet, args: list[str]) -> rpc_pb2.RangeRequest:
    """etcdctl's getGetOp: the RangeRequest for get's arguments."""
    if not args:
        raise CliExit(
            EXIT_BAD_ARGS,
            "get command needs one argument as key and an optional argument as range_end",
        )
    prefix = bool(flags.value("prefix"))
    from_key = bool(flags.value("from-key"))
    keys_only = bool(flags.value("keys-only"))
    count_only = bool(flags.value("count-only"))
    if prefix and from_key:
        raise CliExit(
            EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one"
        )
    if keys_only and count_only:
        raise CliExit(
            EXIT_BAD_ARGS,
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        )
    consistency = str(flags.value("consistency"))
    if consistency not in ("l", "s"):
        raise CliExit(EXIT_BAD_FEATURE, f"unknown consistency flag {quote(consistency)}")
    range_end = None
    if len(args) > 1:
        if prefix or from_key:
            raise CliExit(
                EXIT_BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` "
                "is set",
            )
        range_end = arg_bytes(args[1])
    order_text = str(flags.value("order"))
    order = _SORT_ORDERS.get(order_text.upper())
    if order is None:
        raise CliExit(EXIT_BAD_FEATURE, f"bad sort order {order_text}")
    target_text = str(flags.value("sort-by"))
    target = _SORT_TARGETS.get(target_text.upper())
    if target is None:
        raise CliExit(EXIT_BAD_FEATURE, f"bad sort target {target_text}")
    revision = flags.value("rev")
    limit = flags.value("limit")
    assert isinstance(revision, int) and isinstance(limit, int)
    return range_request(
        arg_bytes(args[0]),
        range_end,
        prefix=prefix,
        from_key=from_key,
        limit=limit,
        revision=max(revision, 0),
        sort_order=order,
        sort_target=target,
        keys_only=keys_only,
        count_only=count_only,
        serializable=consistency == "s",
    )


def _run_get(inv: Invocation) -> int:
    request = get_op(inv.flags, inv.args)
    resp, display = _send(inv, request)
    if inv.flags.value("count-only") and not isinstance(display, FieldsPrinter):
        raise CliExit(EXIT_BAD_ARGS, "--count-only is only for `--write-out=fields`")
    if inv.flags.value("print-value-only"):
        if not isinstance(display, SimplePrinter):
            raise CliExit(EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`")
        display.value_only = True
    display.get(resp)
    return 0


def get_command() -> Command:
    """The `get` command."""
    return Command(
        use=GET_USE,
        short="Gets the key or a range of keys",
        run=_run_get,
        flags=get_flags(),
    )


# -- del -------------------------------------------------------------------------------------


def del_flags() -> list[Flag]:
    """del's own flags."""
    return [
        Flag(
            "from-key",
            Kind.BOOL,
            False,
            "delete keys that are greater than or equal to the given key using byte compare",
        ),
        Flag("prefix", Kind.BOOL, False, "delete keys with matching prefix"),
        Flag("prev-kv", Kind.BOOL, False, "return deleted key-value pairs"),
    ]


def del_op(flags: FlagSet, args: list[str]) -> rpc_pb2.DeleteRangeRequest:
    """etcdctl's getDelOp: the DeleteRangeRequest for del's arguments."""
    if not args or len(args) > 2:
        raise CliExit(
            EXIT_BAD_ARGS,
            "del command needs one argument as key and an optional argument as range_end",
        )
    prefix = bool(flags.value("prefix"))
    from_key = bool(flags.value("from-key"))
    if prefix and from_key:
        raise CliExit(
            EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one"
        )
    range_end = None
    if len(args) > 1:
        if prefix or from_key:
            raise CliExit(
                EXIT_BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` "
                "is set",
            )
        range_end = arg_bytes(args[1])
    return delete_request(
        arg_bytes(args[0]),
        range_end,
        prefix=prefix,
        from_key=from_key,
        prev_kv=bool(flags.value("prev-kv")),
    )


def _run_del(inv: Invocation) -> int:
    request = del_op(inv.flags, inv.args)
    resp, display = _send(inv, request)
    display.delete(resp)
    return 0


def del_command() -> Command:
    """The `del` command."""
    return Command(
        use=DEL_USE,
        short="Removes the specified key or range of keys [key, range_end)",
        run=_run_del,
        flags=del_flags(),
    )
