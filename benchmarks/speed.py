"""Seconds per loss-and-gradient evaluation (an optimiser step) and peak memory, by size and
precision.

Each configuration runs in a fresh process (so its peak resident memory is its own): the engine's
compiled step with the default preset's layers, square content, a few warm-up steps (tracing),
then the median over timed steps. Prints a table.

    python benchmarks/speed.py [--sizes 256 512 1024] [--steps 5] [--precisions float32 bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import smoke, write_section  # noqa: E402

CHILD = r"""
import json, os, resource, statistics, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
from impasto.engine.objective import objective_for, params
from impasto.presets import apply_overrides, load_preset
from impasto.engine.terms import layout

size, precision, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
recipe = apply_overrides(load_preset("classic"), {"precision": precision})
objective = objective_for(layout(recipe), recipe.pooling, precision)
rng = np.random.default_rng(0)
content = rng.uniform(size=(size, size, 3)).astype(np.float32)
style = rng.uniform(size=(size, size, 3)).astype(np.float32)
evaluate = objective.at(content, [(style, 1.0)], params(recipe))
times = []
for i in range(steps + 2):
    start = time.perf_counter()
    evaluate(content)  # one loss-and-gradient evaluation: what a step costs
    if i >= 2:  # the first calls trace and compile
        times.append(time.perf_counter() - start)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"median": statistics.median(times), "min": min(times), "peak_mb": peak_mb}))
"""


def precision_line() -> str:
    """What `auto` picks on this machine, and why (measured in a fresh process)."""
    code = (
        "from impasto.engine.precision import resolve; c = resolve('auto'); "
        "print(f'{c.precision}: {c.reason}')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    args = smoke(parser.parse_args(), sizes=[64], precisions=["float32"], steps=1)
    print(f"{'size':>6} {'precision':>10} {'s/step (median)':>16} {'min':>8} {'peak MB':>8}")
    rows = {}
    for size in args.sizes:
        for precision in args.precisions:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(size), precision, str(args.steps)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ},
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows[(size, precision)] = r
            print(
                f"{size:>6} {precision:>10} {r['median']:>16.3f} {r['min']:>8.3f} "
                f"{r['peak_mb']:>8.0f}",
                flush=True,
            )
    table = [
        "| size | precision | s per evaluation (median) | fastest | peak memory |",
        "|---|---|---|---|---|",
    ]
    for (size, precision), r in rows.items():
        table.append(
            f"| {size} px | {precision} | {r['median']:.3f} | {r['min']:.3f} | "
            f"{r['peak_mb']:.0f} MB |"
        )
    for size in args.sizes:
        if (size, "float32") in rows and (size, "bfloat16") in rows:
            ratio = rows[(size, "float32")]["median"] / rows[(size, "bfloat16")]["median"]
            table.append(f"\n{size} px: bfloat16 is {ratio:.2f}x the speed of float32.")
    body = "\n".join(
        [
            f"Precision `auto` chose: {precision_line()}.",
            "",
            "One loss-and-gradient evaluation of `classic`'s layers (what an optimiser step "
            f"costs), square pictures, median of {args.steps} after warm-up, a fresh process per "
            "row (so the peak resident memory is that row's):",
            "",
            *table,
        ]
    )
    print(body)
    print("written to", write_section("speed", "Seconds per step and peak memory", body))


if __name__ == "__main__":
    main()
