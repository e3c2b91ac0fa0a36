"""`wardctl lock` and `elect` behave as etcdctl 3.4's: the same scenarios run with each tool, and
the two tools lock and elect against each other (the same keys, in the same order).

Output is compared line by line; lock keys carry each session's lease ID, so a key is compared
by its `<name>/` prefix.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.line_process import LineProcess
from tests.e2e.ward_process import ETCDCTL, REPO, WardProcess

pytestmark = pytest.mark.skipif(not ETCDCTL.exists(), reason="etcd-client is not installed")

TOOLS = {
    "etcdctl": [str(ETCDCTL)],
    "wardctl": [sys.executable, "-m", "ward.cli"],
}


class Tool(LineProcess):
    """A long-running lock or elect command in its own process group; stdout lines queued."""

    def __init__(self, tool: str, endpoint: str, *args: str) -> None:
        pythonpath = os.pathsep.join((str(REPO), str(REPO / "proto")))
        super().__init__(
            [*TOOLS[tool], "--endpoints", endpoint, *args], env={"PYTHONPATH": pythonpath}
        )


@pytest.fixture
def started() -> Iterator[list[Tool]]:
    tools: list[Tool] = []
    try:
        yield tools
    finally:
        for t in tools:
            t.kill()


def run(tool: str, endpoint: str, *args: str) -> tuple[int, str, str]:
    p = Tool(tool, endpoint, *args)
    code, err = p.finish()
    out = []
    while not p.lines.empty():
        out.append(p.lines.get())
    p.kill()
    return code, "\n".join(out), err


@pytest.mark.parametrize("tool", ["etcdctl", "wardctl"])
def test_lock_holds_until_signalled_and_a_second_locker_runs_its_command(
    ward: WardProcess, started: list[Tool], tool: str
) -> None:
    first = Tool(tool, ward.endpoint, "lock", "mylock")
    started.append(first)
    key = first.line()
    assert key.startswith("mylock/") and first.line() == ""  # the key and its empty value
    second = Tool(tool, ward.endpoint, "lock", "mylock", "printenv", "ETCD_LOCK_KEY")
    started.append(second)
    assert second.quiet_for(1.5)
    first.signal(signal.SIGTERM)
    assert first.finish() == (0, "")
    got = second.line()
    assert got.startswith("mylock/") and got != key
    assert second.finish() == (0, "")


@pytest.mark.parametrize("tool", ["etcdctl", "wardctl"])
def test_lock_with_a_failing_command_and_bad_arguments(ward: WardProcess, tool: str) -> None:
    assert run(tool, ward.endpoint, "lock", "l", "false") == (
        1,
        "",
        "Error: exit status 1\n",
    )
    assert run(tool, ward.endpoint, "lock") == (
        128,
        "",
        "Error: lock takes a lock name argument and an optional command to execute\n",
    )
    assert run(tool, ward.endpoint, "elect", "e") == (
        128,
        "",
        "Error: no proposal argument but -l not set\n",
    )
    assert run(tool, ward.endpoint, "elect", "-l", "e", "p") == (
        128,
        "",
        "Error: proposal given but -l is set\n",
    )


@pytest.mark.parametrize(("holder", "waiter"), [("etcdctl", "wardctl"), ("wardctl", "etcdctl")])
def test_the_two_tools_lock_against_each_other(
    ward: WardProcess, started: list[Tool], holder: str, waiter: str
) -> None:
    first = Tool(holder, ward.endpoint, "lock", "shared")
    started.append(first)
    assert first.line().startswith("shared/")
    second = Tool(waiter, ward.endpoint, "lock", "shared", "echo", "mine")
    started.append(second)
    assert second.quiet_for(1.5)
    first.signal(signal.SIGINT)
    assert second.line() == "mine"
    assert second.finish()[0] == 0


@pytest.mark.parametrize(
    ("observer_tool", "tool"),
    [("etcdctl", "wardctl"), ("wardctl", "wardctl"), ("wardctl", "etcdctl")],
)
def test_elect_one_leader_at_a_time_and_the_observer_sees_each(
    ward: WardProcess, started: list[Tool], observer_tool: str, tool: str
) -> None:
    observer = Tool(observer_tool, ward.endpoint, "elect", "-l", "myelect")
    started.append(observer)
    alice = Tool(tool, ward.endpoint, "elect", "myelect", "alice")
    started.append(alice)
    key = alice.line()
    assert key.startswith("myelect/") and alice.line() == "alice"
    assert (observer.line(), observer.line()) == (key, "alice")
    bob = Tool(tool, ward.endpoint, "elect", "myelect", "bob")
    started.append(bob)
    assert bob.quiet_for(1.0)
    alice.signal(signal.SIGINT)  # resigns
    assert alice.finish() == (0, "")
    bob_key = bob.line()
    assert bob_key.startswith("myelect/") and bob_key != key and bob.line() == "bob"
    assert (observer.line(), observer.line()) == (bob_key, "bob")
    observer.signal(signal.SIGTERM)
    assert observer.finish() == (0, "")
