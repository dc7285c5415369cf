"""Peak memory and seconds per step against the output size, untiled and tiled (issue 11).

Each configuration runs in a fresh process, so its peak resident memory (ru_maxrss) is its own.
A configuration paints a square picture of the classic preset at one size for a few Adam steps
the way the engine does at its full-size scale: content targets and style Grams first (the style
image as large as the picture, as style_scale 1 makes it), then steps. Untiled is the engine's
compiled step on the whole picture; tiled is impasto.engine.tiling's exact objective with the tiles
impasto.engine.memory picks for the budget (or, where the whole picture fits, forced tiles of
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

from impasto.engine.machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, smoke  # noqa: E402

CHILD = r"""
import json, os, resource, sys, tempfile, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from PIL import Image
import impasto

mode, size, budget, steps, precision, content_path, style_path = sys.argv[1:8]
size, steps = int(size), int(steps)
# A square photo: the middle of the test photo.
photo = Image.open(content_path).convert("RGB")
side = min(photo.size)
left, top = (photo.width - side) // 2, (photo.height - side) // 2
square = os.path.join(tempfile.mkdtemp(), "square.png")
photo.crop((left, top, left + side, top + side)).save(square)
job = impasto.StyleJob(
    content=square, styles=[style_path], preset="classic", size=size,
    overrides={"steps": [steps], "min_size": min(size, 8192), "precision": precision,
               "max_memory": budget},
)
engine = impasto.load_engine()
checked = impasto.check_job(job)
info = engine.describe(checked)
ticks = []
started = time.perf_counter()
result = engine.stylize(checked, on_progress=lambda e: ticks.append(time.perf_counter()))
times = [b - a for a, b in zip(ticks, ticks[1:])]
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"times": times, "first": ticks[0] - started, "peak_mb": peak_mb,
                  "tile": info["tiles"][-1], "estimate": info["estimate_seconds"]}))
"""


def run(mode: str, size: int, budget: str, steps: int, precision: str) -> dict:
    data = Path(__file__).resolve().parents[1] / "tests" / "data"
    content, style = data / "chelsea_cat.png", data / "vangogh_starry_night_1889.jpg"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(size), budget, str(steps), precision]
        + [str(content), str(style)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def seconds(result: dict) -> str:
    """The median of the steps after the first (which also traces the graph)."""
    if "error" in result:
        return f"failed: {result['error']}"
    times = sorted(result["times"])
    return f"{times[len(times) // 2]:.1f}" if times else "(one step)"


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from impasto.engine import memory, tiling
    from impasto.presets import load_preset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--budget", default="8G", help="--max-memory for the tiled runs")
    parser.add_argument("--steps", type=int, default=3, help="steps per configuration")
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--small-tile", type=int, default=256)
    parser.add_argument(
        "--modes", nargs="*", default=["untiled", "tiled"], help="none: only rewrite the table"
    )
    args = smoke(parser.parse_args(), sizes=[64], steps=2, small_tile=16)
    budget = memory.parse_size(args.budget, "--budget")
    recipe = load_preset("classic")
    layers = tuple(recipe.content_layers) + tuple(recipe.style_layers)
    halo, align = tiling.halo(layers), tiling.alignment(layers)

    cpu = cpu_model()
    cores = os.cpu_count()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu).strip("-")
    out = RESULTS / f"memory-{slug}-{cores}cores.md"
    # Figures of earlier runs on this machine are kept (a 4096 px row takes an hour here), so
    # sizes can be measured one at a time; a configuration measured again replaces its row.
    store = out.with_suffix(".json")
    RESULTS.mkdir(parents=True, exist_ok=True)
    known = json.loads(store.read_text()) if store.exists() else {}
    for size in args.sizes:
        row = known.setdefault(str(size), {"size": size})
        for mode in args.modes:
            if mode == "untiled":
                need = memory.estimate(size * size, size * size, args.precision)
                free = memory.available() or 0
                if need > 0.9 * free:
                    row[mode] = {"skipped": f"needs about {memory.format_size(need)}"}
                    continue
                run_budget = "1T"
            else:
                plan = memory.choose_tile((size, size), halo, align, args.precision, budget)
                run_budget = args.budget
                if plan.tile is None:  # a budget for tiles of --small-tile px, or just under
                    crop = min((args.small_tile + 2 * halo) ** 2, size * size - 1)
                    run_budget = str(memory.estimate(size * size, crop, args.precision))
            started = time.perf_counter()
            result = run(mode, size, run_budget, args.steps, args.precision)
            result["wall"] = time.perf_counter() - started
            result["budget"] = run_budget
            result["load"] = round(os.getloadavg()[0], 1)
            row[mode] = result
            print(size, mode, json.dumps(result), flush=True)
            store.write_text(json.dumps(known, indent=1))
    rows = sorted(known.values(), key=lambda r: r["size"])
    lines = [
        f"# Memory and time per step against size ({cpu}, {cores} cores)",
        "",
        f"`python benchmarks/memory.py --sizes ... --budget {args.budget} --steps N`: "
        f"classic preset, {args.precision}, square "
        "pictures, a fresh process per configuration; peak = peak resident memory of the "
        "process (ru_maxrss), including TensorFlow and the network (about 0.9 GB); s/step = "
        "median of the steps after the first (the first also traces the graph and, tiled, "
        "computes the targets tile by tile: 'first'); est. = impasto's own estimate before it "
        "starts (from this machine's precision probe). A one-scale `impasto.stylize` job "
        "(Adam) on a square crop of the test photo. Tiled: the tiles impasto picks for the "
        f"budget, or {args.small_tile} px tiles forced where the whole picture fits.",
        "",
        "| size | untiled s/step (est.) | untiled peak | tiles | tiled s/step (est.) "
        "| tiled peak | tiled first step |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [f"{row['size']}x{row['size']}"]
        for mode in ("untiled", "tiled"):
            need = memory.estimate(row["size"] ** 2, row["size"] ** 2, args.precision)
            result = row.get(mode, {"skipped": f"needs about {memory.format_size(need)}"})
            if "skipped" in result:
                cells += [f"not run ({result['skipped']})", "", "", ""][
                    : 2 if mode == "untiled" else 4
                ]
                continue
            if mode == "tiled":
                cells.append(f"{result.get('tile')} px" if result.get("tile") else "")
            estimate = result.get("estimate")
            # impasto counts one step more per scale, for its targets and tracing
            steps = len(result.get("times", [])) + 1  # the first step is not in "times"
            estimate = f" ({estimate / (steps + 1):.1f})" if estimate else ""
            cells += [seconds(result) + estimate, f"{result.get('peak_mb', 0):.0f} MB"]
            if mode == "tiled":
                cells.append(f"{result.get('first', 0):.0f} s")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    loads = sorted(
        {r[m]["load"] for r in rows for m in ("untiled", "tiled") if "load" in r.get(m, {})}
    )
    if loads:
        lines.append(
            f"Load average after each run: {loads[0]} to {loads[-1]} on {cores} cores (a shared "
            "machine: compare ratios within a row, not with figures from a quiet machine)."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
