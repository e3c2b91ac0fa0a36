"""``ETCD_*`` environment variables, read as etcd reads them (``flags.SetFlagsFromEnv``).

Every flag ``--some-flag`` may come from ``ETCD_SOME_FLAG``. A flag given on the command line
wins, and the variable it shadows earns a warning; so does an ``ETCD_`` variable that names no
flag. An empty variable counts as unset. Warnings name variables, never their values.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.config.cmdline import go_quote
from server.config.errors import ConfigError
from server.config.flags import FLAGS, Disposition, env_name

CONFIG_FILE_VARIABLE = env_name("config-file")
_VERSION_VARIABLE = env_name("version")
_PREFIX = "ETCD_"

_BY_VARIABLE = {
    spec.env_name: spec for spec in FLAGS if spec.disposition is not Disposition.CONTROL
}


def etcd_variables(environ: Mapping[str, str]) -> list[str]:
    """Names of the set ``ETCD_*`` variables, sorted."""
    return sorted(key for key, value in environ.items() if key.startswith(_PREFIX) and value)


def apply_environment(
    values: dict[str, object], environ: Mapping[str, str], warnings: list[str]
) -> None:
    """Fill ``values`` (command-line flags by name) from ``environ`` where a flag is not given.

    Raise ConfigError for a variable whose value the flag would not take.
    """
    for key in etcd_variables(environ):
        spec = _BY_VARIABLE.get(key)
        if key == CONFIG_FILE_VARIABLE:
            continue
        if key == _VERSION_VARIABLE:
            warnings.append(f"cannot set special environment variable {key}; ignoring it")
            continue
        if spec is None:
            warnings.append(f"unrecognized environment variable {key}")
            continue
        if spec.name in values:
            warnings.append(
                f"recognized environment variable {key}, but unused: shadowed by"
                f" corresponding flag --{spec.name}"
            )
            continue
        text = environ[key]
        try:
            values[spec.name] = spec.kind.from_text(text)
        except ValueError as err:
            raise ConfigError(f"invalid value {go_quote(text)} for {key}: {err}") from None
