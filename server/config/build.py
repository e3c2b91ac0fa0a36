"""``parse_config``: from the command line, the environment or the config file to a ``Config``.

The order is etcd's: parse the command line (``--help`` and ``--version`` end it); if a config
file is named (``--config-file`` or ``ETCD_CONFIG_FILE``) read only the file, else add the
``ETCD_*`` variables; then derive what etcd derives (the data directory and the initial
cluster from the name) and validate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, cast

from auth.errors import AuthError
from auth.tokens import TokenKind, TokenOptions, parse_token_options
from server.config.cmdline import parse_command_line
from server.config.configfile import load_config_file
from server.config.environment import CONFIG_FILE_VARIABLE, apply_environment, etcd_variables
from server.config.errors import ConfigError, ShowVersion
from server.config.flags import BY_NAME, DATA_DIR_SUFFIX, Disposition
from server.config.model import MAX_QUOTA_BYTES, Config
from server.config.tls import REFUSED_TLS_VERSIONS, sort_cipher_suites
from server.config.urls import URL, ClusterMember, parse_initial_cluster
from server.config.usage import usage_text


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Config, list[str]]:
    """Build the member's configuration from ``argv`` (without the program name) and
    ``environ``; return it with the warnings to log.

    Raise ``ShowHelp`` or ``ShowVersion`` when asked for those, ``ConfigError`` when the
    configuration is wrong (print its message and exit with status 2).
    """
    warnings: list[str] = []
    command_line = parse_command_line(argv, usage_text)
    if command_line.version:
        raise ShowVersion()
    config_file = command_line.config_file or environ.get(CONFIG_FILE_VARIABLE, "")
    if config_file:
        values = load_config_file(config_file)
        _warn_unused_with_file(command_line.values, environ, warnings)
    else:
        values = dict(command_line.values)
        apply_environment(values, environ, warnings)
    settings = _Settings(values, from_file=bool(config_file))
    config = settings.build(Path(config_file) if config_file else None, warnings)
    return config, warnings


def _warn_unused_with_file(
    flags: Mapping[str, object], environ: Mapping[str, str], warnings: list[str]
) -> None:
    if flags:
        names = ", ".join(f"--{name}" for name in flags)
        warnings.append(f"ignoring command-line flags {names}: a config file is given")
    variables = [key for key in etcd_variables(environ) if key != CONFIG_FILE_VARIABLE]
    if variables:
        warnings.append(
            f"ignoring environment variables {', '.join(variables)}: a config file is given"
        )


def _is_loopback(url: URL) -> bool:
    if url.is_unix or url.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(url.host).is_loopback
    except ValueError:
        return False


class _Settings:
    """Typed values by flag name, with etcd's defaults for the rest."""

    def __init__(self, values: dict[str, object], *, from_file: bool) -> None:
        self.values = values
        self.from_file = from_file

    def given(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> object:
        return self.values.get(name, BY_NAME[name].default)

    def text(self, name: str) -> str:
        return cast(str, self.get(name))

    def number(self, name: str) -> int:
        return cast(int, self.get(name))

    def seconds(self, name: str) -> float:
        return cast(float, self.get(name))

    def flag(self, name: str) -> bool:
        return cast(bool, self.get(name))

    def urls(self, name: str) -> tuple[URL, ...]:
        return cast(tuple[URL, ...], self.get(name))

    def names(self, name: str) -> tuple[str, ...]:
        return cast(tuple[str, ...], self.get(name))

    def path(self, name: str) -> Path | None:
        text = self.text(name)
        return Path(text) if text else None

    def build(self, config_file: Path | None, warnings: list[str]) -> Config:
        self._apply_dispositions(warnings)
        name = self.text("name")
        data_dir = Path(self.text("data-dir") or name + DATA_DIR_SUFFIX)
        advertise_peer = self.urls("initial-advertise-peer-urls")
        listen_client = self.urls("listen-client-urls")
        # etcd drops its default advertised URL once the listen URLs are chosen on the
        # command line (not in the config file).
        listen_only = self.given("listen-client-urls") and not self.given("advertise-client-urls")
        if listen_only and not self.from_file:
            raise ConfigError(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly"
            )
        log_level = self.text("log-level")
        if self.flag("debug"):
            warnings.append("--debug is deprecated: use --log-level=debug")
            log_level = "debug"
        config = Config(
            config_file=config_file,
            name=name,
            data_dir=data_dir,
            wal_dir=self.path("wal-dir"),
            # etcd replaces a zero snapshot count with its default.
            snapshot_count=self.number("snapshot-count")
            or cast(int, BY_NAME["snapshot-count"].default),
            heartbeat_interval=self.number("heartbeat-interval"),
            election_timeout=self.number("election-timeout"),
            listen_peer_urls=self.urls("listen-peer-urls"),
            listen_client_urls=listen_client,
            listen_client_http_urls=self.urls("listen-client-http-urls"),
            quota_backend_bytes=self.number("quota-backend-bytes"),
            max_txn_ops=self.number("max-txn-ops"),
            max_request_bytes=self.number("max-request-bytes"),
            max_concurrent_streams=self.number("max-concurrent-streams"),
            grpc_keepalive_min_time=self.seconds("grpc-keepalive-min-time"),
            grpc_keepalive_interval=self.seconds("grpc-keepalive-interval"),
            grpc_keepalive_timeout=self.seconds("grpc-keepalive-timeout"),
            enable_grpc_gateway=self.flag("enable-grpc-gateway"),
            initial_advertise_peer_urls=advertise_peer,
            initial_cluster=self._initial_cluster(name, advertise_peer),
            initial_cluster_state=cast(
                Literal["new", "existing"], self.text("initial-cluster-state")
            ),
            initial_cluster_token=self.text("initial-cluster-token"),
            advertise_client_urls=self.urls("advertise-client-urls"),
            strict_reconfig_check=self.flag("strict-reconfig-check"),
            pre_vote=self.flag("pre-vote"),
            auto_compaction_mode=cast(
                Literal["periodic", "revision"], self.text("auto-compaction-mode")
            ),
            auto_compaction_retention=self.text("auto-compaction-retention"),
            cert_file=self.path("cert-file"),
            key_file=self.path("key-file"),
            client_cert_file=self.path("client-cert-file"),
            client_key_file=self.path("client-key-file"),
            client_cert_auth=self.flag("client-cert-auth"),
            client_crl_file=self.path("client-crl-file"),
            client_cert_allowed_hostname=self.names("client-cert-allowed-hostname"),
            trusted_ca_file=self.path("trusted-ca-file"),
            auto_tls=self.flag("auto-tls"),
            peer_cert_file=self.path("peer-cert-file"),
            peer_key_file=self.path("peer-key-file"),
            peer_client_cert_file=self.path("peer-client-cert-file"),
            peer_client_key_file=self.path("peer-client-key-file"),
            peer_client_cert_auth=self.flag("peer-client-cert-auth"),
            peer_trusted_ca_file=self.path("peer-trusted-ca-file"),
            peer_cert_allowed_cn=self.names("peer-cert-allowed-cn"),
            peer_cert_allowed_hostname=self.names("peer-cert-allowed-hostname"),
            peer_auto_tls=self.flag("peer-auto-tls"),
            self_signed_cert_validity=self._cert_validity(),
            peer_crl_file=self.path("peer-crl-file"),
            cipher_suites=self._cipher_suites(warnings),
            tls_min_version=self._tls_version("tls-min-version"),
            tls_max_version=self._tls_version("tls-max-version"),
            auth_token=self._auth_token(warnings),
            bcrypt_cost=self.number("bcrypt-cost"),
            auth_token_ttl=self.number("auth-token-ttl"),
            enable_pprof=self.flag("enable-pprof"),
            listen_metrics_urls=self.urls("listen-metrics-urls"),
            logger="zap",
            log_outputs=self._log_outputs(warnings),
            log_level=log_level,
            experimental_initial_corrupt_check=self.flag("experimental-initial-corrupt-check"),
            experimental_corrupt_check_time=self.seconds("experimental-corrupt-check-time"),
            experimental_watch_progress_notify_interval=self.seconds(
                "experimental-watch-progress-notify-interval"
            ),
            experimental_warning_apply_duration=self.seconds("experimental-warning-apply-duration"),
            force_new_cluster=self.flag("force-new-cluster"),
            unsafe_no_fsync=self.flag("unsafe-no-fsync"),
            workers=self.number("workers"),
            auth_min_password_length=self.number("auth-min-password-length"),
            audit_log=self.path("audit-log"),
            audit_log_max_size=self.number("audit-log-max-size"),
        )
        self._warn_about(config, warnings)
        return config

    def _apply_dispositions(self, warnings: list[str]) -> None:
        for name, value in self.values.items():
            spec = BY_NAME[name]
            if spec.disposition is Disposition.IGNORED:
                warnings.append(
                    f"--{name} is accepted for etcd compatibility and ignored: {spec.note}"
                )
            elif spec.disposition is Disposition.LEGACY:
                warnings.append(f'flag "{name}" is no longer supported - ignoring')
            elif spec.disposition is Disposition.REFUSED and not spec.is_harmless(value):
                yet = " yet" if spec.planned else ""
                raise ConfigError(f"--{name} is not supported by Ward{yet}: {spec.note}")

    def _initial_cluster(
        self, name: str, advertise_peer: tuple[URL, ...]
    ) -> tuple[ClusterMember, ...]:
        if not self.given("initial-cluster"):
            # etcd: "default=http://localhost:2380", and name=advertised peer URLs when only
            # the name is given.
            return (ClusterMember(name, advertise_peer),)
        try:
            return parse_initial_cluster(self.text("initial-cluster"))
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def _cert_validity(self) -> int:
        years = self.number("self-signed-cert-validity")
        # etcd's config file reads 0 as the default of one year.
        return 1 if self.from_file and years == 0 else years

    def _cipher_suites(self, warnings: list[str]) -> tuple[str, ...]:
        names = self.names("cipher-suites")
        try:
            kept, weak = sort_cipher_suites(names)
        except ValueError as err:
            raise ConfigError(f"--cipher-suites: {err}") from None
        if weak:
            if not kept:
                raise ConfigError(
                    f"--cipher-suites lists only weak suites ({', '.join(weak)}): Ward enables"
                    " only forward-secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305)"
                )
            warnings.append(f"--cipher-suites: not enabling weak cipher suites {', '.join(weak)}")
        return kept

    def _tls_version(self, name: str) -> str:
        version = self.text(name)
        if version in REFUSED_TLS_VERSIONS:
            raise ConfigError(
                f"--{name}={version} is not supported by Ward: TLS 1.0 and 1.1 are deprecated"
                " (RFC 8996); use TLS1.2 or TLS1.3"
            )
        return version

    def _auth_token(self, warnings: list[str]) -> TokenOptions:
        text = self.text("auth-token")
        try:
            options = parse_token_options(text)
        except AuthError as err:
            raise ConfigError(
                f"--auth-token {text!r}: {err.message}; expected 'simple' or"
                " 'jwt,pub-key=PATH,priv-key=PATH,sign-method=METHOD[,ttl=DURATION]'"
            ) from None
        if options.unknown:
            warnings.append(f"--auth-token: ignoring unknown options {', '.join(options.unknown)}")
        if options.kind is TokenKind.SIMPLE:
            warnings.append(
                "--auth-token=simple: tokens are random strings valid only on the member that"
                " issued them, until it restarts; the default, jwt, signs tokens every member"
                " checks"
            )
        return options

    def _log_outputs(self, warnings: list[str]) -> tuple[str, ...]:
        outputs = self.names("log-outputs")
        if "default" in outputs and len(outputs) > 1:
            raise ConfigError("--log-outputs: 'default' cannot be combined with other outputs")
        result: list[str] = []
        for output in outputs:
            if output == "systemd/journal":
                warnings.append(
                    "--log-outputs: Ward does not write to journald directly; logging to"
                    " stderr (which systemd captures)"
                )
                output = "stderr"
            elif output == "default":
                output = "stderr"
            if output not in result:
                result.append(output)
        return tuple(result)

    def _warn_about(self, config: Config, warnings: list[str]) -> None:
        if config.wal_dir is not None:
            warnings.append(
                f"--wal-dir is ignored: Ward keeps its Raft log in the data directory"
                f" ({config.data_dir})"
            )
        if config.enable_pprof:
            warnings.append("--enable-pprof is ignored: Ward serves no Go profiling data")
        if self.get("logger") == "capnslog":
            warnings.append("--logger=capnslog is etcd 3.4's logger; Ward logs as with 'zap'")
        if config.quota_backend_bytes > MAX_QUOTA_BYTES:
            warnings.append(
                f"--quota-backend-bytes {config.quota_backend_bytes} exceeds the recommended"
                f" maximum {MAX_QUOTA_BYTES}"
            )
        if config.unsafe_no_fsync:
            warnings.append(
                "UNSAFE: --unsafe-no-fsync is set: writes are acknowledged without fsync; a crash"
                " or power loss can lose them and corrupt the cluster"
            )
        if config.force_new_cluster:
            warnings.append(
                "UNSAFE: --force-new-cluster is set: this member will discard the cluster's"
                " membership and start a new one-member cluster from its data"
            )
        self._warn_tls(config, warnings)

    def _warn_tls(self, config: Config, warnings: list[str]) -> None:
        for auto, prefix, cert, urls, what in (
            (config.auto_tls, "", config.cert_file, config.listen_client_urls, "client"),
            (config.peer_auto_tls, "peer-", config.peer_cert_file, config.listen_peer_urls, "peer"),
        ):
            # SECURITY 17: etcd's --auto-tls made self-signed certificates nobody verified;
            # Ward's come from its own CA in the data directory: nothing to warn about.
            if auto and cert is not None:
                warnings.append(f"ignoring --{prefix}auto-tls since --{prefix}cert-file is given")
            if cert is not None and not any(url.is_tls for url in urls):
                warnings.append(
                    f"--{prefix}cert-file is given but no {what} URL uses TLS (https or unixs):"
                    f" {what} traffic is not encrypted"
                )
            for url in urls:
                if not url.is_tls and not _is_loopback(url):
                    warnings.append(f"{what} traffic on {url} is not encrypted")
        for url in config.listen_client_http_urls + config.listen_metrics_urls:
            if not url.is_tls and not _is_loopback(url):
                warnings.append(f"HTTP traffic on {url} is not encrypted")
