"""The credentials a local `ward` made for itself, found so that `wardctl` needs no TLS flags.

`ward` started without TLS flags serves mutual TLS with certificates from its own CA, kept in
`<data-dir>/pki`: `ca.crt`, and the admin client certificate `client-root.crt`/`.key` (CN
`root`). `wardctl` (and any program using `local_credentials`) looks for them in:

1. `$WARD_DATA_DIR/pki`, when `WARD_DATA_DIR` is set (an error if they are not there);
2. `./default.ward/pki`, the data directory `ward` uses by default in the current directory.

Explicit TLS material (`--cacert`/`--cert`/`--key`, or `ETCDCTL_CACERT`/`ETCDCTL_CERT`/
`ETCDCTL_KEY`) turns the search off, as does an `http://` endpoint for that endpoint (the
scheme decides). The key is only readable by the user the server runs as, like the data
directory itself.

    from ward import Client
    from ward.credentials import local_credentials

    with Client("127.0.0.1:2379", **local_credentials()) as client:
        client.put("greeting", "hello")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ward.errors import ClientConfigError

__all__ = [
    "DATA_DIR_VARIABLE",
    "DEFAULT_DATA_DIR",
    "LocalCredentials",
    "find_local_credentials",
    "local_credentials",
]

DATA_DIR_VARIABLE = "WARD_DATA_DIR"
DEFAULT_DATA_DIR = "default.ward"
_CA, _CERT, _KEY = "ca.crt", "client-root.crt", "client-root.key"


@dataclass(frozen=True, slots=True)
class LocalCredentials:
    """Paths of a local server's CA certificate and admin client certificate and key."""

    cacert: Path
    cert: Path
    key: Path

    def as_kwargs(self) -> dict[str, str]:
        """`cacert`, `cert` and `key` for `ward.Client`."""
        return {"cacert": str(self.cacert), "cert": str(self.cert), "key": str(self.key)}


def _in(data_dir: Path) -> LocalCredentials:
    pki = data_dir / "pki"
    return LocalCredentials(pki / _CA, pki / _CERT, pki / _KEY)


def _usable(found: LocalCredentials) -> bool:
    return all(os.access(p, os.R_OK) for p in (found.cacert, found.cert, found.key))


def find_local_credentials(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> LocalCredentials | None:
    """The local server's credentials, or None when there are none to find.

    Raise `ClientConfigError` when `WARD_DATA_DIR` names a directory without them: the user
    asked for that server, and falling back to plaintext would hide the mistake.
    """
    env = os.environ if environ is None else environ
    named = env.get(DATA_DIR_VARIABLE, "")
    if named:
        found = _in(Path(named))
        if not _usable(found):
            raise ClientConfigError(
                f"{DATA_DIR_VARIABLE}={named}: no readable {found.cacert.parent}/{{{_CA},"
                f" {_CERT}, {_KEY}}} (start ward with --data-dir {named} first, or run as the"
                " user it runs as)"
            )
        return found
    found = _in((cwd or Path.cwd()) / DEFAULT_DATA_DIR)
    return found if _usable(found) else None


def local_credentials(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str]:
    """Keyword arguments for `ward.Client` (empty when there is no local server's)."""
    found = find_local_credentials(environ, cwd)
    return {} if found is None else found.as_kwargs()
