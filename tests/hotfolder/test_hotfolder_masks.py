"""Masks beside a photo in the hot folder (photo.mask.png, photo.mask2.png): taken with their
photo once settled and never as photos, read like it, moved with it to processed/ or failed/,
a bad one failing the photo with one reason, and every move completed after a crash. A stand-in
engine; the mask's effect on the picture is the engine's tests' (tests/engine)."""

from __future__ import annotations

import os
import threading

import pytest
from PIL import Image

from impasto.errors import InputError
from impasto.hotfolder.config import Config, DaemonSettings, Route
from impasto.hotfolder.daemon import Daemon
from impasto.hotfolder.intake import Intake
from impasto.hotfolder.journal import Identity, Journal, MaskFile
from impasto.hotfolder.layout import Layout
from impasto.hotfolder.runner import Runner
from impasto.images import read_settings
from impasto.sidecars import mask_of, masks_by_style
from tests.hotfolder.helpers import STARRY, WAVE, FakeEngine, cat, image_bytes, jobs

ONE_STYLE = ((str(STARRY), 1.0),)
TWO_STYLES = ((str(STARRY), 1.0), (str(WAVE), 1.0))


def half_mask(size=None, value=255) -> bytes:
    """A PNG of the cat photo's shape (or `size`): its left half `value`, the rest black."""
    w, h = size or cat().size
    img = Image.new("L", (w, h), 0)
    img.paste(value, (0, 0, w // 2, h))
    return image_bytes(img, "PNG")


class Setup:
    def __init__(self, root, styles=ONE_STYLE):
        self.layout = Layout(root)
        self.layout.ensure(["paint"])
        paint = Route(name="paint", styles=styles, size=64)
        self.config = Config(root, None, DaemonSettings(max_crashes=2), {"paint": paint})
        self.journal = Journal(self.layout.journal)
        self.engine = FakeEngine()
        self.runner = Runner(self.layout, self.config, self.journal, self.engine, threading.Event())

    def put(self, name: str, data: bytes) -> Identity:
        path = self.layout.folder("inbox", "paint") / name
        path.write_bytes(data)
        return Identity.of(os.lstat(path))

    def drop(self, name: str, masks: dict[str, bytes] = None, data: bytes | None = None) -> int:
        """The photo and its masks in the inbox, queued as the intake queues them."""
        found = tuple(MaskFile(m, self.put(m, d)) for m, d in sorted((masks or {}).items()))
        identity = self.put(name, image_bytes(cat(), "PNG") if data is None else data)
        return self.journal.enqueue("paint", name, identity, found)

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


# --- the naming rule --------------------------------------------------------------------------
def test_the_naming_rule():
    assert mask_of("photo.mask.png") == ("photo", 0)
    assert mask_of("photo.mask1.png") == ("photo", 0)
    assert mask_of("IMG 2041.jpg.MASK2.webp") == ("IMG 2041.jpg", 1)
    for photo in ("photo.png", "mask.png", "photo.masks.png", "photo.mask0.png", "photo.mask"):
        assert mask_of(photo) is None, photo
    assert masks_by_style(["c.mask2.png"], 2) == [None, "c.mask2.png"]
    with pytest.raises(InputError, match="'c.mask.png' and 'c.mask1.png' are both masks for st"):
        masks_by_style(["c.mask1.png", "c.mask.png"], 2)
    with pytest.raises(InputError, match="mask 'c.mask2.png' is for style 2, but there is 1 st"):
        masks_by_style(["c.mask2.png"], 1)


# --- the runner -------------------------------------------------------------------------------
def test_a_photo_with_its_mask_is_painted_with_it_and_both_move_to_processed(s):
    mask = half_mask()
    s.drop("cat.png", {"cat.mask.png": mask})
    assert s.run_next() == "done"
    (checked,) = s.engine.calls
    assert checked.masks[0].image.getpixel((0, 0)) == 255  # the mask's pixels reached the job
    assert read_settings(s.layout.folder("outbox", "paint") / "cat.png")["masks"] == [
        "cat.mask.png"
    ]
    assert s.files("inbox") == []
    assert s.files("processed") == ["cat.mask.png", "cat.png"]
    assert (s.layout.folder("processed", "paint") / "cat.mask.png").read_bytes() == mask
    (job,) = s.journal.in_state("done")
    assert [(m.name, m.moved_to) for m in job.masks] == [("cat.mask.png", "cat.mask.png")]


def test_masks_go_to_their_styles_and_keep_the_photos_new_name(tmp_path):
    s = Setup(tmp_path / "root", styles=TWO_STYLES)
    (s.layout.folder("processed", "paint") / "cat.png").write_bytes(b"an earlier cat")
    s.drop("cat.png", {"cat.mask2.png": half_mask()})
    assert s.run_next() == "done"
    assert [m is None for m in s.engine.calls[0].masks] == [True, False]
    assert s.files("processed") == ["cat-2.mask2.png", "cat-2.png", "cat.png"]


@pytest.mark.parametrize(
    ("masks", "reason"),
    [
        (
            {"cat.mask.png": half_mask((80, 80))},
            r"^mask 1 'cat.mask.png': 80x80 does not have the photo's shape",
        ),
        ({"cat.mask.png": half_mask(value=0)}, r"^mask 1 'cat.mask.png': it is all black"),
        ({"cat.mask.png": b"not a picture"}, r"^mask 1 image 'cat.mask.png': not an image"),
        ({"cat.mask2.png": half_mask()}, r"^mask 'cat.mask2.png' is for style 2, but there is 1"),
        (
            {"cat.mask.png": half_mask(), "cat.mask1.png": half_mask()},
            r"^'cat.mask.png' and 'cat.mask1.png' are both masks for style 1",
        ),
    ],
)
def test_a_bad_mask_fails_its_photo_with_one_reason_and_both_go_to_failed(s, masks, reason):
    import re

    s.drop("cat.png", masks)
    s.drop("dog.png", {"dog.mask.png": half_mask()})  # the positive control, in the same queue
    assert s.run_next() == "failed"
    assert s.files("failed") == sorted([*masks, "cat.png", "cat.png.error.txt"])
    why = s.error("cat.png")
    assert re.search(reason, why) and why.count("\n") == 1, why
    assert s.run_next() == "done"
    assert s.files("processed") == ["dog.mask.png", "dog.png"] and s.files("inbox") == []


def test_a_mask_dropped_after_its_photo_was_queued_is_waited_for(s):
    s.drop("cat.png")
    s.put("cat.mask.png", half_mask())  # before the job starts
    assert s.run_next() == "changed"  # given back to the intake, which queues both
    assert s.engine.calls == [] and jobs(s.layout.root) == []
    assert s.files("inbox") == ["cat.mask.png", "cat.png"]


def test_what_the_intake_would_never_take_does_not_hold_a_photo_back(s):
    (s.layout.folder("inbox", "paint") / "cat.mask2.png").mkdir()  # a folder
    s.put(".cat.mask.png", half_mask())  # hidden
    s.drop("cat.png")
    assert s.run_next() == "done"
    assert s.engine.calls[0].masks is None


def test_a_mask_changed_after_it_was_queued_is_read_anew(s):
    s.drop("cat.png", {"cat.mask.png": half_mask()})
    s.put("cat.mask.png", half_mask(value=200))
    assert s.run_next() == "changed"
    assert s.engine.calls == [] and s.files("inbox") == ["cat.mask.png", "cat.png"]


def test_a_symbolic_link_out_of_the_hot_folder_as_a_mask_is_not_followed(s, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(half_mask())
    (s.layout.folder("inbox", "paint") / "cat.mask.png").symlink_to(secret)
    link = Identity.of(os.lstat(s.layout.folder("inbox", "paint") / "cat.mask.png"))
    s.journal.enqueue(
        "paint",
        "cat.png",
        s.put("cat.png", image_bytes(cat(), "PNG")),
        (MaskFile("cat.mask.png", link),),
    )
    assert s.run_next() == "failed"
    assert "mask 'cat.mask.png': a symbolic link to" in s.error("cat.png")
    assert os.path.islink(s.layout.folder("failed", "paint") / "cat.mask.png")  # moved as it is
    assert secret.read_bytes() == half_mask()


# --- after a crash ----------------------------------------------------------------------------
def test_recovery_moves_the_masks_a_crash_left_behind(s):
    job_id = s.drop("cat.png", {"cat.mask.png": half_mask(), "cat.mask2.png": half_mask()})
    s.journal.start(job_id, "cat.png", 3)
    (s.layout.folder("outbox", "paint") / "cat.png").write_bytes(b"painted")
    job = s.journal.get(job_id)
    masks = s.runner._mask_dests(
        job, s.layout.folder("processed", "paint"), "cat.png", set().__contains__
    )
    s.journal.finishing(job_id, "cat.png", masks)
    processed = s.layout.folder("processed", "paint")
    inbox = s.layout.folder("inbox", "paint")
    os.rename(inbox / "cat.png", processed / "cat.png")  # the photo moved, then the power went
    os.link(inbox / "cat.mask.png", processed / "cat.mask.png")  # ... between link and unlink
    s.runner.recover()
    assert s.journal.get(job_id).state == "done"
    assert s.files("inbox") == []
    assert s.files("processed") == ["cat.mask.png", "cat.mask2.png", "cat.png"]
    assert s.engine.calls == []


def test_recovery_of_a_job_painted_before_the_crash_moves_its_masks_too(s):
    job_id = s.drop("cat.png", {"cat.mask.png": half_mask()})
    s.journal.start(job_id, "cat.png", 3)
    (s.layout.folder("outbox", "paint") / "cat.png").write_bytes(b"painted")
    s.runner.recover()
    assert s.files("processed") == ["cat.mask.png", "cat.png"] and s.files("inbox") == []


def test_recovery_completes_a_failure_with_its_masks(s):
    job_id = s.drop("cat.png", {"cat.mask.png": half_mask()})
    job = s.journal.get(job_id)
    masks = s.runner._mask_dests(
        job, s.layout.folder("failed", "paint"), "cat.png", set().__contains__
    )
    s.journal.failing(job_id, "cat.png", "mask 1 'cat.mask.png': it is all black", masks)
    s.runner.recover()
    assert s.files("failed") == ["cat.mask.png", "cat.png", "cat.png.error.txt"]
    assert s.files("inbox") == []


def test_a_journal_from_before_masks_is_opened_and_kept(tmp_path):
    import sqlite3

    path = tmp_path / "journal.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, route TEXT NOT NULL, name TEXT "
        "NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns "
        "INTEGER NOT NULL, state TEXT NOT NULL, output TEXT, moved_to TEXT, reason TEXT, note "
        "TEXT, left_in_inbox INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL DEFAULT 0, total "
        "INTEGER NOT NULL DEFAULT 0, eta REAL, crashes INTEGER NOT NULL DEFAULT 0, queued_at "
        "REAL NOT NULL, started_at REAL, finished_at REAL);"
        "INSERT INTO jobs (route, name, dev, ino, size, mtime_ns, state, queued_at) "
        "VALUES ('paint', 'old.png', 1, 2, 3, 4, 'queued', 0);"
    )
    old.commit()
    old.close()
    journal = Journal(path)
    (job,) = journal.in_state("queued")
    assert job.name == "old.png" and job.masks == ()
    journal.close()


# --- the intake and the daemon ----------------------------------------------------------------
FAST = DaemonSettings(settle_seconds=0.2, closed_settle_seconds=0.1, rescan_seconds=0.5)


def test_the_daemon_paints_a_photo_with_its_mask_and_leaves_a_lone_mask_alone(tmp_path):
    inbox = tmp_path / "inbox" / "paint"
    inbox.mkdir(parents=True)
    (inbox / "cat.mask.png").write_bytes(half_mask())
    (inbox / "cat.png").write_bytes(image_bytes(cat(), "PNG"))
    (inbox / "lone.mask.png").write_bytes(half_mask())
    (inbox / "dog.png").write_bytes(image_bytes(cat(), "PNG"))  # and one without a mask
    route = Route(name="paint", styles=ONE_STYLE, size=64)
    engine = FakeEngine()
    assert (
        Daemon(Config(tmp_path, None, FAST, {"paint": route}), once=True, engine=engine).run() == 0
    )
    assert sorted(row["name"] for row in jobs(tmp_path)) == ["cat.png", "dog.png"]  # no masks
    assert read_settings(tmp_path / "outbox" / "paint" / "cat.png")["masks"] == ["cat.mask.png"]
    assert "masks" not in read_settings(tmp_path / "outbox" / "paint" / "dog.png")
    processed = sorted(os.listdir(tmp_path / "processed" / "paint"))
    assert processed == ["cat.mask.png", "cat.png", "dog.png"]
    assert os.listdir(inbox) == ["lone.mask.png"]  # never deleted, never taken
    log = (tmp_path / "hotfolder.log").read_text()
    assert "queued paint/cat.png with cat.mask.png" in log
    assert "inbox/paint/lone.mask.png is a mask, and no photo lone.* is beside it" in log
    assert "error" not in log.lower()


def test_a_photo_waits_for_a_mask_that_is_still_being_written(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    layout.ensure(["paint"])
    inbox = layout.folder("inbox", "paint")
    journal = Journal(layout.journal)
    intake = Intake(layout, ["paint"], 1.0, 0.5, 30, True, on_queued=lambda: None)
    clock = [0.0]
    monkeypatch.setattr("impasto.hotfolder.intake.time.monotonic", lambda: clock[0])

    def tick(at: float):
        clock[0] = at
        intake._list_all()
        intake._check(journal)

    (inbox / "cat.png").write_bytes(image_bytes(cat(), "PNG"))
    tick(0.0)
    tick(0.1)
    (inbox / "cat.mask.png").write_bytes(half_mask()[:100])  # arrives while the photo settles
    tick(0.9)
    (inbox / "cat.mask.png").write_bytes(half_mask())  # ... and is still being written
    tick(1.5)  # the photo has settled, its mask has not: it waits
    assert journal.in_state("queued") == []
    tick(2.6)  # both settled: queued together
    (job,) = journal.in_state("queued")
    assert job.name == "cat.png" and [m.name for m in job.masks] == ["cat.mask.png"]
    assert job.masks[0].identity == Identity.of(os.lstat(inbox / "cat.mask.png"))
    tick(5.0)  # a mask is never queued as a photo
    assert len(journal.in_state("queued")) == 1
    journal.close()
