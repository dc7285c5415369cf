"""impasto: paint a photo in the style of an artwork (Gatys et al.), fast.

The public engine contract: build a StyleJob, call stylize(job, on_progress, cancel).
TensorFlow is imported only when stylize() runs, so checking a job and the CLI's help are quick.
"""

from impasto.errors import ImpastoError, InputError, PresetError, WeightsError
from impasto.job import ProgressEvent, StyleJob, StyleResult, check_job

__version__ = "0.1.0"


def import_tensorflow():
    """Import TensorFlow, hiding its native start-up chatter unless logging is at INFO (`-v`).

    TensorFlow's C++ code (and absl's) writes CUDA probing, oneDNN and CPU-flag notes straight to
    file descriptor 2 before its logging can be configured, so the descriptor itself points at
    /dev/null during the import; Python errors raised by the import still show.
    """
    import logging
    import os
    import sys

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if logging.getLogger().isEnabledFor(logging.INFO):
        return _without_keras()
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        tf = _without_keras()
        tf.config.list_physical_devices("GPU")  # the CUDA probe logs too: run it now, silenced
        return tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _without_keras():
    """import tensorflow, minus the eager import of all of Keras it does at the end (for
    Keras's SavedModel registrations, and guarded by `except ImportError`): the engine is plain
    TensorFlow, and Keras is about a fifth of the import's seconds. Keras still imports
    normally afterwards (tf.keras, `impasto weights install`)."""
    import sys

    blocked = "keras.src.optimizers"
    sys.modules.setdefault(blocked, None)  # None: "not importable", checked before any loading
    try:
        import tensorflow as tf
    finally:
        if sys.modules.get(blocked, 0) is None:
            del sys.modules[blocked]
    return tf


def load_engine():
    """Import the engine, with TensorFlow imported quietly first (see import_tensorflow)."""
    import importlib

    import_tensorflow()
    return importlib.import_module("impasto.engine.loop")


def stylize(job, on_progress=None, cancel=None):
    """Run a job and return a StyleResult (see impasto.engine.loop.stylize)."""
    return load_engine().stylize(job, on_progress=on_progress, cancel=cancel)


__all__ = [
    "ImpastoError",
    "InputError",
    "PresetError",
    "ProgressEvent",
    "StyleJob",
    "StyleResult",
    "WeightsError",
    "check_job",
    "import_tensorflow",
    "load_engine",
    "stylize",
]
