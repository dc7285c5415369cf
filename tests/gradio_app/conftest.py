"""A live impasto web app for the tests that talk to it (gradio_client, the browser).

One app per test module, served in this process on a free local port, with the real engine
wrapped in a recorder that notes how many jobs ran at once. Test images are small and jobs short.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from dataclasses import dataclass

import pytest

from impasto.gradio_app.app import build_app, close, launch
from impasto.gradio_app.runner import EngineRunner

MAX_SIZE, MAX_STEPS = 256, 400  # the served app's limits for visitors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingEngine:
    """The real stylize(), counting calls and the most that ever ran at the same time."""

    def __init__(self, stylize):
        self._stylize = stylize
        self._lock = threading.Lock()
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.fail_next: Exception | None = None  # raised instead of painting, once
        self.last = None  # the last checked job it was given

    def __call__(self, job, on_progress=None, cancel=None):
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.last = job
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return self._stylize(job, on_progress=on_progress, cancel=cancel)
        finally:
            with self._lock:
                self.running -= 1


@dataclass
class Served:
    url: str
    demo: object
    engine: RecordingEngine


@pytest.fixture(scope="module")
def served(tmp_path_factory, weights_for_module):
    """The app, serving until the module's tests are done."""
    engine = RecordingEngine(EngineRunner().load())
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("app-home")
        mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
        mp.setenv("XDG_DATA_HOME", str(home / "data"))
        demo = build_app(
            EngineRunner(engine),
            max_size=MAX_SIZE,
            max_steps=MAX_STEPS,
            queue_size=8,
            jobs_per_visitor=8,  # every test is the same visitor (127.0.0.1)
        )
        launch(demo, server_name="127.0.0.1", server_port=free_port(), max_file_size="2mb")
        try:
            yield Served(url=demo.local_url, demo=demo, engine=engine)
        finally:
            close(demo)


@pytest.fixture(scope="module")
def weights_for_module():
    """The engine needs the VGG19 weights (tests/conftest.py finds them)."""
    from tests.conftest import _WEIGHTS

    if not _WEIGHTS:
        pytest.fail("VGG19 weights are not installed: run `impasto weights install` (make does)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMPASTO_WEIGHTS", _WEIGHTS)
        yield _WEIGHTS


class OpenedFiles:
    """Every file this process opens while watching, from the interpreter's audit hook (the
    "open" event of open(), io.open and os.open, in every thread, the served app's included).
    Audit hooks cannot be removed, so one serves the whole session and records only while a
    test watches."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.watching = False

    def hook(self, event: str, args: tuple) -> None:
        if self.watching and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            self.paths.append(os.path.realpath(os.fsdecode(args[0])))

    def saw(self, path) -> bool:
        return os.path.realpath(path) in self.paths


_OPENED = OpenedFiles()
sys.addaudithook(_OPENED.hook)


@pytest.fixture
def opened_files():
    _OPENED.paths.clear()
    _OPENED.watching = True
    try:
        yield _OPENED
    finally:
        _OPENED.watching = False
