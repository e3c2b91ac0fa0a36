"""Client calls described as values, so one description serves the sync and asyncio clients.

A `Call` says which stub method to invoke, with what request, under which timeout, on which
endpoint, and whether it is safe to repeat on another member; a client runs it with its own I/O
(blocking or `await`) and its own retry loop. A `Plan` is several calls under one deadline, as
a generator: it yields each `Call`, is sent the response (or thrown the `EtcdError`), and
returns the result. Nothing here does I/O.
"""

from __future__ import annotations

import inspect
import operator
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from ward.deadline import Deadline
from ward.errors import EtcdError

if TYPE_CHECKING:
    from ward.channels import Stubs

__all__ = ["Call", "Op", "Plan", "PlanRun", "copy_identity", "stub_method"]

R = TypeVar("R")


def _unchanged(resp: Any) -> Any:
    return resp


def stub_method(path: str) -> Callable[[Stubs], Any]:
    """A picker of one stub method by its dotted path on `Stubs`, e.g. "kv.Range"."""
    return operator.attrgetter(path)


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One RPC, described.

    `pick` selects the stub method on a connection's `Stubs`. `timeout` is the client method's
    (None: the client's command timeout; `math.inf`: none). `endpoint` pins the call to one
    member (no failover); `safe` says it may be repeated on another member after `Unavailable`
    (reads; writes are only repeated when they were never sent). `streamed` sends the request
    as the only message of a stream call and takes the first answer (None if there is none).
    `finish` turns the answer into the method's result. `anonymous` calls carry no token.
    """

    pick: Callable[[Stubs], Any]
    request: Any
    timeout: float | None = None
    endpoint: str | None = None
    safe: bool = False
    streamed: bool = False
    finish: Callable[[Any], R] = _unchanged
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class Plan(Generic[R]):
    """Several calls under one deadline: `steps(deadline)` yields them and returns the result."""

    timeout: float | None
    steps: Callable[[Deadline], Generator[Call[Any], Any, R]]


Op: TypeAlias = Call[R] | Plan[R]


class PlanRun(Generic[R]):
    """Drives a plan's generator for a client: `next_call()`, then `answer()` or `fail()`."""

    def __init__(self, plan: Plan[R], deadline: Deadline) -> None:
        self._steps = plan.steps(deadline)
        self._reply: Any = None
        self._error: EtcdError | None = None
        self.result: R | None = None

    def next_call(self) -> Call[Any] | None:
        """The next call to run, or None once the plan is done (its value is `result`).

        An error the plan does not handle propagates from here.
        """
        try:
            if self._error is not None:
                error, self._error = self._error, None
                return self._steps.throw(error)
            return self._steps.send(self._reply)
        except StopIteration as done:
            self.result = done.value
            return None

    def answer(self, reply: Any) -> None:
        """The last call's response."""
        self._reply = reply

    def fail(self, error: EtcdError) -> None:
        """The last call's error, handed to the plan at its next step."""
        self._error = error


_RESULT = re.compile(r"^(?:Call|Plan|Op)\[(?P<result>.*)\]$")


def copy_identity(method: Callable[..., Any], build: Callable[..., Any], owner: str) -> None:
    """Make `method` (a client method that runs what `build` describes) look like `build`
    to `help()` and `inspect`: its name, docstring and parameters, with `self` first and the
    call's result as the return annotation."""
    method.__name__ = build.__name__
    method.__qualname__ = f"{owner}.{build.__name__}"
    method.__doc__ = build.__doc__
    signature = inspect.signature(build)
    returns = signature.return_annotation
    if isinstance(returns, str) and (match := _RESULT.match(returns)):
        returns = match["result"]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *signature.parameters.values()], return_annotation=returns
    )
