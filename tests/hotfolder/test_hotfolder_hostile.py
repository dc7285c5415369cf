"""Hostile and broken inputs (issue 21), with the stand-in engine: whatever one file does, it ends
in failed/ with a one-line reason and the next file is painted; a file or folder swapped between
the check and the read is not followed; the daemon's own files are never written through a
planted link; names cannot forge log lines. Every refusal has its positive control beside it."""

from __future__ import annotations

import os
import random
import signal
import stat
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

import impasto.hotfolder.runner as runner_module
from impasto.errors import ImpastoError
from impasto.hotfolder.daemon import Daemon
from impasto.hotfolder.journal import Identity
from impasto.hotfolder.layout import Layout, printable
from impasto.hotfolder.status import format_status, gather
from tests.hotfolder.helpers import FakeEngine, cat, image_bytes, jobs
from tests.hotfolder.test_hotfolder_loop import config
from tests.hotfolder.test_hotfolder_runner import Setup

EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
    b"(%pipe%touch /tmp/impasto-pwned) (w) file\nshowpage\n"
)


def run_once(cfg, engine=None, limit: float = 60.0) -> FakeEngine:
    """Daemon(once=True).run() in this thread (it installs signal handlers), stopped and failed
    if it has not exited within `limit` seconds (a file taken again and again)."""
    engine = engine or FakeEngine()
    daemon = Daemon(cfg, once=True, engine=engine)
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        daemon.stop.set()
        daemon.cancel.set()
        daemon.wake.set()

    timer = threading.Timer(limit, stop)
    timer.start()
    try:
        assert daemon.run() == 0
    finally:
        timer.cancel()
    assert not timed_out.is_set(), f"--once did not exit within {limit:g} s"
    return engine


def drop(root, files: dict[str, bytes]) -> None:
    """Files into inbox/paint/, arriving in the order given (mtimes a second apart)."""
    inbox = root / "inbox" / "paint"
    inbox.mkdir(parents=True, exist_ok=True)
    start = time.time() - len(files) - 10
    for n, (name, data) in enumerate(files.items()):
        (inbox / name).write_bytes(data)
        os.utime(inbox / name, (start + n, start + n))


def listing(root, kind: str) -> list[str]:
    return sorted(os.listdir(root / kind / "paint"))


def error_line(root, name: str) -> str:
    text = (root / "failed" / "paint" / f"{name}.error.txt").read_text()
    assert text.endswith("\n") and text.count("\n") == 1  # one line
    return text[:-1]


# --- 1. any failure of one file ends in failed/, and the queue moves on -------------------------
def _struct_error(checked_job):
    raise struct.error("unpack requires a buffer of 4 bytes")


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("check", "unexpected error: struct.error: unpack requires a buffer of 4 bytes"),
        ("describe", "unexpected error: subprocess.CalledProcessError: Command '['gs']'"),
    ],
)
def test_an_unexpected_error_fails_that_file_and_the_next_is_painted(
    tmp_path, monkeypatch, where, expected
):
    """Before: the job stayed queued and was taken again forever; --once never exited."""
    real_check = runner_module.check_job

    def check_job(job):
        if job.content_name == "bad.png":
            raise struct.error("unpack requires a buffer of 4 bytes")
        return real_check(job)

    class Engine(FakeEngine):
        def describe(self, checked):
            if checked.job.content_name == "bad.png":
                raise subprocess.CalledProcessError(1, ["gs"], "boom")
            return super().describe(checked)

    if where == "check":
        monkeypatch.setattr(runner_module, "check_job", check_job)
    monkeypatch.setattr(Daemon, "ERROR_PAUSE", 0.1)
    good = image_bytes(cat(), "PNG")
    drop(tmp_path, {"bad.png": good, "good.png": good})
    run_once(config(tmp_path), Engine())
    assert listing(tmp_path, "failed") == ["bad.png", "bad.png.error.txt"]
    assert error_line(tmp_path, "bad.png").startswith(expected)
    assert listing(tmp_path, "outbox") == ["good.png"]  # the positive control
    assert listing(tmp_path, "inbox") == []
    assert [(j["name"], j["state"]) for j in jobs(tmp_path)] == [
        ("bad.png", "failed"),
        ("good.png", "done"),
    ]
    log = (tmp_path / "hotfolder.log").read_text()
    assert "Traceback (most recent call last)" in log  # the whole story is in the log


def test_a_hostile_eps_named_jpg_is_refused_at_once(tmp_path):
    drop(tmp_path, {"photo.jpg": EPS, "cat.jpg": image_bytes(cat(), "JPEG")})
    engine = run_once(config(tmp_path))
    assert listing(tmp_path, "failed") == ["photo.jpg", "photo.jpg.error.txt"]
    assert "not an image impasto reads" in error_line(tmp_path, "photo.jpg")
    assert listing(tmp_path, "outbox") == ["cat.png"]  # the positive control (PNG out)
    assert [c.job.content_name for c in engine.calls] == ["cat.jpg"]
    eps = next(j for j in jobs(tmp_path) if j["name"] == "photo.jpg")
    assert eps["finished_at"] - eps["queued_at"] < 1.0
    assert not os.path.exists("/tmp/impasto-pwned")


# --- 2. the input swapped between the check and the read ---------------------------------------
def swap_after_inspect(monkeypatch, swap):
    """Run `swap` right after the runner's first look at the file (inspect), before it reads."""
    real = runner_module.inspect
    done = []

    def inspect(*args, **kwargs):
        verdict = real(*args, **kwargs)
        if not done:
            done.append(True)
            swap()
        return verdict

    monkeypatch.setattr(runner_module, "inspect", inspect)


def test_an_inbox_folder_swapped_for_a_link_out_of_root_is_not_followed(tmp_path, monkeypatch):
    s = Setup(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = image_bytes(cat(90).convert("L"), "PNG")
    (outside / "cat.png").write_bytes(secret)
    inbox = s.layout.folder("inbox", "paint")

    def swap():
        inbox.rename(inbox.with_name("paint.old"))
        inbox.symlink_to(outside)

    swap_after_inspect(monkeypatch, swap)
    s.drop("cat.png")
    assert s.run_next() == "failed"
    assert s.engine.calls == []  # nothing read, nothing painted
    assert "inbox/paint was replaced by a symbolic link" in s.error("cat.png")
    assert (outside / "cat.png").read_bytes() == secret  # not moved out of its place
    assert s.files("outbox") == [] and s.files("processed") == []

    inbox.unlink()  # the positive control: the real folder back, a new file is painted
    inbox.with_name("paint.old").rename(inbox)
    s.drop("dog.png")
    assert s.run_next() == "done" and s.files("outbox") == ["dog.png"]


def test_an_inbox_that_was_a_link_at_start_is_the_operators_and_works(tmp_path):
    elsewhere = tmp_path / "bigdisk" / "paint"
    elsewhere.mkdir(parents=True)
    (tmp_path / "root" / "inbox").mkdir(parents=True)
    (tmp_path / "root" / "inbox" / "paint").symlink_to(elsewhere)
    s = Setup(tmp_path / "root")
    s.drop("cat.png")
    assert s.run_next() == "done" and s.files("outbox") == ["cat.png"]
    assert os.listdir(elsewhere) == []


def test_a_fifo_swapped_in_after_the_check_fails_without_hanging(tmp_path, monkeypatch):
    s = Setup(tmp_path / "root")
    path = s.inbox("cat.png")

    def swap():
        path.unlink()
        os.mkfifo(path)

    swap_after_inspect(monkeypatch, swap)
    s.drop("cat.png")

    def hung(signum, frame):
        raise TimeoutError("the daemon hung on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)  # interrupts a blocking open() or read()
    signal.alarm(30)
    try:
        outcome = s.run_next()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert outcome == "failed"
    assert "named pipe (FIFO), not a regular file" in s.error("cat.png")
    assert s.engine.calls == []
    s.drop("dog.png")  # the positive control
    assert s.run_next() == "done" and s.files("outbox") == ["dog.png"]


def test_the_engine_gets_the_bytes_that_were_checked_not_the_path(tmp_path):
    s = Setup(tmp_path / "root")
    data = image_bytes(cat(), "PNG")
    s.drop("cat.png", data)
    assert s.run_next() == "done"
    (checked,) = s.engine.calls
    assert checked.job.content == data and checked.job.content_name == "cat.png"
    assert checked.settings()["content"] == "cat.png"  # as a path gave: checkpoints still match


def test_a_cluster_worker_gets_the_same_bytes_under_the_same_name(tmp_path):
    """The Ray request carries the bytes the daemon read (no path the worker could reopen)."""
    pytest.importorskip("ray")
    from impasto.cluster.worker import Request

    s = Setup(tmp_path / "root")
    data = image_bytes(cat(), "PNG")
    s.drop("cat.png", data)
    assert s.run_next() == "done"
    (checked,) = s.engine.calls
    request = Request.of(checked)
    assert request.content == ("cat.png", data)
    (tmp_path / "worker").mkdir()
    job, names = request.materialise(tmp_path / "worker")
    assert Path(job.content).read_bytes() == data and names[job.content] == "cat.png"
    assert runner_module.check_job(job).settings()["content"] == checked.settings()["content"]


# --- 3. the state folder ------------------------------------------------------------------------
def test_the_state_folder_is_private_and_a_looser_one_is_tightened(tmp_path, caplog):
    layout = Layout(tmp_path)
    layout.ensure(["paint"])
    assert stat.S_IMODE(os.stat(layout.state).st_mode) == 0o700
    os.chmod(layout.state, 0o755)
    layout.ensure(["paint"])
    assert stat.S_IMODE(os.stat(layout.state).st_mode) == 0o700
    assert "was open to other users (mode 755); made it 0700" in caplog.text


@pytest.mark.parametrize("planted", [".hotfolder/daemon.lock", "hotfolder.log"])
def test_a_link_planted_as_the_lock_or_the_log_is_refused(tmp_path, planted):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    root = tmp_path / "root"
    drop(root, {"cat.png": image_bytes(cat(), "PNG")})
    (root / ".hotfolder").mkdir(mode=0o700)
    (root / planted).symlink_to(victim)
    with pytest.raises(ImpastoError, match="is a symbolic link; the daemon does not write"):
        Daemon(config(root), once=True, engine=FakeEngine()).run()
    assert victim.read_text() == "precious\n"
    (root / planted).unlink()  # the positive control
    run_once(config(root))
    assert listing(root, "outbox") == ["cat.png"]
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("column", ["output", "moved_to"])
@pytest.mark.parametrize("name", ["../../../escaped.png", "ABSOLUTE", "sub/x.png", "a\\b", "x\0"])
def test_a_forged_journal_name_is_refused_and_nothing_leaves_root(tmp_path, caplog, column, name):
    """A row claiming an output elsewhere, or a move to elsewhere, as a crash would leave it."""
    s = Setup(tmp_path / "root")
    name = str(tmp_path / "escaped.png") if name == "ABSOLUTE" else name
    job_id = s.drop("cat.png")
    state = "running" if column == "output" else "finishing"
    sql = f"UPDATE jobs SET state = ?, {column} = ? WHERE id = ?"
    s.journal.db.execute(sql, (state, name, job_id))
    target = s.layout.folder("outbox" if column == "output" else "processed", "paint") / name
    if column == "output" and "\0" not in name:  # a picture where the forged output points
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"not ours")
    s.runner.recover()
    assert f"journal row {job_id} is corrupt" in caplog.text
    assert s.files("inbox") == ["cat.png"] and s.files("processed") == []  # not moved
    if column == "moved_to":
        assert not os.path.lexists(tmp_path / "escaped.png")  # nothing moved out of ROOT
    assert s.journal.get(job_id) is None  # out of every query from now on
    # the positive control: the intake sees the file anew, and it is painted
    assert s.journal.enqueue("paint", "cat.png", Identity.of(os.lstat(s.inbox("cat.png"))))
    assert s.run_next() == "done" and s.files("processed") == ["cat.png"]


def test_a_forged_queued_row_is_skipped_and_the_next_job_runs(tmp_path, caplog):
    s = Setup(tmp_path / "root")
    victim = tmp_path / "root" / "victim.png"
    victim.write_bytes(image_bytes(cat(), "PNG"))
    forged = s.journal.enqueue("paint", "x.png", Identity.of(os.lstat(victim)))
    s.journal.db.execute("UPDATE jobs SET name = '../../victim.png' WHERE id = ?", (forged,))
    s.drop("cat.png")  # the positive control, queued after it
    assert s.run_next() == "done" and s.files("outbox") == ["cat.png"]
    assert f"journal row {forged} is corrupt" in caplog.text
    assert victim.is_file() and s.files("failed") == []
    assert s.journal.next_queued(["paint"]) is None


# --- 4. names cannot forge log lines ------------------------------------------------------------
def test_control_characters_in_names_are_escaped_in_the_log_and_the_status(tmp_path):
    evil = "a\n2030-01-01 00:00:00,000 INFO done forged.png\x1b[31m.png"
    bad = "b\x1b[2J\n.png"
    drop(tmp_path, {evil: image_bytes(cat(), "PNG"), bad: b"not an image"})
    run_once(config(tmp_path))
    assert listing(tmp_path, "outbox") == [evil.rsplit(".", 1)[0] + ".png"]  # still painted
    log = (tmp_path / "hotfolder.log").read_text()
    assert "\x1b" not in log
    assert not any(line.startswith("2030-01-01") for line in log.splitlines())
    assert printable(evil) in log and "\\x1b[31m" in log
    status = format_status(gather(Layout(tmp_path)))
    assert "\x1b" not in status and printable(bad) in status
    assert not any(line.startswith("2030") for line in status.splitlines())
    assert "\x1b" not in error_line(tmp_path, bad)  # (one line: error_line checks)


def test_printable():
    assert printable("cat.png") == "cat.png"
    assert printable("été 東京.jpg") == "été 東京.jpg"
    assert printable("a\nb\x1b[31m\u202e.png") == "a\\nb\\x1b[31m\\u202e.png"


# --- 5. fuzz ------------------------------------------------------------------------------------
def fuzzed_files(seed: int = 21) -> tuple[dict[str, bytes], set[str], set[str]]:
    """(name -> bytes, names that must fail, names that must be painted): mutations of small
    images of every format the engine reads, and a few good ones between them."""
    rng = random.Random(seed)
    img = cat(48)
    sources = {fmt: image_bytes(img, fmt) for fmt in ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP")}
    files, bad, good = {}, set(), set()

    def add(name: str, data: bytes, kind: set | None = None) -> None:
        files[name] = data
        if kind is not None:
            kind.add(name)

    for fmt, data in sources.items():
        ext = fmt.lower()
        add(f"good-{ext}.{ext}", data, good)
        add(f"zero-{ext}.{ext}", b"", bad)
        add(f"magic-{ext}.{ext}", b"\0\0\0\0" + data[4:], bad)
        add(f"head-{ext}.{ext}", data[: rng.randrange(1, 8)], bad)
        add(f"eps-{ext}.{ext}", EPS, bad)
        for n in range(3):
            add(f"cut{n}-{ext}.{ext}", data[: rng.randrange(8, len(data) - 1)])
        for n in range(4):
            flipped = bytearray(data)
            for _ in range(rng.randrange(1, 24)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            add(f"flip{n}-{ext}.{ext}", bytes(flipped))
        add(f"swapped-{ext}.{ext}", sources["PNG" if fmt != "PNG" else "JPEG"][:16] + data[16:])
    add("ps.jpg", b"%!PS-Adobe-2.0\n/Times-Roman findfont 12 scalefont setfont\nshowpage\n", bad)
    add("eps-binary.tif", b"\xc5\xd0\xd3\xc6" + b"\0" * 28 + EPS, bad)
    add("text.png", b"hello\n", bad)
    add("random.png", rng.randbytes(5000), bad)
    return files, bad, good


def test_fuzzed_files_each_end_painted_or_failed_with_one_line_and_nothing_hangs(tmp_path):
    files, bad, good = fuzzed_files()
    assert len(files) > 80 and len(bad) > 25 and len(good) == 6
    drop(tmp_path, files)
    started = time.monotonic()
    run_once(config(tmp_path), limit=240)
    assert time.monotonic() - started < 240
    assert listing(tmp_path, "inbox") == []
    failed = {n for n in listing(tmp_path, "failed") if not n.endswith(".error.txt")}
    processed = set(listing(tmp_path, "processed"))
    assert failed | processed == set(files) and not failed & processed
    assert bad <= failed and good <= processed
    for name in failed:
        line = error_line(tmp_path, name)
        assert line and line.isprintable()
    states = {j["name"]: j["state"] for j in jobs(tmp_path)}
    assert {states[n] for n in failed} == {"failed"} and {states[n] for n in processed} == {"done"}
    assert len(os.listdir(tmp_path / "outbox" / "paint")) == len(processed)
    for name in os.listdir(tmp_path / "outbox" / "paint"):
        with Image.open(tmp_path / "outbox" / "paint" / name) as out:
            out.load()
