"""``Config``: one typed, validated field for each etcd flag Ward implements, and Ward's own.

A ``Config`` checks itself when built, so ``dataclasses.replace(config, ...)`` cannot produce an
invalid one. Checks that need to know *how* a value was given (command line, environment or
file) live in ``server.config.build``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from auth.tokens import TokenKind, TokenOptions
from server.config.errors import ConfigError
from server.config.tls import OPENSSL_NAMES, TLS_VERSIONS, tls_version_rank
from server.config.urls import (
    URL,
    ClusterMember,
    check_advertise_urls,
    check_bind_urls,
    format_initial_cluster,
)
from server.config.values import UINT32_MAX, parse_go_duration

DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024
"""The backend quota when ``--quota-backend-bytes`` is 0 (etcd's DefaultQuotaBytes)."""

MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024
"""etcd warns above this quota (its MaxQuotaBytes); so does Ward."""

MAX_ELECTION_TIMEOUT_MS = 50000
"""etcd's ceiling on ``--election-timeout``."""

MAX_WORKERS = 256

LOG_LEVELS = ("debug", "info", "warn", "error", "panic", "fatal")


def parse_compaction_retention(mode: str, retention: str) -> float | int:
    """``--auto-compaction-retention`` under ``mode``: seconds (periodic) or revisions.

    Periodic: a Go duration, or a whole number of hours. Revision: a whole number of
    revisions. 0 means auto compaction is off. Raise ValueError otherwise.
    """
    text = retention.strip()
    if mode == "revision":
        if not text.isascii() or not text.isdigit():
            raise ValueError(
                f"--auto-compaction-retention {retention!r} must be a number of revisions"
                " in revision mode"
            )
        return int(text)
    if mode != "periodic":
        raise ValueError(f"unknown auto-compaction-mode {mode!r}")
    if text.isascii() and text.isdigit():
        return int(text) * 3600.0
    try:
        return parse_go_duration(text)
    except ValueError as err:
        raise ValueError(
            f"--auto-compaction-retention {retention!r} is neither hours nor a duration: {err}"
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A member's configuration. Times in milliseconds where etcd's flag is in milliseconds
    (``heartbeat_interval``, ``election_timeout``); other durations are float seconds. File
    paths are None when not given. URLs are ``URL`` values, in the order given, without repeats.
    """

    config_file: Path | None
    # Member
    name: str
    data_dir: Path
    wal_dir: Path | None
    snapshot_count: int
    heartbeat_interval: int
    election_timeout: int
    listen_peer_urls: tuple[URL, ...]
    listen_client_urls: tuple[URL, ...]
    listen_client_http_urls: tuple[URL, ...]
    quota_backend_bytes: int
    max_txn_ops: int
    max_request_bytes: int
    max_concurrent_streams: int
    grpc_keepalive_min_time: float
    grpc_keepalive_interval: float
    grpc_keepalive_timeout: float
    enable_grpc_gateway: bool
    # Clustering
    initial_advertise_peer_urls: tuple[URL, ...]
    initial_cluster: tuple[ClusterMember, ...]
    initial_cluster_state: Literal["new", "existing"]
    initial_cluster_token: str
    advertise_client_urls: tuple[URL, ...]
    strict_reconfig_check: bool
    pre_vote: bool
    auto_compaction_mode: Literal["periodic", "revision"]
    auto_compaction_retention: str
    # Security
    cert_file: Path | None
    key_file: Path | None
    client_cert_file: Path | None
    client_key_file: Path | None
    client_cert_auth: bool
    client_crl_file: Path | None
    client_cert_allowed_hostname: tuple[str, ...]
    trusted_ca_file: Path | None
    auto_tls: bool
    peer_cert_file: Path | None
    peer_key_file: Path | None
    peer_client_cert_file: Path | None
    peer_client_key_file: Path | None
    peer_client_cert_auth: bool
    peer_trusted_ca_file: Path | None
    peer_cert_allowed_cn: tuple[str, ...]
    peer_cert_allowed_hostname: tuple[str, ...]
    peer_auto_tls: bool
    self_signed_cert_validity: int
    peer_crl_file: Path | None
    cipher_suites: tuple[str, ...]
    tls_min_version: str
    tls_max_version: str
    # Auth
    auth_token: TokenOptions
    bcrypt_cost: int
    auth_token_ttl: int
    # Profiling and monitoring
    enable_pprof: bool
    listen_metrics_urls: tuple[URL, ...]
    # Logging
    logger: str
    log_outputs: tuple[str, ...]
    log_level: str
    # Experimental and unsafe
    experimental_initial_corrupt_check: bool
    experimental_corrupt_check_time: float
    experimental_watch_progress_notify_interval: float
    experimental_warning_apply_duration: float
    force_new_cluster: bool
    unsafe_no_fsync: bool
    # Ward
    workers: int
    auth_min_password_length: int = 8
    audit_log: Path | None = None
    audit_log_max_size: int = 100 * 1024 * 1024

    def __post_init__(self) -> None:
        try:
            self._check_member()
            self._check_urls()
            self._check_cluster()
            self._check_tls()
            self._check_auth()
            self._check_logging()
        except ValueError as err:
            raise ConfigError(str(err)) from None

    # --- derived values ---

    @property
    def quota_bytes(self) -> int:
        """The effective backend quota in bytes (2 GiB when ``quota_backend_bytes`` is 0)."""
        return self.quota_backend_bytes or DEFAULT_QUOTA_BYTES

    @property
    def election_ticks(self) -> int:
        """Heartbeats per election timeout (one Raft tick per heartbeat, as in etcd)."""
        return self.election_timeout // self.heartbeat_interval

    @property
    def effective_workers(self) -> int:
        """Serving processes to run: ``workers``, or the CPU count when it is 0."""
        return self.workers or os.cpu_count() or 1

    @property
    def is_new_cluster(self) -> bool:
        """Whether this member bootstraps a new cluster (``--initial-cluster-state=new``)."""
        return self.initial_cluster_state == "new"

    @property
    def initial_cluster_map(self) -> dict[str, tuple[URL, ...]]:
        """``initial_cluster`` as member name -> peer URLs."""
        return {member.name: member.peer_urls for member in self.initial_cluster}

    @property
    def auto_compaction_period(self) -> float:
        """Seconds of history periodic auto compaction keeps; 0 when off or in revision mode."""
        if self.auto_compaction_mode != "periodic":
            return 0.0
        return float(parse_compaction_retention("periodic", self.auto_compaction_retention))

    @property
    def auto_compaction_revisions(self) -> int:
        """Revisions revision-mode auto compaction keeps; 0 when off or in periodic mode."""
        if self.auto_compaction_mode != "revision":
            return 0
        return int(parse_compaction_retention("revision", self.auto_compaction_retention))

    @property
    def client_tls(self) -> bool:
        """Whether any client listener (gRPC or HTTP) serves TLS."""
        return any(url.is_tls for url in self.listen_client_urls + self.listen_client_http_urls)

    @property
    def peer_tls(self) -> bool:
        """Whether the peer listeners serve TLS."""
        return any(url.is_tls for url in self.listen_peer_urls)

    @property
    def openssl_cipher_suites(self) -> tuple[str, ...]:
        """``cipher_suites`` in OpenSSL's names (for ``ssl.SSLContext.set_ciphers``)."""
        return tuple(OPENSSL_NAMES[name] for name in self.cipher_suites)

    # --- checks ---

    def _check_member(self) -> None:
        if not self.name:
            raise ValueError("--name must not be empty")
        if not str(self.data_dir):
            raise ValueError("--data-dir must not be empty")
        if self.snapshot_count <= 0:
            raise ValueError("--snapshot-count must be > 0")
        if self.heartbeat_interval <= 0:
            raise ValueError(
                f"--heartbeat-interval must be >0 (set to {self.heartbeat_interval}ms)"
            )
        if self.election_timeout <= 0:
            raise ValueError(f"--election-timeout must be >0 (set to {self.election_timeout}ms)")
        if 5 * self.heartbeat_interval > self.election_timeout:
            raise ValueError(
                f"--election-timeout[{self.election_timeout}ms] should be at least as 5 times as"
                f" --heartbeat-interval[{self.heartbeat_interval}ms]"
            )
        if self.election_timeout > MAX_ELECTION_TIMEOUT_MS:
            raise ValueError(
                f"--election-timeout[{self.election_timeout}ms] is too long, and should be set"
                f" less than {MAX_ELECTION_TIMEOUT_MS}ms"
            )
        if self.quota_backend_bytes < 0:
            raise ValueError(
                "--quota-backend-bytes must not be negative: Ward always enforces a quota"
                " (0 means the 2 GiB default)"
            )
        if self.max_txn_ops <= 0:
            raise ValueError("--max-txn-ops must be > 0")
        if self.max_request_bytes <= 0:
            raise ValueError("--max-request-bytes must be > 0")
        if not 0 < self.max_concurrent_streams <= UINT32_MAX:
            raise ValueError(f"--max-concurrent-streams must be between 1 and {UINT32_MAX}")
        for flag, seconds in (
            ("grpc-keepalive-min-time", self.grpc_keepalive_min_time),
            ("grpc-keepalive-interval", self.grpc_keepalive_interval),
            ("grpc-keepalive-timeout", self.grpc_keepalive_timeout),
            ("experimental-corrupt-check-time", self.experimental_corrupt_check_time),
            (
                "experimental-watch-progress-notify-interval",
                self.experimental_watch_progress_notify_interval,
            ),
            ("experimental-warning-apply-duration", self.experimental_warning_apply_duration),
        ):
            if seconds < 0:
                raise ValueError(f"--{flag} must not be negative")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"--workers must be between 0 (one per CPU) and {MAX_WORKERS}")

    def _check_urls(self) -> None:
        for flag, urls in (
            ("listen-peer-urls", self.listen_peer_urls),
            ("listen-client-urls", self.listen_client_urls),
            ("initial-advertise-peer-urls", self.initial_advertise_peer_urls),
            ("advertise-client-urls", self.advertise_client_urls),
        ):
            if not urls:
                raise ValueError(f"--{flag} must list at least one URL")
        check_bind_urls("listen-peer-urls", self.listen_peer_urls)
        check_bind_urls("listen-client-urls", self.listen_client_urls)
        check_bind_urls("listen-client-http-urls", self.listen_client_http_urls)
        check_bind_urls("listen-metrics-urls", self.listen_metrics_urls)
        check_advertise_urls("initial-advertise-peer-urls", self.initial_advertise_peer_urls)
        check_advertise_urls("advertise-client-urls", self.advertise_client_urls)

    def _check_cluster(self) -> None:
        if self.initial_cluster_state not in ("new", "existing"):
            raise ValueError(f"unexpected --initial-cluster-state {self.initial_cluster_state!r}")
        if not self.initial_cluster:
            raise ValueError(
                "--initial-cluster is empty: list every member as name=peer-url"
                " (Ward does not support discovery yet)"
            )
        cluster = format_initial_cluster(self.initial_cluster)
        urls = self.initial_cluster_map.get(self.name)
        if urls is None:
            raise ValueError(
                f"couldn't find local name {self.name!r} in the initial cluster configuration"
                f" (--initial-cluster={cluster})"
            )
        # etcd also resolves host names before comparing; Ward compares the URLs as written.
        advertised = {str(url) for url in self.initial_advertise_peer_urls}
        listed = {str(url) for url in urls}
        if listed - advertised:
            missing = ",".join(f"{self.name}={url}" for url in sorted(listed - advertised))
            raise ValueError(
                f"--initial-cluster has {missing} but missing from"
                f" --initial-advertise-peer-urls={','.join(sorted(advertised))}"
            )
        if advertised - listed:
            missing = ",".join(sorted(advertised - listed))
            mine = ",".join(f"{self.name}={url}" for url in sorted(listed))
            raise ValueError(
                f"--initial-advertise-peer-urls has {missing} but missing from"
                f" --initial-cluster={mine}"
            )
        if self.auto_compaction_mode not in ("periodic", "revision"):
            raise ValueError(f"unknown auto-compaction-mode {self.auto_compaction_mode!r}")
        parse_compaction_retention(self.auto_compaction_mode, self.auto_compaction_retention)

    def _check_tls(self) -> None:
        for prefix, cert, key, client_cert, client_key in (
            ("", self.cert_file, self.key_file, self.client_cert_file, self.client_key_file),
            (
                "peer-",
                self.peer_cert_file,
                self.peer_key_file,
                self.peer_client_cert_file,
                self.peer_client_key_file,
            ),
        ):
            if (cert is None) != (key is None):
                raise ValueError(
                    f"--{prefix}cert-file and --{prefix}key-file must be given together"
                )
            if (client_cert is None) != (client_key is None):
                raise ValueError(
                    f"--{prefix}client-cert-file and --{prefix}client-key-file must be given"
                    " together"
                )
        # Without a CA, "verify client certificates" would trust every public CA (SECURITY 17).
        # When Ward issues the server certificate itself, its own CA is the trusted one; an
        # https:// URL without --cert-file gets a certificate from that CA (server.tls).
        if self.client_cert_auth and self.trusted_ca_file is None and self.cert_file is not None:
            raise ValueError(
                "--client-cert-auth requires --trusted-ca-file when --cert-file is given"
            )
        if (
            self.peer_client_cert_auth
            and self.peer_trusted_ca_file is None
            and self.peer_cert_file is not None
        ):
            raise ValueError(
                "--peer-client-cert-auth requires --peer-trusted-ca-file when --peer-cert-file"
                " is given"
            )
        if self.self_signed_cert_validity < 1:
            raise ValueError("--self-signed-cert-validity must be at least 1 (year)")
        for flag, names in (
            ("client-cert-allowed-hostname", self.client_cert_allowed_hostname),
            ("peer-cert-allowed-cn", self.peer_cert_allowed_cn),
            ("peer-cert-allowed-hostname", self.peer_cert_allowed_hostname),
        ):
            if any(not name for name in names):
                raise ValueError(f"--{flag} must not contain empty names")
        unknown = [name for name in self.cipher_suites if name not in OPENSSL_NAMES]
        if unknown:
            raise ValueError(f"unexpected TLS cipher suite {unknown[0]!r}")
        if self.tls_min_version not in TLS_VERSIONS:
            raise ValueError(f"--tls-min-version {self.tls_min_version!r}: use TLS1.2 or TLS1.3")
        if self.tls_max_version and self.tls_max_version not in TLS_VERSIONS:
            raise ValueError(f"--tls-max-version {self.tls_max_version!r}: use TLS1.2 or TLS1.3")
        if self.tls_max_version and tls_version_rank(self.tls_min_version) > tls_version_rank(
            self.tls_max_version
        ):
            raise ValueError(
                f"min version ({self.tls_min_version}) is greater than max version"
                f" ({self.tls_max_version})"
            )
        if self.tls_min_version == "TLS1.3" and self.cipher_suites:
            raise ValueError("cipher suites cannot be configured when only TLS1.3 is enabled")

    def _check_auth(self) -> None:
        token = self.auth_token
        if token.kind is TokenKind.JWT:
            if token.sign_method.is_hmac and token.priv_key_path is None:
                raise ValueError(
                    f"--auth-token: sign-method {token.sign_method} needs priv-key (the secret)"
                )
            if token.ttl is not None and token.ttl <= 0:
                raise ValueError("--auth-token: jwt ttl must be positive")
        if self.auth_token_ttl <= 0:
            raise ValueError("--auth-token-ttl must be > 0")
        if not 4 <= self.bcrypt_cost <= 31:
            raise ValueError("--bcrypt-cost must be between 4 and 31")

    def _check_logging(self) -> None:
        if self.logger not in ("zap", "capnslog"):
            raise ValueError(f"unknown --logger {self.logger!r}: use 'zap'")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(
                f"--log-level {self.log_level!r}: only supports debug, info, warn, error,"
                " panic, or fatal"
            )
        if not self.log_outputs or any(not output for output in self.log_outputs):
            raise ValueError("--log-outputs must name at least one output")
