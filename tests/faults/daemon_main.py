"""`impasto watch ROOT` with a quick stand-in engine, as a child process for the fault tests:
`python -m tests.faults.daemon_main ROOT`.

The stand-in "paints" by shrinking the content image to 64 px, a few steps of STEP_SECONDS
each, so that a kill can land anywhere: in a step, the save, the move or a journal write.
IMPASTO_TEST_FILL_BEFORE ("save" or "progress N") fills the disk with the file
IMPASTO_TEST_FILLER just before that point of the first job.
IMPASTO_TEST_NO_FSYNC=1 makes os.fsync a no-op in this process only (the daemon's own syncs of
files and folders; SQLite's are its own): the power-cut test uses it to show it catches a daemon
that does not sync. Nothing here imports tests.conftest (which measures the machine on import).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from impasto.hotfolder.config import load_config
from impasto.hotfolder.daemon import Daemon
from impasto.job import ProgressEvent, StyleResult

STEPS = 3
STEP_SECONDS = 0.03
filled = False  # the disk is filled once per process


class QuickEngine:
    def describe(self, checked) -> dict:
        return {"total": STEPS}

    def stylize(self, checked, on_progress=None, cancel=None):
        done = 0
        for step in range(1, STEPS + 1):
            if cancel is not None and cancel.is_set():
                break
            time.sleep(STEP_SECONDS)
            done = step
            if os.environ.get("IMPASTO_TEST_FILL_BEFORE") == f"progress {step}":
                fill_the_disk()
            if on_progress:
                on_progress(ProgressEvent(step, STEPS, 1, 1, (64, 64), {}, 0.0, 0.0, None))
        if os.environ.get("IMPASTO_TEST_FILL_BEFORE") == "save":
            fill_the_disk()
        image = checked.content.rgb.copy()
        image.thumbnail((64, 64))
        return StyleResult(
            image=image,
            stats={"steps": done, "seconds": 0.0},
            settings=checked.settings(),
            cancelled=done < STEPS,
        )


def fill_the_disk() -> None:
    """IMPASTO_TEST_FILLER: write it until the disk is full, once (as another program would)."""
    global filled
    if filled:
        return
    filled = True
    path = os.environ["IMPASTO_TEST_FILLER"]
    with open(path, "wb", buffering=0) as fh:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError:  # ENOSPC: on to smaller pieces, down to the last byte
                pass


def main(root: str) -> int:
    if os.environ.get("IMPASTO_TEST_NO_FSYNC"):
        os.fsync = lambda fd: None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    config = load_config(Path(root))
    return Daemon(config, engine=QuickEngine()).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
