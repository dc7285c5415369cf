"""What each speed lever buys: variants of the default preset, timed in one warm process and
measured with quality.py's distances, so they can be compared with each other and with the
tutorial's distances at the same size.

Each variant runs once to warm up (tracing for its shapes and layers), then --runs times timed;
the table gives the median seconds of stylize() (start-up excluded: see the start-up lines) and
the distances of the last picture. Also measured: what the Gram cache saves for a second job with
the same style, and the start-up costs (import, weights, first trace).

    python benchmarks/levers.py [--size 384] [--pairs 1] [--runs 3] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

STARTED = time.perf_counter()
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

IMPORTED = time.perf_counter()
from quality import distances  # noqa: E402
from report import SMOKE, smoke, write_section  # noqa: E402
from tutorial_baseline import DATA, PAIRS, STEPS, baseline, load  # noqa: E402

import impasto  # noqa: E402
from impasto.limits import DEFAULT_PRESET  # noqa: E402

ALL_STYLE = {f"block{i}_conv1": 1.0 for i in range(1, 6)}
# name -> overrides of the default preset. The first is the default itself.
VARIANTS = {
    "default preset": {},
    "adam, same evaluations as the default": {"optimizer": "adam"},
    "adam, the old classic: 200/80/30, avg pooling, min 192": {
        "optimizer": "adam",
        "steps": [200, 80, 30],
        "pooling": "avg",
        "min_size": 192,
    },
    "avg pooling": {"pooling": "avg"},
    "first scale 192 px": {"min_size": 192},
    "4 scales 30/12/6/4": {"steps": [30, 12, 6, 4]},
    "fewer full-size steps 30/12/6": {"steps": [30, 12, 6]},
    "more steps 40/15/12": {"steps": [40, 15, 12]},
    "without block5_conv1": {"style_layers": {k: 1.0 for k in list(ALL_STYLE)[:4]}},
    "without block1_conv1": {"style_layers": {k: 1.0 for k in list(ALL_STYLE)[1:]}},
}


def run(
    content: str, style: str, size: int, overrides: dict, preset: str = DEFAULT_PRESET
) -> tuple[float, np.ndarray, int]:
    """One picture in this warm process: its seconds, its pixels in [0, 1], its evaluations."""
    started = time.perf_counter()
    job = impasto.StyleJob(
        str(DATA / content), [str(DATA / style)], preset=preset, size=size, overrides=overrides
    )
    result = impasto.stylize(job)
    seconds = time.perf_counter() - started
    picture = np.asarray(result.image.convert("RGB"), np.float32) / 255
    return seconds, picture, result.stats["evaluations"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--pairs", type=int, default=1, choices=(1, 2, 3))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = smoke(parser.parse_args(), size=64, pairs=1, runs=1, only=["default preset"])
    variants = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}
    lines = [
        f"Start-up in this process: import TensorFlow {IMPORTED - STARTED:.1f} s.",
        "",
        "| variant | pair | evaluations | seconds (median) | content | style | "
        "tutorial content | tutorial style |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for content, style in PAIRS[: args.pairs]:
        t_image, _ = baseline(content, style, args.size, STEPS)
        c_arr, s_arr = load(content, args.size), load(style, args.size)
        td = distances(t_image, c_arr, s_arr)
        lbfgs_evaluations = None
        for name, overrides in variants.items():
            if name == "adam, same evaluations as the default":
                if not lbfgs_evaluations:
                    continue
                overrides = {**overrides, "steps": lbfgs_evaluations}
            run(content, style, args.size, overrides)  # warm-up: traces this variant's shapes
            timed = [run(content, style, args.size, overrides) for _ in range(args.runs)]
            seconds = statistics.median(t for t, _, _ in timed)
            evaluations = timed[-1][2]
            if name == "default preset":
                lbfgs_evaluations = evaluations
            d = distances(timed[-1][1], c_arr, s_arr)
            row = (
                f"| {name} | {Path(content).stem} | {evaluations} | {seconds:.1f} | "
                f"{d['content']:.3f} | {d['style']:.3f} | {td['content']:.3f} | {td['style']:.3f} |"
            )
            print(row, flush=True)
            lines.append(row)
    lines += ["", *quick_draft_lines(args.runs), "", *gram_cache_lines(args.size)]
    lines += ["", *startup_lines()]
    body = "\n".join(lines)
    print(body)
    print("written to", write_section(f"levers-{args.size}", f"Levers at {args.size} px", body))


def quick_draft_lines(runs: int) -> list[str]:
    """quick-draft against the default preset, each at its own default size, in a warm process
    (as the web app, hot folder and gallery run them) and as whole commands (a smoke run: both
    at 64 px, 2 steps)."""
    import subprocess

    content, style = (str(DATA / name) for name in PAIRS[0])
    tiny = {"size": 64, "overrides": {"steps": 2}} if SMOKE else {}
    warm, command = {}, {}
    for preset in ("classic", "quick-draft"):
        job = impasto.StyleJob(content, [style], preset=preset, **tiny)
        impasto.stylize(job)  # warm-up
        warm[preset] = []
        for _ in range(runs):
            started = time.perf_counter()
            impasto.stylize(job)
            warm[preset].append(time.perf_counter() - started)
        command[preset] = []
        for _ in range(runs):
            started = time.perf_counter()
            out = Path(tempfile_dir()) / f"{preset}.png"
            cmd = [sys.executable, "-m", "impasto.cli", "stylize", content, style]
            cmd += ["--preset", preset, "-o", str(out), "--progress", "none"]
            cmd += ["--size", "64", "--steps", "2"] if SMOKE else []
            subprocess.run(cmd, check=True)
            command[preset].append(time.perf_counter() - started)
    w = {k: statistics.median(v) for k, v in warm.items()}
    c = {k: statistics.median(v) for k, v in command.items()}
    return [
        f"quick-draft (384 px) against classic (512 px), medians of {runs}: in a warm process "
        f"{w['quick-draft']:.1f} s against {w['classic']:.1f} s, "
        f"**{w['classic'] / w['quick-draft']:.1f}x** faster; as whole commands (start-up "
        f"included) {c['quick-draft']:.1f} s against "
        f"{c['classic']:.1f} s, {c['classic'] / c['quick-draft']:.1f}x."
    ]


def tempfile_dir() -> str:
    import tempfile

    path = Path(tempfile.gettempdir()) / "impasto-levers"
    path.mkdir(exist_ok=True)
    return str(path)


def gram_cache_lines(size: int) -> list[str]:
    """Seconds to set one scale's targets for a new style, and for a style seen before."""
    from impasto.engine.objective import objective_for, style_targets
    from impasto.engine.terms import layout
    from impasto.presets import load_preset

    recipe = load_preset()
    obj = objective_for(layout(recipe), recipe.pooling, "float32")
    style = load(PAIRS[1][1], size)
    times = {"new": [], "seen": []}
    for i in range(5):
        fresh = style + np.float32(i * 1e-3)  # another picture: not in the cache
        for kind, arr in (("new", fresh), ("seen", fresh)):
            started = time.perf_counter()
            grams = style_targets(obj, arr)
            float(tf.reduce_sum(grams["style"][list(recipe.style_layers)[-1]]))
            times[kind].append(time.perf_counter() - started)
    new, seen = statistics.median(times["new"][1:]), statistics.median(times["seen"][1:])
    return [
        f"Gram targets of one style at {size} px: {new * 1000:.0f} ms to compute, "
        f"{seen * 1000:.2f} ms from the cache (per scale and job with that style)."
    ]


def startup_lines() -> list[str]:
    from impasto.engine import model

    model._numpy_weights.cache_clear()
    started = time.perf_counter()
    model._numpy_weights()
    weights = time.perf_counter() - started
    return [
        f"Reading and checking the weights file: {weights:.2f} s; TensorFlow uses "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} intra-op "
        "threads (0 = one per core)."
    ]


if __name__ == "__main__":
    main()
