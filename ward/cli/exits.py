"""etcdctl's exit codes and the error texts it prints before exiting."""

from __future__ import annotations

import grpc

from ward.errors import EtcdError

__all__ = [
    "EXIT_BAD_ARGS",
    "EXIT_BAD_CONNECTION",
    "EXIT_BAD_FEATURE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID_INPUT",
    "EXIT_IO",
    "EXIT_SUCCESS",
    "CliExit",
    "error_text",
    "grpc_error_text",
]

EXIT_SUCCESS = 0
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3  # txn input that does not parse
EXIT_BAD_FEATURE = 4  # a valid flag with an unsupported value (an output format, a sort order)
EXIT_INTERRUPTED = 5  # snapshot save failures
EXIT_IO = 6
EXIT_BAD_ARGS = 128  # wrong number or combination of arguments


class CliExit(Exception):
    """Leave the command with `code`, printing "Error: <message>" first unless it is None."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or "")
        self.code = code
        self.message = message


# Go's names for gRPC codes (codes.Code.String()).
_GO_CODE_NAMES = {
    code: "".join(p.title() for p in code.name.split("_")) for code in grpc.StatusCode
}
_GO_CODE_NAMES[grpc.StatusCode.CANCELLED] = "Canceled"
_GO_CODE_NAMES[grpc.StatusCode.OK] = "OK"


def grpc_error_text(exc: EtcdError) -> str:
    """gRPC's own wording of a status, "rpc error: code = ... desc = ..."."""
    return f"rpc error: code = {_GO_CODE_NAMES[exc.code]} desc = {exc.message}"


def error_text(exc: BaseException) -> str:
    """The text etcdctl prints for an error: etcd's message for the errors its client knows,
    gRPC's "rpc error: code = ... desc = ..." for any other status."""
    if isinstance(exc, EtcdError) and not exc.known:
        return grpc_error_text(exc)
    return str(exc)
