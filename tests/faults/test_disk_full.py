"""A real full disk under the hot folder: ROOT on a small tmpfs that fills up while a job runs
(just before its save, or before a journal write). Nothing is lost or half-written, no job
fails for it, the queue pauses and says why (log, stderr and --status), and it resumes by itself
once space is freed. Needs root (mount); skips otherwise, or fails when CI is set."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from impasto.hotfolder.layout import Layout
from impasto.hotfolder.status import format_status, gather
from tests.conftest import CAT, ROOT, STARRY, skip_or_fail

CONFIG = f"""
[daemon]
settle_seconds = 0.2
closed_settle_seconds = 0.1
rescan_seconds = 0.5

[routes.paint]
styles = ["{STARRY}"]
size = 64
"""


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs at tmp_path/disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        skip_or_fail(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def png(shift: int) -> bytes:
    img = Image.eval(Image.open(CAT).convert("RGB").resize((72, 48)), lambda v: (v + shift) % 256)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def wait_for(what: str, predicate, proc, err: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the daemon stopped waiting for {what}:\n{err.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}:\n{err.read_text()}")
        time.sleep(0.1)


@pytest.mark.parametrize(
    "fill_before, why",
    # Filled just before the save, the save usually meets the full disk; on a busy machine a
    # journal row written between the painting and the save may meet it first. Either pauses.
    [
        ("save", ("No space left on device", "database or disk is full")),
        ("progress 1", ("database or disk is full",)),
    ],
)
def test_a_full_disk_pauses_the_queue_until_space_is_freed(small_disk, tmp_path, fill_before, why):
    root = small_disk / "studio"
    (root / "inbox" / "paint").mkdir(parents=True)
    (root / "hotfolder.toml").write_text(CONFIG)
    filler = small_disk / "filler"
    err = tmp_path / "daemon.err"
    env = {
        **os.environ,
        "IMPASTO_TEST_FILL_BEFORE": fill_before,
        "IMPASTO_TEST_FILLER": str(filler),
    }
    with open(err, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.daemon_main", str(root)],
            stderr=fh,
            cwd=ROOT,
            env=env,
        )
    try:
        inbox, outbox = root / "inbox" / "paint", root / "outbox" / "paint"
        files = {"a.png": png(0), "b.png": png(40)}
        for name, data in files.items():
            (inbox / name).write_bytes(data)

        paused = "paused: no space left on the disk"
        wait_for("the pause", lambda: paused in err.read_text(), proc, err)
        assert any(w in err.read_text() for w in why)  # what found the disk full, in the log
        status = format_status(gather(Layout(root)))
        assert paused in status, status
        time.sleep(1.5)  # long enough for a daemon that does not pause to fail the next job
        assert sorted(os.listdir(inbox)) == ["a.png", "b.png"], "an input left the inbox"
        assert os.listdir(outbox) == [], "a (half) output was written"
        assert os.listdir(root / "failed" / "paint") == [], "a job failed for the full disk"
        assert not (Path(os.environ["XDG_CACHE_HOME"]) / "impasto" / "recovered").exists()

        filler.unlink()  # space is freed: the queue resumes by itself
        wait_for(
            "the queue to resume and finish",
            lambda: sorted(os.listdir(root / "processed" / "paint")) == ["a.png", "b.png"],
            proc,
            err,
        )
        assert "paused" not in format_status(gather(Layout(root)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert sorted(os.listdir(outbox)) == ["a.png", "b.png"]
    for name in files:
        with Image.open(outbox / name) as img:
            img.load()
    db = sqlite3.connect(f"file:{root / '.hotfolder' / 'journal.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT name, state, crashes FROM jobs ORDER BY name").fetchall()
    db.close()
    assert rows == [("a.png", "done", 0), ("b.png", "done", 0)]  # a full disk is no crash
    log = (root / "hotfolder.log").read_text()
    assert "resumed: space was freed" in log
