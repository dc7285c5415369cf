"""Where a picture goes: checked before the work starts, and never lost when saving fails after it.

check_output_path() refuses, in well under a second, every output that could not be written (an
unknown extension, a folder, a missing or read-only folder, a name the disk refuses) and every
output that is one of the job's inputs (same path, symbolic link or hard link): inputs are never
written. save_or_recover() writes the result; if that fails anyway (the disk filled up, the
folder's permissions changed during a long run), the picture goes to a recovery file beside the
output, else in the user's cache folder, and the error says where.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from impasto import atomic
from impasto.errors import InputError
from impasto.images import output_format
from impasto.paths import cache_dir, reason, same_file

log = logging.getLogger(__name__)

# (role, path) pairs: the files a job reads, e.g. ("content image", "photo.jpg").
Inputs = Iterable[tuple[str, str | os.PathLike]]


class SaveError(InputError):
    """The picture could not be written where asked. `recovered` is where it was saved instead
    (None if nowhere could take it); `why` is the reason in a few words."""

    def __init__(self, message: str, why: str, recovered: Path | None):
        super().__init__(message)
        self.why, self.recovered = why, recovered


def check_not_input(path: str | os.PathLike, inputs: Inputs, what: str = "output") -> None:
    """Refuse an output that is one of the inputs: writing it would replace the user's file."""
    for role, source in inputs:
        if same_file(path, source):
            same = "" if os.path.abspath(path) == os.path.abspath(source) else " (the same file)"
            raise InputError(
                f"{what} {str(path)!r} is the {role} {str(source)!r}{same}: impasto never "
                "writes over its inputs; choose another name"
            )


def check_writable(path: str | os.PathLike, what: str = "output") -> None:
    """Refuse a path that is a folder, or whose folder or name cannot be written, by creating
    and removing the very temporary file the atomic write will use."""
    path = Path(path)
    name = f"{what} {str(path)!r}"
    if _is_folder(path):
        raise InputError(f"{name} is a folder; give a file name, e.g. {str(path / 'out.png')!r}")
    folder = path.parent
    try:
        folder_is_folder = stat.S_ISDIR(os.stat(folder).st_mode)
    except OSError as exc:
        problem = (
            "does not exist"
            if isinstance(exc, FileNotFoundError)
            else f"cannot be reached ({reason(exc)})"
        )
        raise InputError(f"{name}: folder {str(folder)!r} {problem}") from None
    if not folder_is_folder:
        raise InputError(f"{name}: {str(folder)!r} is not a folder")
    try:
        atomic.probe(path)
    except OSError as exc:
        raise InputError(f"{name}: cannot write there ({reason(exc)})") from None


def make_output_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create a folder for a series of outputs (evolution snapshots, gallery tiles) and check
    that files can be written in it, before the work."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} folder {str(folder)!r}: {reason(exc)}") from None
    check_writable(folder / "impasto-probe.png", f"{what} folder")
    return folder


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:  # usually: it does not exist yet; anything else shows in the probe
        return False


def check_output_path(path: str | os.PathLike, inputs: Inputs = ()) -> None:
    """Everything check_writable() and check_not_input() refuse, plus an unknown extension."""
    output_format(path)
    check_not_input(path, inputs)
    check_writable(path)


def save_or_recover(save: Callable[[Path], Path], path: str | os.PathLike) -> Path:
    """save(path), e.g. with a StyleResult's save; if that fails, save(a PNG beside it), else in
    the cache folder, else in the temporary folder, and raise SaveError saying why and where the
    picture went."""
    path = Path(path)
    try:
        return save(path)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the picture must survive
        if isinstance(exc, FileNotFoundError) and not path.parent.is_dir():
            why = "its folder is gone"
        elif isinstance(exc, OSError):
            why = reason(exc)
        else:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    log.info("could not write %s (%s); saving a recovery copy", path, why)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # Beside the output only if its folder is still there (never re-create a folder that went
    # away with an unplugged disk); then folders of our own.
    for folder in (path.parent, cache_dir() / "recovered", Path(tempfile.gettempdir())):
        try:
            if folder != path.parent:
                folder.mkdir(parents=True, exist_ok=True)
            target = _unused(folder / f"{path.stem}-recovered-{stamp}.png")
            save(target)
        except Exception as exc:  # noqa: BLE001
            log.info("no recovery copy in %s either: %s", folder, exc)
            continue
        raise SaveError(
            f"could not write {str(path)!r} ({why}); the picture is saved in {str(target)!r}",
            why,
            target,
        )
    raise SaveError(f"could not write {str(path)!r} ({why}), nor a recovery copy", why, None)


def _unused(path: Path) -> Path:
    """path, or path with -2, -3, ... before its suffix: never replace an earlier recovery."""
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
