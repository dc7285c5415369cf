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
file: names are made unique instead (cat.png, cat-2.png, ...). Files are read and moved through
an open inbox/<route> folder (see open_inbox), so a folder swapped for a link out of ROOT while
the daemon runs is never followed.
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
STATE_MODE = 0o700  # the journal and checkpoints name and hold the users' pictures
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class FolderSwapped(Exception):
    """inbox/<route> (or inbox/) is now a symbolic link the daemon did not start with."""


def printable(text: str) -> str:
    """`text` with control characters (newlines, ESC, bidi overrides...) escaped as Python
    writes them, so that a file name shown in the log, on stderr or by --status cannot forge
    lines or colour the terminal. The one place every shown name goes through."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text)
    )


def safe_name(name: object) -> bool:
    """True for a plain file name: no folder separators, not . or .., no NUL, not empty. What
    the journal's names must be before the daemon moves or writes anything by them."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c in name for c in "/\\\0")
    )


class Layout:
    def __init__(self, root: str | os.PathLike, state_dir: str | os.PathLike = STATE_DIR):
        self.root = Path(root).absolute()
        # state_dir may be elsewhere (absolute): SQLite needs a local disk, ROOT may be a share
        self.state = self.root / Path(state_dir).expanduser()
        self.journal = self.state / "journal.sqlite"
        self.checkpoints = self.state / "checkpoints"
        self.lock = self.state / "daemon.lock"
        self._links: dict[str, tuple[int, int]] = {}  # inbox links the daemon started with

    def folder(self, kind: str, route: str) -> Path:
        """ROOT/<kind>/<route>, kind one of inbox, outbox, processed, failed, evolution."""
        return self.root / kind / route

    def checkpoint(self, job_id: int) -> Path:
        return self.checkpoints / f"job-{job_id}.npz"

    def ensure(self, routes: Iterable[str]) -> None:
        """Create every folder the routes need; existing folders and files are left alone, but
        the state folder is made private. Symbolic links found on the way to an inbox now are
        the operator's (e.g. an inbox on another disk), and stay allowed."""
        self.ensure_state()
        for path in (self.root / kind for kind in FOLDERS):
            make_dirs(path)
        for route in routes:
            for kind in FOLDERS:
                make_dirs(self.folder(kind, route))
            for part in (Path("inbox"), Path("inbox", route)):
                if (self.root / part).is_symlink():
                    st = os.stat(self.root / part)
                    self._links[str(part)] = (st.st_dev, st.st_ino)

    def ensure_state(self) -> None:
        """ROOT/.hotfolder, readable by the daemon's user only (0700), tightened if looser."""
        for path in (self.state, self.checkpoints):
            make_dirs(path, STATE_MODE)
        mode = stat.S_IMODE(os.stat(self.state).st_mode)
        if mode & 0o077 and os.name == "posix":
            try:
                os.chmod(self.state, STATE_MODE)
            except OSError as exc:  # not ours (e.g. made by root): say so, and go on
                log.warning("%s is open to other users (mode %o): %s", self.state, mode, exc)
            else:
                log.warning("%s was open to other users (mode %o); made it 0700", self.state, mode)

    def open_inbox(self, route: str) -> int:
        """A file descriptor on inbox/<route>, reached from ROOT without following a symbolic
        link the daemon did not find at start (FolderSwapped): files are opened and moved
        relative to it, so a folder swapped for a link out of ROOT after a check is not used."""
        fd = os.open(self.root, os.O_RDONLY | DIRECTORY)
        for part in (Path("inbox"), Path("inbox", route)):
            fd = self._open_step(fd, part)  # closes the parent, even when it raises
        return fd

    def _open_step(self, parent: int, part: Path) -> int:
        """Open `part`'s last component below `parent` (then closed), refusing unknown links."""
        try:
            try:
                return os.open(part.name, os.O_RDONLY | DIRECTORY | NOFOLLOW, dir_fd=parent)
            except OSError as exc:  # a link gives ELOOP or, with O_DIRECTORY, ENOTDIR
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
            fd = os.open(part.name, os.O_RDONLY | DIRECTORY, dir_fd=parent)
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self._links.get(str(part)):
                os.close(fd)
                raise FolderSwapped(f"{part} was replaced by a symbolic link")
            return fd
        finally:
            os.close(parent)


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


def make_dirs(folder: Path, mode: int = 0o777) -> None:
    """mkdir -p whose new folders survive a power cut: each one's name is synced into its
    parent (else a cut can take processed/ away with the inputs just moved into it). `mode`
    is the last folder's (under the umask)."""
    if folder.is_dir():
        return
    make_dirs(folder.parent)
    try:
        folder.mkdir(mode)
    except FileExistsError:
        if not folder.is_dir():
            raise
        return
    fsync_dir(folder.parent)


def move_no_replace(src: str | Path, dst: Path, src_dir_fd: int | None = None) -> None:
    """Move src (a name in the folder src_dir_fd, when given) to dst, failing with
    FileExistsError rather than replacing dst.

    A hard link and an unlink make the move atomic and refuse an existing target; symbolic links,
    FIFOs and devices move as themselves (never followed). File systems without hard links
    (some network shares) fall back to rename after a check, then to copy and delete across
    devices (regular files only).
    """
    at = {"dir_fd": src_dir_fd}
    try:
        os.link(src, dst, src_dir_fd=src_dir_fd, follow_symlinks=False)
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
            os.rename(src, dst, src_dir_fd=src_dir_fd)
        except OSError as exc2:
            if exc2.errno != errno.EXDEV or not stat.S_ISREG(
                os.stat(src, **at, follow_symlinks=False).st_mode
            ):
                raise
            _copy_then_delete(src, dst, src_dir_fd)
        return
    os.unlink(src, **at)


def _copy_then_delete(src: str | Path, dst: Path, src_dir_fd: int | None) -> None:
    def opener(path, flags):
        return os.open(path, flags | NOFOLLOW, dir_fd=src_dir_fd)

    with open(src, "rb", opener=opener) as fh, atomic_write(dst) as out:
        shutil.copyfileobj(fh, out)
        st = os.fstat(fh.fileno())
    os.chmod(dst, stat.S_IMODE(st.st_mode))  # as a move would: the user's times and permissions
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.unlink(src, dir_fd=src_dir_fd)


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
