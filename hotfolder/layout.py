"""The folder layout under ROOT, and the few file operations the daemon does on user files.

    ROOT/hotfolder.toml       the config (impasto watch ROOT --init writes an example)
    ROOT/inbox/<route>/       files are dropped here
    ROOT/outbox/<route>/      paintings appear here, atomically
    ROOT/processed/<route>/   inputs that were painted, moved here after their output is on disk
    ROOT/failed/<route>/      inputs that could not be painted, each with <name>.error.txt
    ROOT/evolution/<route>/   optional snapshots every save_every steps, one folder per output
    ROOT/hotfolder.log        what happened, one line per event
    ROOT/.hotfolder/          the journal, checkpoints and the lock (the daemon's own state;
                              [daemon] state_dir can put it on a local disk instead)

User files are only ever moved, never opened for writing, and a move never replaces an existing
file: names are made unique instead (cat.png, cat-2.png, ...).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from impasto.atomic import atomic_write

log = logging.getLogger(__name__)

STATE_DIR = ".hotfolder"
FOLDERS = ("inbox", "outbox", "processed", "failed")


class Layout:
    def __init__(self, root: str | os.PathLike, state_dir: str | os.PathLike = STATE_DIR):
        self.root = Path(root).absolute()
        # state_dir may be elsewhere (absolute): SQLite needs a local disk, ROOT may be a share
        self.state = self.root / Path(state_dir).expanduser()
        self.journal = self.state / "journal.sqlite"
        self.checkpoints = self.state / "checkpoints"
        self.lock = self.state / "daemon.lock"

    def folder(self, kind: str, route: str) -> Path:
        """ROOT/<kind>/<route>, kind one of inbox, outbox, processed, failed, evolution."""
        return self.root / kind / route

    def checkpoint(self, job_id: int) -> Path:
        return self.checkpoints / f"job-{job_id}.npz"

    def ensure(self, routes: Iterable[str]) -> None:
        """Create every folder the routes need; existing folders and files are left alone."""
        for path in (self.state, self.checkpoints, *(self.root / kind for kind in FOLDERS)):
            make_dirs(path)
        for route in routes:
            for kind in FOLDERS:
                make_dirs(self.folder(kind, route))


def unique_name(folder: Path, name: str, taken: Callable[[str], bool] = lambda n: False) -> str:
    """`name`, or `stem-2.ext`, `stem-3.ext`, ... : the first that is neither in `folder` nor
    taken(name) (names reserved by queued jobs, or companions like .error.txt)."""
    path = Path(name)
    stem, suffix = path.stem, path.suffix
    if stem.startswith(".") and not suffix:  # ".png" style names: keep them whole
        stem, suffix = name, ""
    candidate, n = name, 1
    while os.path.lexists(folder / candidate) or taken(candidate):
        n += 1
        candidate = f"{stem}-{n}{suffix}"
    return candidate


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` survive a power cut (the file's own fsync does
    not cover its directory entry). A no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(folder: Path) -> None:
    """mkdir -p whose new folders survive a power cut: each one's name is synced into its
    parent (else a cut can take processed/ away with the inputs just moved into it)."""
    if folder.is_dir():
        return
    make_dirs(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:
        if not folder.is_dir():
            raise
        return
    fsync_dir(folder.parent)


def move_no_replace(src: Path, dst: Path) -> None:
    """Move src to dst, failing with FileExistsError rather than replacing dst.

    A hard link and an unlink make the move atomic and refuse an existing target; symbolic links,
    FIFOs and devices move as themselves (never followed). File systems without hard links
    (some network shares) fall back to rename after a check, then to copy and delete across
    devices (regular files only).
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (
            errno.EPERM,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
            errno.EXDEV,
            errno.EMLINK,
        ):
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "file exists", str(dst)) from None
        try:
            os.rename(src, dst)
        except OSError as exc2:
            if exc2.errno != errno.EXDEV or not stat.S_ISREG(os.lstat(src).st_mode):
                raise
            _copy_then_delete(src, dst)
        return
    os.unlink(src)


def _copy_then_delete(src: Path, dst: Path) -> None:
    with open(src, "rb") as fh, atomic_write(dst) as out:
        shutil.copyfileobj(fh, out)
    shutil.copystat(src, dst)  # as a move would: the user's times and permissions
    os.unlink(src)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file so that it is either absent or complete."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    fsync_dir(path.parent)


def remove_partial_writes(folder: Path, names: Iterable[str]) -> int:
    """Delete the temporary files an atomic write of one of `names` leaves behind when the
    process dies mid-write (`.<name>.<random>.tmp`, the pattern of impasto's save_image and of
    write_text_atomic). Returns how many were removed."""
    removed = 0
    if not folder.is_dir():
        return 0
    wanted = set(names)
    for entry in os.scandir(folder):
        name = entry.name
        if not (name.startswith(".") and name.endswith(".tmp")) or not entry.is_file(
            follow_symlinks=False
        ):
            continue
        target = name[1:-4].rsplit(".", 1)[0]  # ".cat.png.k3j2h1.tmp" -> "cat.png"
        if target in wanted:
            os.unlink(entry.path)
            removed += 1
    return removed
