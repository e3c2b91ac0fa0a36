"""Fixtures of the end-to-end tests; the helpers themselves live in `ward_process.py`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.ward_process import WardProcess, start_ward


@pytest.fixture
def ward(tmp_path: Path) -> Iterator[WardProcess]:
    """A serving `ward` (two processes) on fresh ports; stopped, group and all, afterwards."""
    server = start_ward(tmp_path)
    try:
        yield server
    finally:
        server.stop()
