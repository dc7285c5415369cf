"""Power cuts under the hot folder: the daemon paints a stream of files on forgetfs (see
forgetfs.py), and again and again the power goes off (kill -9, then everything not fsynced is
dropped) at a random moment, and the daemon starts again. At the end, nothing is lost or doubled:
every input is in exactly one place (a photo's mask too, beside it), every output is whole and
belongs to a processed input,
the journal agrees with the folders, and a job the journal had finished when the power went off
is still finished, the same way, after it (not forgotten, then done again).

IMPASTO_POWER_CUTS sets the number of cuts (10 by default; 100 for a long run), and
IMPASTO_POWER_SEED the random seed (printed when a run fails).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from impasto.images import read_settings
from impasto.sidecars import mask_of
from tests.conftest import CAT, ROOT, STARRY

CUTS = int(os.environ.get("IMPASTO_POWER_CUTS", "10"))
CONFIG = f"""
[daemon]
settle_seconds = 0.2
closed_settle_seconds = 0.1
rescan_seconds = 0.5
max_crashes = 1000   # a file cut many times is painted again, never given up on

[routes.paint]
styles = ["{STARRY}"]
size = 64
"""


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """As a careful user (or the copy program) would drop a file: its data and its name synced."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    sync_dir(path.parent)


def inputs(count: int) -> dict[str, bytes]:
    """Distinct small PNGs: the cat tinted a little differently each time; every third has a
    mask (impasto.sidecars), listed before it so that it is dropped first."""
    base = Image.open(CAT).convert("RGB")
    base.thumbnail((72, 72))
    files = {}
    for n in range(count):
        if n % 3 == 0:
            mask = Image.new("L", base.size, 0)
            mask.paste(100 + n, (0, 0, base.size[0] // 2, base.size[1]))
            files[f"in-{n:03d}.mask.png"] = png(mask)
        files[f"in-{n:03d}.png"] = png(Image.eval(base, lambda v, n=n: (v + 7 * n) % 256))
    return files


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def painted(data: bytes) -> Image.Image:
    """What the stand-in engine makes of an input (tests/faults/daemon_main.py)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img.thumbnail((64, 64))
    return img


class Daemon:
    def __init__(self, root: Path, env: dict, n: int):
        self.err = root.parent.parent / f"daemon-{n}.err"  # beside the mount: no cut loses it
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.daemon_main", str(root)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=ROOT,
                env=env,
            )

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


def kill(daemon: Daemon) -> None:
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=30)  # (the cut waits for its last requests to land)


def log_size(root: Path) -> int:
    try:
        return (root / "hotfolder.log").stat().st_size
    except OSError:
        return 0


def log_has(root: Path, text: str, after: int = 0) -> bool:
    """True if the log has `text` beyond its first `after` bytes (what earlier runs wrote)."""
    try:
        with open(root / "hotfolder.log", "rb") as fh:
            fh.seek(after)
            return text.encode() in fh.read()
    except OSError:
        return False


def finished_jobs(root: Path) -> set[tuple]:
    """The journal's finished jobs, as they stand (read-only, the way --status reads)."""
    path = root / ".hotfolder" / "journal.sqlite"
    if not path.is_file():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return set(
            db.execute(
                "SELECT id, name, state, output, moved_to, finished_at FROM jobs "
                "WHERE state IN ('done', 'failed')"
            )
        )
    except sqlite3.OperationalError:  # no table yet
        return set()
    finally:
        db.close()


def temp_file_in(folder: Path) -> bool:
    try:
        return any(n.startswith(".") and n.endswith(".tmp") for n in os.listdir(folder))
    except OSError:
        return False


def run_with_cuts(forgetfs, cuts: int, seed: int, env: dict) -> tuple[Path, dict, set]:
    """The stream of files and the power cuts; returns ROOT, the inputs, and the jobs finished
    at the cuts, once the last daemon has finished."""
    rng = random.Random(seed)
    root = forgetfs.path / "studio"
    # the user's set-up, durable before the first start (as `impasto watch --init` leaves it)
    for folder in (root, root / "inbox", root / "inbox" / "paint"):
        folder.mkdir()
        sync_dir(folder.parent)
    write_durably(root / "hotfolder.toml", CONFIG.encode())
    files = inputs(cuts + 4)
    finished: set[tuple] = set()
    names = iter(files)
    outbox = root / "outbox" / "paint"
    for n in range(cuts):
        for _ in range(rng.choice((1, 1, 2))):
            name = next(names, None)
            if name:
                write_durably(root / "inbox" / "paint" / name, files[name])
        earlier = log_size(root)
        daemon = Daemon(root, env, n)
        if n % 3 == 2:  # right after an output's temporary file appears: mid-save
            deadline = time.monotonic() + 8
            while not temp_file_in(outbox) and time.monotonic() < deadline:
                if daemon.proc.poll() is not None:
                    pytest.fail(f"the daemon stopped:\n{daemon.stderr()}")
            time.sleep(rng.uniform(0, 0.01))
        elif n % 3 == 1:  # while it starts and recovers
            time.sleep(rng.uniform(0.5, 1.5))
        else:  # anywhere once it works: painting, saving, moving, writing the journal
            deadline = time.monotonic() + 8
            while not log_has(root, "watching", earlier) and time.monotonic() < deadline:
                if daemon.proc.poll() is not None:
                    pytest.fail(f"the daemon stopped:\n{daemon.stderr()}")
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 1.0))
        if daemon.proc.poll() is not None:
            pytest.fail(f"the daemon stopped:\n{daemon.stderr()}")
        kill(daemon)
        finished |= finished_jobs(root)  # what the daemon had finished when the power went off
        # what the kernel happened to write back before the cut: nothing, some, or everything
        forgetfs.cut(written_back=rng.choice((0.0, 0.0, 0.3, 0.7, 1.0)), seed=rng.randrange(1000))
    for name in names:
        write_durably(root / "inbox" / "paint" / name, files[name])
    # the last start: let it finish everything (the inbox empties), then stop it cleanly
    daemon = Daemon(root, env, cuts)
    deadline = time.monotonic() + 30
    while os.listdir(root / "inbox" / "paint") and time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            pytest.fail(f"the daemon stopped:\n{daemon.stderr()}")
        time.sleep(0.2)
    time.sleep(1.0)  # anything it would still (wrongly) do, it does now
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0, daemon.stderr()
    return root, files, finished


def check_nothing_lost_or_doubled(root: Path, files: dict[str, bytes], finished: set) -> None:
    digest = {hashlib.sha256(data).hexdigest(): name for name, data in files.items()}
    places: dict[str, list[str]] = {name: [] for name in files}
    for kind in ("inbox", "processed", "failed"):
        folder = root / kind / "paint"
        for entry in sorted(os.listdir(folder)) if folder.is_dir() else ():
            path = folder / entry
            assert not entry.endswith(".tmp"), f"a partial write was left: {kind}/paint/{entry}"
            name = digest.get(hashlib.sha256(path.read_bytes()).hexdigest())
            assert name, f"{kind}/paint/{entry} is no input, or a damaged one"
            places[name].append(f"{kind}/{entry}")
    misplaced = {name: where for name, where in places.items() if len(where) != 1}
    assert not misplaced, f"inputs not in exactly one place: {misplaced}"
    assert all(where[0].startswith("processed/") for where in places.values()), places

    db = sqlite3.connect(f"file:{root / '.hotfolder' / 'journal.sqlite'}?mode=ro", uri=True)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = db.execute("SELECT name, state, output, moved_to FROM jobs ORDER BY id").fetchall()
    db.close()
    done = [r for r in rows if r[1] == "done"]
    forgotten = finished - finished_jobs(root)
    assert not forgotten, f"jobs finished before a power cut, and forgotten after it: {forgotten}"
    assert [r for r in rows if r[1] not in ("done", "failed")] == [], rows
    photos = [name for name in files if mask_of(name) is None]  # masks are no jobs of their own
    assert sorted(r[0] for r in done) == sorted(photos), f"the journal's finished jobs: {rows}"
    outputs = sorted(os.listdir(root / "outbox" / "paint"))
    assert outputs == sorted(r[2] for r in done), "outputs the journal does not know, or doubled"
    for name, _, output, moved_to in done:
        source = root / "processed" / "paint" / moved_to
        assert source.read_bytes() == files[name], f"journal: {name} -> processed/{moved_to}"
        with Image.open(root / "outbox" / "paint" / output) as img:
            img.load()  # whole: a torn file fails here
            assert img.convert("RGB").tobytes() == painted(files[name]).tobytes(), output
        mask = Path(name).stem + ".mask.png"
        if mask in files:  # painted with it, and moved beside it, named after it
            assert read_settings(root / "outbox" / "paint" / output)["masks"] == [mask]
            beside = root / "processed" / "paint" / (Path(moved_to).stem + ".mask.png")
            assert beside.read_bytes() == files[mask], f"{mask} is not beside {moved_to}"


def test_power_cuts_lose_nothing_and_double_nothing(forgetfs):
    seed = int(os.environ.get("IMPASTO_POWER_SEED", random.randrange(1 << 30)))
    print(f"IMPASTO_POWER_SEED={seed} IMPASTO_POWER_CUTS={CUTS}")
    root, files, finished = run_with_cuts(forgetfs, CUTS, seed, dict(os.environ))
    check_nothing_lost_or_doubled(root, files, finished)


def test_a_daemon_that_does_not_fsync_fails_this_test(forgetfs):
    """The test has teeth: with os.fsync a no-op in the daemon (IMPASTO_TEST_NO_FSYNC, honoured
    only by tests/faults/daemon_main.py), a few cuts lose or damage files and the checks say so."""
    env = {**os.environ, "IMPASTO_TEST_NO_FSYNC": "1"}
    with pytest.raises((AssertionError, pytest.fail.Exception)) as caught:
        root, files, finished = run_with_cuts(forgetfs, 6, seed=1, env=env)
        check_nothing_lost_or_doubled(root, files, finished)
    print(caught.value)
