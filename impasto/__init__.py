"""impasto: paint a photo in the style of an artwork (Gatys et al.), fast.

The public engine contract: build a StyleJob, call stylize(job, on_progress, cancel).
TensorFlow is imported only when stylize() runs, so checking a job and the CLI's help are quick.
"""

from impasto.errors import ImpastoError, InputError, PresetError, WeightsError
from impasto.job import ProgressEvent, StyleJob, StyleResult, check_job

__version__ = "0.1.0"


def stylize(job, on_progress=None, cancel=None):
    """Run a job and return a StyleResult (see impasto.engine.stylize)."""
    from impasto.engine import stylize as _stylize

    return _stylize(job, on_progress=on_progress, cancel=cancel)


__all__ = [
    "ImpastoError",
    "InputError",
    "PresetError",
    "ProgressEvent",
    "StyleJob",
    "StyleResult",
    "WeightsError",
    "check_job",
    "stylize",
]
