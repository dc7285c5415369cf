"""The daemon's loop in this process with a stand-in engine: --once, held routes, and recovery
from an unexpected error in the middle of a job."""

from __future__ import annotations

import os
from dataclasses import replace

from impasto.hotfolder.config import Config, DaemonSettings, Route, state_dir_of
from impasto.hotfolder.daemon import Daemon
from impasto.hotfolder.layout import Layout
from impasto.hotfolder.runner import Runner
from impasto.hotfolder.status import gather
from tests.hotfolder.helpers import STARRY, FakeEngine, cat, image_bytes, jobs

FAST = DaemonSettings(settle_seconds=0.2, closed_settle_seconds=0.1, rescan_seconds=0.5)


def config(root, styles=((str(STARRY), 1.0),)) -> Config:
    return Config(root, None, FAST, {"paint": Route(name="paint", styles=styles, size=64)})


def drop(root, *names):
    inbox = root / "inbox" / "paint"
    inbox.mkdir(parents=True, exist_ok=True)
    for name in names:
        (inbox / name).write_bytes(image_bytes(cat(), "PNG"))


def test_once_paints_what_is_there_and_exits(tmp_path):
    drop(tmp_path, "a.png", "b.png")
    assert Daemon(config(tmp_path), once=True, engine=FakeEngine()).run() == 0
    assert sorted(os.listdir(tmp_path / "outbox" / "paint")) == ["a.png", "b.png"]
    assert os.listdir(tmp_path / "inbox" / "paint") == []
    log = (tmp_path / "hotfolder.log").read_text()
    assert "done paint/a.png" in log and "done paint/b.png" in log


def test_a_broken_route_holds_its_files_and_the_daemon_goes_on(tmp_path):
    style = tmp_path / "art.jpg"
    style.write_bytes(STARRY.read_bytes())
    cfg = config(tmp_path, styles=((str(style), 1.0),))
    cfg.routes["other"] = Route(name="other", styles=((str(STARRY), 1.0),), size=64)
    style.unlink()  # gone after the start-up check
    drop(tmp_path, "a.png")
    (tmp_path / "inbox" / "other").mkdir(parents=True)
    (tmp_path / "inbox" / "other" / "b.png").write_bytes(image_bytes(cat(), "PNG"))
    assert Daemon(cfg, once=True, engine=FakeEngine()).run() == 0
    assert os.listdir(tmp_path / "inbox" / "paint") == ["a.png"]  # waits, not failed
    assert os.listdir(tmp_path / "failed" / "paint") == []
    assert os.listdir(tmp_path / "outbox" / "other") == ["b.png"]
    log = (tmp_path / "hotfolder.log").read_text()
    assert "route paint is on hold: style image" in log


def test_an_unexpected_error_after_the_output_is_written_is_recovered(tmp_path, monkeypatch):
    real_finish = Runner._finish
    calls = []

    def flaky_finish(self, job):
        calls.append(job.name)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        return real_finish(self, job)

    monkeypatch.setattr(Runner, "_finish", flaky_finish)
    monkeypatch.setattr(Daemon, "ERROR_PAUSE", 0.1)
    drop(tmp_path, "a.png")
    engine = FakeEngine()
    assert Daemon(config(tmp_path), once=True, engine=engine).run() == 0
    assert len(engine.calls) == 1  # painted once: recovery found the output and finished the job
    assert os.listdir(tmp_path / "outbox" / "paint") == ["a.png"]
    assert os.listdir(tmp_path / "processed" / "paint") == ["a.png"]
    assert [j["state"] for j in jobs(tmp_path)] == ["done"]


def test_the_state_can_live_on_a_local_disk_outside_a_shared_hot_folder(tmp_path):
    root, state = tmp_path / "share", tmp_path / "local" / "state"
    cfg = config(root)
    cfg = Config(root, None, replace(FAST, state_dir=str(state)), cfg.routes)
    drop(root, "a.png")
    assert Daemon(cfg, once=True, engine=FakeEngine()).run() == 0
    assert (state / "journal.sqlite").is_file() and not (root / ".hotfolder").exists()
    (root / "hotfolder.toml").write_text(f'[daemon]\nstate_dir = "{state}"\n')
    assert gather(Layout(root, state_dir_of(root)))["done"] == 1  # what --status reads
