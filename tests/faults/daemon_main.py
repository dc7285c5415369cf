"""`impasto watch ROOT` with a quick stand-in engine, as a child process for the fault tests:
`python -m tests.faults.daemon_main ROOT`.

The stand-in "paints" by shrinking the content image to 64 px, a few steps of STEP_SECONDS
each, so that a kill can land anywhere: in a step, the save, the move or a journal write.
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
            if on_progress:
                on_progress(ProgressEvent(step, STEPS, 1, 1, (64, 64), {}, 0.0, 0.0, None))
        image = checked.content.rgb.copy()
        image.thumbnail((64, 64))
        return StyleResult(
            image=image,
            stats={"steps": done, "seconds": 0.0},
            settings=checked.settings(),
            cancelled=done < STEPS,
        )


def main(root: str) -> int:
    if os.environ.get("IMPASTO_TEST_NO_FSYNC"):
        os.fsync = lambda fd: None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    config = load_config(Path(root))
    return Daemon(config, engine=QuickEngine()).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
