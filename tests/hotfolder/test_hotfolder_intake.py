"""When a file is taken: complete, not a temporary name, safe to read; and the intake thread that
queues such files in arrival order, by events and by rescans."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from impasto.hotfolder.intake import Intake, Settler, Unreadable, inspect, is_ignored, read_input
from impasto.hotfolder.journal import Identity, Journal
from impasto.hotfolder.layout import Layout
from tests.conftest import as_unprivileged_user
from tests.hotfolder.helpers import CAT, cat, image_bytes

MB = 1_000_000


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.jpg",
        ".DS_Store",
        "~$report.png",
        "photo.jpg.part",
        "photo.JPG.crdownload",
        "photo.jpg.tmp",
        "x.partial",
        "x.download",
        "x.filepart",
        "x.jpg~",
        "Thumbs.db",
    ],
)
def test_temporary_and_hidden_names_are_ignored(name):
    assert is_ignored(name)


@pytest.mark.parametrize("name", ["photo.jpg", "part.png", "tmp.tif", "my~photo.png", "x.parts"])
def test_ordinary_names_are_not_ignored(name):
    assert not is_ignored(name)


def test_inspect_regular_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x" * 10)
    verdict = inspect(tmp_path / "a.png", tmp_path, MB)
    assert verdict.kind == "file" and verdict.identity.size == 10


def test_inspect_refuses_a_symlink_out_of_the_hot_folder(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.png").symlink_to(CAT)
    verdict = inspect(root / "link.png", root, 100 * MB)
    assert verdict.kind == "refuse" and "outside the hot folder" in verdict.reason


def test_inspect_accepts_a_symlink_within_the_hot_folder(tmp_path):
    (tmp_path / "real.png").write_bytes(b"x")
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    assert inspect(tmp_path / "link.png", tmp_path, MB).kind == "file"


def test_inspect_refuses_a_dangling_symlink(tmp_path):
    (tmp_path / "link.png").symlink_to(tmp_path / "nowhere.png")
    verdict = inspect(tmp_path / "link.png", tmp_path, MB)
    assert verdict.kind == "refuse" and "does not exist" in verdict.reason


def test_inspect_refuses_a_symlink_loop_saying_so(tmp_path):
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    verdict = inspect(tmp_path / "loop.png", tmp_path, MB)
    assert verdict.kind == "refuse"
    assert verdict.reason == "a symbolic link that leads nowhere (a loop of symbolic links)"


def read(layout: Layout, name: str) -> bytes:
    """read_input of inbox/paint/<name>, as the runner calls it for the file it queued."""
    identity = Identity.of(os.lstat(layout.folder("inbox", "paint") / name))
    return read_input(layout, "paint", name, identity, MB)


def test_inspect_refuses_a_fifo_without_opening_it(tmp_path):
    layout = Layout(tmp_path)
    layout.ensure(["paint"])
    pipe = layout.folder("inbox", "paint") / "pipe.png"
    os.mkfifo(pipe)
    verdict = inspect(pipe, tmp_path, MB)
    assert verdict.kind == "refuse" and "FIFO" in verdict.reason
    # opening it for reading would block until a writer comes; read_input must not
    with pytest.raises(Unreadable, match="FIFO"):
        read(layout, "pipe.png")


def test_inspect_refuses_a_device_behind_a_symlink(tmp_path):
    (tmp_path / "null.png").symlink_to("/dev/null")
    verdict = inspect(tmp_path / "null.png", tmp_path, MB)
    assert verdict.kind == "refuse" and "outside" in verdict.reason


def test_inspect_refuses_files_over_the_size_limit(tmp_path):
    (tmp_path / "big.tif").write_bytes(b"x" * 3000)
    verdict = inspect(tmp_path / "big.tif", tmp_path, 2000)
    assert (
        verdict.kind == "refuse" and "larger than the 0.002 MB limit (max_file_mb" in verdict.reason
    )


def test_inspect_gone_and_folder(tmp_path):
    assert inspect(tmp_path / "nope.png", tmp_path, MB).kind == "gone"
    (tmp_path / "sub").mkdir()
    assert inspect(tmp_path / "sub", tmp_path, MB).kind == "skip"


def test_unreadable_file_is_reported():
    """A file the daemon's user may not read. Root reads everything, so under root (as in CI)
    the check runs in a forked child that has become `nobody`."""
    folder = Path(tempfile.mkdtemp())  # in /tmp: a folder `nobody` can enter
    try:
        folder.chmod(0o755)
        layout = Layout(folder)
        layout.ensure(["paint"])
        path = layout.folder("inbox", "paint") / "locked.png"
        path.write_bytes(b"x")
        path.chmod(0)
        assert "permission denied" in as_unprivileged_user(lambda: read(layout, "locked.png"))
        path.chmod(0o644)
        assert as_unprivileged_user(lambda: read(layout, "locked.png")) == "b'x'"
    finally:
        shutil.rmtree(folder)


def ident(size: int, mtime: int = 1) -> Identity:
    return Identity(1, 1, size, mtime)


def test_settler_waits_until_nothing_changes_for_the_interval():
    s = Settler(settle=2.0, closed_settle=0.5)
    assert not s.observe("a", ident(10), 0.0)
    assert not s.observe("a", ident(20), 1.5)  # still growing: the clock restarts
    assert not s.observe("a", ident(20), 3.0)
    assert s.observe("a", ident(20), 3.6)


def test_settler_closed_by_writer_is_taken_sooner():
    s = Settler(settle=2.0, closed_settle=0.5)
    s.observe("a", ident(10), 0.0)
    s.closed("a", ident(10), 0.1)
    assert not s.observe("a", ident(10), 0.4)
    assert s.observe("a", ident(10), 0.7)


def test_settler_a_reopened_and_appended_file_waits_the_full_interval():
    s = Settler(settle=2.0, closed_settle=0.5)
    s.observe("a", ident(10), 0.0)
    s.closed("a", ident(10), 0.1)
    assert not s.observe("a", ident(30), 0.7)  # written again after the close
    assert not s.observe("a", ident(30), 2.0)
    assert s.observe("a", ident(30), 2.8)


# --- the intake thread, in this process, with real files and a real journal ---------------------
class RunningIntake:
    """The intake thread on ROOT. Tests decide on events (a journal row, a full listing done),
    each with a generous deadline, never on how long something took."""

    def __init__(
        self, root, routes=("paint",), rescan=60.0, polling=False, observer=True, settle=0.4
    ):
        self.layout = Layout(root)
        self.layout.ensure(routes)
        self.intake = Intake(self.layout, list(routes), settle, 0.2, rescan, polling, lambda: None)
        if not observer:
            self.intake._start_observer = lambda: None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.intake.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.intake.scanned.wait(10)
        self.journal = Journal(self.layout.journal)

    def queued(self) -> list[str]:
        return [f"{j.route}/{j.name}" for j in self.journal.in_state("queued")]

    def wait_queued(self, n: int, timeout: float = 30.0) -> list[str]:
        wait_until(lambda: len(self.queued()) >= n, timeout, f"{n} queued file(s)")
        return self.queued()

    def wait_listed(self, timeout: float = 30.0) -> None:
        """Ask for a full listing of the inbox and wait until it has been done and every file it
        found has been decided on (queued, or left alone): after this, a file that is still not
        queued was not taken, however long we had waited."""
        self.intake.nudge()
        wait_until(self.intake.idle, timeout, "a full listing of the inbox")

    def wait_seen(self, name: str, size: int, timeout: float = 30.0) -> None:
        """Wait until the intake has looked at inbox/paint/<name> and seen it `size` bytes long."""

        def seen():
            entry = self.intake.settler._seen.get(("paint", name))
            return entry is not None and entry[0].size == size

        wait_until(seen, timeout, f"the intake to see {name} at {size} bytes")

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.journal.close()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def drop_with_mtime(folder: Path, name: str, data: bytes, mtime_ns: int) -> None:
    """Write a file under a hidden temporary name, give it its mtime, then rename it in, as copy
    tools do: the intake never sees it without the mtime that fixes its arrival order."""
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    os.utime(tmp, ns=(mtime_ns, mtime_ns))
    os.rename(tmp, folder / name)


@pytest.fixture
def intake(tmp_path):
    running = []

    def start(**kwargs):
        running.append(RunningIntake(tmp_path / "root", **kwargs))
        return running[-1]

    yield start
    for r in running:
        r.close()


def test_files_dropped_while_watching_are_queued_in_arrival_order(intake):
    it = intake()
    inbox = it.layout.folder("inbox", "paint")
    first = time.time_ns() - 10_000_000_000
    for n, name in enumerate(("b.png", "a.png", "c.png")):
        drop_with_mtime(inbox, name, image_bytes(cat(), "PNG"), first + n * 1_000_000_000)
    assert it.wait_queued(3) == ["paint/b.png", "paint/a.png", "paint/c.png"]


def test_growing_file_is_not_queued_until_its_writer_is_done(intake):
    """settle_seconds is far longer than the test, so nothing but the writer's close can let the
    file in: while it grows (and the intake sees it grow), it is not taken."""
    it = intake(settle=600)
    data = image_bytes(cat(), "PNG")
    path = it.layout.folder("inbox", "paint") / "slow.png"
    chunk = len(data) // 8
    with open(path, "wb") as fh:
        for i in range(0, len(data), chunk):
            fh.write(data[i : i + chunk])
            fh.flush()
            it.wait_seen("slow.png", fh.tell())
            assert it.queued() == []
    assert it.wait_queued(1) == ["paint/slow.png"]
    assert it.journal.in_state("queued")[0].identity.size == len(data)


def test_temporary_name_waits_until_renamed(intake):
    it = intake()
    inbox = it.layout.folder("inbox", "paint")
    (inbox / "photo.png.part").write_bytes(image_bytes(cat(), "PNG"))
    it.wait_listed()
    assert it.queued() == []
    os.rename(inbox / "photo.png.part", inbox / "photo.png")
    assert it.wait_queued(1) == ["paint/photo.png"]


def test_files_present_at_start_are_queued(tmp_path, intake):
    inbox = tmp_path / "root" / "inbox" / "paint"
    inbox.mkdir(parents=True)
    (inbox / "early.png").write_bytes(image_bytes(cat(), "PNG"))
    it = intake(observer=False)
    assert it.wait_queued(1) == ["paint/early.png"]


def test_periodic_rescan_finds_files_no_event_announced(intake):
    it = intake(observer=False, rescan=0.3)
    (it.layout.folder("inbox", "paint") / "missed.png").write_bytes(image_bytes(cat(), "PNG"))
    assert it.wait_queued(1) == ["paint/missed.png"]


def test_polling_observer_sees_new_files(intake):
    it = intake(polling=True)
    (it.layout.folder("inbox", "paint") / "polled.png").write_bytes(image_bytes(cat(), "PNG"))
    assert it.wait_queued(1) == ["paint/polled.png"]


def test_unconfigured_folders_and_loose_files_are_left_alone(intake, caplog):
    it = intake()
    inbox = it.layout.root / "inbox"
    (inbox / "other").mkdir()
    (inbox / "other" / "x.png").write_bytes(b"x")
    (inbox / "loose.png").write_bytes(b"x")
    (it.layout.folder("inbox", "paint") / "sub").mkdir()
    it.wait_listed()
    assert it.queued() == []
    assert (inbox / "other" / "x.png").exists() and (inbox / "loose.png").exists()
    assert "has no [routes.other]" in caplog.text
    assert "not inside a route folder" in caplog.text


def test_a_queued_file_is_not_queued_twice(intake):
    it = intake()
    (it.layout.folder("inbox", "paint") / "once.png").write_bytes(b"x" * 100)
    it.wait_queued(1)
    for _ in range(3):  # several full listings
        it.wait_listed()
    assert it.queued() == ["paint/once.png"]


def test_a_name_that_is_not_text_is_left_alone_and_the_others_go_on(intake, caplog):
    it = intake()
    inbox = it.layout.folder("inbox", "paint")
    with open(os.path.join(os.fsencode(inbox), b"bad\xff.png"), "wb") as fh:
        fh.write(b"x")
    (inbox / "back\\slash.png").write_bytes(b"x")  # the journal would refuse its name
    (inbox / "good.png").write_bytes(b"x")
    assert it.wait_queued(1) == ["paint/good.png"]
    it.wait_listed()
    assert it.queued() == ["paint/good.png"]
    assert "not valid UTF-8" in caplog.text
    assert "back\\slash.png: a backslash in a name is not taken" in caplog.text
