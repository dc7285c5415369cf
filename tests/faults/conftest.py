"""Fixtures for the fault tests: a forgetting file system (forgetfs.py) mounted for one test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, skip_or_fail


class Mounted:
    """forgetfs in a child process: `path` is the mount, `backing` the real folder behind it;
    cut() is the power cut (call it once nothing has the mount's files open)."""

    def __init__(self, backing: Path, path: Path):
        self.backing, self.path = backing, path
        self.log = open(path.parent / "forgetfs.err", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.forgetfs", str(backing), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=ROOT,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":  # e.g. not allowed to mount here
            self.close()
            skip_or_fail(f"forgetfs cannot mount a FUSE file system here: {self.errors()}")

    def errors(self) -> str:
        self.log.flush()
        return (self.path.parent / "forgetfs.err").read_text(errors="replace")

    def cut(self, written_back: float = 0.0, seed: int = 0) -> None:
        self.proc.stdin.write(f"cut {written_back} {seed}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "cut", self.errors()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)
        self.log.close()


def fuse_problem() -> str | None:
    """Why forgetfs cannot run here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (FUSE is not available)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian: apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: libfuse3.so itself is missing
        return f"mfusepy cannot load libfuse: {exc}"
    return None


@pytest.fixture
def forgetfs(tmp_path):
    """A forgetting file system over tmp_path/backing, mounted at tmp_path/mnt."""
    problem = fuse_problem()
    if problem:
        skip_or_fail(problem)
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mnt.mkdir()
    fs = Mounted(backing, mnt)
    yield fs
    fs.close()
    for _ in range(50):  # the lazy unmount may take a moment to let go of the folder
        if not os.path.ismount(mnt):
            break
        time.sleep(0.1)
