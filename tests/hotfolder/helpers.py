"""Helpers for the hot-folder tests: small test images of every kind, a stand-in engine for the
in-process tests, and a real `impasto watch` process for the end-to-end ones."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from impasto.job import ProgressEvent, StyleResult
from tests.conftest import CAT, STARRY, WAVE

__all__ = ["CAT", "STARRY", "WAVE"]


# --- images ----------------------------------------------------------------------------------
def cat(size: int = 80) -> Image.Image:
    with Image.open(CAT) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        return img


def image_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def huge_png(width: int = 40000, height: int = 40000) -> bytes:
    """A small PNG whose header claims width x height (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rotated_jpeg() -> bytes:
    """A landscape JPEG whose EXIF says "rotate 90°": upright, it is portrait."""
    img = cat(80)
    exif = Image.Exif()
    exif[0x0112] = 6
    return image_bytes(img, "JPEG", exif=exif.tobytes())


# --- a stand-in engine ------------------------------------------------------------------------
class FakeEngine:
    """stylize() and describe() with the engine's contract, without TensorFlow: the "painting"
    is the content image itself. `fail` raises from stylize; `cancel_at` sets the job's cancel
    event after that step, as a SIGTERM would."""

    def __init__(self, steps: int = 3, fail: Exception | None = None, cancel_at: int = 0):
        self.steps, self.fail, self.cancel_at = steps, fail, cancel_at
        self.calls: list = []

    def describe(self, checked) -> dict:
        return {"total": self.steps}

    def stylize(self, checked, on_progress=None, cancel=None):
        self.calls.append(checked)
        if self.fail is not None:
            raise self.fail
        done = 0
        for step in range(1, self.steps + 1):
            if cancel is not None and cancel.is_set():
                break
            done = step
            preview = None
            every = checked.job.preview_every
            if every and step % every == 0:
                preview = checked.content.rgb.copy()
            if on_progress:
                on_progress(
                    ProgressEvent(
                        step, self.steps, 1, 1, (64, 48), {"total": 1.0}, 0.0, 0.0, preview
                    )
                )
            if self.cancel_at and step == self.cancel_at and cancel is not None:
                cancel.set()
        image = checked.content.rgb.copy()
        image.thumbnail((64, 64))
        return StyleResult(
            image=image,
            stats={"steps": done, "seconds": 0.0},
            settings=checked.settings(),
            cancelled=done < self.steps,
        )


# --- a real daemon ----------------------------------------------------------------------------
class WatchProcess:
    """`impasto watch ROOT ...` in a child process, output kept in files next to ROOT."""

    def __init__(self, root: Path, *args: str):
        self.root = root
        n = len(list(root.parent.glob(f"{root.name}-watch-*.out")))
        self.out = root.parent / f"{root.name}-watch-{n}.out"
        self.err = root.parent / f"{root.name}-watch-{n}.err"
        cmd = [sys.executable, "-m", "impasto.cli", "watch", str(root), *args]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=root.parent)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, predicate, timeout: float = 120.0, what: str = "condition"):
        """Poll predicate() until true; fail with the daemon's stderr if it never is, or if the
        daemon died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(
                    f"daemon exited ({self.proc.returncode}) waiting for {what}:\n{self.stderr()}"
                )
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        pytest.fail(f"timed out waiting for {what}:\n{self.stderr()}")

    def log_has(self, text: str) -> bool:
        log = self.root / "hotfolder.log"
        return log.is_file() and text in log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def jobs(root: Path) -> list[dict]:
    """Every journal row, read the way --status does (read-only)."""
    path = root / ".hotfolder" / "journal.sqlite"
    if not path.is_file():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def files_under(folder: Path) -> set[str]:
    """Every non-folder entry (files, links, FIFOs) under folder, as relative paths."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            found.add(os.path.relpath(os.path.join(dirpath, name), folder))
    return found
