"""`wardctl completion`: the generated script, run by a real bash, completes from the tree."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest

from ward.cli.completion import completion_script
from ward.cli.main import build_root, run

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def complete(*words: str) -> list[str]:
    """What Tab offers after `words` (the last word is the one being completed)."""
    script = completion_script(build_root(), "bash")
    driver = (
        'COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); '
        '_wardctl_complete; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(
        ["bash", "-c", f"{script}\n{driver}", "bash", "wardctl", *words],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [w for w in out.splitlines() if w]


def test_top_level_commands_complete_by_prefix() -> None:
    assert complete("le") == ["lease"]
    assert complete("m") == ["make-mirror", "member", "move-leader"]
    assert "completion" in complete("")


def test_subcommands_follow_the_path_and_skip_flags_and_their_values() -> None:
    assert complete("lease", "g") == ["grant"]
    assert complete("--endpoints", "127.0.0.1:2379", "lease", "ke") == ["keep-alive"]
    assert complete("endpoint", "") == ["hashkv", "health", "status"]
    assert complete("get", "k") == []  # a key is no subcommand


def test_flags_are_the_commands_own_and_the_global_ones_without_hidden_ones() -> None:
    assert complete("get", "--pre") == ["--prefix"]
    assert complete("put", "--p") == ["--password", "--prev-kv"]  # put's own and a global one
    assert "--endpoints" in complete("lease", "grant", "--e")
    assert complete("put", "--prefix") == []  # put has no --prefix
    datascale = complete("check", "datascale", "--")
    assert "--load" in datascale and "--metrics-url" not in datascale


def test_zsh_gets_the_same_script_through_bashcompinit() -> None:
    zsh = completion_script(build_root(), "zsh")
    assert zsh.startswith("#compdef wardctl\nautoload -U +X bashcompinit && bashcompinit\n")
    assert zsh.endswith(completion_script(build_root(), "bash").split("\n", 1)[1])


def test_an_unknown_shell_is_a_usage_error() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    code = run(["completion", "fish"], stdin=io.BytesIO(), stdout=out, stderr=err, environ={})
    assert code != 0 and b"bash or zsh" in err.getvalue() and out.getvalue() == b""
