"""Ward's configuration: etcd 3.4/3.5's server flags, ``ETCD_*`` variables and config file.

``parse_config(argv, environ)`` returns a validated ``Config`` and the warnings to log, or
raises ``ShowHelp``/``ShowVersion`` (print and exit 0) or ``ConfigError`` (print its message to
stderr, and the short usage if ``show_usage``; exit with status 2).

Modules: ``flags`` (the table of every flag and what Ward does with it), ``cmdline`` (Go's
flag syntax), ``environment``, ``configfile`` (YAML), ``values`` (Go's value syntax), ``urls``,
``tls``, ``model`` (``Config``), ``build`` (putting it together), ``usage`` (``--help``).
"""

from auth.tokens import TokenKind, TokenOptions
from server.config.build import parse_config
from server.config.errors import ConfigError, ShowHelp, ShowVersion
from server.config.model import DEFAULT_QUOTA_BYTES, Config, parse_compaction_retention
from server.config.urls import URL, ClusterMember, parse_initial_cluster, parse_url
from server.config.usage import USAGE_LINE, usage_text

__all__ = [
    "DEFAULT_QUOTA_BYTES",
    "URL",
    "USAGE_LINE",
    "ClusterMember",
    "Config",
    "ConfigError",
    "ShowHelp",
    "ShowVersion",
    "TokenKind",
    "TokenOptions",
    "parse_compaction_retention",
    "parse_config",
    "parse_initial_cluster",
    "parse_url",
    "usage_text",
]
