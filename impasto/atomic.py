"""Atomic file writes: readers see the old file or the complete new one, never half of it.

The new file is written beside its target under a hidden temporary name
(`.<name>.<random>.tmp`, which the hot folder's recovery knows), flushed to disk, then renamed
over the target.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@functools.cache
def _new_file_mode() -> int:
    """What open() would give a new file under this process's umask (mkstemp gives 0600)."""
    try:  # Linux tells the umask without changing it, even for a moment, under other threads
        status = Path("/proc/self/status").read_text()
        mask = next(int(line.split()[1], 8) for line in status.splitlines() if "Umask:" in line)
    except (OSError, StopIteration, IndexError, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _temp_file(path: Path) -> tuple[int, str]:
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def probe(path: str | os.PathLike) -> None:
    """Create and remove the temporary file atomic_write(path) would write, so that a folder or
    a name that cannot be written fails now (OSError), before minutes of work, not after."""
    fd, tmp = _temp_file(Path(path))
    os.close(fd)
    os.unlink(tmp)


@contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "wb",
    encoding: str | None = None,
    permissions: int | None = None,
) -> Iterator:
    """Open a temporary file for writing; on a clean exit it replaces path. permissions: the
    new file's mode bits (default: what open() would give under this process's umask)."""
    path = Path(path)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            if hasattr(os, "fchmod"):  # people sharing an output folder expect their umask
                os.fchmod(fh.fileno(), _new_file_mode() if permissions is None else permissions)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
