"""wardctl's parsers: durations, txn input (compares and operations) and pflag-style flags.

Expected values and messages are etcdctl 3.4's (Go's time, fmt and strconv packages), checked
against the real etcdctl when these tests were written.
"""

from __future__ import annotations

import io

import pytest

from ward.cli.exits import EXIT_BAD_ARGS, EXIT_INVALID_INPUT, CliExit
from ward.cli.flags import Flag, FlagError, FlagSet, Kind
from ward.cli.gofmt import GoParseError, format_duration, parse_duration
from ward.cli.txn import argify, parse_compare, parse_op, read_line, scan_compare
from wardpb.etcdserverpb import rpc_pb2

# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("5s", 5_000_000_000),
        ("500ms", 500_000_000),
        ("2s", 2_000_000_000),
        ("1m30s", 90_000_000_000),
        ("1.5h", 5_400_000_000_000),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ("10µs", 10_000),
        ("0", 0),
        ("-2s", -2_000_000_000),
        ("+3ms", 3_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
    ],
)
def test_parse_duration_accepts_go_duration_syntax(text: str, nanos: int) -> None:
    assert parse_duration(text) == nanos


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", 'time: invalid duration "abc"'),
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        (".s", 'time: invalid duration ".s"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("5 s", 'time: unknown unit " s" in duration "5 s"'),
    ],
)
def test_parse_duration_rejects_with_go_messages(text: str, message: str) -> None:
    with pytest.raises(GoParseError) as err:
        parse_duration(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0s"),
        (999, "999ns"),
        (740_076, "740.076µs"),
        (1_500_000, "1.5ms"),
        (5_003_331_441, "5.003331441s"),
        (61_000_000_000, "1m1s"),
        (3_605_000_000_000, "1h0m5s"),
        (-2_000_000_000, "-2s"),
    ],
)
def test_format_duration_prints_like_time_duration_string(nanos: int, text: str) -> None:
    assert format_duration(nanos) == text


# -- txn compares ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "target", "operand_field", "operand"),
    [
        (b'mod("key1") > "0"', rpc_pb2.Compare.MOD, "mod_revision", 0),
        (b'm("key1") > "0"', rpc_pb2.Compare.MOD, "mod_revision", 0),
        (b'ver("key1") = "3"', rpc_pb2.Compare.VERSION, "version", 3),
        (b'version("key1") = "3"', rpc_pb2.Compare.VERSION, "version", 3),
        (b'c("key1") < "7"', rpc_pb2.Compare.CREATE, "create_revision", 7),
        (b'create("key1") != "7"', rpc_pb2.Compare.CREATE, "create_revision", 7),
        (b'val("key1") = "some value"', rpc_pb2.Compare.VALUE, "value", b"some value"),
        (b'value("key1") = `raw "text"`', rpc_pb2.Compare.VALUE, "value", b'raw "text"'),
        (b'lease("key1") = "1a"', rpc_pb2.Compare.LEASE, "lease", 0x1A),
    ],
)
def test_parse_compare_reads_every_target_spelling(
    line: bytes, target: int, operand_field: str, operand: object
) -> None:
    cmp = parse_compare(line).to_pb()
    assert cmp.key == b"key1"
    assert cmp.target == target
    assert cmp.WhichOneof("target_union") == operand_field
    assert getattr(cmp, operand_field) == operand


def test_parse_compare_maps_operators_to_results() -> None:
    results = {
        op: parse_compare(b'ver("k") ' + op.encode() + b' "1"').result
        for op in ("=", "!=", "<", ">")
    }
    assert results == {
        "=": rpc_pb2.Compare.EQUAL,
        "!=": rpc_pb2.Compare.NOT_EQUAL,
        "<": rpc_pb2.Compare.LESS,
        ">": rpc_pb2.Compare.GREATER,
    }


def test_parse_compare_unquotes_go_escapes_in_key_and_value() -> None:
    cmp = parse_compare(b'val("a\\tb\\x41\\u00e9") = "\\"q\\" \\\\"').to_pb()
    assert cmp.key == b"a\tbA\xc3\xa9"
    assert cmp.value == b'"q" \\'


def test_parse_compare_ignores_text_after_the_value() -> None:
    assert parse_compare(b'val("k") = "v" and more').to_pb().value == b"v"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'mod k > "0"', 'malformed comparison: mod k > "0"'),
        (b'mod("k") > 0', 'malformed comparison: mod("k") > 0; got mod("k") > ""'),
        (b'c("k")="0"', 'malformed comparison: c("k")="0"; got c("k")  ""'),
        (b'val("k) = "x"', 'malformed comparison: val("k) = "x"; got val("k) = ")  ""'),
        (b'val(k) = "x"', 'malformed comparison: val(k) = "x"; got val("")  ""'),
        (b'val("k" ) = "x"', 'malformed comparison: val("k" ) = "x"; got val("k")  ""'),
        (b'val("k") =', 'malformed comparison: val("k") =; got val("k") = ""'),
        (b'val("k") ="x"', 'malformed comparison: val("k") ="x"; got val("k") ="x" ""'),
        (b'val ("k") = "x"', 'malformed comparison: val ("k") = "x" (unknown target val )'),
        (b'bogus("k") > "0"', 'malformed comparison: bogus("k") > "0" (unknown target bogus)'),
        (b'mod("k") > "x"', 'invalid txn compare request: mod("k") > "x"'),
        (b'mod("k") >> "1"', 'invalid txn compare request: mod("k") >> "1"'),
    ],
)
def test_parse_compare_rejects_malformed_lines_with_etcdctls_message(
    line: bytes, message: str
) -> None:
    with pytest.raises(CliExit) as err:
        parse_compare(line)
    assert (err.value.code, err.value.message) == (EXIT_INVALID_INPUT, message)


def test_scan_compare_counts_the_items_it_read_before_failing() -> None:
    assert scan_compare('"k") = "v"').count == 3
    assert scan_compare('"k") =').count == 2
    assert scan_compare('"k")=').count == 1
    assert scan_compare("k) = v").count == 0


# -- txn operations --------------------------------------------------------------------------


def test_argify_splits_on_spaces_and_unquotes_double_quoted_arguments() -> None:
    assert argify(b'put k "a value\\twith \\"quotes\\"" --prev-kv') == [
        b"put",
        b"k",
        b'a value\twith "quotes"',
        b"--prev-kv",
    ]


def test_argify_keeps_etcdctls_single_quote_slicing() -> None:
    # etcdctl 3.4 slices 'quoted' arguments to len(args)-1 bytes: with three arguments, one
    # byte survives. Reproduced so that the same input writes the same key.
    assert argify(b"put 'a b' x") == [b"put", b"a", b"x"]
    assert argify(b"put k 'long' x y") == [b"put", b"k", b"lon", b"x", b"y"]


def test_argify_rejects_bad_escapes() -> None:
    with pytest.raises(CliExit) as err:
        argify(b'put k "bad\\q"')
    assert (err.value.code, err.value.message) == (EXIT_INVALID_INPUT, "invalid syntax")


def test_parse_op_builds_each_request_kind() -> None:
    stderr = io.BytesIO()
    put = parse_op(b"put k v --prev-kv --lease=1f", stderr)
    assert put.request_put == rpc_pb2.PutRequest(key=b"k", value=b"v", prev_kv=True, lease=0x1F)
    get = parse_op(b"get p --prefix --keys-only --limit 2", stderr)
    assert get.request_range == rpc_pb2.RangeRequest(
        key=b"p", range_end=b"q", keys_only=True, limit=2
    )
    delete = parse_op(b"del a z --prev-kv", stderr)
    assert delete.request_delete_range == rpc_pb2.DeleteRangeRequest(
        key=b"a", range_end=b"z", prev_kv=True
    )
    assert parse_op(b"g k", stderr).WhichOneof("request") == "request_range"
    assert stderr.getvalue() == b""


def test_parse_op_prints_cobras_usage_for_a_bad_flag() -> None:
    stderr = io.BytesIO()
    with pytest.raises(CliExit) as err:
        parse_op(b"del a --bogus", stderr)
    assert (err.value.code, err.value.message) == (
        EXIT_INVALID_INPUT,
        "invalid txn request: del a --bogus",
    )
    assert stderr.getvalue() == (
        b"Usage:\n"
        b"   del [options] <key> [range_end] [flags]\n"
        b"\n"
        b"Flags:\n"
        b"      --from-key   delete keys that are greater than or equal to the given key using"
        b" byte compare\n"
        b"  -h, --help       help for del\n"
        b"      --prefix     delete keys with matching prefix\n"
        b"      --prev-kv    return deleted key-value pairs\n"
        b"\n"
    )


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        (b"get", EXIT_INVALID_INPUT, "invalid txn compare request: get"),
        (b"bogus a b", EXIT_INVALID_INPUT, "invalid txn request: bogus a b"),
        (b"get a --help", EXIT_INVALID_INPUT, "invalid txn request: get a --help"),
        (
            b"put a",
            EXIT_BAD_ARGS,
            "put command needs 1 argument and input from stdin or 2 arguments",
        ),
    ],
)
def test_parse_op_rejects_what_etcdctl_rejects(line: bytes, code: int, message: str) -> None:
    with pytest.raises(CliExit) as err:
        parse_op(line, io.BytesIO())
    assert (err.value.code, err.value.message) == (code, message)


def test_read_line_trims_and_stops_at_a_line_without_newline() -> None:
    stdin = io.BytesIO(b'  mod("k") > "0" \t\n\nlast')
    assert read_line(stdin) == b'mod("k") > "0"'
    assert read_line(stdin) == b""
    with pytest.raises(CliExit) as err:
        read_line(stdin)
    assert (err.value.code, err.value.message) == (EXIT_INVALID_INPUT, "EOF")


# -- flags (pflag's syntax) ------------------------------------------------------------------


def _flags() -> FlagSet:
    return FlagSet(
        [
            Flag("prefix", Kind.BOOL, False, ""),
            Flag("limit", Kind.INT64, 0, ""),
            Flag("write-out", Kind.STRING, "simple", "", shorthand="w"),
            Flag("interactive", Kind.BOOL, False, "", shorthand="i"),
            Flag("endpoints", Kind.STRING_SLICE, ["127.0.0.1:2379"], ""),
            Flag("dial-timeout", Kind.DURATION, 2_000_000_000, ""),
        ]
    )


def test_bool_flags_take_a_value_only_after_an_equals_sign() -> None:
    flags = _flags()
    assert flags.parse(["--prefix", "key", "--limit", "3"]) == ["key"]
    assert (flags.value("prefix"), flags.value("limit")) == (True, 3)
    flags = _flags()
    assert flags.parse(["--prefix=false", "k"]) == ["k"]
    assert flags.value("prefix") is False


def test_shorthand_forms_and_the_double_dash() -> None:
    for args in (["-w", "json"], ["-wjson"], ["-w=json"]):
        flags = _flags()
        flags.parse(args)
        assert flags.value("write-out") == "json"
    flags = _flags()
    assert flags.parse(["-iw", "fields", "--", "--prefix", "-x"]) == ["--prefix", "-x"]
    assert (flags.value("interactive"), flags.value("write-out")) == (True, "fields")


def test_slice_flags_replace_the_default_then_append() -> None:
    flags = _flags()
    flags.parse(["--endpoints", "a:1,b:2", "--endpoints=c:3", "--dial-timeout=500ms"])
    assert flags.value("endpoints") == ["a:1", "b:2", "c:3"]
    assert flags.value("dial-timeout") == 500_000_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown flag: --bogus"),
        (["-x"], "unknown shorthand flag: 'x' in -x"),
        (["-ix"], "unknown shorthand flag: 'x' in -x"),
        (["--limit"], "flag needs an argument: --limit"),
        (["-w"], "flag needs an argument: 'w' in -w"),
        (["---x"], "bad flag syntax: ---x"),
        (
            ["--limit", "abc"],
            'invalid argument "abc" for "--limit" flag: strconv.ParseInt: parsing "abc": '
            "invalid syntax",
        ),
        (
            ["--prefix=maybe"],
            'invalid argument "maybe" for "--prefix" flag: strconv.ParseBool: parsing "maybe": '
            "invalid syntax",
        ),
        (
            ["--dial-timeout=abc"],
            'invalid argument "abc" for "--dial-timeout" flag: time: invalid duration "abc"',
        ),
    ],
)
def test_flag_errors_use_pflags_wording(args: list[str], message: str) -> None:
    with pytest.raises(FlagError) as err:
        _flags().parse(args)
    assert str(err.value) == message
