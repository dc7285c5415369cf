"""Quality and time: `impasto stylize` with the default preset (the whole command, start-up
included) against the TensorFlow tutorial's 1000-step loop, at 384 and 512 px, on three pairs.

The tutorial's runs come from tutorial_baseline.py (measured once per machine and kept; see
there). Both pictures are measured the same way, on the plain VGG19 (max pooling, float32):
  content distance = ||F - Fc||^2 / ||Fc||^2 at block4_conv2 against the content photo;
  style distance = mean over block1..5_conv1 of ||G - Gs||^2 / ||Gs||^2 against the style image.
Lower is better for both. Speed-up = the tutorial's quiet-machine seconds (see
tutorial_baseline.py) / impasto's median seconds, for wall time and for CPU time. The impasto
runs are interleaved (run 1 of every pair and size, then run 2, ...), so a busy spell hits them all.

    python benchmarks/quality.py [--sizes 384 512] [--pairs 3] [--runs 3] [--section NAME]
                                 [-- extra `impasto stylize` options, e.g. --precision float32]
"""

from __future__ import annotations

import argparse
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
from report import write_section  # noqa: E402
from tutorial_baseline import DATA, PAIRS, STYLE_LAYERS, baseline, load  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    parser.add_argument("--pairs", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--runs", type=int, default=3, help="impasto runs per pair and size")
    parser.add_argument("--section", default="quality", help="name of the results section")
    parser.add_argument("impasto_args", nargs="*", help="extra `impasto stylize` options after --")
    args = parser.parse_args()
    cases = [(size, c, s) for size in args.sizes for c, s in PAIRS[: args.pairs]]
    tutorial = {case: baseline(case[1], case[2], case[0], 1000) for case in cases}
    runs: dict = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {case: Path(tmp) / f"{i}.png" for i, case in enumerate(cases)}
        for _ in range(args.runs):
            for case in cases:
                runs[case].append(
                    run_impasto(case[1], case[2], case[0], outs[case], args.impasto_args)
                )
        pictures = {
            c: np.asarray(Image.open(outs[c]).convert("RGB"), np.float32) / 255 for c in cases
        }
    rows = []
    for case in cases:
        size, content_name, style_name = case
        content, style = load(content_name, size), load(style_name, size)
        t_image, t_meta = tutorial[case]
        td, idist = distances(t_image, content, style), distances(pictures[case], content, style)
        wall = statistics.median(r["wall"] for r in runs[case])
        cpu = statistics.median(r["cpu"] for r in runs[case])
        better = idist["content"] <= td["content"] and idist["style"] <= td["style"]
        each = ", ".join(f"{r['wall']:.1f}" for r in runs[case])
        rows.append(
            f"| {Path(content_name).stem} / {Path(style_name).stem} | {size} | "
            f"{t_meta['quiet_wall_seconds']:.0f} ({t_meta['wall_seconds']:.0f}) | "
            f"{t_meta['quiet_cpu_seconds']:.0f} | "
            f"{td['content']:.3f} | {td['style']:.3f} | {wall:.1f} | {cpu:.1f} | "
            f"{idist['content']:.3f} | {idist['style']:.3f} | "
            f"**{t_meta['quiet_wall_seconds'] / wall:.1f}x** | "
            f"{t_meta['quiet_cpu_seconds'] / cpu:.1f}x | "
            f"{'yes' if better else 'NO'} | {each} |"
        )
    options = " ".join(args.impasto_args) or "none (the default preset and precision)"
    body = "\n".join(
        [
            f"`impasto stylize` options: {options}. {args.runs} runs per row (median). "
            "The tutorial ran 1000 float32 Adam steps once per row "
            "(`benchmarks/tutorial_baseline.py`, kept in `benchmarks/results/tutorial/`); its "
            "quiet time is every 50-step chunk at its fastest chunk's pace, and the speed-ups are "
            "against that, the tutorial at its best, and impasto's median. Distances: lower is "
            "better.",
            "",
            "| pair | px | tutorial wall s, quiet (measured) | tutorial CPU s, quiet | "
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
