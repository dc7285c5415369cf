"""Which precision the convolutions run in. `auto` (every shipped preset's) measures this machine.

bfloat16 is about twice as fast as float32 on a CPU that computes it natively (AVX512_BF16, AMX)
and about ten times slower on one that emulates it (AVX2 only: most laptops and desktops), the
input gradient (Conv2DBackpropInput) being the slow part. CPU flags alone do not tell which case
TensorFlow's kernels hit (oneDNN on or off, which kernel it picks), so `auto` measures: a small
VGG-like stack, forward pass and input gradient, in both precisions, and picks the faster. The
answer is cached in the user's cache folder per CPU model, CPU count, TensorFlow version and oneDNN
setting, so only the first job on a machine pays for it. A GPU gets float16 without measuring.

The engine calls resolve(recipe.precision) for every job: one decision for every door.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from impasto import paths
from impasto.atomic import atomic_write
from impasto.engine import machine

log = logging.getLogger(__name__)

FORMAT = "impasto-precision/1"  # the cache file's format tag: anything else is not ours
MEASURED = ("float32", "bfloat16")
# bfloat16 keeps 8 bits of mantissa to float32's 24: worth it for a clear speed-up, not a tie.
MIN_SPEEDUP = 1.2

# The probe: VGG19's first two blocks (64 and 128 channels) at a modest size, 96 px, where the
# speed ratio is close to a real step's; much smaller and fixed costs hide it (64 px measured
# 1.1x here against 1.5x at 96 px). Interleaved passes until the budget is spent.
PROBE_SIZE, PROBE_CHANNELS = 96, 64
PROBE_BUDGET = 0.35  # seconds of timed passes after the warm-up
MIN_PASSES, MAX_PASSES = 3, 7
# First one pass of each at 32 px, a ninth of the pixels: where bfloat16 is emulated it takes
# many times float32's (10x or more here with TF_ENABLE_ONEDNN_OPTS=0), which settles the
# question before a 96 px bfloat16 pass (about a second on such a CPU) is paid for.
SCREEN_SIZE, CLEARLY_SLOWER = 32, 4.0


@dataclass(frozen=True)
class Choice:
    """A precision and why it was chosen (shown on the start line and by `impasto doctor`)."""

    precision: str  # "float32", "bfloat16" or "float16"
    reason: str
    source: str  # "asked" (preset or --precision), "gpu", "measured", "cache" or "fallback"
    # What was measured: median seconds per probe pass {"float32", "bfloat16"}, the probe's
    # "size" (px) and timed "passes", the measurement's "seconds", "measured_at" (UTC ISO 8601).
    probe: dict | None = None

    def __str__(self) -> str:
        return f"{self.precision}: {self.reason}"


_lock = threading.Lock()
_auto_choice: Choice | None = None


def resolve(requested: str) -> Choice:
    """The precision a job runs in: `requested` itself, or for "auto" this machine's choice,
    measured (or read from the cache) once per process."""
    global _auto_choice
    if requested != "auto":
        return Choice(requested, "set by the preset or --precision", "asked")
    with _lock:  # one measurement even when several threads start jobs at once
        if _auto_choice is None:
            _auto_choice = auto()
        return _auto_choice


def cache_file() -> Path:
    return paths.cache_dir() / "precision.json"


def machine_key() -> dict:
    """What the measured answer depends on: a different CPU, CPU count, TensorFlow or oneDNN
    setting (TF_ENABLE_ONEDNN_OPTS=0 switches to Eigen's kernels) measures again."""
    from impasto import import_tensorflow

    tf = import_tensorflow()

    return {
        "cpu": machine.cpu_model(),
        "cpus": machine.usable_cpus(),
        "tensorflow": tf.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


def auto(
    *,
    device: str | None = None,
    measure: Callable[[], dict] | None = None,
    key: dict | None = None,
    cache: Path | None = None,
    remeasure: bool = False,
) -> Choice:
    """This machine's precision: float16 on a GPU; on a CPU the faster of bfloat16 and float32
    as measured by `measure` (default measure_cpu) or found in the cache under `key`.

    Never raises for a cache problem: a corrupt or foreign cache file is measured over, and an
    unwritable cache folder only means measuring again in the next process.
    """
    if device is None:
        from impasto.engine.model import device as current_device

        device = current_device()
    if device == "GPU":
        return Choice("float16", "the GPU computes float16 natively", "gpu")
    key = machine_key() if key is None else key
    cache = cache_file() if cache is None else cache
    entries = _read_cache(cache)
    ident = json.dumps(key, sort_keys=True)
    entry = None if remeasure else _valid_entry(entries.get(ident))
    if entry is not None:
        return _decide(entry, "cache")
    try:
        entry = _valid_entry((measure or measure_cpu)())
        if entry is None:
            raise ValueError("the measurement gave no usable timings")
    except Exception as exc:  # noqa: BLE001 - a failed probe must not stop the painting
        log.warning("could not measure bfloat16 against float32 (%s); using float32", exc)
        return Choice("float32", f"bfloat16 could not be measured ({exc})", "fallback")
    entry = {**entry, "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    entries[ident] = {**entry, "key": key}
    _write_cache(cache, entries)
    choice = _decide(entry, "measured")
    log.info(
        "precision: %s (float32 %.1f ms, bfloat16 %.1f ms per probe pass; measured in %.2f s)",
        choice,
        entry["float32"] * 1000,
        entry["bfloat16"] * 1000,
        entry.get("seconds", float("nan")),
    )
    return choice


def _decide(entry: dict, source: str) -> Choice:
    speedup = entry["float32"] / entry["bfloat16"]
    if speedup >= MIN_SPEEDUP:
        precision, reason = "bfloat16", f"measured {speedup:.1f}x faster than float32 on this CPU"
    elif speedup >= 1:
        precision = "float32"
        reason = f"bfloat16 measured only {speedup:.2f}x faster on this CPU, too little to matter"
    else:
        precision, reason = "float32", f"bfloat16 measured {1 / speedup:.1f}x slower on this CPU"
    return Choice(precision, reason, source, probe={k: v for k, v in entry.items() if k != "key"})


def _valid_entry(entry: object) -> dict | None:
    """The entry when both timings are positive finite numbers, else None (measure again)."""
    if not isinstance(entry, dict):
        return None
    for p in MEASURED:
        t = entry.get(p)
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < math.inf:
            return None
    return entry


def _read_cache(path: Path) -> dict:
    """The cache's entries by machine key; {} for a missing, unreadable, corrupt or foreign file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8
        log.info("ignoring the precision cache %s (%s); measuring again", path, exc)
        return {}
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("machines"), dict)
    ):
        log.info("ignoring the precision cache %s (not impasto's format); measuring again", path)
        return {}
    return data["machines"]


def _write_cache(path: Path, entries: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT, "machines": entries}, fh, indent=1)
    except OSError as exc:
        log.info("cannot write the precision cache %s (%s); each process will measure", path, exc)


def measure_cpu() -> dict:
    """Median seconds per probe pass in float32 and bfloat16, with the probe's size, the number of
    timed passes and the total time taken: {"float32", "bfloat16", "size", "passes", "seconds"}."""
    started = time.perf_counter()
    for p in MEASURED:  # a process's first convolutions start thread pools: keep that out
        _probe(p, 16)()
    screen = {p: _timed(_probe(p, SCREEN_SIZE)) for p in MEASURED}
    if screen["bfloat16"] >= CLEARLY_SLOWER * screen["float32"]:
        times, size = {p: [t] for p, t in screen.items()}, SCREEN_SIZE
    else:
        passes = {p: _probe(p, PROBE_SIZE) for p in MEASURED}
        for run in passes.values():
            run()  # the first pass at a new size builds oneDNN's kernels: a warm-up
        times, size = {p: [] for p in MEASURED}, PROBE_SIZE
        while len(times["float32"]) < MAX_PASSES and (
            len(times["float32"]) < MIN_PASSES or time.perf_counter() - started < PROBE_BUDGET
        ):
            for p, run in passes.items():  # interleaved, so a busy moment hits both alike
                times[p].append(_timed(run))
    return {
        **{p: statistics.median(t) for p, t in times.items()},
        "size": size,
        "passes": len(times["float32"]),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _timed(run: Callable[[], None]) -> float:
    tick = time.perf_counter()
    run()
    return time.perf_counter() - tick


def _probe(precision: str, size: int) -> Callable[[], None]:
    """One pass as a painting step does it: a float32 size x size image cast to `precision`, four
    3x3 convolutions with ReLU (64, 64, pool, 128, 128 channels), the gradient back to the
    image."""
    import numpy as np
    import tensorflow as tf

    dtype = tf.as_dtype(precision)
    rng = np.random.default_rng(0)
    c = PROBE_CHANNELS
    shapes = [(3, c), (c, c), (c, 2 * c), (2 * c, 2 * c)]
    # He-scaled random weights keep activations of order 1 (no denormals to slow float32 down).
    kernels = [
        tf.constant(rng.normal(0, math.sqrt(2 / (9 * n_in)), (3, 3, n_in, n_out)), dtype)
        for n_in, n_out in shapes
    ]
    image = tf.constant(rng.uniform(-1, 1, (1, size, size, 3)), tf.float32)

    def run() -> None:
        with tf.GradientTape() as tape:
            tape.watch(image)
            x = tf.cast(image, dtype)
            for index, kernel in enumerate(kernels):
                if index == 2:
                    x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
                x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))
            loss = tf.reduce_mean(tf.square(tf.cast(x, tf.float32)))
        tape.gradient(loss, image).numpy()  # .numpy() waits for the work to finish

    return run
