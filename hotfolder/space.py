"""A full disk is nobody's file's fault: the queue pauses instead of failing every job.

When a save, a move or a journal write finds no space left (on ROOT's disk or the journal's),
the job is left exactly where it stood, the daemon says why (log and --status), and it waits,
polling the free space with a growing interval, until someone frees space; then the job is
brought back in line (as after a restart, but without counting a crash) and painting goes on.
No recovery copy is written elsewhere (e.g. /tmp, which a service's PrivateTmp discards): the
input simply waits in the inbox.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

NO_SPACE = "no space left on the disk"
FIRST_POLL, LONGEST_POLL = 1.0, 30.0  # seconds between looks at the free space
ENOUGH = 1 << 20  # bytes more than at the pause that count as "space was freed"


class DiskFull(Exception):
    """A save, move or journal write found the disk full; the job is left as it stands."""


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT and SQLite's "database or disk is full"."""
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return False


def free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:  # gone, or no statvfs (Windows): never counts as freed
        return 0
    return st.f_bavail * st.f_frsize


def wait_for_space(folders: Iterable[Path], stop: threading.Event) -> bool:
    """Wait until one of the folders' disks has ENOUGH more bytes free than now, looking at it
    after 1 s, 2 s, 4 s, ... then every LONGEST_POLL s. False if `stop` was set first."""
    folders = list(folders)
    before = [free_bytes(f) for f in folders]
    delay = FIRST_POLL
    while not stop.wait(delay):
        if any(free_bytes(f) >= b + ENOUGH for f, b in zip(folders, before, strict=True)):
            return True
        delay = min(delay * 2, LONGEST_POLL)
    return False
