"""What a daemon killed with -9 leaves in temporary folders, and the next start removes.

Its own temporary files (TensorFlow writes a few modules per process, and removes them only at
a clean exit) live in ROOT/.hotfolder/tmp, emptied at every start, not in /tmp where nobody can
tell them from other processes' files in use. With a local Ray (`cluster = "local"`), its
private Ray folder (/tmp/rayXXXXXXXX) and Ray's agents, which outlive it for a minute or so; and
nothing that belongs to anyone else: another Ray's folder and processes, a symbolic link in the
record's place, a folder not named as a local start names its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from impasto.cluster.connect import remove_left_behind
from impasto.hotfolder.config import Config, DaemonSettings, Route
from impasto.hotfolder.daemon import Daemon
from tests.cluster.conftest import require_ray
from tests.hotfolder.helpers import STARRY, FakeEngine, WatchProcess, cat, image_bytes, jobs


class TempWritingEngine(FakeEngine):
    """Writes a temporary file per job, as TensorFlow's autograph does, and keeps it (killed)."""

    def stylize(self, checked, on_progress=None, cancel=None):
        fd, path = tempfile.mkstemp(suffix=".py")
        os.close(fd)
        self.temp_files = [*getattr(self, "temp_files", []), path]
        return super().stylize(checked, on_progress, cancel)


def test_the_daemons_temp_files_live_in_its_state_folder_and_go_at_the_next_start(tmp_path):
    root = tmp_path / "studio"
    (root / "inbox" / "paint").mkdir(parents=True)
    (root / "inbox" / "paint" / "a.png").write_bytes(image_bytes(cat(), "PNG"))
    left = root / ".hotfolder" / "tmp" / "__autograph_generated_file1234.py"
    left.parent.mkdir(parents=True)
    left.write_text("# what a killed daemon left")
    elsewhere = Path(tempfile.gettempdir()) / f"not-the-daemons-{os.getpid()}.py"
    elsewhere.write_text("# another process's, in use")
    settings = DaemonSettings(settle_seconds=0.2, closed_settle_seconds=0.1, rescan_seconds=0.5)
    routes = {"paint": Route(name="paint", styles=((str(STARRY), 1.0),), size=64)}
    engine = TempWritingEngine()
    try:
        assert Daemon(Config(root, None, settings, routes), once=True, engine=engine).run() == 0
        assert os.listdir(root / "outbox" / "paint") == ["a.png"]
        assert [Path(p).parent for p in engine.temp_files] == [left.parent]  # its own folder
        assert not left.exists() and not left.parent.exists()  # emptied, then removed at exit
        assert elsewhere.read_text() == "# another process's, in use"
        assert tempfile.gettempdir() != str(left.parent)  # the process's own setting is back
    finally:
        elsewhere.unlink()


def sleeper(ray_tmpdir: str) -> subprocess.Popen:
    """A process as Ray's would be, with RAY_TMPDIR in its environment."""
    env = {**os.environ, "RAY_TMPDIR": ray_tmpdir}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)


def test_the_recorded_folder_and_its_processes_go_and_nothing_else(tmp_path):
    mine = Path(tempfile.mkdtemp(prefix="ray", dir=tmp_path))
    (mine / "ray" / "session_1" / "logs").mkdir(parents=True)
    other = Path(tempfile.mkdtemp(prefix="ray", dir=tmp_path))  # another live Ray's
    record = tmp_path / "local-ray"
    record.write_text(f"{mine}\n")
    left, alive = sleeper(str(mine)), sleeper(str(other))
    try:
        remove_left_behind(record)
        assert left.wait(timeout=30) == -signal.SIGKILL
        assert not mine.exists() and not record.exists()
        assert other.is_dir() and alive.poll() is None  # another Ray's: untouched
    finally:
        for proc in (left, alive):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("kind", ["link", "not-ray", "missing"])
def test_a_record_naming_anything_else_removes_nothing(tmp_path, kind):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    named = {
        "link": tmp_path / "raylink1234",
        "not-ray": target,
        "missing": tmp_path / "raygone1234",
    }[kind]
    if kind == "link":
        named.symlink_to(target)
    record = tmp_path / "local-ray"
    record.write_text(f"{named}\n")
    remove_left_behind(record)
    assert (target / "keep.txt").read_text() == "keep"
    assert not record.exists()  # read once: a stale record is not kept forever
    remove_left_behind(record)  # no record: nothing to do


@pytest.mark.slow
@pytest.mark.usefixtures("weights_available")
def test_a_killed_daemons_local_ray_folder_goes_at_the_next_start(tmp_path):
    require_ray()
    short = Path(tempfile.mkdtemp(prefix="imp", dir="/tmp"))  # where the daemons' Ray lives
    root = tmp_path / "studio"
    (root / "inbox" / "paint").mkdir(parents=True)
    (root / "hotfolder.toml").write_text(
        '[daemon]\nsettle_seconds = 0.3\ncluster = "local"\nworkers = 1\n\n'
        f'[routes.paint]\nstyles = ["{STARRY}"]\nsize = 32\nsteps = 1\n'
    )
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(short)  # inherited by the daemons started below
    daemons: list[WatchProcess] = []
    try:
        daemons.append(WatchProcess(root))
        daemons[0].wait_for(lambda: daemons[0].log_has("watching"), 600, "the first start")
        first = [d for d in os.listdir(short) if d.startswith("ray")]
        assert len(first) == 1
        daemons[0].stop(signal.SIGKILL)
        assert os.listdir(short) == first  # what the kill leaves

        daemons.append(WatchProcess(root))
        (root / "inbox" / "paint" / "a.png").write_bytes(image_bytes(cat(40), "PNG"))
        daemons[1].wait_for(lambda: [j["state"] for j in jobs(root)] == ["done"], 600, "a.png")
        assert daemons[1].log_has(f"removed {short / first[0]}")
        assert [d for d in os.listdir(short) if d.startswith("ray")] != first  # its own only
        assert daemons[1].stop(signal.SIGTERM) == 0
        assert os.listdir(short) == []  # and a clean stop removes its own
    finally:
        if old is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = old
        for d in daemons:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
        deadline = time.monotonic() + 5
        while os.listdir(short) and time.monotonic() < deadline:
            time.sleep(0.1)
        import shutil

        shutil.rmtree(short, ignore_errors=True)
