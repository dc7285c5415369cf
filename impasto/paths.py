"""Paths as a user meets them: the short reason behind an OSError, and the checks every door runs
on a file it is about to read or write.

One place turns errno values into words, so a symbolic-link loop reads as a loop (not "file not
found") and a locked folder as "permission denied" in every message of every door.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from impasto.errors import InputError

_WORDS = {
    "ENOENT": "file not found",
    "ELOOP": "a loop of symbolic links",
    "EACCES": "permission denied",
    "EPERM": "permission denied",
    "ENOTDIR": "a part of the path is not a folder",
    "ENAMETOOLONG": "the name is too long",
    "EISDIR": "it is a folder",
    "EROFS": "the disk is read-only",
    "ENOSPC": "no space left on the disk",
    "EDQUOT": "over the disk quota",
    "EILSEQ": "the name has characters this disk does not allow",
    "EINVAL": "the name is not allowed here",
}
# By number; errno names a system lacks (Windows has no EDQUOT) are left out.
REASONS = {getattr(errno, name): words for name, words in _WORDS.items() if hasattr(errno, name)}


def reason(exc: OSError) -> str:
    """A few words for what went wrong, without the path (messages name the file themselves)."""
    return REASONS.get(exc.errno, exc.strerror or type(exc).__name__)


def stat_input(path: str | os.PathLike, name: str, error: type = InputError) -> os.stat_result:
    """os.stat(path) of a file the user named, or `error` with `name` and the reason in words.

    A dangling symbolic link says where it points, which is what the user needs to fix it.
    """
    try:
        return os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise error(
                f"{name}: a symbolic link to {os.readlink(path)!r}, which does not exist"
            ) from None
        raise error(f"{name}: {reason(exc)}") from None


def regular_file(path: str | os.PathLike, name: str, error: type = InputError) -> os.stat_result:
    """stat_input, and the path must be a regular file (not a folder, FIFO or device)."""
    st = stat_input(path, name, error)
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{name}: it is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{name}: not a regular file")
    return st


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when a and b are one file on disk: the same path, a symbolic link to it, or a hard
    link. False when either does not exist (a new file cannot be an existing one)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def config_dir() -> Path:
    """The user's config folder for impasto: $XDG_CONFIG_HOME/impasto, %APPDATA%\\impasto."""
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "impasto"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "impasto"


def cache_dir() -> Path:
    """The user's cache folder for impasto: $XDG_CACHE_HOME/impasto, %LOCALAPPDATA%\\impasto."""
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.environ.get("LOCALAPPDATA") if os.name == "nt" else None
    )
    return Path(base or Path.home() / ".cache") / "impasto"
