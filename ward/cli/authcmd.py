"""`user`, `role` and `auth` commands, as etcdctl 3.4 has them."""

from __future__ import annotations

import getpass
from collections.abc import Callable

from google.protobuf.message import Message

from ward.cli.command import Command, Invocation
from ward.cli.config import command_timeout, must_client
from ward.cli.exits import EXIT_BAD_ARGS, EXIT_ERROR, CliExit, error_text
from ward.cli.flags import Flag, Kind
from ward.cli.gofmt import quote_bytes
from ward.cli.lease import fields_header, unsupported
from ward.cli.output import Printer, go_json
from ward.client import Client
from ward.errors import EtcdError, RootRoleNotExistError
from ward.requests import prefix_range_end
from wardpb.authpb import auth_pb2
from wardpb.etcdserverpb import rpc_pb2

__all__ = ["auth_command", "role_command", "user_command"]


def _call(inv: Invocation, fn: Callable[[Client, float], Message]) -> tuple[Message, Printer]:
    client, display = must_client(inv)
    with client:
        try:
            return fn(client, command_timeout(inv)), display
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None


def _show(
    display: Printer,
    resp: Message,
    simple: str,
    fields: Callable[[], None] | None = None,
    *,
    with_fields: bool = True,
) -> None:
    name = display.format_name
    if name == "simple":
        display.out.write(simple.encode("utf-8", "surrogateescape"))
    elif name == "json":
        display.out.write(go_json(resp).encode() + b"\n")
    elif name == "protobuf":
        display.out.write(resp.SerializeToString())
    elif name == "fields" and with_fields:
        fields_header(display, resp.header)  # type: ignore[attr-defined]
        if fields is not None:
            fields()
    else:
        raise unsupported(display)


def _need(inv: Invocation, count: int, message: str) -> None:
    if len(inv.args) != count:
        raise CliExit(EXIT_BAD_ARGS, message)


def _read_password(inv: Invocation, name: str, *, confirm: bool) -> str:
    if not inv.flags.value("interactive"):
        # fmt.Scanf("%s"): the first word of stdin.
        words = inv.stdin.read().split()
        return words[0].decode("utf-8", "surrogateescape") if words else ""
    try:
        password = getpass.getpass(f"Password of {name}: ")
        if confirm:
            again = getpass.getpass(f"Type password of {name} again for confirmation: ")
            if again != password:
                raise CliExit(EXIT_BAD_ARGS, "given passwords are different")
    except (EOFError, OSError) as exc:
        raise CliExit(EXIT_BAD_ARGS, str(exc) or "EOF") from None
    return password


# -- user ------------------------------------------------------------------------------------


def _user_add(inv: Invocation) -> int:
    _need(inv, 1, "user add command requires user name as its argument")
    no_password = bool(inv.flags.value("no-password"))
    from_flag = str(inv.flags.value("new-user-password"))
    if from_flag or no_password:
        user, password = inv.args[0], from_flag
    else:
        user, sep, password = inv.args[0].partition(":")
        if not sep:
            password = _read_password(inv, user, confirm=True)
        elif not user:
            raise CliExit(EXIT_BAD_ARGS, "empty user name is not allowed")
    resp, display = _call(
        inv, lambda c, t: c.user_add(user, password, no_password=no_password, timeout=t)
    )
    _show(display, resp, f"User {user} created\n")
    return 0


def _user_delete(inv: Invocation) -> int:
    _need(inv, 1, "user delete command requires user name as its argument")
    name = inv.args[0]
    resp, display = _call(inv, lambda c, t: c.user_delete(name, timeout=t))
    _show(display, resp, f"User {name} deleted\n")
    return 0


def _role_get_text(name: str, resp: rpc_pb2.AuthRoleGetResponse) -> str:
    def describe(perm: auth_pb2.Permission) -> str:
        key = perm.key.decode("utf-8", "surrogateescape")
        if not perm.range_end:
            return f"\t{key}\n"
        end = perm.range_end.decode("utf-8", "surrogateescape")
        text = f"\t[{key}, {end})" if perm.range_end != b"\x00" else f"\t[{key}, <open ended>"
        if prefix_range_end(perm.key) == perm.range_end:
            text += f" (prefix {key})"
        return text + "\n"

    read = (auth_pb2.Permission.READ, auth_pb2.Permission.READWRITE)
    write = (auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE)
    return (
        f"Role {name}\nKV Read:\n"
        + "".join(describe(p) for p in resp.perm if p.permType in read)
        + "KV Write:\n"
        + "".join(describe(p) for p in resp.perm if p.permType in write)
    )


def _show_role(display: Printer, name: str, resp: rpc_pb2.AuthRoleGetResponse) -> None:
    def fields() -> None:
        for p in resp.perm:
            display.out.write(
                f'"PermType" :  {auth_pb2.Permission.Type.Name(p.permType)}\n'
                f'"Key" : {quote_bytes(p.key)}\n"RangeEnd" : {quote_bytes(p.range_end)}\n'.encode(
                    "utf-8", "surrogateescape"
                )
            )

    _show(display, resp, _role_get_text(name, resp), fields)


def _user_get(inv: Invocation) -> int:
    _need(inv, 1, "user get command requires user name as its argument")
    name = inv.args[0]
    client, display = must_client(inv)
    with client:
        try:
            resp = client.user_get(name, timeout=command_timeout(inv))
            if not inv.flags.value("detail"):
                _show(
                    display,
                    resp,
                    f"User: {name}\nRoles:" + "".join(f" {r}" for r in resp.roles) + "\n",
                    with_fields=False,
                )
                return 0
            inv.out(f"User: {name}")
            for role in resp.roles:
                inv.out()
                _show_role(display, role, client.role_get(role, timeout=command_timeout(inv)))
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    return 0


def _user_list(inv: Invocation) -> int:
    resp, display = _call(inv, lambda c, t: c.user_list(timeout=t))
    assert isinstance(resp, rpc_pb2.AuthUserListResponse)
    _show(display, resp, "".join(f"{u}\n" for u in resp.users), with_fields=False)
    return 0


def _user_passwd(inv: Invocation) -> int:
    _need(inv, 1, "user passwd command requires user name as its argument")
    name = inv.args[0]
    password = _read_password(inv, name, confirm=True)
    resp, display = _call(inv, lambda c, t: c.user_change_password(name, password, timeout=t))
    _show(display, resp, "Password updated\n")
    return 0


def _user_grant_role(inv: Invocation) -> int:
    _need(inv, 2, "user grant command requires user name and role name as its argument")
    user, role = inv.args
    resp, display = _call(inv, lambda c, t: c.user_grant_role(user, role, timeout=t))
    _show(display, resp, f"Role {role} is granted to user {user}\n")
    return 0


def _user_revoke_role(inv: Invocation) -> int:
    _need(inv, 2, "user revoke-role requires user name and role name as its argument")
    user, role = inv.args
    resp, display = _call(inv, lambda c, t: c.user_revoke_role(user, role, timeout=t))
    _show(display, resp, f"Role {role} is revoked from user {user}\n")
    return 0


def user_command() -> Command:
    """The `user` group."""
    group = Command(use="user <subcommand>", short="User related commands")
    group.add(
        Command(
            use="add <user name or user:password> [options]",
            short="Adds a new user",
            run=_user_add,
            flags=[
                Flag(
                    "interactive",
                    Kind.BOOL,
                    True,
                    "Read password from stdin instead of interactive terminal",
                ),
                Flag(
                    "new-user-password",
                    Kind.STRING,
                    "",
                    "Supply password from the command line flag",
                ),
                Flag(
                    "no-password",
                    Kind.BOOL,
                    False,
                    "Create a user without password (CN based auth only)",
                ),
            ],
        ),
        Command(use="delete <user name>", short="Deletes a user", run=_user_delete),
        Command(
            use="get <user name> [options]",
            short="Gets detailed information of a user",
            run=_user_get,
            flags=[
                Flag("detail", Kind.BOOL, False, "Show permissions of roles granted to the user")
            ],
        ),
        Command(use="list", short="Lists all users", run=_user_list),
        Command(
            use="passwd <user name> [options]",
            short="Changes password of user",
            run=_user_passwd,
            flags=[
                Flag(
                    "interactive",
                    Kind.BOOL,
                    True,
                    "If true, read password from stdin instead of interactive terminal",
                )
            ],
        ),
        Command(
            use="grant-role <user name> <role name>",
            short="Grants a role to a user",
            run=_user_grant_role,
        ),
        Command(
            use="revoke-role <user name> <role name>",
            short="Revokes a role from a user",
            run=_user_revoke_role,
        ),
    )
    return group


# -- role ------------------------------------------------------------------------------------


def _role_add(inv: Invocation) -> int:
    _need(inv, 1, "role add command requires role name as its argument")
    name = inv.args[0]
    resp, display = _call(inv, lambda c, t: c.role_add(name, timeout=t))
    _show(display, resp, f"Role {name} created\n")
    return 0


def _role_delete(inv: Invocation) -> int:
    _need(inv, 1, "role delete command requires role name as its argument")
    name = inv.args[0]
    resp, display = _call(inv, lambda c, t: c.role_delete(name, timeout=t))
    _show(display, resp, f"Role {name} deleted\n")
    return 0


def _role_get(inv: Invocation) -> int:
    _need(inv, 1, "role get command requires role name as its argument")
    name = inv.args[0]
    resp, display = _call(inv, lambda c, t: c.role_get(name, timeout=t))
    assert isinstance(resp, rpc_pb2.AuthRoleGetResponse)
    _show_role(display, name, resp)
    return 0


def _role_list(inv: Invocation) -> int:
    resp, display = _call(inv, lambda c, t: c.role_list(timeout=t))
    assert isinstance(resp, rpc_pb2.AuthRoleListResponse)

    def fields() -> None:
        roles = "".join(f" {quote_bytes(r.encode())}" for r in resp.roles)
        display.out.write(f'"Roles" :{roles}\n'.encode())

    _show(display, resp, "".join(f"{r}\n" for r in resp.roles), fields)
    return 0


def _perm_range(inv: Invocation, args: list[str]) -> tuple[str, str]:
    prefix, from_key = bool(inv.flags.value("prefix")), bool(inv.flags.value("from-key"))
    key = args[0]
    if not key:
        if prefix and from_key:
            raise CliExit(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive")
        # [\0, \0) is how a permission on every key is written.
        return "\x00", "\x00" if prefix or from_key else ""
    if len(args) == 1:
        if prefix:
            if from_key:
                raise CliExit(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive")
            raw = key.encode("utf-8", "surrogateescape")
            return key, prefix_range_end(raw).decode("utf-8", "surrogateescape")
        return key, "\x00" if from_key else ""
    if prefix:
        raise CliExit(EXIT_BAD_ARGS, "unexpected endkey argument with --prefix flag")
    if from_key:
        raise CliExit(EXIT_BAD_ARGS, "unexpected endkey argument with --from-key flag")
    return key, args[1]


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _role_grant(inv: Invocation) -> int:
    if len(inv.args) < 3:
        raise CliExit(
            EXIT_BAD_ARGS,
            "role grant command requires role name, permission type, and key [endkey] as its "
            "argument",
        )
    name, kind = inv.args[0], inv.args[1]
    perm = auth_pb2.Permission.Type.DESCRIPTOR.values_by_name.get(kind.upper())
    if perm is None:
        raise CliExit(EXIT_BAD_ARGS, f"invalid permission type: {kind}")
    key, end = _perm_range(inv, inv.args[2:])
    resp, display = _call(
        inv,
        lambda c, t: c.role_grant_permission(name, perm.number, _enc(key), _enc(end), timeout=t),
    )
    _show(display, resp, f"Role {name} updated\n")
    return 0


def _role_revoke(inv: Invocation) -> int:
    if len(inv.args) < 2:
        raise CliExit(
            EXIT_BAD_ARGS,
            "role revoke-permission command requires role name and key [endkey] as its argument",
        )
    name = inv.args[0]
    key, end = _perm_range(inv, inv.args[1:])
    resp, display = _call(
        inv, lambda c, t: c.role_revoke_permission(name, _enc(key), _enc(end), timeout=t)
    )
    if not end:
        text = f"Permission of key {key} is revoked from role {name}\n"
    elif end != "\x00":
        text = f"Permission of range [{key}, {end}) is revoked from role {name}\n"
    else:
        text = f"Permission of range [{key}, <open ended> is revoked from role {name}\n"
    _show(display, resp, text)
    return 0


def _perm_flags(verb: str) -> list[Flag]:
    return [
        Flag("prefix", Kind.BOOL, False, f"{verb} a prefix permission"),
        Flag(
            "from-key",
            Kind.BOOL,
            False,
            f"{verb} a permission of keys that are greater than or equal to the given key "
            "using byte compare",
        ),
    ]


def role_command() -> Command:
    """The `role` group."""
    group = Command(use="role <subcommand>", short="Role related commands")
    group.add(
        Command(use="add <role name>", short="Adds a new role", run=_role_add),
        Command(use="delete <role name>", short="Deletes a role", run=_role_delete),
        Command(use="get <role name>", short="Gets detailed information of a role", run=_role_get),
        Command(use="list", short="Lists all roles", run=_role_list),
        Command(
            use="grant-permission [options] <role name> <permission type> <key> [endkey]",
            short="Grants a key to a role",
            run=_role_grant,
            flags=_perm_flags("grant"),
        ),
        Command(
            use="revoke-permission <role name> <key> [endkey]",
            short="Revokes a key from a role",
            run=_role_revoke,
            flags=_perm_flags("revoke"),
        ),
    )
    return group


# -- auth ------------------------------------------------------------------------------------


def _auth_enable(inv: Invocation) -> int:
    if inv.args:
        raise CliExit(EXIT_BAD_ARGS, "auth enable command does not accept any arguments")
    client, _ = must_client(inv)
    with client:
        timeout = command_timeout(inv)
        try:
            while True:
                try:
                    client.auth_enable(timeout=timeout)
                    break
                except RootRoleNotExistError:
                    # etcdctl gives root the root role it needs, then tries again.
                    client.role_add("root", timeout=timeout)
                    client.user_grant_role("root", "root", timeout=timeout)
        except EtcdError as exc:
            raise CliExit(EXIT_ERROR, error_text(exc)) from None
    inv.out("Authentication Enabled")
    return 0


def _auth_disable(inv: Invocation) -> int:
    if inv.args:
        raise CliExit(EXIT_BAD_ARGS, "auth disable command does not accept any arguments")
    _call(inv, lambda c, t: c.auth_disable(timeout=t))
    inv.out("Authentication Disabled")
    return 0


def auth_command() -> Command:
    """The `auth` group."""
    group = Command(use="auth <enable or disable>", short="Enable or disable authentication")
    group.add(
        Command(use="enable", short="Enables authentication", run=_auth_enable),
        Command(use="disable", short="Disables authentication", run=_auth_disable),
    )
    return group
