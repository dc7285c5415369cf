"""One job from the queue to outbox/ + processed/ (or failed/ + .error.txt), with a stand-in
engine, and recovery from every state a crash can leave behind."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from impasto.engine import memory
from impasto.errors import InputError
from impasto.hotfolder.config import Config, DaemonSettings, Route
from impasto.hotfolder.journal import Identity, Journal
from impasto.hotfolder.layout import Layout
from impasto.hotfolder.runner import Runner
from impasto.hotfolder.space import DiskFull
from tests.hotfolder.helpers import STARRY, FakeEngine, cat, image_bytes


class Setup:
    def __init__(self, root, engine=None, **route):
        self.layout = Layout(root)
        self.layout.ensure(["paint"])
        paint = Route(name="paint", **{"styles": ((str(STARRY), 1.0),), "size": 64, **route})
        self.config = Config(root, None, DaemonSettings(max_crashes=2), {"paint": paint})
        self.journal = Journal(self.layout.journal)
        self.engine = engine or FakeEngine()
        self.cancel = threading.Event()
        self.nudged = 0
        self.runner = Runner(
            self.layout, self.config, self.journal, self.engine, self.cancel, self.nudge
        )

    def nudge(self):
        self.nudged += 1

    def inbox(self, name: str):
        return self.layout.folder("inbox", "paint") / name

    def drop(self, name: str, data: bytes | None = None) -> int:
        path = self.inbox(name)
        path.write_bytes(image_bytes(cat(), "PNG") if data is None else data)
        return self.journal.enqueue("paint", name, Identity.of(os.lstat(path)))

    def run_next(self) -> str:
        return self.runner.run(self.journal.next_queued(["paint"]))

    def files(self, kind: str) -> list[str]:
        return sorted(os.listdir(self.layout.folder(kind, "paint")))

    def error(self, name: str) -> str:
        return (self.layout.folder("failed", "paint") / f"{name}.error.txt").read_text()


@pytest.fixture
def s(tmp_path):
    setup = Setup(tmp_path / "root")
    yield setup
    setup.journal.close()


def test_a_good_file_ends_in_outbox_and_processed(s):
    data = image_bytes(cat(), "PNG")
    job_id = s.drop("cat.png", data)
    assert s.run_next() == "done"
    assert s.files("outbox") == ["cat.png"]
    assert s.files("processed") == ["cat.png"]
    assert s.files("inbox") == []
    assert (s.layout.folder("processed", "paint") / "cat.png").read_bytes() == data  # untouched
    with Image.open(s.layout.folder("outbox", "paint") / "cat.png") as img:
        assert max(img.size) == 64
    job = s.journal.get(job_id)
    assert (job.state, job.output, job.moved_to) == ("done", "cat.png", "cat.png")
    assert not s.layout.checkpoint(job_id).exists()


def test_the_same_name_twice_gives_two_outputs_and_overwrites_nothing(s):
    s.drop("cat.png")
    s.run_next()
    s.drop("cat.png")
    s.drop("cat.jpg", image_bytes(cat(), "JPEG"))
    assert [s.run_next(), s.run_next()] == ["done", "done"]
    assert s.files("outbox") == ["cat-2.png", "cat-3.png", "cat.png"]
    assert s.files("processed") == ["cat-2.png", "cat.jpg", "cat.png"]


def test_output_format_follows_the_route(tmp_path):
    s = Setup(tmp_path / "root", format="same")
    s.drop("photo.jpg", image_bytes(cat(), "JPEG"))
    s.drop("anim.gif", image_bytes(cat().convert("P"), "GIF"))
    s.run_next(), s.run_next()
    assert s.files("outbox") == ["anim.png", "photo.jpg"]


def test_a_bad_file_goes_to_failed_with_one_line_why(s):
    s.drop("notes.png", b"hello, not a picture")
    s.drop("cat.png")
    assert s.run_next() == "failed"
    assert s.files("failed") == ["notes.png", "notes.png.error.txt"]
    assert s.error("notes.png") == (
        "content image 'notes.png': not an image impasto reads (BMP, GIF, JPEG, PNG, TIFF, WEBP)\n"
    )
    assert s.run_next() == "done"  # and the queue goes on


def test_failed_names_never_collide_either(s):
    for _ in range(2):
        s.drop("bad.png", b"")
        s.run_next()
    assert s.files("failed") == ["bad-2.png", "bad-2.png.error.txt", "bad.png", "bad.png.error.txt"]


def full_disk_under(monkeypatch, folder):
    """StyleResult.save fails with "no space left" for every path under folder."""
    from impasto.job import StyleResult

    save = StyleResult.save

    def full(self, path):
        if Path(path).is_relative_to(folder):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(self, path)

    monkeypatch.setattr(StyleResult, "save", full)


def test_disk_full_while_writing_the_output_leaves_the_job_for_later(s, monkeypatch):
    """A full disk is not the file's fault: no failed/, no recovery copy elsewhere (e.g. /tmp,
    which a service's PrivateTmp discards); the daemon pauses (tests/faults/test_disk_full.py)
    and, once space is freed, the job is queued again without counting a crash."""
    full_disk_under(monkeypatch, Path("/"))
    job_id = s.drop("cat.png")
    with pytest.raises(DiskFull):
        s.run_next()
    from impasto.paths import cache_dir

    assert not (cache_dir() / "recovered").exists()
    assert s.files("inbox") == ["cat.png"] and s.files("outbox") == s.files("failed") == []
    monkeypatch.undo()  # space was freed
    s.runner.recover(crashed=False)
    assert (s.journal.get(job_id).state, s.journal.get(job_id).crashes) == ("queued", 0)
    assert s.run_next() == "done"


def test_disk_full_while_moving_the_input_finishes_the_move_later(s, monkeypatch):
    import impasto.hotfolder.runner as runner

    def full(src, dst, src_dir_fd=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runner, "move_no_replace", full)
    job_id = s.drop("cat.png")
    with pytest.raises(DiskFull):
        s.run_next()
    assert s.journal.get(job_id).state == "finishing"  # the output is on disk, the input not moved
    assert s.files("outbox") == ["cat.png"] and s.files("inbox") == ["cat.png"]
    monkeypatch.undo()
    s.runner.recover(crashed=False)
    assert s.journal.get(job_id).state == "done"
    assert s.files("processed") == ["cat.png"] and s.files("inbox") == []


@pytest.mark.usefixtures("weights_available")
def test_a_thin_panorama_is_painted_and_one_too_thin_fails_with_a_reason(tmp_path):
    """With the real engine: any shape VGG19 can see is painted (the pyramid raises the short
    side); a picture too long and thin for any working size goes to failed/ with a sentence,
    not a TensorFlow message."""
    from impasto import load_engine

    s = Setup(tmp_path / "root", engine=load_engine(), overrides={"steps": 2})
    s.drop("pano.png", image_bytes(cat().resize((300, 60)), "PNG"))
    s.drop("strip.png", image_bytes(cat().resize((8400, 16)), "PNG"))
    assert s.run_next() == "done"
    assert s.run_next() == "failed"
    assert s.error("strip.png") == (
        "content image 'strip.png': 8400x16 is too long and thin to paint "
        "(the long side may be at most 512 times the short one)\n"
    )
    with Image.open(s.layout.folder("outbox", "paint") / "pano.png") as img:
        assert img.size == (64, 13)  # the asked size, the photo's shape
    s.journal.close()


def test_a_file_that_vanished_before_it_was_read(s):
    s.drop("gone.png")
    s.inbox("gone.png").unlink()
    assert s.run_next() == "failed"
    assert s.files("failed") == ["gone.png.error.txt"]
    assert "disappeared before it could be read" in s.error("gone.png")


def test_a_file_that_changed_after_it_was_queued_is_given_back_to_the_intake(s):
    job_id = s.drop("cat.png")
    s.inbox("cat.png").write_bytes(image_bytes(cat(60), "PNG"))
    assert s.run_next() == "changed"
    assert s.journal.get(job_id) is None and s.nudged == 1
    assert s.files("inbox") == ["cat.png"] and s.engine.calls == []


def test_an_engine_crash_fails_the_file_not_the_daemon(tmp_path):
    s = Setup(tmp_path / "root", engine=FakeEngine(fail=RuntimeError("out of memory\nmore")))
    s.drop("cat.png")
    assert s.run_next() == "failed"
    assert s.error("cat.png") == "the engine failed: RuntimeError: out of memory\n"


def test_engine_input_errors_are_the_files_reason(tmp_path):
    s = Setup(tmp_path / "root", engine=FakeEngine(fail=InputError("content image: too odd")))
    s.drop("cat.png")
    assert s.run_next() == "failed"
    assert s.error("cat.png") == "content image: too odd\n"


def test_a_broken_route_holds_its_files_in_the_inbox(s, tmp_path):
    style = tmp_path / "art.jpg"
    style.write_bytes(STARRY.read_bytes())
    s.config.routes["paint"] = Route(name="paint", styles=((str(style), 1.0),), size=64)
    style.unlink()
    job_id = s.drop("cat.png")
    assert s.run_next() == "held"
    assert "style image" in s.journal.holds()["paint"]
    assert s.journal.get(job_id).state == "queued"
    assert s.files("inbox") == ["cat.png"] and s.files("failed") == []


def test_evolution_snapshots_every_save_every_steps(tmp_path):
    s = Setup(tmp_path / "root", engine=FakeEngine(steps=4), save_every=2)
    s.drop("cat.png")
    s.run_next()
    evolution = s.layout.folder("evolution", "paint") / "cat"
    assert sorted(os.listdir(evolution)) == ["step_00002.png", "step_00004.png"]


def test_a_stop_request_requeues_the_job(tmp_path):
    s = Setup(tmp_path / "root", engine=FakeEngine(steps=5, cancel_at=2))
    job_id = s.drop("cat.png")
    assert s.run_next() == "stopped"
    job = s.journal.get(job_id)
    assert (job.state, job.step, job.output, job.crashes) == ("queued", 2, "cat.png", 0)
    assert s.files("outbox") == [] and s.files("inbox") == ["cat.png"]


def test_refused_entries_go_to_failed_as_they_are(s):
    os.mkfifo(s.inbox("pipe.png"))
    s.journal.enqueue("paint", "pipe.png", Identity.of(os.lstat(s.inbox("pipe.png"))))
    assert s.run_next() == "failed"
    assert "a named pipe (FIFO), not a regular file" in s.error("pipe.png")
    assert s.files("failed") == ["pipe.png", "pipe.png.error.txt"]


# --- recovery ---------------------------------------------------------------------------------
def test_recovery_requeues_an_interrupted_job_and_counts_the_crash(s):
    job_id = s.drop("cat.png")
    s.journal.start(job_id, "cat.png", 3)
    s.journal.progress(job_id, 2, 3, 1.0)
    s.runner.recover()
    job = s.journal.get(job_id)
    assert (job.state, job.crashes, job.output) == ("queued", 1, "cat.png")
    assert s.run_next() == "done"
    assert s.files("outbox") == ["cat.png"]  # the reserved name, not cat-2.png


def test_recovery_finishes_a_job_whose_output_was_written(s):
    job_id = s.drop("cat.png")
    s.journal.start(job_id, "cat.png", 3)
    (s.layout.folder("outbox", "paint") / "cat.png").write_bytes(image_bytes(cat(), "PNG"))
    s.runner.recover()
    assert s.journal.get(job_id).state == "done"
    assert s.files("processed") == ["cat.png"] and s.files("inbox") == []
    assert s.engine.calls == []


def test_recovery_completes_a_move_cut_between_link_and_unlink(s):
    job_id = s.drop("cat.png")
    s.journal.start(job_id, "cat.png", 3)
    (s.layout.folder("outbox", "paint") / "cat.png").write_bytes(b"done")
    s.journal.finishing(job_id, "cat.png")
    os.link(s.inbox("cat.png"), s.layout.folder("processed", "paint") / "cat.png")
    s.runner.recover()
    assert s.journal.get(job_id).state == "done"
    assert s.files("processed") == ["cat.png"] and s.files("inbox") == []


def test_recovery_completes_a_failure(s):
    job_id = s.drop("bad.png", b"junk")
    s.journal.failing(job_id, "bad.png", "content image 'bad.png': not an image")
    s.runner.recover()
    assert s.journal.get(job_id).state == "failed"
    assert s.files("failed") == ["bad.png", "bad.png.error.txt"]


def test_recovery_removes_half_written_outputs_and_stale_checkpoints(s):
    job_id = s.drop("cat.png")
    s.journal.start(job_id, "cat.png", 3)
    outbox = s.layout.folder("outbox", "paint")
    (outbox / ".cat.png.k2j3h4.tmp").write_bytes(b"half")
    (outbox / ".keep-me.tmp").write_bytes(b"not ours")
    (s.layout.checkpoints / ".job-1.npz.abc.tmp").write_bytes(b"half")
    (s.layout.checkpoints / "job-99.npz").write_bytes(b"old")
    s.runner.recover()
    assert sorted(os.listdir(outbox)) == [".keep-me.tmp"]
    assert os.listdir(s.layout.checkpoints) == []


def test_a_file_the_daemon_keeps_dying_on_goes_to_failed(s):
    job_id = s.drop("cat.png")
    for _ in range(2):
        s.journal.start(job_id, "cat.png", 3)
        s.runner.recover()
    assert s.run_next() == "failed"
    assert "the daemon stopped 2 times while painting this file" in s.error("cat.png")


@pytest.mark.parametrize(
    ("daemon_budget", "route_overrides", "expected"),
    [
        (6 * 2**30, {}, 6 * 2**30),  # the daemon's budget goes with every job
        (6 * 2**30, {"max_memory": "2G"}, 2 * 2**30),  # a route's own wins
        (None, {}, 8 * 2**30),  # neither: the engine takes the machine's free memory
    ],
)
def test_the_memory_budget_reaches_the_engine(
    tmp_path, monkeypatch, daemon_budget, route_overrides, expected
):
    monkeypatch.setattr(memory, "available", lambda: 10 * 2**30)  # a default of 8G
    s = Setup(tmp_path / "root", overrides=route_overrides)
    s.config = Config(
        s.config.root, None, DaemonSettings(max_memory=daemon_budget), s.config.routes
    )
    s.runner = Runner(s.layout, s.config, s.journal, s.engine, s.cancel, s.nudge)
    s.drop("a.png")
    s.run_next()
    call = s.engine.calls[0]  # resolved as the engine resolves it (check_route too)
    assert memory.budget(call.recipe.max_memory, call.job.max_memory) == expected
    s.journal.close()
