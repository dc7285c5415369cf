"""Several engines at once (as with a Ray cluster's workers), with stand-in engines in this
process: the jobs really run side by side, and the runners never give two files one name."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import impasto.hotfolder.daemon
from impasto.hotfolder.daemon import Daemon
from tests.hotfolder.helpers import FakeEngine, jobs
from tests.hotfolder.test_hotfolder_loop import config, drop


class MeetingEngine(FakeEngine):
    """Paints only once the other engine is painting too: proof that two jobs run at once."""

    def __init__(self, meeting: threading.Barrier):
        super().__init__(steps=3)
        self.meeting = meeting

    def stylize(self, checked, on_progress=None, cancel=None):
        self.meeting.wait()  # BrokenBarrierError after its timeout: the test fails
        return super().stylize(checked, on_progress, cancel)


def test_two_engines_paint_side_by_side_with_unique_names(tmp_path, monkeypatch):
    meeting = threading.Barrier(2, timeout=60)
    engines = [MeetingEngine(meeting), MeetingEngine(meeting)]
    backend = SimpleNamespace(engines=engines, close=lambda: None)
    monkeypatch.setattr(
        impasto.hotfolder.daemon, "open_backend", lambda settings, engine, record: backend
    )
    drop(tmp_path, "a.png", "a.jpg", "b.png", "b.jpg")  # two stems, each twice

    assert Daemon(config(tmp_path), once=True).run() == 0
    assert sorted(os.listdir(tmp_path / "outbox" / "paint")) == [
        "a-2.png", "a.png", "b-2.png", "b.png"
    ]  # fmt: skip
    assert sorted(os.listdir(tmp_path / "processed" / "paint")) == [
        "a.jpg", "a.png", "b.jpg", "b.png"
    ]  # fmt: skip
    assert [len(e.calls) for e in engines] == [2, 2]
    assert [j["state"] for j in jobs(tmp_path)] == ["done"] * 4
