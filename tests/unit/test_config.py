"""Ward's configuration: etcd's flags, ETCD_* variables and --config-file (server/config)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from server.config import (
    DEFAULT_QUOTA_BYTES,
    URL,
    ClusterMember,
    Config,
    ConfigError,
    ShowHelp,
    ShowVersion,
    TokenKind,
    parse_compaction_retention,
    parse_config,
    parse_url,
    usage_text,
)
from server.config.flags import (
    BY_NAME,
    FLAGS,
    SECURITY_SECTIONS,
    WARD_FLAGS,
    YAML_KEYS,
    Disposition,
)
from server.config.values import parse_go_duration, parse_go_uint

# etcd's defaults are http://; Ward's are https:// (TLS-first, certificates from its own CA).
LOCAL_CLIENT = URL("https", "localhost", 2379)
LOCAL_PEER = URL("https", "localhost", 2380)


def parse(*argv: str, env: dict[str, str] | None = None) -> tuple[Config, list[str]]:
    return parse_config(list(argv), env or {})


def config(*argv: str, env: dict[str, str] | None = None) -> Config:
    return parse(*argv, env=env)[0]


def warnings_of(*argv: str, env: dict[str, str] | None = None) -> list[str]:
    return parse(*argv, env=env)[1]


def error(*argv: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(*argv, env=env)
    return info.value


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "ward.yml"
    path.write_text(text)
    return str(path)


# --- flag syntax (Go's flag package) ---


@pytest.mark.parametrize(
    "argv",
    [["--name=n1"], ["--name", "n1"], ["-name", "n1"], ["-name=n1"]],
)
def test_flag_value_forms_are_equivalent(argv: list[str]) -> None:
    assert config(*argv).name == "n1"


def test_bool_flag_alone_means_true() -> None:
    assert config("--experimental-initial-corrupt-check").experimental_initial_corrupt_check


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_bool_flag_takes_go_true_spellings(text: str) -> None:
    assert config(f"--force-new-cluster={text}").force_new_cluster is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_bool_flag_takes_go_false_spellings(text: str) -> None:
    assert config(f"--strict-reconfig-check={text}").strict_reconfig_check is False


def test_bool_flag_value_must_be_attached_with_equals() -> None:
    # Go reads "false" as the first non-flag argument, which etcd refuses.
    assert error("--force-new-cluster", "false").message == "'false' is not a valid flag"


def test_bad_bool_value_is_an_error_naming_the_flag() -> None:
    err = error("--debug=maybe")
    assert err.message == 'invalid boolean value "maybe" for flag -debug: parse error'


@pytest.mark.parametrize("argv", [["--foo"], ["-foo"], ["--foo=1"], ["--nmae", "x"]])
def test_unknown_flag_is_an_error_in_go_wording(argv: list[str]) -> None:
    err = error(*argv)
    name = argv[0].lstrip("-").split("=")[0]
    assert err.message == f"flag provided but not defined: -{name}"
    assert err.show_usage
    assert err.exit_code == 2


def test_flag_without_its_value_is_an_error() -> None:
    assert error("--name").message == "flag needs an argument: -name"


def test_value_is_the_next_argument_even_if_it_looks_like_a_flag() -> None:
    assert config("--name", "-x").name == "-x"


def test_bad_number_is_an_error_naming_flag_and_value() -> None:
    err = error("--snapshot-count", "lots")
    assert err.message == 'invalid value "lots" for flag -snapshot-count: parse error'


def test_negative_number_for_unsigned_flag_is_an_error() -> None:
    assert "-max-txn-ops" in error("--max-txn-ops=-1").message


def test_positional_argument_is_refused() -> None:
    assert error("--name", "a", "extra").message == "'extra' is not a valid flag"


def test_double_dash_ends_the_flags() -> None:
    assert config("--name", "a", "--").name == "a"
    assert error("--", "--name", "a").message == "'--name' is not a valid flag"


def test_bad_flag_syntax_is_refused() -> None:
    assert error("---name=a").message == "bad flag syntax: ---name=a"


def test_last_of_repeated_flags_wins() -> None:
    assert config("--name", "a", "--name", "b").name == "b"


@pytest.mark.parametrize("arg", ["-h", "--help", "-help", "--help=false"])
def test_help_asks_for_the_usage_text(arg: str) -> None:
    with pytest.raises(ShowHelp) as info:
        parse(arg)
    assert info.value.text == usage_text()
    assert info.value.exit_code == 0


def test_help_stops_parsing_like_go() -> None:
    with pytest.raises(ShowHelp):
        parse("--help", "--no-such-flag")
    with pytest.raises(ConfigError):
        parse("--no-such-flag", "--help")


def test_version_flag_asks_for_the_version() -> None:
    with pytest.raises(ShowVersion):
        parse("--version")
    assert config("--version=false").name == "default"


def test_version_flag_still_checks_the_other_flags() -> None:
    with pytest.raises(ConfigError):
        parse("--version", "--bogus")


@pytest.mark.parametrize("command", ["gateway", "grpc-proxy"])
def test_etcd_subcommands_are_refused(command: str) -> None:
    assert "not supported by Ward" in error(command, "start").message


# --- environment variables ---


def test_environment_variables_set_flags() -> None:
    cfg = config(
        env={
            "ETCD_NAME": "n1",
            "ETCD_DATA_DIR": "/srv/n1",
            "ETCD_LISTEN_CLIENT_URLS": "http://127.0.0.1:12379",
            "ETCD_ADVERTISE_CLIENT_URLS": "http://127.0.0.1:12379",
            "ETCD_STRICT_RECONFIG_CHECK": "false",
            "ETCD_WORKERS": "3",
        }
    )
    assert cfg.name == "n1"
    assert cfg.data_dir == Path("/srv/n1")
    assert cfg.listen_client_urls == (URL("http", "127.0.0.1", 12379),)
    assert cfg.strict_reconfig_check is False
    assert cfg.workers == 3


def test_command_line_wins_over_environment_with_a_warning() -> None:
    cfg, warnings = parse("--name", "flag", env={"ETCD_NAME": "env"})
    assert cfg.name == "flag"
    assert any("ETCD_NAME" in w and "shadowed" in w for w in warnings)


def test_unknown_etcd_variable_warns_without_showing_its_value() -> None:
    warnings = warnings_of(env={"ETCD_NAMEE": "s3cret-value"})
    assert any("unrecognized environment variable ETCD_NAMEE" in w for w in warnings)
    assert not any("s3cret-value" in w for w in warnings)


def test_other_variables_are_not_ours() -> None:
    assert warnings_of(env={"ETCDCTL_API": "3", "PATH": "/bin", "WARD_X": "1"}) == []


def test_empty_environment_variable_counts_as_unset() -> None:
    cfg, warnings = parse(env={"ETCD_NAME": ""})
    assert cfg.name == "default"
    assert warnings == []


def test_bad_environment_value_is_an_error_naming_the_variable() -> None:
    err = error(env={"ETCD_SNAPSHOT_COUNT": "many"})
    assert err.message == 'invalid value "many" for ETCD_SNAPSHOT_COUNT: parse error'


def test_etcd_version_variable_is_ignored_with_a_warning() -> None:
    cfg, warnings = parse(env={"ETCD_VERSION": "true"})
    assert cfg.name == "default"
    assert any("ETCD_VERSION" in w for w in warnings)


def test_listen_client_urls_from_environment_need_advertise_client_urls() -> None:
    err = error(env={"ETCD_LISTEN_CLIENT_URLS": "http://127.0.0.1:2379"})
    assert "--advertise-client-urls is required" in err.message


# --- config file ---

FULL_FILE = """
name: infra0
data-dir: /var/lib/ward/infra0
listen-peer-urls: https://10.0.1.10:2380
listen-client-urls: https://10.0.1.10:2379,https://127.0.0.1:2379
initial-advertise-peer-urls: https://10.0.1.10:2380
advertise-client-urls: https://10.0.1.10:2379
initial-cluster: infra0=https://10.0.1.10:2380,infra1=https://10.0.1.11:2380
initial-cluster-token: prod-cluster
initial-cluster-state: existing
heartbeat-interval: 200
election-timeout: 2000
client-transport-security:
  cert-file: /etc/ward/server.crt
  key-file: /etc/ward/server.key
  client-cert-auth: true
  trusted-ca-file: /etc/ward/ca.crt
  auto-tls: false
peer-transport-security:
  cert-file: /etc/ward/peer.crt
  key-file: /etc/ward/peer.key
  client-cert-auth: true
  trusted-ca-file: /etc/ward/peer-ca.crt
  allowed-cn: infra
log-outputs: [stderr]
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
workers: 2
"""


def test_config_file_uses_etcds_keys(tmp_path: Path) -> None:
    cfg = config("--config-file", write(tmp_path, FULL_FILE))
    assert cfg.name == "infra0"
    assert cfg.data_dir == Path("/var/lib/ward/infra0")
    assert cfg.listen_client_urls == (
        URL("https", "10.0.1.10", 2379),
        URL("https", "127.0.0.1", 2379),
    )
    assert cfg.initial_cluster_map == {
        "infra0": (URL("https", "10.0.1.10", 2380),),
        "infra1": (URL("https", "10.0.1.11", 2380),),
    }
    assert cfg.initial_cluster_token == "prod-cluster"
    assert cfg.initial_cluster_state == "existing"
    assert (cfg.heartbeat_interval, cfg.election_timeout) == (200, 2000)
    assert cfg.cert_file == Path("/etc/ward/server.crt")
    assert cfg.key_file == Path("/etc/ward/server.key")
    assert cfg.client_cert_auth is True
    assert cfg.trusted_ca_file == Path("/etc/ward/ca.crt")
    assert cfg.peer_cert_file == Path("/etc/ward/peer.crt")
    assert cfg.peer_client_cert_auth is True
    assert cfg.peer_trusted_ca_file == Path("/etc/ward/peer-ca.crt")
    assert cfg.peer_cert_allowed_cn == ("infra",)
    assert cfg.cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)
    assert cfg.workers == 2
    assert cfg.config_file == tmp_path / "ward.yml"


def test_config_file_ignores_other_flags_and_variables_with_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "name: from-file\n")
    cfg, warnings = parse("--config-file", path, "--name", "from-flag", env={"ETCD_DEBUG": "1"})
    assert cfg.name == "from-file"
    assert cfg.log_level == "info"
    assert any("--name" in w and "config file" in w for w in warnings)
    assert any("ETCD_DEBUG" in w and "config file" in w for w in warnings)


def test_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "name: from-file\n")
    assert config(env={"ETCD_CONFIG_FILE": path}).name == "from-file"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("nmae: x\n", "unknown key nmae"),
        ("client-transport-security:\n  cert-fil: a\n", "client-transport-security.cert-fil"),
        ("cert-file: /a.crt\n", "belongs in client-transport-security as cert-file"),
        ("version: true\n", "cannot be set in the config file"),
    ],
)
def test_config_file_unknown_key_is_an_error(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in error("--config-file", write(tmp_path, text)).message


def test_config_file_reads_booleans_and_strings_as_etcd_does(tmp_path: Path) -> None:
    text = "strict-reconfig-check: no\nproxy: off\nenable-v2: false\ninitial-cluster-token: on\n"
    cfg = config("--config-file", write(tmp_path, text))
    assert cfg.strict_reconfig_check is False
    assert cfg.initial_cluster_token == "on"


def test_config_file_durations_are_nanoseconds_or_duration_strings(tmp_path: Path) -> None:
    text = "grpc-keepalive-min-time: 10000000000\ngrpc-keepalive-timeout: 1m30s\n"
    cfg = config("--config-file", write(tmp_path, text))
    assert cfg.grpc_keepalive_min_time == 10.0
    assert cfg.grpc_keepalive_timeout == 90.0


def test_config_file_null_and_empty_urls_keep_defaults(tmp_path: Path) -> None:
    cfg = config("--config-file", write(tmp_path, "wal-dir:\nlisten-client-urls: ''\n"))
    assert cfg.wal_dir is None
    assert cfg.listen_client_urls == (LOCAL_CLIENT,)


def test_config_file_may_set_listen_urls_without_advertise_urls(tmp_path: Path) -> None:
    # Only etcd's command line drops the default advertised URL; its file keeps it.
    cfg = config("--config-file", write(tmp_path, "listen-client-urls: http://127.0.0.1:1\n"))
    assert cfg.advertise_client_urls == (LOCAL_CLIENT,)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("heartbeat-interval: true\n", "heartbeat-interval: expected an integer"),
        ("snapshot-count: lots\n", "snapshot-count: parse error"),
        ("listen-client-urls: 10.0.0.1:2379\n", "URL scheme must be"),
        ("client-transport-security: yes\n", "must be a mapping"),
        ("election-timeout: 100\n", "at least as 5 times"),
        ("[a, b]\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_config_file_bad_values_are_errors(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in error("--config-file", write(tmp_path, text)).message


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    assert "cannot read config file" in error("--config-file", str(tmp_path / "nope")).message


def test_every_flag_has_exactly_one_place_in_the_config_file() -> None:
    in_sections = [flag for section in SECURITY_SECTIONS.values() for flag in section.values()]
    assert len(in_sections) == len(set(in_sections))
    for spec in FLAGS:
        places = (spec.name in YAML_KEYS) + (spec.name in in_sections)
        assert places == (0 if spec.disposition is Disposition.CONTROL else 1), spec.name


# --- defaults ---


def test_defaults_are_etcds_but_tls() -> None:
    cfg, warnings = parse()
    assert warnings == []
    assert cfg.name == "default"
    assert cfg.data_dir == Path("default.ward")
    assert cfg.wal_dir is None
    assert cfg.listen_client_urls == (LOCAL_CLIENT,)
    assert cfg.advertise_client_urls == (LOCAL_CLIENT,)
    assert cfg.listen_peer_urls == (LOCAL_PEER,)
    assert cfg.initial_advertise_peer_urls == (LOCAL_PEER,)
    assert cfg.listen_client_http_urls == ()
    assert cfg.listen_metrics_urls == ()
    assert cfg.initial_cluster == (ClusterMember("default", (LOCAL_PEER,)),)
    assert cfg.initial_cluster_state == "new"
    assert cfg.initial_cluster_token == "etcd-cluster"
    assert cfg.snapshot_count == 100000
    assert cfg.heartbeat_interval == 100
    assert cfg.election_timeout == 1000
    assert cfg.quota_backend_bytes == 0
    assert cfg.max_request_bytes == 1572864
    assert cfg.max_txn_ops == 128
    assert cfg.max_concurrent_streams == 2**32 - 1
    assert cfg.auto_compaction_mode == "periodic"
    assert cfg.auto_compaction_retention == "0"
    assert cfg.logger == "zap"
    assert cfg.log_level == "info"
    assert cfg.log_outputs == ("stderr",)
    assert cfg.grpc_keepalive_min_time == 5.0
    assert cfg.grpc_keepalive_interval == 7200.0
    assert cfg.grpc_keepalive_timeout == 20.0
    assert cfg.strict_reconfig_check is True
    assert cfg.pre_vote is True
    assert cfg.enable_grpc_gateway is True
    # Ward's one deliberate difference in auth: signed JWTs by default, not simple tokens.
    assert cfg.auth_token.kind is TokenKind.JWT
    assert cfg.auth_token_ttl == 300
    assert cfg.bcrypt_cost == 10
    assert cfg.tls_min_version == "TLS1.2"
    assert cfg.tls_max_version == ""
    assert cfg.self_signed_cert_validity == 1
    assert cfg.experimental_initial_corrupt_check is False
    assert cfg.experimental_corrupt_check_time == 0.0
    assert cfg.workers == 0
    assert cfg.unsafe_no_fsync is False
    assert cfg.force_new_cluster is False
    assert cfg.config_file is None


def test_data_dir_defaults_to_name_dot_ward() -> None:
    assert config("--name", "n1").data_dir == Path("n1.ward")
    assert config("--name", "n1", "--data-dir", "/d").data_dir == Path("/d")


def test_initial_cluster_defaults_to_name_and_advertised_peer_urls() -> None:
    cfg = config(
        "--name",
        "n1",
        "--listen-peer-urls",
        "http://10.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://10.0.0.1:2380,http://10.0.0.2:2380",
    )
    peers = (URL("http", "10.0.0.1", 2380), URL("http", "10.0.0.2", 2380))
    assert cfg.initial_cluster == (ClusterMember("n1", peers),)
    assert str(cfg.initial_cluster[0]) == "n1=http://10.0.0.1:2380,n1=http://10.0.0.2:2380"


def test_quota_bytes_is_two_gib_when_zero() -> None:
    assert config().quota_bytes == DEFAULT_QUOTA_BYTES == 2 * 1024**3
    assert config("--quota-backend-bytes", "4096").quota_bytes == 4096


def test_zero_snapshot_count_means_the_default() -> None:
    assert config("--snapshot-count=0").snapshot_count == 100000


def test_workers_zero_means_one_per_cpu() -> None:
    assert config().effective_workers == (os.cpu_count() or 1)
    assert config("--workers", "3").effective_workers == 3
    assert "--workers" in error("--workers", "100000").message


def test_election_ticks_are_heartbeats_per_election_timeout() -> None:
    assert config("--heartbeat-interval=50", "--election-timeout=600").election_ticks == 12


# --- URLs ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:2379", URL("http", "127.0.0.1", 2379)),
        ("HTTPS://Node1.Example.com:2379", URL("https", "node1.example.com", 2379)),
        ("http://[::1]:2379", URL("http", "::1", 2379)),
        ("unix://localhost:2379", URL("unix", "localhost", 2379)),
        ("unixs:///run/ward.sock", URL("unixs", "", None, "/run/ward.sock")),
    ],
)
def test_url_parsing(text: str, expected: URL) -> None:
    assert parse_url(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ftp://a:1", "scheme must be http, https, unix, or unixs"),
        ("localhost:2379", "scheme must be"),
        ("http://localhost", 'does not have the form "host:port"'),
        ("http://localhost:", "invalid port"),
        ("http://localhost:99999", "invalid port"),
        ("http://localhost:2379/v2", "must not contain a path"),
        ("http://localhost:2379?x=1", "query"),
        ("http://user@localhost:2379", "user information"),
        ("http://::1:2379", 'form "host:port"'),
    ],
)
def test_bad_urls_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_url(text)


def test_url_value_type_helpers() -> None:
    https = parse_url("https://[::1]:2379")
    assert https.is_tls and not https.is_unix
    assert str(https) == "https://[::1]:2379"
    assert https.address == ("::1", 2379)
    unix = parse_url("unix://localhost:2379")
    assert unix.is_unix and not unix.is_tls
    assert unix.socket_path == "localhost:2379"
    assert parse_url("unixs:///run/a.sock").is_tls
    with pytest.raises(ValueError):
        _ = unix.address


def test_repeated_urls_are_listed_once() -> None:
    cfg = config(
        "--listen-client-urls",
        "http://127.0.0.1:2379,http://127.0.0.1:2379",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
    )
    assert cfg.listen_client_urls == (URL("http", "127.0.0.1", 2379),)


def test_listen_urls_must_name_an_ip_or_localhost() -> None:
    err = error(
        "--listen-client-urls",
        "http://node1.example.com:2379",
        "--advertise-client-urls",
        "http://node1.example.com:2379",
    )
    assert "expected IP in URL for binding" in err.message


def test_advertised_urls_must_name_a_host() -> None:
    err = error("--advertise-client-urls", "http://:2379")
    assert "advertise-client-urls" in err.message and "empty host" in err.message


def test_listen_client_urls_given_alone_are_an_error() -> None:
    err = error("--listen-client-urls", "http://127.0.0.1:2379")
    assert err.message == (
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    )


# --- initial cluster ---


def test_initial_cluster_must_contain_this_member() -> None:
    err = error("--name", "n2", "--initial-cluster", "n1=http://localhost:2380")
    assert "couldn't find local name 'n2'" in err.message


def test_initial_cluster_urls_must_match_advertised_peer_urls() -> None:
    err = error("--initial-cluster", "default=http://127.0.0.1:2380")
    assert "--initial-cluster has default=http://127.0.0.1:2380 but missing from" in err.message
    err = error(
        "--initial-advertise-peer-urls",
        "http://localhost:2380,http://127.0.0.1:2380",
        "--initial-cluster",
        "default=http://localhost:2380",
    )
    assert "--initial-advertise-peer-urls has http://127.0.0.1:2380 but missing" in err.message


def test_initial_cluster_gathers_several_urls_per_member() -> None:
    cfg = config(
        "--initial-advertise-peer-urls",
        "http://localhost:2380,http://127.0.0.1:2380",
        "--initial-cluster",
        "default=http://localhost:2380,other=http://10.0.0.2:2380,default=http://127.0.0.1:2380",
    )
    assert cfg.initial_cluster_map["default"] == (
        URL("http", "localhost", 2380),
        URL("http", "127.0.0.1", 2380),
    )
    assert [m.name for m in cfg.initial_cluster] == ["default", "other"]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("default", "is not of the form name=peer-url"),
        ("=http://localhost:2380", "is not of the form name=peer-url"),
        ("default=localhost:2380", "URL scheme must be"),
        ("default=http://localhost:2380,b=http://localhost:2380", "duplicate url"),
        ("", "--initial-cluster is empty"),
    ],
)
def test_malformed_initial_cluster_is_an_error(value: str, fragment: str) -> None:
    assert fragment in error("--initial-cluster", value).message


@pytest.mark.parametrize("state", ["new", "existing"])
def test_initial_cluster_state_values(state: str) -> None:
    assert config("--initial-cluster-state", state).initial_cluster_state == state


def test_bad_initial_cluster_state_is_an_error() -> None:
    assert "-initial-cluster-state" in error("--initial-cluster-state", "old").message


# --- Raft timing and limits ---


def test_election_timeout_must_be_five_heartbeats() -> None:
    assert config("--heartbeat-interval=100", "--election-timeout=500").election_timeout == 500
    err = error("--heartbeat-interval=100", "--election-timeout=499")
    assert err.message == (
        "--election-timeout[499ms] should be at least as 5 times as --heartbeat-interval[100ms]"
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--heartbeat-interval=0"], "--heartbeat-interval must be >0"),
        (["--election-timeout=50001", "--heartbeat-interval=100"], "is too long"),
        (["--max-txn-ops=0"], "--max-txn-ops must be > 0"),
        (["--max-request-bytes=0"], "--max-request-bytes must be > 0"),
        (["--max-concurrent-streams=0"], "--max-concurrent-streams"),
        (["--max-concurrent-streams=4294967296"], "value out of range"),
        (["--quota-backend-bytes=-1"], "--quota-backend-bytes must not be negative"),
    ],
)
def test_limits_are_validated(argv: list[str], fragment: str) -> None:
    assert fragment in error(*argv).message


def test_large_quota_warns() -> None:
    assert any("quota" in w for w in warnings_of("--quota-backend-bytes", str(9 * 1024**3)))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300ms", 0.3), ("1h30m", 5400.0), ("1.5s", 1.5), (".5s", 0.5), ("0", 0.0), ("2h", 7200.0)],
)
def test_durations_use_go_syntax(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)
    assert config(f"--grpc-keepalive-timeout={text}").grpc_keepalive_timeout == pytest.approx(
        seconds
    )


@pytest.mark.parametrize("text", ["5", "abc", "-1s", "1x", "", "."])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)
    assert "-grpc-keepalive-min-time" in error(f"--grpc-keepalive-min-time={text}").message


@pytest.mark.parametrize(("text", "value"), [("0x10", 16), ("010", 8), ("1_000", 1000)])
def test_integers_use_go_syntax(text: str, value: int) -> None:
    assert parse_go_uint(text) == value


# --- auto compaction ---


@pytest.mark.parametrize(
    ("retention", "seconds"),
    [("1h", 3600.0), ("30m", 1800.0), ("5", 5 * 3600.0), ("0", 0.0)],
)
def test_periodic_retention_is_a_duration_or_hours(retention: str, seconds: float) -> None:
    cfg = config("--auto-compaction-retention", retention)
    assert cfg.auto_compaction_period == seconds
    assert cfg.auto_compaction_revisions == 0


def test_revision_retention_is_a_revision_count() -> None:
    cfg = config("--auto-compaction-mode=revision", "--auto-compaction-retention=1000")
    assert cfg.auto_compaction_revisions == 1000
    assert cfg.auto_compaction_period == 0.0


@pytest.mark.parametrize(
    ("mode", "retention"), [("revision", "1h"), ("periodic", "soon"), ("periodic", "-1h")]
)
def test_bad_retention_is_an_error(mode: str, retention: str) -> None:
    err = error(f"--auto-compaction-mode={mode}", f"--auto-compaction-retention={retention}")
    assert "--auto-compaction-retention" in err.message
    with pytest.raises(ValueError):
        parse_compaction_retention(mode, retention)


def test_bad_compaction_mode_is_an_error() -> None:
    assert "-auto-compaction-mode" in error("--auto-compaction-mode=hourly").message


# --- logging ---


@pytest.mark.parametrize("level", ["debug", "info", "warn", "error", "panic", "fatal"])
def test_log_levels(level: str) -> None:
    assert config("--log-level", level).log_level == level


def test_bad_log_level_is_an_error() -> None:
    assert "-log-level" in error("--log-level", "verbose").message


def test_debug_flag_is_a_deprecated_log_level_debug() -> None:
    cfg, warnings = parse("--debug")
    assert cfg.log_level == "debug"
    assert any("--debug is deprecated" in w for w in warnings)


def test_log_outputs() -> None:
    assert config("--log-outputs", "stdout,/var/log/ward.log").log_outputs == (
        "stdout",
        "/var/log/ward.log",
    )
    assert config("--log-outputs", "default").log_outputs == ("stderr",)
    assert "'default' cannot be combined" in error("--log-outputs", "default,stdout").message


def test_journald_output_falls_back_to_stderr_with_a_warning() -> None:
    cfg, warnings = parse("--log-outputs", "systemd/journal")
    assert cfg.log_outputs == ("stderr",)
    assert any("journald" in w for w in warnings)


def test_capnslog_logger_is_accepted_as_zap() -> None:
    cfg, warnings = parse("--logger", "capnslog")
    assert cfg.logger == "zap"
    assert any("capnslog" in w for w in warnings)
    assert "-logger" in error("--logger", "glog").message


# --- TLS ---

TLS_CLIENT = [
    "--listen-client-urls=https://127.0.0.1:2379",
    "--advertise-client-urls=https://127.0.0.1:2379",
]


def test_tls_flags_are_typed_paths() -> None:
    cfg = config(
        *TLS_CLIENT,
        "--cert-file=s.crt",
        "--key-file=s.key",
        "--client-cert-auth",
        "--trusted-ca-file=ca.crt",
        "--client-crl-file=c.crl",
        "--client-cert-allowed-hostname=a.example,b.example",
        "--peer-cert-allowed-cn=infra",
    )
    assert (cfg.cert_file, cfg.key_file) == (Path("s.crt"), Path("s.key"))
    assert cfg.client_cert_auth and cfg.trusted_ca_file == Path("ca.crt")
    assert cfg.client_crl_file == Path("c.crl")
    assert cfg.client_cert_allowed_hostname == ("a.example", "b.example")
    assert cfg.peer_cert_allowed_cn == ("infra",)
    assert cfg.client_tls and cfg.peer_tls  # the default peer URL is https too


def test_https_listener_without_a_certificate_gets_wards_own() -> None:
    # No --cert-file: server.tls issues one from the data directory's CA.
    assert config(*TLS_CLIENT).cert_file is None
    assert config(*TLS_CLIENT, "--auto-tls").auto_tls
    assert config(
        "--listen-peer-urls=https://127.0.0.1:2380",
        "--initial-advertise-peer-urls=https://127.0.0.1:2380",
    ).peer_tls


def test_auto_tls_does_not_warn_since_wards_certificates_are_verifiable() -> None:
    # SECURITY 17: etcd's --auto-tls authenticated nobody; Ward's comes from its own CA.
    assert warnings_of(*TLS_CLIENT, "--auto-tls") == []
    assert any(
        "ignoring --auto-tls" in w
        for w in warnings_of(*TLS_CLIENT, "--auto-tls", "--cert-file=a.crt", "--key-file=a.key")
    )


def test_cert_and_key_go_together() -> None:
    assert "must be given together" in error("--cert-file=a.crt").message
    assert "must be given together" in error("--peer-key-file=a.key").message


def test_client_cert_auth_needs_a_trusted_ca_with_the_operators_certificate() -> None:
    own = ["--cert-file=a.crt", "--key-file=a.key"]
    assert (
        "--client-cert-auth requires --trusted-ca-file" in error(*own, "--client-cert-auth").message
    )
    peer_own = ["--peer-cert-file=a.crt", "--peer-key-file=a.key"]
    assert "--peer-trusted-ca-file" in error(*peer_own, "--peer-client-cert-auth").message
    # With Ward's own certificate, Ward's own CA verifies clients.
    assert config("--client-cert-auth").client_cert_auth


def test_certificate_on_a_plain_http_url_warns() -> None:
    warnings = warnings_of(
        "--cert-file=a.crt",
        "--key-file=a.key",
        "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379",
    )
    assert any("not encrypted" in w for w in warnings)


def test_plaintext_on_a_public_address_warns() -> None:
    warnings = warnings_of(
        "--listen-client-urls=http://0.0.0.0:2379",
        "--advertise-client-urls=http://10.0.0.1:2379",
    )
    assert any("http://0.0.0.0:2379 is not encrypted" in w for w in warnings)


@pytest.mark.parametrize("version", ["TLS1.2", "TLS1.3"])
def test_tls_versions(version: str) -> None:
    assert config("--tls-min-version", version).tls_min_version == version
    assert config("--tls-max-version", version).tls_max_version == version


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--tls-min-version=TLS1.0"], "is not supported by Ward: TLS 1.0 and 1.1"),
        (["--tls-max-version=TLS1.1"], "is not supported by Ward"),
        (["--tls-min-version=SSL3"], "use TLS1.2 or TLS1.3"),
        (["--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"], "greater than max version"),
        (
            ["--tls-min-version=TLS1.3", "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
            "cannot be configured when only TLS1.3",
        ),
    ],
)
def test_bad_tls_versions_are_errors(argv: list[str], fragment: str) -> None:
    assert fragment in error(*argv).message


def test_weak_cipher_suites_are_dropped_with_a_warning() -> None:
    cfg, warnings = parse(
        "--cipher-suites",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,"
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    )
    assert cfg.cipher_suites == (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    )
    assert cfg.openssl_cipher_suites == (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES256-GCM-SHA384",
    )
    assert any("TLS_RSA_WITH_3DES_EDE_CBC_SHA" in w for w in warnings)


def test_only_weak_or_unknown_cipher_suites_are_errors() -> None:
    assert "only weak suites" in error("--cipher-suites=TLS_RSA_WITH_RC4_128_SHA").message
    assert "unexpected TLS cipher suite" in error("--cipher-suites=TLS_FAST").message


def test_self_signed_cert_validity_is_at_least_a_year() -> None:
    assert config("--self-signed-cert-validity=3").self_signed_cert_validity == 3
    assert "--self-signed-cert-validity" in error("--self-signed-cert-validity=0").message


# --- auth ---


def test_jwt_auth_token_is_parsed() -> None:
    cfg = config("--auth-token", "jwt,pub-key=p.pem,priv-key=k.pem,sign-method=RS256,ttl=10m")
    token = cfg.auth_token
    assert token.kind is TokenKind.JWT
    assert (token.pub_key_path, token.priv_key_path) == ("p.pem", "k.pem")
    assert token.sign_method == "RS256"
    assert token.ttl == 600.0


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("bogus", "--auth-token 'bogus'"),
        ("jwt,sign-method=XX1", "--auth-token"),
        ("jwt,sign-method=HS256,pub-key=a", "needs priv-key"),
    ],
)
def test_bad_auth_token_is_an_error(value: str, fragment: str) -> None:
    assert fragment in error("--auth-token", value).message


def test_bcrypt_cost_is_accepted_as_the_argon2_cost() -> None:
    cfg, warnings = parse("--bcrypt-cost", "12")
    assert cfg.bcrypt_cost == 12
    assert not any("bcrypt" in w for w in warnings)
    assert "between 4 and 31" in error("--bcrypt-cost", "3").message


def test_jwt_without_keys_is_accepted_each_member_signs_with_its_own() -> None:
    token = config("--auth-token", "jwt,sign-method=RS256").auth_token
    assert token.kind is TokenKind.JWT
    assert (token.pub_key_path, token.priv_key_path) == (None, None)


def test_simple_tokens_are_accepted_with_a_warning() -> None:
    cfg, warnings = parse("--auth-token", "simple")
    assert cfg.auth_token.kind is TokenKind.SIMPLE
    assert any("--auth-token=simple" in w for w in warnings)


def test_minimum_password_length_is_a_ward_flag() -> None:
    assert config().auth_min_password_length == 8
    assert config("--auth-min-password-length", "4").auth_min_password_length == 4


def test_auth_token_ttl_must_be_positive() -> None:
    assert config("--auth-token-ttl=60").auth_token_ttl == 60
    assert "--auth-token-ttl" in error("--auth-token-ttl=0").message


# --- flags Ward accepts and ignores, or refuses ---


@pytest.mark.parametrize(
    "arg",
    [
        "--max-wals=3",
        "--max-snapshots=1",
        "--initial-election-tick-advance=false",
        "--experimental-enable-distributed-tracing",
        "--metrics=extensive",
        "--backend-batch-interval=10ms",
        "--experimental-peer-skip-client-san-verification",
    ],
)
def test_harmless_etcd_flags_are_accepted_with_a_warning_naming_them(arg: str) -> None:
    name = arg.split("=")[0]
    warnings = warnings_of(arg)
    assert any(
        w.startswith(f"{name} is accepted for etcd compatibility and ignored") for w in warnings
    )


def test_ignored_flags_still_check_their_values() -> None:
    assert (
        error("--max-wals=many").message == 'invalid value "many" for flag -max-wals: parse error'
    )


@pytest.mark.parametrize("arg", ["-v", "--vv", "--snapshot=true", "--peer-heartbeat-interval"])
def test_etcds_legacy_flags_are_swallowed(arg: str) -> None:
    assert any("no longer supported - ignoring" in w for w in warnings_of(arg))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--discovery=https://discovery.etcd.io/abc"],
            "--discovery is not supported by Ward yet: bootstrap the cluster statically",
        ),
        (["--discovery-srv=example.com"], "--discovery-srv is not supported by Ward yet"),
        (["--proxy=on"], "--proxy is not supported by Ward: "),
        (["--proxy-read-timeout=10"], "--proxy-read-timeout is not supported by Ward: "),
        (["--enable-v2"], "--enable-v2 is not supported by Ward: "),
        (["--experimental-enable-v2v3=/v2"], "--experimental-enable-v2v3 is not supported"),
        (["--cors=https://a.example"], "--cors is not supported by Ward: "),
        (["--host-whitelist=a.example"], "--host-whitelist is not supported by Ward: "),
    ],
)
def test_flags_that_would_change_semantics_are_refused(argv: list[str], message: str) -> None:
    assert error(*argv).message.startswith(message)


@pytest.mark.parametrize(
    "arg", ["--enable-v2=false", "--proxy=off", "--cors=*", "--discovery-fallback=proxy"]
)
def test_refused_flags_at_their_default_are_accepted(arg: str) -> None:
    assert warnings_of(arg) == []


def test_wal_dir_is_accepted_with_a_warning() -> None:
    cfg, warnings = parse("--wal-dir", "/fast/wal")
    assert cfg.wal_dir == Path("/fast/wal")
    assert any("--wal-dir is ignored" in w for w in warnings)


def test_enable_pprof_is_accepted_with_a_warning() -> None:
    cfg, warnings = parse("--enable-pprof")
    assert cfg.enable_pprof
    assert any("--enable-pprof is ignored" in w for w in warnings)


def test_unsafe_no_fsync_warns_loudly() -> None:
    cfg, warnings = parse("--unsafe-no-fsync")
    assert cfg.unsafe_no_fsync
    assert any(w.startswith("UNSAFE: --unsafe-no-fsync") for w in warnings)


def test_grpc_and_gateway_settings() -> None:
    cfg = config(
        "--grpc-keepalive-min-time=1s",
        "--grpc-keepalive-interval=0",
        "--max-concurrent-streams=100",
        "--enable-grpc-gateway=false",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        "--listen-client-http-urls=http://127.0.0.1:2382",
        "--experimental-corrupt-check-time=5m",
    )
    assert cfg.grpc_keepalive_min_time == 1.0
    assert cfg.grpc_keepalive_interval == 0.0
    assert cfg.max_concurrent_streams == 100
    assert cfg.enable_grpc_gateway is False
    assert cfg.listen_metrics_urls == (URL("http", "127.0.0.1", 2381),)
    assert cfg.listen_client_http_urls == (URL("http", "127.0.0.1", 2382),)
    assert cfg.experimental_corrupt_check_time == 300.0


# --- the Config value type ---


def test_config_revalidates_when_replaced() -> None:
    cfg = config()
    assert dataclasses.replace(
        cfg, name="n9", initial_cluster=(ClusterMember("n9", (LOCAL_PEER,)),)
    )
    with pytest.raises(ConfigError, match="at least as 5 times"):
        dataclasses.replace(cfg, election_timeout=100)


def test_config_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        config().name = "other"  # type: ignore[misc]


def test_every_ward_flag_is_a_config_field() -> None:
    fields = {field.name for field in dataclasses.fields(Config)}
    flags = {spec.field for spec in WARD_FLAGS} - {"debug"}
    assert fields == flags | {"config_file"}


def test_help_lists_every_implemented_flag_in_its_group() -> None:
    text = usage_text()
    for group in ("Member:", "Clustering:", "Security:", "Logging:", "Ward:"):
        assert f"\n{group}\n" in text
    for spec in WARD_FLAGS:
        assert f"  --{spec.name} '" in text
    assert "--data-dir '${name}.ward'" in text
    assert "--initial-cluster 'default=https://localhost:2380'" in text
    assert "--max-wals" in text.split("ignored (with a warning):")[1]


# Every flag etcd 3.5's help (server/etcdmain/help.go) and 3.5's config.go define.
_ETCD_35_FLAG_NAMES = """
name data-dir wal-dir snapshot-count heartbeat-interval election-timeout
initial-election-tick-advance listen-peer-urls listen-client-urls listen-client-http-urls
max-snapshots max-wals quota-backend-bytes backend-bbolt-freelist-type backend-batch-interval
backend-batch-limit max-txn-ops max-request-bytes max-concurrent-streams
grpc-keepalive-min-time grpc-keepalive-interval grpc-keepalive-timeout socket-reuse-port
socket-reuse-address raft-read-timeout raft-write-timeout initial-advertise-peer-urls
initial-cluster initial-cluster-state initial-cluster-token advertise-client-urls discovery
discovery-fallback discovery-proxy discovery-srv discovery-srv-name strict-reconfig-check
pre-vote auto-compaction-retention auto-compaction-mode enable-v2 v2-deprecation cert-file
key-file client-cert-file client-key-file client-cert-auth client-crl-file
client-cert-allowed-hostname trusted-ca-file auto-tls peer-cert-file peer-key-file
peer-client-cert-file peer-client-key-file peer-client-cert-auth peer-trusted-ca-file
peer-cert-allowed-cn peer-cert-allowed-hostname peer-auto-tls self-signed-cert-validity
peer-crl-file cipher-suites tls-min-version tls-max-version cors host-whitelist auth-token
bcrypt-cost auth-token-ttl enable-pprof metrics listen-metrics-urls logger log-outputs
log-level enable-log-rotation log-rotation-config-json experimental-enable-distributed-tracing
experimental-distributed-tracing-address experimental-distributed-tracing-service-name
experimental-distributed-tracing-instance-id experimental-distributed-tracing-sampling-rate
proxy proxy-failure-wait proxy-refresh-interval proxy-dial-timeout proxy-write-timeout
proxy-read-timeout experimental-initial-corrupt-check experimental-corrupt-check-time
experimental-enable-v2v3 experimental-enable-lease-checkpoint
experimental-enable-lease-checkpoint-persist experimental-compaction-batch-limit
experimental-compaction-sleep-interval experimental-peer-skip-client-san-verification
experimental-watch-progress-notify-interval experimental-warning-apply-duration
experimental-warning-unary-request-duration experimental-downgrade-check-time
experimental-memory-mlock experimental-txn-mode-write-with-shared-buffer
experimental-bootstrap-defrag-threshold-megabytes experimental-max-learners
enable-grpc-gateway force-new-cluster unsafe-no-fsync config-file version
"""
ETCD_35_FLAGS = _ETCD_35_FLAG_NAMES.split()


def test_every_etcd_35_flag_is_known() -> None:
    assert [name for name in ETCD_35_FLAGS if name not in BY_NAME] == []


@pytest.mark.skipif(shutil.which("etcd") is None, reason="no etcd binary installed")
def test_every_flag_of_the_installed_etcd_help_is_known() -> None:
    etcd = shutil.which("etcd")
    assert etcd is not None
    result = subprocess.run([etcd, "--help"], capture_output=True, text=True, timeout=30)
    names = set(re.findall(r"^  --([a-z0-9-]+)", result.stdout + result.stderr, re.MULTILINE))
    assert names, "etcd --help listed no flags"
    assert sorted(names - set(BY_NAME)) == []
