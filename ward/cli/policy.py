"""`wardctl policy` (declarative tenants, roles and users) and `wardctl audit verify`.

Policy files are TOML (``.toml``) or YAML (``.yaml``/``.yml``); see `auth.policy` for their
shape. `check` validates files locally (every problem with its file, and its line for YAML);
`apply` sends the merged policy to the cluster, which applies it as one replicated change
(`--dry-run` prints the plan and changes nothing); `export` prints the live tables as a policy.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import yaml

from auth.policy import Policy, PolicyError, merge, parse, to_data, validate
from server.audit import AuditError, verify
from ward.cli.command import Command, Invocation
from ward.cli.config import command_timeout, must_client
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_ERROR, CliExit, error_text
from ward.cli.flags import Flag, Kind
from ward.errors import EtcdError
from wardpb.policypb import policy_pb2, policy_pb2_grpc

__all__ = ["audit_command", "load_policy", "policy_command"]


class _LineDict(dict[str, Any]):
    """A YAML mapping that remembers its line, for error messages."""

    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    out = _LineDict(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_policy(paths: list[str]) -> Policy:
    """Parse and merge policy files; raises `PolicyError` listing every problem."""
    policies = []
    problems: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_bytes()
            if path.endswith((".yaml", ".yml")):
                data = yaml.load(text, Loader=_LineLoader)  # a SafeLoader with line numbers
            else:
                data = tomllib.loads(text.decode())
            policies.append(parse(data, path))
        except PolicyError as e:
            problems.extend(e.problems)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as e:
            problems.append(f"{path}: {e}")
    if problems:
        raise PolicyError(problems)
    policy = merge(policies)
    validate(policy, source=", ".join(paths))
    return policy


def _files(inv: Invocation) -> list[str]:
    if not inv.args:
        raise CliExit(EXIT_BAD_ARGS, "policy command needs at least one FILE")
    return list(inv.args)


def _load(inv: Invocation) -> Policy:
    try:
        return load_policy(_files(inv))
    except PolicyError as e:
        raise CliExit(EXIT_ERROR, "invalid policy:\n" + str(e)) from None


def _run_check(inv: Invocation) -> int:
    policy = _load(inv)
    inv.out(
        f"policy OK: {len(policy.tenants)} tenants, {len(policy.roles)} roles,"
        f" {len(policy.users)} users"
    )
    return 0


def _rpc(inv: Invocation, method: str, request: Any) -> Any:
    client, _display = must_client(inv)
    with client:
        try:
            # Ward's own service on the client's channel, with its token and failover.
            return client._call(
                lambda c: getattr(policy_pb2_grpc.PolicyStub(c.channel), method),
                request,
                command_timeout(inv),
            )
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None


def _run_apply(inv: Invocation) -> int:
    policy = _load(inv)
    dry_run = bool(inv.flags.value("dry-run"))
    req = policy_pb2.PolicyApplyRequest(
        document=policy.to_json(), prune=bool(inv.flags.value("prune")), dry_run=dry_run
    )
    resp = _rpc(inv, "Apply", req)
    for change in resp.changes:
        inv.out(("would " if dry_run else "") + change)
    if not resp.changes:
        inv.out("no changes")
    elif dry_run:
        inv.out(f"dry run: {len(resp.changes)} changes, nothing applied")
    else:
        inv.out(f"applied {len(resp.changes)} changes (auth revision {resp.auth_revision})")
    return 0


def _run_export(inv: Invocation) -> int:
    resp = _rpc(inv, "Export", policy_pb2.PolicyExportRequest())
    data = to_data(Policy.from_json(resp.document))
    inv.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode())
    return 0


def policy_command() -> Command:
    """The `policy` group."""
    group = Command(use="policy <subcommand>", short="Declarative tenants, roles and users")
    group.add(
        Command(use="check FILE...", short="Validates policy files", run=_run_check),
        Command(
            use="apply [options] FILE...",
            short="Applies policy files as one replicated change",
            run=_run_apply,
            flags=[
                Flag("dry-run", Kind.BOOL, False, "Print the plan and change nothing"),
                Flag("prune", Kind.BOOL, False, "Also delete what the policy does not name"),
            ],
        ),
        Command(use="export", short="Prints the live auth tables as a policy", run=_run_export),
    )
    return group


def _default_key() -> str:
    data_dir = os.environ.get("WARD_DATA_DIR", "default.ward")
    return str(Path(data_dir) / "member" / "audit.key")


def _run_verify(inv: Invocation) -> int:
    if not inv.args:
        raise CliExit(EXIT_BAD_ARGS, "audit verify needs at least one FILE (oldest first)")
    key_path = str(inv.flags.value("key") or _default_key())
    try:
        key = Path(key_path).read_bytes()
    except OSError as e:
        raise CliExit(EXIT_ERROR, f"cannot read the audit key: {e}") from None
    try:
        continued = bool(inv.flags.value("continued"))
        count = verify([Path(a) for a in inv.args], key, continued=continued)
    except AuditError as e:
        raise CliExit(EXIT_ERROR, f"audit log does not verify: {e}") from None
    except OSError as e:
        raise CliExit(EXIT_ERROR, str(e)) from None
    inv.out(f"audit log OK: {count} lines")
    return 0


def audit_command() -> Command:
    """The `audit` group."""
    group = Command(use="audit <subcommand>", short="Checks a member's audit log")
    group.add(
        Command(
            use="verify [options] FILE...",
            short="Verifies the hash chain of audit log files (oldest first)",
            run=_run_verify,
            flags=[
                Flag(
                    "key",
                    Kind.STRING,
                    "",
                    "The audit key (default $WARD_DATA_DIR/member/audit.key)",
                ),
                Flag(
                    "continued",
                    Kind.BOOL,
                    False,
                    "Accept a chain that starts after line 1 (older rotated files are gone)",
                ),
            ],
        ),
    )
    return group
