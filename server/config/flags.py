"""Every flag of etcd 3.4/3.5 that Ward knows, with etcd's name, default and meaning, and what
Ward does with it.

One table drives the command line, the ``ETCD_*`` environment variables, the config file and
the help text, so a flag cannot be accepted in one place and unknown in another.

A flag is one of:

- ``WARD``: Ward implements it; it is a typed field of ``Config`` (its snake_case name).
- ``IGNORED``: harmless to ignore (tuning of etcd's own internals); accepted with a warning.
- ``REFUSED``: ignoring it would change what the cluster does or guarantees; a value other than
  the default is an error.
- ``LEGACY``: etcd's own list of long-gone flags it swallows silently (with a warning).
- ``CONTROL``: ``--config-file`` and ``--version``, which steer parsing itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from server.config.urls import URL
from server.config.values import (
    BOOL,
    DURATION,
    INT,
    LEGACY,
    STRING,
    STRINGS,
    UINT,
    UINT32,
    UINT32_MAX,
    URLS,
    ValueKind,
    choice,
)


class Disposition(enum.Enum):
    WARD = "ward"
    IGNORED = "ignored"
    REFUSED = "refused"
    LEGACY = "legacy"
    CONTROL = "control"


class Group(enum.StrEnum):
    """Sections of the help text, in etcd's order, then Ward's own."""

    MEMBER = "Member"
    CLUSTERING = "Clustering"
    SECURITY = "Security"
    AUTH = "Auth"
    MONITORING = "Profiling and Monitoring"
    LOGGING = "Logging"
    EXPERIMENTAL = "Experimental feature"
    UNSAFE = "Unsafe feature"
    WARD = "Ward"


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One flag. ``note`` says why an IGNORED or REFUSED flag is so; ``shown_default`` is the
    default as the help text prints it when the typed default does not say it well.
    ``allowed`` tells which values of a REFUSED flag are harmless (default: only the default).
    ``planned`` marks a refused feature Ward means to add ("not supported by Ward yet").
    """

    name: str
    kind: ValueKind
    default: object
    group: Group
    help: str
    disposition: Disposition = Disposition.WARD
    note: str = ""
    shown_default: str | None = None
    allowed: Callable[[object], bool] | None = None
    planned: bool = False

    @property
    def env_name(self) -> str:
        """The environment variable etcd reads this flag from: ``ETCD_`` + NAME_IN_CAPS."""
        return env_name(self.name)

    @property
    def field(self) -> str:
        """The ``Config`` field of a WARD flag."""
        return self.name.replace("-", "_")

    def is_harmless(self, value: object) -> bool:
        """Whether a REFUSED flag's value asks for nothing Ward lacks."""
        if self.allowed is not None:
            return self.allowed(value)
        return value == self.default


def env_name(flag: str) -> str:
    """``data-dir`` -> ``ETCD_DATA_DIR`` (etcd's flags.FlagToEnv)."""
    return "ETCD_" + flag.upper().replace("-", "_")


_W = Disposition.WARD
_I = Disposition.IGNORED
_R = Disposition.REFUSED

# Ward is TLS-first: where etcd defaults to http, Ward serves clients and peers on https with
# certificates from its own CA in the data directory (plaintext only on http:// URLs the
# operator writes).
DEFAULT_CLIENT_URL = URL("https", "localhost", 2379)
DEFAULT_PEER_URL = URL("https", "localhost", 2380)
DEFAULT_NAME = "default"
DATA_DIR_SUFFIX = ".ward"


# Positional order: name, kind, default, group, help, disposition.
_spec = FlagSpec


def _is_star(value: object) -> bool:
    return value in ((), ("*",))


_M, _C, _S, _A = Group.MEMBER, Group.CLUSTERING, Group.SECURITY, Group.AUTH
_MON, _L, _X, _U = Group.MONITORING, Group.LOGGING, Group.EXPERIMENTAL, Group.UNSAFE

_NO_BBOLT = "Ward stores its data in lmdb, not bbolt"
_NO_WAL_FILES = "Ward keeps its Raft log inside the lmdb data directory, not in WAL/snapshot files"
_NO_TRACING = "Ward has no OpenTelemetry tracing"
_OWN_COMPACTION = "Ward paces compaction itself"
_NO_DISCOVERY = "bootstrap the cluster statically with --initial-cluster"
_NO_PROXY = "Ward has no etcd v2 proxy; run a Ward member or a gRPC proxy instead"
_NO_V2 = "Ward serves only the etcd v3 API"

FLAGS: tuple[FlagSpec, ...] = (
    # --- parsing itself ---
    _spec(
        "config-file",
        STRING,
        "",
        _M,
        "Path to the server configuration file (YAML, etcd's keys). When given, all other"
        " command-line flags and environment variables are ignored.",
        Disposition.CONTROL,
    ),
    _spec("version", BOOL, False, _M, "Print the version and exit.", Disposition.CONTROL),
    # --- Member ---
    _spec("name", STRING, DEFAULT_NAME, _M, "Human-readable name for this member."),
    _spec(
        "data-dir",
        STRING,
        "",
        _M,
        "Path to the data directory.",
        shown_default="${name}" + DATA_DIR_SUFFIX,
    ),
    _spec(
        "wal-dir",
        STRING,
        "",
        _M,
        "Accepted for etcd compatibility; Ward keeps its Raft log in the data directory.",
    ),
    _spec(
        "snapshot-count",
        UINT,
        100000,
        _M,
        "Number of committed transactions to trigger a snapshot of the Raft log.",
    ),
    _spec("heartbeat-interval", UINT, 100, _M, "Time (in milliseconds) of a heartbeat interval."),
    _spec(
        "election-timeout",
        UINT,
        1000,
        _M,
        "Time (in milliseconds) for an election to time out; at least 5x --heartbeat-interval.",
    ),
    _spec(
        "initial-election-tick-advance",
        BOOL,
        True,
        _M,
        "Whether to fast-forward initial election ticks on boot.",
        _I,
        note="Ward's election timer is not tunable this way",
    ),
    _spec(
        "listen-peer-urls",
        URLS,
        (DEFAULT_PEER_URL,),
        _M,
        "List of URLs to listen on for peer traffic.",
    ),
    _spec(
        "listen-client-urls",
        URLS,
        (DEFAULT_CLIENT_URL,),
        _M,
        "List of URLs to listen on for client gRPC traffic (and HTTP, unless"
        " --listen-client-http-urls is given).",
    ),
    _spec(
        "listen-client-http-urls",
        URLS,
        (),
        _M,
        "List of URLs to listen on for HTTP-only client traffic; moves the HTTP services off"
        " --listen-client-urls.",
    ),
    _spec(
        "max-snapshots",
        UINT,
        5,
        _M,
        "Maximum number of snapshot files to retain.",
        _I,
        note=_NO_WAL_FILES,
    ),
    _spec(
        "max-wals", UINT, 5, _M, "Maximum number of WAL files to retain.", _I, note=_NO_WAL_FILES
    ),
    _spec(
        "quota-backend-bytes",
        INT,
        0,
        _M,
        "Raise an alarm when the database exceeds this many bytes (0 means the 2 GiB default).",
    ),
    _spec(
        "backend-bbolt-freelist-type",
        STRING,
        "map",
        _M,
        "Freelist type of etcd's bbolt backend.",
        _I,
        note=_NO_BBOLT,
    ),
    _spec(
        "experimental-backend-bbolt-freelist-type",
        STRING,
        "array",
        _M,
        "Freelist type of etcd's bbolt backend (etcd 3.4 name).",
        _I,
        note=_NO_BBOLT,
    ),
    _spec(
        "backend-batch-interval",
        DURATION,
        0.0,
        _M,
        "Longest time before committing the backend transaction.",
        _I,
        note="Ward commits once per batch of Raft work, before answering",
    ),
    _spec(
        "backend-batch-limit",
        INT,
        0,
        _M,
        "Most operations before committing the backend transaction.",
        _I,
        note="Ward commits once per batch of Raft work, before answering",
    ),
    _spec(
        "max-txn-ops",
        UINT,
        128,
        _M,
        "Maximum number of operations permitted in a transaction.",
    ),
    _spec(
        "max-request-bytes",
        UINT,
        1572864,
        _M,
        "Maximum client request size in bytes the server will accept.",
    ),
    _spec(
        "max-concurrent-streams",
        UINT32,
        UINT32_MAX,
        _M,
        "Maximum concurrent gRPC streams that each client connection can open.",
    ),
    _spec(
        "grpc-keepalive-min-time",
        DURATION,
        5.0,
        _M,
        "Minimum time a client should wait between pings to the server.",
    ),
    _spec(
        "grpc-keepalive-interval",
        DURATION,
        7200.0,
        _M,
        "How often the server pings an idle client connection (0 to disable).",
    ),
    _spec(
        "grpc-keepalive-timeout",
        DURATION,
        20.0,
        _M,
        "How long to wait for a ping reply before closing the connection (0 to disable).",
    ),
    _spec(
        "enable-grpc-gateway",
        BOOL,
        True,
        _M,
        "Serve the JSON/HTTP gateway to the gRPC API on the client URLs.",
    ),
    _spec(
        "socket-reuse-port",
        BOOL,
        False,
        _M,
        "Set SO_REUSEPORT on listeners.",
        _I,
        note="Ward manages its listening sockets itself (its serving processes share the port)",
    ),
    _spec(
        "socket-reuse-address",
        BOOL,
        False,
        _M,
        "Set SO_REUSEADDR on listeners.",
        _I,
        note="Ward manages its listening sockets itself",
    ),
    _spec(
        "raft-read-timeout",
        DURATION,
        5.0,
        _M,
        "Read timeout of etcd's rafthttp connections.",
        _I,
        note="Ward's peer transport is not rafthttp",
    ),
    _spec(
        "raft-write-timeout",
        DURATION,
        5.0,
        _M,
        "Write timeout of etcd's rafthttp connections.",
        _I,
        note="Ward's peer transport is not rafthttp",
    ),
    # --- Clustering ---
    _spec(
        "initial-advertise-peer-urls",
        URLS,
        (DEFAULT_PEER_URL,),
        _C,
        "List of this member's peer URLs to advertise to the rest of the cluster.",
    ),
    _spec(
        "initial-cluster",
        STRING,
        "",
        _C,
        "Initial cluster configuration for bootstrapping: name=peer-url,... (default: this"
        " member's name with its advertised peer URLs).",
        shown_default=f"{DEFAULT_NAME}={DEFAULT_PEER_URL}",
    ),
    _spec(
        "initial-cluster-state",
        choice("new", "existing"),
        "new",
        _C,
        "Initial cluster state ('new' or 'existing').",
    ),
    _spec(
        "initial-cluster-token",
        STRING,
        "etcd-cluster",
        _C,
        "Initial cluster token, so that separate clusters never mistake each other's members.",
    ),
    _spec(
        "advertise-client-urls",
        URLS,
        (DEFAULT_CLIENT_URL,),
        _C,
        "List of this member's client URLs to advertise to clients. Required when"
        " --listen-client-urls is given.",
    ),
    _spec(
        "discovery",
        STRING,
        "",
        _C,
        "Discovery URL used to bootstrap the cluster.",
        _R,
        note=_NO_DISCOVERY,
        planned=True,
    ),
    _spec(
        "discovery-fallback",
        choice("exit", "proxy"),
        "proxy",
        _C,
        "What to do when discovery fails.",
        _R,
        note=_NO_DISCOVERY,
        planned=True,
    ),
    _spec(
        "discovery-proxy",
        STRING,
        "",
        _C,
        "HTTP proxy for the discovery service.",
        _R,
        note=_NO_DISCOVERY,
        planned=True,
    ),
    _spec(
        "discovery-srv",
        STRING,
        "",
        _C,
        "DNS SRV domain used to bootstrap the cluster.",
        _R,
        note=_NO_DISCOVERY,
        planned=True,
    ),
    _spec(
        "discovery-srv-name",
        STRING,
        "",
        _C,
        "Suffix of the DNS SRV name queried when bootstrapping.",
        _R,
        note=_NO_DISCOVERY,
        planned=True,
    ),
    _spec(
        "strict-reconfig-check",
        BOOL,
        True,
        _C,
        "Reject reconfiguration requests that would cause quorum loss.",
    ),
    _spec(
        "pre-vote",
        BOOL,
        True,
        _C,
        "Run Raft's pre-vote phase before an election, so a rejoining member cannot disrupt"
        " the cluster.",
    ),
    _spec(
        "auto-compaction-retention",
        STRING,
        "0",
        _C,
        "Auto compaction retention: a duration (hours when unitless) for 'periodic', a"
        " revision count for 'revision'. 0 disables auto compaction.",
    ),
    _spec(
        "auto-compaction-mode",
        choice("periodic", "revision"),
        "periodic",
        _C,
        "How to read --auto-compaction-retention: 'periodic' or 'revision'.",
    ),
    _spec("enable-v2", BOOL, False, _C, "Accept etcd v2 client requests.", _R, note=_NO_V2),
    _spec(
        "experimental-enable-v2v3",
        STRING,
        "",
        _C,
        "Serve v2 requests through the v3 backend under a prefix.",
        _R,
        note=_NO_V2,
    ),
    _spec(
        "v2-deprecation",
        STRING,
        "not-yet",
        _C,
        "Phase of the v2 store deprecation.",
        _I,
        note="Ward has no v2 store",
    ),
    # --- Security ---
    _spec("cert-file", STRING, "", _S, "Path to the client server TLS cert file."),
    _spec("key-file", STRING, "", _S, "Path to the client server TLS key file."),
    _spec(
        "client-cert-file",
        STRING,
        "",
        _S,
        "Path to a client TLS cert file for this server's own client connections (default:"
        " --cert-file).",
    ),
    _spec(
        "client-key-file",
        STRING,
        "",
        _S,
        "Path to a client TLS key file for this server's own client connections (default:"
        " --key-file).",
    ),
    _spec(
        "client-cert-auth",
        BOOL,
        False,
        _S,
        "Require client certificates and take their CN as the auth user name (verified"
        " against --trusted-ca-file, or Ward's own CA when Ward issues the server"
        " certificate).",
    ),
    _spec("client-crl-file", STRING, "", _S, "Path to the client certificate revocation list."),
    _spec(
        "client-cert-allowed-hostname",
        STRINGS,
        (),
        _S,
        "Comma-separated SAN hostnames a client certificate must carry.",
    ),
    _spec(
        "trusted-ca-file",
        STRING,
        "",
        _S,
        "Path to the CA bundle that verifies clients; client certificates are then required"
        " (re-read when it changes).",
    ),
    _spec(
        "auto-tls",
        BOOL,
        False,
        _S,
        "Client TLS with a certificate from Ward's CA in <data-dir>/pki (what https:// client"
        " URLs get without --cert-file anyway).",
    ),
    _spec("peer-cert-file", STRING, "", _S, "Path to the peer server TLS cert file."),
    _spec("peer-key-file", STRING, "", _S, "Path to the peer server TLS key file."),
    _spec(
        "peer-client-cert-file",
        STRING,
        "",
        _S,
        "Path to the client cert used to dial peers (default: --peer-cert-file).",
    ),
    _spec(
        "peer-client-key-file",
        STRING,
        "",
        _S,
        "Path to the client key used to dial peers (default: --peer-key-file).",
    ),
    _spec(
        "peer-client-cert-auth",
        BOOL,
        False,
        _S,
        "Require and verify peer client certificates (against --peer-trusted-ca-file, or"
        " Ward's own CA).",
    ),
    _spec("peer-trusted-ca-file", STRING, "", _S, "Path to the CA file that verifies peers."),
    _spec(
        "peer-cert-allowed-cn",
        STRINGS,
        (),
        _S,
        "Comma-separated common names a peer client certificate must have.",
    ),
    _spec(
        "peer-cert-allowed-hostname",
        STRINGS,
        (),
        _S,
        "Comma-separated SAN hostnames a peer client certificate must carry.",
    ),
    _spec(
        "peer-auto-tls",
        BOOL,
        False,
        _S,
        "Peer TLS with a certificate from Ward's CA in <data-dir>/pki (what https:// peer"
        " URLs get without --peer-cert-file anyway).",
    ),
    _spec(
        "self-signed-cert-validity",
        UINT,
        1,
        _S,
        "Validity, in years, of the certificates Ward issues itself (--auto-tls, the"
        " default https:// URLs).",
    ),
    _spec("peer-crl-file", STRING, "", _S, "Path to the peer certificate revocation list."),
    _spec(
        "cipher-suites",
        STRINGS,
        (),
        _S,
        "Comma-separated TLS 1.2 cipher suites (Go names), in order of preference. Weak"
        " suites are dropped.",
    ),
    _spec(
        "tls-min-version",
        STRING,
        "TLS1.2",
        _S,
        "Minimum TLS version: TLS1.2 or TLS1.3.",
    ),
    _spec(
        "tls-max-version",
        STRING,
        "",
        _S,
        "Maximum TLS version: TLS1.2 or TLS1.3 (empty: the newest available).",
    ),
    _spec(
        "experimental-peer-skip-client-san-verification",
        BOOL,
        False,
        _S,
        "Skip verification of the SAN field of peer client certificates.",
        _I,
        note="Ward always verifies peer certificates",
    ),
    _spec(
        "cors",
        STRINGS,
        ("*",),
        _S,
        "Comma-separated origins allowed for CORS.",
        _R,
        note="Ward does not implement CORS origin lists; leave it at '*'",
        allowed=_is_star,
        shown_default="*",
    ),
    _spec(
        "host-whitelist",
        STRINGS,
        ("*",),
        _S,
        "Acceptable Host headers of HTTP requests.",
        _R,
        note="Ward does not implement a Host header whitelist; serve HTTP over TLS instead",
        allowed=_is_star,
        shown_default="*",
    ),
    # --- Auth ---
    # etcd defaults to 'simple'; Ward to signed JWTs (with the member's own key when none is
    # given), which every member and serving process can check.
    _spec(
        "auth-token",
        STRING,
        "jwt",
        _A,
        "Token type and options: 'jwt[,pub-key=PATH,priv-key=PATH,sign-method=ES256,ttl=5m]'"
        " (without keys, each member signs with its own, published to the others), or"
        " 'simple' (discouraged).",
    ),
    _spec(
        "bcrypt-cost",
        UINT,
        10,
        _A,
        "Password hashing cost (4 to 31), as etcd's bcrypt cost: Ward hashes with argon2id,"
        " 10 being OWASP's profile (19 MiB, 2 passes), each step doubling the work.",
    ),
    _spec(
        "auth-token-ttl",
        UINT,
        300,
        _A,
        "Lifetime in seconds of an auth token (a jwt ttl= option overrides it).",
    ),
    # --- Profiling and Monitoring ---
    _spec(
        "enable-pprof",
        BOOL,
        False,
        _MON,
        "Accepted for etcd compatibility; Ward serves no Go profiling data.",
    ),
    _spec(
        "metrics",
        choice("basic", "extensive"),
        "basic",
        _MON,
        "Level of detail of exported metrics.",
        _I,
        note="Ward exports one set of metrics",
    ),
    _spec(
        "listen-metrics-urls",
        URLS,
        (),
        _MON,
        "List of additional URLs to serve the metrics and health endpoints on.",
    ),
    _spec(
        "experimental-enable-distributed-tracing",
        BOOL,
        False,
        _MON,
        "Enable OpenTelemetry tracing.",
        _I,
        note=_NO_TRACING,
    ),
    _spec(
        "experimental-distributed-tracing-address",
        STRING,
        "localhost:4317",
        _MON,
        "OpenTelemetry collector address.",
        _I,
        note=_NO_TRACING,
    ),
    _spec(
        "experimental-distributed-tracing-service-name",
        STRING,
        "etcd",
        _MON,
        "OpenTelemetry service name.",
        _I,
        note=_NO_TRACING,
    ),
    _spec(
        "experimental-distributed-tracing-instance-id",
        STRING,
        "",
        _MON,
        "OpenTelemetry service instance ID.",
        _I,
        note=_NO_TRACING,
    ),
    _spec(
        "experimental-distributed-tracing-sampling-rate",
        INT,
        0,
        _MON,
        "Samples per million spans.",
        _I,
        note=_NO_TRACING,
    ),
    # --- Logging ---
    _spec(
        "logger",
        choice("zap", "capnslog"),
        "zap",
        _L,
        "Logger: 'zap' (structured). etcd 3.4's 'capnslog' is accepted and means 'zap'.",
    ),
    _spec(
        "log-outputs",
        STRINGS,
        ("default",),
        _L,
        "Comma-separated log outputs: 'stderr', 'stdout' or file paths ('default' is stderr).",
    ),
    _spec(
        "log-level",
        choice("debug", "info", "warn", "error", "panic", "fatal"),
        "info",
        _L,
        "Log level: debug, info, warn, error, panic, or fatal.",
    ),
    _spec(
        "debug",
        BOOL,
        False,
        _L,
        "Deprecated: the same as --log-level=debug.",
    ),
    _spec(
        "log-format",
        choice("json", "console"),
        "json",
        _L,
        "Log format.",
        _I,
        note="Ward chooses its log format itself",
    ),
    _spec(
        "log-package-levels",
        STRING,
        "",
        _L,
        "Per-package log levels (etcd 3.4).",
        _I,
        note="use --log-level",
    ),
    _spec(
        "enable-log-rotation",
        BOOL,
        False,
        _L,
        "Rotate a single log file output.",
        _I,
        note="rotate Ward's log files with the system's tools",
    ),
    _spec(
        "log-rotation-config-json",
        STRING,
        '{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}',
        _L,
        "Log rotation settings.",
        _I,
        note="rotate Ward's log files with the system's tools",
    ),
    # --- v2 proxy ---
    _spec(
        "proxy",
        choice("off", "readonly", "on"),
        "off",
        _C,
        "v2 proxy mode.",
        _R,
        note=_NO_PROXY,
    ),
    _spec("proxy-failure-wait", UINT, 5000, _C, "v2 proxy setting.", _R, note=_NO_PROXY),
    _spec("proxy-refresh-interval", UINT, 30000, _C, "v2 proxy setting.", _R, note=_NO_PROXY),
    _spec("proxy-dial-timeout", UINT, 1000, _C, "v2 proxy setting.", _R, note=_NO_PROXY),
    _spec("proxy-write-timeout", UINT, 5000, _C, "v2 proxy setting.", _R, note=_NO_PROXY),
    _spec("proxy-read-timeout", UINT, 0, _C, "v2 proxy setting.", _R, note=_NO_PROXY),
    # --- Experimental ---
    _spec(
        "experimental-initial-corrupt-check",
        BOOL,
        False,
        _X,
        "Check data against the other members before serving any client or peer traffic;"
        " refuse to start when it differs.",
    ),
    _spec(
        "experimental-corrupt-check-time",
        DURATION,
        0.0,
        _X,
        "Time between cluster corruption check passes, run by the leader; a member whose data"
        " differs gets the CORRUPT alarm (0 disables them).",
    ),
    _spec(
        "experimental-enable-lease-checkpoint",
        BOOL,
        False,
        _X,
        "Persist remaining lease TTLs through leader changes.",
        _I,
        note="Ward's lessor is not configurable this way",
    ),
    _spec(
        "experimental-enable-lease-checkpoint-persist",
        BOOL,
        False,
        _X,
        "Persist lease checkpoints.",
        _I,
        note="Ward's lessor is not configurable this way",
    ),
    _spec(
        "experimental-compaction-batch-limit",
        INT,
        1000,
        _X,
        "Most revisions deleted per compaction batch.",
        _I,
        note=_OWN_COMPACTION,
    ),
    _spec(
        "experimental-compaction-sleep-interval",
        DURATION,
        0.01,
        _X,
        "Sleep between compaction batches.",
        _I,
        note=_OWN_COMPACTION,
    ),
    _spec(
        "experimental-watch-progress-notify-interval",
        DURATION,
        600.0,
        _X,
        "Interval of periodic watch progress notifications.",
        _W,
    ),
    _spec(
        "experimental-warning-apply-duration",
        DURATION,
        0.1,
        _X,
        "Log a warning for each request that takes longer (applying an entry, serving a"
        " read-only range or txn, or any other unary call as a whole).",
    ),
    _spec(
        "experimental-warning-unary-request-duration",
        DURATION,
        0.3,
        _X,
        "Warn when a unary request takes longer.",
        _I,
        note="Ward logs slow unary calls past --experimental-warning-apply-duration",
    ),
    _spec(
        "experimental-downgrade-check-time",
        DURATION,
        5.0,
        _X,
        "Time between downgrade status checks.",
        _I,
        note="Ward has no cluster downgrade",
    ),
    _spec(
        "experimental-memory-mlock",
        BOOL,
        False,
        _X,
        "Lock etcd's memory pages in RAM.",
        _I,
        note=_NO_BBOLT,
    ),
    _spec(
        "experimental-txn-mode-write-with-shared-buffer",
        BOOL,
        True,
        _X,
        "Shared buffer for write transactions' read checks.",
        _I,
        note=_NO_BBOLT,
    ),
    _spec(
        "experimental-bootstrap-defrag-threshold-megabytes",
        UINT,
        0,
        _X,
        "Defragment at start when it frees this much.",
        _I,
        note=_NO_BBOLT,
    ),
    _spec(
        "experimental-max-learners",
        INT,
        1,
        _X,
        "Maximum number of learner members.",
        _I,
        note="Ward applies its own learner limit",
    ),
    _spec(
        "experimental-snapshot-catchup-entries",
        UINT,
        5000,
        _X,
        "Entries kept for slow followers after a Raft log compaction.",
        _I,
        note="Ward sizes its follower catch-up itself",
    ),
    _spec(
        "experimental-compact-hash-check-enabled",
        BOOL,
        False,
        _X,
        "Leader checks followers' compaction hashes.",
        _I,
        note="Ward does not run compaction hash checks",
    ),
    _spec(
        "experimental-compact-hash-check-time",
        DURATION,
        60.0,
        _X,
        "Time between compaction hash checks.",
        _I,
        note="Ward does not run compaction hash checks",
    ),
    _spec(
        "experimental-stop-grpc-service-on-defrag",
        BOOL,
        False,
        _X,
        "Report NOT_SERVING to gRPC health checks while defragmenting.",
        _I,
        note=_NO_BBOLT,
    ),
    _spec(
        "experimental-wait-cluster-ready-timeout",
        DURATION,
        5.0,
        _X,
        "How long to wait for the cluster to be ready at start.",
        _I,
        note="Ward waits for its cluster its own way",
    ),
    # --- Unsafe ---
    _spec(
        "force-new-cluster",
        BOOL,
        False,
        _U,
        "Force to create a new one-member cluster from this member's data.",
    ),
    _spec(
        "unsafe-no-fsync",
        BOOL,
        False,
        _U,
        "Disable fsync: unsafe, a crash will lose acknowledged writes.",
    ),
    # --- Ward ---
    _spec(
        "workers",
        UINT,
        0,
        Group.WARD,
        "Number of processes serving the client port (0: one per CPU).",
    ),
    _spec(
        "auth-min-password-length",
        UINT,
        8,
        Group.WARD,
        "Shortest password a user may be given, in characters (etcd has no minimum).",
    ),
    _spec(
        "audit-log",
        STRING,
        "",
        Group.WARD,
        "Path of the member's hash-chained audit log (JSON lines; off when empty). Its key is"
        " <data-dir>/member/audit.key; check a log with 'wardctl audit verify'.",
    ),
    _spec(
        "audit-log-max-size",
        UINT,
        100 * 1024 * 1024,
        Group.WARD,
        "Size in bytes past which the audit log is rotated to <path>.1 (0: never).",
    ),
    # etcd's list of long-removed flags it still swallows (flags.IgnoredFlag).
    *(
        _spec(name, LEGACY, None, _M, "", Disposition.LEGACY)
        for name in (
            "cluster-active-size",
            "cluster-remove-delay",
            "cluster-sync-interval",
            "config",
            "force",
            "max-result-buffer",
            "max-retry-attempts",
            "peer-heartbeat-interval",
            "peer-election-timeout",
            "retry-interval",
            "snapshot",
            "v",
            "vv",
        )
    ),
)

BY_NAME: dict[str, FlagSpec] = {spec.name: spec for spec in FLAGS}
"""Every known flag by name."""

WARD_FLAGS: tuple[FlagSpec, ...] = tuple(s for s in FLAGS if s.disposition is Disposition.WARD)
"""The flags that are ``Config`` fields (``debug`` folds into ``log_level``)."""

# The TLS flags live under two sections of etcd's config file, with shorter keys.
CLIENT_SECURITY_KEYS: dict[str, str] = {
    "cert-file": "cert-file",
    "key-file": "key-file",
    "client-cert-file": "client-cert-file",
    "client-key-file": "client-key-file",
    "client-cert-auth": "client-cert-auth",
    "trusted-ca-file": "trusted-ca-file",
    "auto-tls": "auto-tls",
    "crl-file": "client-crl-file",
    "allowed-hostname": "client-cert-allowed-hostname",
}
PEER_SECURITY_KEYS: dict[str, str] = {
    "cert-file": "peer-cert-file",
    "key-file": "peer-key-file",
    "client-cert-file": "peer-client-cert-file",
    "client-key-file": "peer-client-key-file",
    "client-cert-auth": "peer-client-cert-auth",
    "trusted-ca-file": "peer-trusted-ca-file",
    "auto-tls": "peer-auto-tls",
    "crl-file": "peer-crl-file",
    "allowed-cn": "peer-cert-allowed-cn",
    "allowed-hostname": "peer-cert-allowed-hostname",
    "skip-client-san-verification": "experimental-peer-skip-client-san-verification",
}
SECURITY_SECTIONS: dict[str, dict[str, str]] = {
    "client-transport-security": CLIENT_SECURITY_KEYS,
    "peer-transport-security": PEER_SECURITY_KEYS,
}

_IN_SECTIONS = frozenset(CLIENT_SECURITY_KEYS.values()) | frozenset(PEER_SECURITY_KEYS.values())

YAML_KEYS: dict[str, FlagSpec] = {
    spec.name: spec
    for spec in FLAGS
    if spec.disposition is not Disposition.CONTROL and spec.name not in _IN_SECTIONS
}
"""Top-level config-file keys: every flag's name, except the TLS flags of the two sections."""
