"""Peak memory and seconds per step against the output size, untiled and tiled (issue 11).

Each configuration runs in a fresh process, so its peak resident memory (ru_maxrss) is its own.
A configuration paints a square picture of the classic preset at one size for a few Adam steps
the way the engine does at its full-size scale: content targets and style Grams first (the style
image as large as the picture, as style_scale 1 makes it), then steps. Untiled is the engine's
compiled step on the whole picture; tiled is impasto.tiling's exact objective with the tiles
impasto.memory picks for the budget (or, where the whole picture fits, forced tiles of
--small-tile px, to show what tiling costs). Untiled sizes that would not fit in the machine's
free memory are skipped and say so.

    python benchmarks/memory.py [--sizes 512 1024 2048 4096] [--budget 8G] [--steps 3]

Writes benchmarks/results/memory-<cpu>-<cores>cores.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, os, resource, statistics, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
from impasto import memory, tiling
from impasto.engine import BETA1, BETA2, EPSILON, _params, _step_for
from impasto.presets import apply_overrides, load_preset

mode, size, tile, steps, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
recipe = apply_overrides(load_preset("classic"), {"precision": precision})
rng = np.random.default_rng(0)
# Smooth pictures, as photos are: noise upsampled.
def picture(seed):
    small = np.random.default_rng(seed).uniform(size=(size // 16, size // 16, 3)).astype(np.float32)
    return tf.image.resize(small, (size, size)).numpy()
content, style = picture(0), picture(1)
times = []
started = time.perf_counter()
if mode == "untiled":
    step = _step_for(tuple(recipe.content_layers), tuple(recipe.style_layers), recipe.pooling, precision)
    content_t, style_t = step.targets(content, [(style, 1.0)])
    del style
    params = _params(recipe)
    x = tf.constant(content); m = tf.zeros_like(x); v = tf.zeros_like(x); ema = x
    setup = time.perf_counter() - started
    for i in range(steps):
        start = time.perf_counter()
        x, m, v, ema, losses = step.run(x, m, v, ema, tf.constant(float(i + 1)), content_t, style_t, params)
        float(losses["total"])
        times.append(time.perf_counter() - start)
    describe = "whole picture"
else:
    style_t = tiling.grams(style, tuple(recipe.style_layers), recipe.pooling, precision, tile)
    del style
    objective = tiling.TiledObjective(recipe, content, style_t, tile)
    x = content.copy(); m = np.zeros_like(x); v = np.zeros_like(x); ema = x.copy()
    setup = time.perf_counter() - started
    lr, decay = recipe.learning_rate, recipe.ema_decay
    for i in range(steps):
        start = time.perf_counter()
        losses, g = objective(x)
        # The engine's Adam update, in place so no more whole-picture arrays are alive.
        t = i + 1
        m *= BETA1; m += (1 - BETA1) * g
        v *= BETA2; g *= g; v += (1 - BETA2) * g
        g[:] = np.sqrt(v / (1 - BETA2**t)); g += EPSILON
        x -= lr * (m / (1 - BETA1**t)) / g
        np.clip(x, 0.0, 1.0, out=x)
        ema *= decay; ema += (1 - decay) * x
        del g
        times.append(time.perf_counter() - start)
    describe = objective.describe()
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"times": times, "setup": setup, "peak_mb": peak_mb, "tiles": describe}))
"""


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def run(mode: str, size: int, tile: int, steps: int, precision: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(size), str(tile), str(steps), precision],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def seconds(result: dict) -> str:
    """The median step after the first (which traces), or the only one."""
    if "error" in result:
        return f"failed: {result['error']}"
    times = result["times"][1:] or result["times"]
    times = sorted(times)
    return f"{times[len(times) // 2]:.1f}"


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from impasto import memory, tiling
    from impasto.presets import load_preset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--budget", default="8G", help="--max-memory for the tiled runs")
    parser.add_argument("--steps", type=int, default=3, help="steps per configuration")
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--small-tile", type=int, default=512)
    parser.add_argument("--modes", nargs="+", default=["untiled", "tiled"])
    args = parser.parse_args()
    budget = memory.parse_size(args.budget, "--budget")
    recipe = load_preset("classic")
    layers = tuple(recipe.content_layers) + tuple(recipe.style_layers)
    halo, align = tiling.halo(layers), tiling.alignment(layers)

    rows = []
    for size in args.sizes:
        row = {"size": size}
        for mode in args.modes:
            if mode == "untiled":
                need = memory.estimate(size * size, size * size, args.precision)
                free = memory.available() or 0
                if need > 0.9 * free:
                    row[mode] = {"skipped": f"needs about {memory.format_size(need)}"}
                    continue
                tile = 0
            else:
                plan = memory.choose_tile((size, size), halo, align, args.precision, budget)
                tile = plan.tile or args.small_tile
            started = time.perf_counter()
            result = run(mode, size, tile, args.steps, args.precision)
            result["wall"] = time.perf_counter() - started
            row[mode] = result
            print(size, mode, json.dumps(result), flush=True)
        rows.append(row)

    cpu = cpu_name()
    cores = os.cpu_count()
    lines = [
        f"# Memory and time per step against size ({cpu}, {cores} cores)",
        "",
        f"`python benchmarks/memory.py --sizes {' '.join(map(str, args.sizes))} "
        f"--budget {args.budget} --steps {args.steps}`: classic preset, {args.precision}, square "
        "pictures, a fresh process per configuration; peak = peak resident memory of the "
        "process (ru_maxrss), including TensorFlow and the network (about 0.9 GB); s/step = "
        "median of the steps after the first (the first traces the graph); setup = content "
        "targets and style Grams. Tiled: the tiles impasto picks for the budget, or "
        f"{args.small_tile} px tiles forced where the whole picture fits.",
        "",
        "| size | untiled s/step | untiled peak | tiled: tiles | tiled s/step | tiled peak "
        "| tiled setup |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [f"{row['size']}x{row['size']}"]
        for mode in ("untiled", "tiled"):
            result = row.get(mode, {"skipped": "not run"})
            if "skipped" in result:
                cells += (
                    [f"not run ({result['skipped']})", "", "", ""][: 2 if mode == "untiled" else 4]
                )
                continue
            if mode == "tiled":
                cells.append(result.get("tiles", ""))
            cells += [seconds(result), f"{result.get('peak_mb', 0):.0f} MB"]
            if mode == "tiled":
                cells.append(f"{result.get('setup', 0):.0f} s")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    load = os.getloadavg()[0]
    lines.append(f"Load average at the end: {load:.1f} on {cores} cores (a shared machine).")
    text = "\n".join(lines) + "\n"
    print(text)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu).strip("-")
    out = Path(__file__).resolve().parent / "results" / f"memory-{slug}-{cores}cores.md"
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
