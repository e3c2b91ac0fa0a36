"""etcd's YAML configuration file (``--config-file``).

Top-level keys are the flag names (``name``, ``data-dir``, ``listen-client-urls`` as a
comma-separated string, ``initial-cluster``, ...); the TLS flags sit in the
``client-transport-security`` and ``peer-transport-security`` mappings under shorter keys
(``cert-file``, ``key-file``, ``client-cert-auth``, ``trusted-ca-file``, ``auto-tls``, ...).
A key given as null keeps its default, as in etcd. Unlike etcd, an unknown key is an error: a
misspelt security setting must not pass silently.

Scalars are read as etcd's YAML library reads them into its typed fields: ``yes``/``no``/
``on``/``off`` are booleans only where a boolean is expected (``proxy: off`` is the string
"off"), and a duration is integer nanoseconds (Ward also takes ``5s``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from server.config.errors import ConfigError
from server.config.flags import BY_NAME, SECURITY_SECTIONS, YAML_KEYS, FlagSpec
from server.config.values import URLS


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader whose only implicit booleans are true/false (YAML 1.2), so that a string
    setting such as ``proxy: off`` stays a string; bool fields still take yes/no/on/off."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _read(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None


def _convert(path: str, key: str, spec: FlagSpec, raw: object, values: dict[str, object]) -> None:
    if raw is None:
        return
    if spec.kind is URLS and raw == "":
        # etcd keeps the default URLs when the file gives an empty string.
        return
    try:
        values[spec.name] = spec.kind.from_yaml(raw)
    except ValueError as err:
        raise ConfigError(f"config file {path}: {key}: {err}") from None


def load_config_file(path: str) -> dict[str, object]:
    """The settings of the file at ``path``: typed values by flag name.

    Raise ConfigError if the file cannot be read, is not YAML, has an unknown key or a value
    of the wrong type.
    """
    document = _read(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top level")
    values: dict[str, object] = {}
    for key, raw in document.items():
        if not isinstance(key, str):
            raise ConfigError(f"config file {path}: setting names must be strings, got {key!r}")
        section = SECURITY_SECTIONS.get(key)
        if section is not None:
            _load_section(path, key, raw, section, values)
            continue
        spec = YAML_KEYS.get(key)
        if spec is None:
            raise ConfigError(f"config file {path}: {_unknown_key_message(key)}")
        _convert(path, key, spec, raw, values)
    return values


def _load_section(
    path: str, key: str, raw: object, section: dict[str, str], values: dict[str, object]
) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: {key} must be a mapping")
    for sub_key, sub_raw in raw.items():
        flag = section.get(sub_key) if isinstance(sub_key, str) else None
        if flag is None:
            known = ", ".join(section)
            raise ConfigError(f"config file {path}: unknown key {key}.{sub_key} (known: {known})")
        _convert(path, f"{key}.{sub_key}", BY_NAME[flag], sub_raw, values)


def _unknown_key_message(key: str) -> str:
    for section_name, section in SECURITY_SECTIONS.items():
        for sub_key, flag in section.items():
            if key == flag:
                return f"unknown key {key}: it belongs in {section_name} as {sub_key}"
    if key in ("config-file", "version"):
        return f"{key} cannot be set in the config file"
    return f"unknown key {key}"
