"""Fixtures for the hot-folder tests (helpers live in helpers.py)."""

from __future__ import annotations

import pytest

from tests.hotfolder.helpers import WatchProcess


@pytest.fixture
def watch():
    """Start `impasto watch ROOT ...` processes; any still running at the end is killed, so a
    failing test never leaves a daemon behind."""
    started: list[WatchProcess] = []

    def start(root, *args: str) -> WatchProcess:
        started.append(WatchProcess(root, *args))
        return started[-1]

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(timeout=30)
