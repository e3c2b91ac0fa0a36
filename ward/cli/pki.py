"""``wardctl pki``: Ward's own PKI from the command line, so nobody needs cfssl or openssl.

Every command is scriptable: it exits 0 when it did what was asked or found it already done
(printing ``... unchanged``), and otherwise prints one ``Error: ...`` line on stderr and exits 1.
``--json`` prints a machine-readable result on stdout instead of text.

The lead wires it into ``wardctl`` with :func:`add_pki_parser` and :func:`run_pki`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pki import (
    DEFAULT_CA_DAYS,
    DEFAULT_CRL_DAYS,
    DEFAULT_INTERMEDIATE_DAYS,
    DEFAULT_LEAF_DAYS,
    KeyType,
    PKIError,
    PKIStore,
    Profile,
    inspect_path,
    parse_serial,
)
from pki.crl import parse_reason
from pki.store import DEFAULT_CA_COMMON_NAME, DEFAULT_INTERMEDIATE_COMMON_NAME

DIR_ENV = "WARD_PKI_DIR"
DEFAULT_DIR = "ward-pki"
EXIT_OK = 0
EXIT_ERROR = 1

_KEY_TYPES = [k.value for k in KeyType]
_PROFILES = [p.value for p in Profile]


def add_pki_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``pki`` and its subcommands on wardctl's ``subparsers``."""
    pki = subparsers.add_parser(
        "pki",
        help="create and inspect CAs and certificates",
        description="Ward's PKI: CAs, server/client/peer certificates, CSRs, renewal, CRLs.",
    )
    commands = pki.add_subparsers(dest="pki_command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"PKI directory (default: ${DIR_ENV} or ./{DEFAULT_DIR})",
    )
    common.add_argument("--json", action="store_true", help="print a JSON result")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        return parser

    init_ca = command("init-ca", "create the root CA (ca.crt, ca.key)")
    init_ca.add_argument("--cn", default=DEFAULT_CA_COMMON_NAME, help="common name of the CA")
    _add_key_type(init_ca)
    init_ca.add_argument("--days", type=int, default=DEFAULT_CA_DAYS, help="validity in days")
    init_ca.add_argument(
        "--path-length", type=int, default=1, help="intermediate CAs allowed below it"
    )
    _add_force(init_ca, "replace an existing CA (everything it signed stops being trusted)")

    intermediate = command("intermediate", "create an intermediate CA that signs leaves")
    intermediate.add_argument("--cn", default=DEFAULT_INTERMEDIATE_COMMON_NAME)
    _add_key_type(intermediate)
    intermediate.add_argument("--days", type=int, default=DEFAULT_INTERMEDIATE_DAYS)
    intermediate.add_argument("--path-length", type=int, default=0)
    intermediate.add_argument(
        "--parent", type=Path, help="PKI directory of the root CA (default: --dir)"
    )
    _add_force(intermediate, "replace an existing intermediate CA")

    issue = command("issue", "issue a certificate and key (<name>.crt, <name>.key)")
    issue.add_argument("profile", choices=_PROFILES)
    issue.add_argument("name", help="file name; also the common name unless --cn")
    _add_subject(issue)
    issue.add_argument("--days", type=int, default=DEFAULT_LEAF_DAYS)
    _add_key_type(issue)
    _add_force(issue, "replace an existing certificate and key of that name")

    sign = command("sign-csr", "sign a CSR made elsewhere")
    sign.add_argument("csr", help="CSR file (PEM or DER), or - for stdin")
    sign.add_argument("--profile", choices=_PROFILES, required=True)
    sign.add_argument("--out", type=Path, required=True, help="certificate file to write")
    sign.add_argument("--name", help="name recorded in the index (default: --out's stem)")
    _add_subject(sign)
    sign.add_argument("--days", type=int, default=DEFAULT_LEAF_DAYS)
    _add_force(sign, "replace an existing --out file")

    renew = command("renew", "reissue a certificate with a new validity")
    renew.add_argument("name")
    renew.add_argument("--rekey", action="store_true", help="generate a new key too")
    _add_key_type(renew)
    renew.add_argument("--days", type=int, default=DEFAULT_LEAF_DAYS)

    revoke = command("revoke", "revoke a certificate and publish the CRL")
    revoke.add_argument("name", nargs="?", help="certificate name")
    revoke.add_argument("--serial", help="hex serial number instead of a name")
    revoke.add_argument("--reason", help="RFC 5280 reason, e.g. keyCompromise, superseded")
    revoke.add_argument("--crl-days", type=int, default=DEFAULT_CRL_DAYS)

    crl = command("crl", "publish a fresh CRL (crl.pem)")
    crl.add_argument("--days", type=int, default=DEFAULT_CRL_DAYS, help="until next update")

    show = command("show", "inspect a certificate file or a PKI directory")
    show.add_argument("path", nargs="?", type=Path, help="file or directory (default: --dir)")
    show.add_argument(
        "--ca", action="append", type=Path, default=[], help="trusted CA file (repeatable)"
    )


def _add_key_type(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-type", choices=_KEY_TYPES, help="key type of a new key (default: ecdsa-p256)"
    )


def _add_force(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--force", action="store_true", help=help_text)


def _add_subject(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dns", action="append", default=[], help="DNS SAN (repeatable or comma-separated)"
    )
    parser.add_argument(
        "--ip", action="append", default=[], help="IP SAN (repeatable or comma-separated)"
    )
    parser.add_argument("--cn", help="common name")


def _split(values: Sequence[str]) -> list[str]:
    """``--dns a,b --dns c`` -> ``[a, b, c]``; an empty item is kept so it is reported."""
    return [item for value in values for item in value.split(",")]


def _key_type(args: argparse.Namespace) -> KeyType | None:
    return None if args.key_type is None else KeyType.parse(args.key_type)


def _directory(args: argparse.Namespace) -> Path:
    if args.dir is not None:
        return Path(args.dir)
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


@dataclass(frozen=True, slots=True)
class _Printable:
    """What a command prints: text for people, a dict for ``--json``; ``error`` when not ok."""

    text: str
    data: dict[str, Any]
    ok: bool = True
    error: str = ""


def _init_ca(store: PKIStore, args: argparse.Namespace) -> _Printable:
    result = store.init_ca(
        common_name=args.cn,
        key_type=_key_type(args),
        days=args.days,
        path_length=args.path_length,
        force=args.force,
    )
    return _Printable(result.to_text(), result.to_dict())


def _intermediate(store: PKIStore, args: argparse.Namespace) -> _Printable:
    result = store.init_intermediate(
        common_name=args.cn,
        key_type=_key_type(args),
        days=args.days,
        path_length=args.path_length,
        parent=args.parent,
        force=args.force,
    )
    return _Printable(result.to_text(), result.to_dict())


def _warn_ed25519_leaf(args: argparse.Namespace) -> None:
    if args.key_type == KeyType.ED25519.value:
        # gRPC's TLS (BoringSSL) offers no Ed25519 signatures: such a certificate works with
        # etcd but cannot complete a handshake with Ward. An Ed25519 CA is fine.
        print(
            "warning: Ward's gRPC TLS cannot use Ed25519 certificates (etcd can);"
            " use ecdsa-p256 or rsa-* for certificates Ward serves or accepts",
            file=sys.stderr,
        )


def _issue(store: PKIStore, args: argparse.Namespace) -> _Printable:
    _warn_ed25519_leaf(args)
    result = store.issue(
        Profile.parse(args.profile),
        args.name,
        dns=_split(args.dns),
        ips=_split(args.ip),
        common_name=args.cn,
        days=args.days,
        key_type=_key_type(args),
        force=args.force,
    )
    return _Printable(result.to_text(), result.to_dict())


def _sign_csr(store: PKIStore, args: argparse.Namespace) -> _Printable:
    if args.csr == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(args.csr).read_bytes()
        except OSError as error:
            raise PKIError(f"cannot read CSR {args.csr}: {error.strerror}") from error
    result = store.sign_csr(
        data,
        profile=Profile.parse(args.profile),
        out=args.out,
        name=args.name,
        common_name=args.cn,
        dns=_split(args.dns),
        ips=_split(args.ip),
        days=args.days,
        force=args.force,
    )
    return _Printable(result.to_text(), result.to_dict())


def _renew(store: PKIStore, args: argparse.Namespace) -> _Printable:
    _warn_ed25519_leaf(args)
    result = store.renew(args.name, rekey=args.rekey, key_type=_key_type(args), days=args.days)
    return _Printable(result.to_text(), result.to_dict())


def _revoke(store: PKIStore, args: argparse.Namespace) -> _Printable:
    result = store.revoke(
        name=args.name,
        serial=None if args.serial is None else parse_serial(args.serial),
        reason=None if args.reason is None else parse_reason(args.reason),
        crl_days=args.crl_days,
    )
    return _Printable(result.to_text(), result.to_dict())


def _crl(store: PKIStore, args: argparse.Namespace) -> _Printable:
    result = store.publish_crl(days=args.days)
    return _Printable(result.to_text(), result.to_dict())


def _show(store: PKIStore, args: argparse.Namespace) -> _Printable:
    report = inspect_path(args.path or store.directory, ca_files=args.ca)
    problems = report.problems
    error = ""
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        error = f"{problems[0]}{more}"
    return _Printable(report.to_text(), report.to_dict(), ok=report.ok, error=error)


_COMMANDS: dict[str, Callable[[PKIStore, argparse.Namespace], _Printable]] = {
    "init-ca": _init_ca,
    "intermediate": _intermediate,
    "issue": _issue,
    "sign-csr": _sign_csr,
    "renew": _renew,
    "revoke": _revoke,
    "crl": _crl,
    "show": _show,
}


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def run_pki(args: argparse.Namespace) -> int:
    """Run the ``pki`` subcommand parsed into ``args``; returns the process exit code."""
    handler = _COMMANDS[args.pki_command]
    try:
        output = handler(PKIStore(_directory(args)), args)
    except PKIError as error:
        print(f"Error: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"Error: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(output.data, indent=2))
    else:
        print(output.text)
    if not output.ok:
        print(f"Error: {_one_line(output.error)}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ward.cli.pki ...``: the pki commands without the rest of wardctl."""
    parser = argparse.ArgumentParser(prog="wardctl")
    add_pki_parser(parser.add_subparsers(dest="command", required=True))
    return run_pki(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
