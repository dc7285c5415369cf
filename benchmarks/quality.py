"""Quality and time: `impasto stylize` with the default preset (the whole command, start-up
included) against the TensorFlow tutorial's 1000-step loop, at 384 and 512 px, on three pairs.

The tutorial's pictures come from tutorial_baseline.py (1000 steps, run once per machine and
kept). Its time is measured here, in the same run as impasto's: before each impasto run, a fresh
process times --pace-steps tutorial steps of the same pair and size (after warm-up), and the
tutorial's time is 1000 times that pace (tracing left out, which flatters the tutorial). So both
are timed under the same load, whatever else the machine is doing. Both pictures are measured
the same way, on the plain VGG19 (max pooling, float32):
  content distance = ||F - Fc||^2 / ||Fc||^2 at block4_conv2 against the content photo;
  style distance = mean over block1..5_conv1 of ||G - Gs||^2 / ||Gs||^2 against the style image.
Lower is better for both. Speed-up = the tutorial's median time / impasto's median time, for
wall and for CPU seconds. Runs are interleaved (round 1 of every pair and size, then round 2,
...), so a busy spell hits them all.

    python benchmarks/quality.py [--sizes 384 512] [--pairs 3] [--runs 3] [--section NAME]
                                 [-- extra `impasto stylize` options, e.g. --precision float32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from report import RESULTS, smoke, write_section  # noqa: E402
from tutorial_baseline import DATA, PAIRS, STEPS, STYLE_LAYERS, baseline, load  # noqa: E402


def distances(result: np.ndarray, content: np.ndarray, style: np.ndarray) -> dict:
    import tensorflow as tf

    from impasto.losses import gram, relative_error
    from impasto.model import extractor

    features = extractor(("block4_conv2",) + STYLE_LAYERS, "max", "float32")
    fr, fc, fs = (features(tf.constant(a[None])) for a in (result, content, style))
    return {
        "content": float(relative_error(fr["block4_conv2"], fc["block4_conv2"])),
        "style": float(
            np.mean([relative_error(gram(fr[k]), gram(fs[k])).numpy() for k in STYLE_LAYERS])
        ),
    }


def run_impasto(content: str, style: str, size: int, out: Path, extra: list[str]) -> dict:
    """One whole `impasto stylize` command: its wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "impasto.cli", "stylize", str(DATA / content), str(DATA / style)]
    cmd += ["-o", str(out), "--size", str(size), "--progress", "none", *extra]
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def side_by_side(cases, tutorial_pictures: dict, impasto_pictures: dict) -> Image.Image:
    """One row per case: photo, painting, the tutorial's picture, impasto's, 256 px high."""
    height, rows = 256, []
    for case in cases:
        size, content, style = case
        arrays = [load(content, size), load(style, size), tutorial_pictures[case]]
        arrays.append(impasto_pictures[case])
        tiles = [Image.fromarray((a * 255 + 0.5).clip(0, 255).astype(np.uint8)) for a in arrays]
        tiles = [t.resize((round(t.width * height / t.height), height)) for t in tiles]
        rows.append(tiles)
    width = max(sum(t.width for t in row) + 8 * (len(row) - 1) for row in rows)
    out = Image.new("RGB", (width, len(rows) * (height + 8) - 8), "white")
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            out.paste(tile, (x, r * (height + 8)))
            x += tile.width + 8
    return out


def tutorial_pace(content: str, style: str, size: int, steps: int) -> dict:
    """Seconds per tutorial step, wall and CPU, timed now in a fresh process."""
    pair = PAIRS.index((content, style)) + 1
    cmd = [sys.executable, str(Path(__file__).parent / "tutorial_baseline.py"), "--pace"]
    cmd += [str(steps), "--pairs", str(pair), "--sizes", str(size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    parser.add_argument("--pairs", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--runs", type=int, default=3, help="impasto runs per pair and size")
    parser.add_argument("--pace-steps", type=int, default=20, help="tutorial steps timed per run")
    parser.add_argument("--section", default="quality", help="name of the results section")
    parser.add_argument("impasto_args", nargs="*", help="extra `impasto stylize` options after --")
    args = parser.parse_args()
    # A smoke run: one pair at 64 px, one run, and impasto painting 2 steps.
    smoke(args, sizes=[64], pairs=1, runs=1, pace_steps=1, impasto_args=["--steps", "2"])
    cases = [(size, c, s) for size in args.sizes for c, s in PAIRS[: args.pairs]]
    tutorial = {case: baseline(case[1], case[2], case[0], STEPS) for case in cases}
    runs: dict = {case: [] for case in cases}
    paces: dict = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {case: Path(tmp) / f"{i}.png" for i, case in enumerate(cases)}
        for _ in range(args.runs):
            for case in cases:
                size, content, style = case
                paces[case].append(tutorial_pace(content, style, size, args.pace_steps))
                runs[case].append(run_impasto(content, style, size, outs[case], args.impasto_args))
        pictures = {
            c: np.asarray(Image.open(outs[c]).convert("RGB"), np.float32) / 255 for c in cases
        }
    sheet = RESULTS / f"{args.section}.jpg"
    side_by_side(cases, {c: tutorial[c][0] for c in cases}, pictures).save(sheet, quality=88)
    rows = []
    for case in cases:
        size, content_name, style_name = case
        content, style = load(content_name, size), load(style_name, size)
        t_image, t_meta = tutorial[case]
        td, idist = distances(t_image, content, style), distances(pictures[case], content, style)
        wall = statistics.median(r["wall"] for r in runs[case])
        cpu = statistics.median(r["cpu"] for r in runs[case])
        t_wall = 1000 * statistics.median(p["wall"] for p in paces[case])
        t_cpu = 1000 * statistics.median(p["cpu"] for p in paces[case])
        better = idist["content"] <= td["content"] and idist["style"] <= td["style"]
        each = ", ".join(f"{r['wall']:.1f}" for r in runs[case])
        rows.append(
            f"| {Path(content_name).stem} / {Path(style_name).stem} | {size} | "
            f"{t_wall:.0f} ({t_meta['wall_seconds']:.0f}) | {t_cpu:.0f} | "
            f"{td['content']:.3f} | {td['style']:.3f} | {wall:.1f} | {cpu:.1f} | "
            f"{idist['content']:.3f} | {idist['style']:.3f} | "
            f"**{t_wall / wall:.1f}x** | {t_cpu / cpu:.1f}x | "
            f"{'yes' if better else 'NO'} | {each} |"
        )
    options = " ".join(args.impasto_args) or "none (the default preset and precision)"
    body = "\n".join(
        [
            f"`impasto stylize` options: {options}. {args.runs} runs per row (median). "
            "The tutorial's pictures: 1000 float32 Adam steps once per row "
            "(`benchmarks/tutorial_baseline.py`, kept in `benchmarks/results/tutorial/`, with "
            "that run's wall time in brackets). Its times: 1000 x its pace per step, timed "
            f"({args.pace_steps} steps after warm-up) just before each impasto run, so both are "
            "timed under the same load; medians. Distances: lower is better. Pictures (photo, "
            f"painting, tutorial, impasto): `{args.section}.jpg`.",
            "",
            "| pair | px | tutorial wall s (the kept run's) | tutorial CPU s | "
            "tutorial content | tutorial style | "
            "impasto wall s | impasto CPU s | impasto content | impasto style | speed-up (wall) | "
            "speed-up (CPU) | better on both | impasto runs (wall s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(body)
    print(
        "written to",
        write_section(
            args.section, f"Quality and speed against the tutorial ({args.section})", body
        ),
    )


if __name__ == "__main__":
    main()
