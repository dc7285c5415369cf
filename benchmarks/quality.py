"""Quality and time, judged honestly: every shipped preset of `impasto stylize` (the whole command,
start-up included) beside two peers, the TensorFlow tutorial's 1000-step loop and
crowsonkb/style-transfer-pytorch at its defaults, on the same machine in the same run, on the
photo/painting pairs of benchmarks/data/pairs.toml: the pairs tuning may use and the held-out
pairs it never does (the presets are judged on those).

Two rulers measure every picture; lower is better on each:
  - the independent judge (judge.py): EfficientNet-Lite0 features, a network impasto never sees,
    with a style statistic no preset uses (each channel's mean and standard deviation);
  - VGG19, impasto's own ruler (what its presets optimise, so it flatters them), kept beside it:
    content = ||F - Fc||^2 / ||Fc||^2 at block4_conv2 against the photo; style = mean over
    block1..5_conv1 of ||G - Gs||^2 / ||Gs||^2 (Gram matrices) against the painting.

Times. impasto: each preset's whole command, the median of --runs runs, interleaved (round 1 of
every pair and size, then round 2, ...) so a busy spell hits them all. The tutorial: its picture
is a real 1000-step run, made once per machine and kept (tutorial_baseline.py; its wall seconds
shown), and its comparable time is 1000 x its pace per step, timed in a fresh process before
each round's impasto runs of that pair and size, so both are timed under the same load. The
peer: one run of its whole command (about 40 minutes at 384 px on 2 cores, more at 512),
cached by commit, pair and size in ~/.cache/impasto-bench/peers/ (peer_crowsonkb.py), its load
average noted. It runs at --peer-sizes only.

Writes the `quality` section of the machine's results file, one picture per pair (photo,
painting, tutorial, peer, each preset; a row per size) and a scatter plot of the judge's content
against style distance per method, all in benchmarks/results/.

    python benchmarks/quality.py --plan            # what a run would do, and how long it takes
    python benchmarks/quality.py [--sizes 384 512] [--split both] [--presets NAME ...]
                                 [--runs 3] [--peer-sizes 384] [--section quality]
                                 [-- extra `impasto stylize` options, e.g. --precision float32]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import judge  # noqa: E402
import numpy as np  # noqa: E402
import peer_crowsonkb as peer  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from report import RESULTS, SMOKE, smoke, timed, write_section  # noqa: E402
from tutorial_baseline import (  # noqa: E402
    ALL_PAIRS,
    DATA,
    HELD_OUT,
    PAIRS,
    STEPS,
    STYLE_LAYERS,
    baseline,
    cached,
    load,
)

PRESETS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "presets").glob("*.toml"))
SPLITS = {"tuning": PAIRS, "held-out": HELD_OUT}
TUTORIAL, PEER = "tutorial", "peer"
# Rough seconds of each piece of work at 384 px on a quiet 2-core CPU (they grow with the
# pixels), for --plan only: the tutorial's kept 1000-step runs took 8 to 24 minutes, the peer 41.
PLAN_SECONDS = {"tutorial": 750, "peer": 2400, "pace": 35, "impasto": 25, "judging": 10}


def distances(result: np.ndarray, content: np.ndarray, style: np.ndarray) -> dict:
    """impasto's own ruler: VGG19 (max pooling, float32) content and Gram style distances."""
    import tensorflow as tf

    from impasto.engine.losses import gram, relative_error
    from impasto.engine.model import extractor

    features = extractor(("block4_conv2",) + STYLE_LAYERS, "max", "float32")
    fr, fc, fs = (features(tf.constant(a[None])) for a in (result, content, style))
    return {
        "content": float(relative_error(fr["block4_conv2"], fc["block4_conv2"])),
        "style": float(
            np.mean([relative_error(gram(fr[k]), gram(fs[k])).numpy() for k in STYLE_LAYERS])
        ),
    }


def run_impasto(content: str, style: str, size: int, preset: str, out: Path, extra) -> dict:
    """One whole `impasto stylize` command: its wall and CPU seconds."""
    cmd = [sys.executable, "-m", "impasto.cli", "stylize", str(DATA / content), str(DATA / style)]
    cmd += ["-o", str(out), "--size", str(size), "--preset", preset, "--progress", "none", *extra]
    return timed(cmd)


def tutorial_pace(content: str, style: str, size: int, steps: int) -> dict:
    """Seconds per tutorial step, wall and CPU, timed now in a fresh process."""
    pair = ALL_PAIRS.index((content, style)) + 1
    cmd = [sys.executable, str(Path(__file__).parent / "tutorial_baseline.py"), "--pace"]
    cmd += [str(steps), "--pairs", str(pair), "--sizes", str(size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def stem(name: str) -> str:
    return Path(name).stem


def pair_name(content: str, style: str) -> str:
    return f"{stem(content)} / {stem(style)}"


def tile(array: np.ndarray, label: str, height: int) -> Image.Image:
    """A picture scaled to height, with its label on a white band above it."""
    image = Image.fromarray((array * 255 + 0.5).clip(0, 255).astype(np.uint8))
    image = image.resize((round(image.width * height / image.height), height))
    out = Image.new("RGB", (image.width, height + 16), "white")
    out.paste(image, (0, 16))
    ImageDraw.Draw(out).text((2, 2), label, fill="black")
    return out


def side_by_side(rows: list[list[Image.Image]]) -> Image.Image:
    """Rows of tiles on white, 8 px apart."""
    width = max(sum(t.width for t in row) + 8 * (len(row) - 1) for row in rows)
    height = sum(row[0].height for row in rows) + 8 * (len(rows) - 1)
    out, y = Image.new("RGB", (width, height), "white"), 0
    for row in rows:
        x = 0
        for t in row:
            out.paste(t, (x, y))
            x += t.width + 8
        y += row[0].height + 8
    return out


def scatter(results: dict, methods: list[str], path: Path) -> None:
    """The judge's content distance (x) against its style distance (y): a panel per split, a
    colour per method, a point per pair and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({case[0] for case in results}, reverse=True)  # tuning, then held-out
    fig, axes = plt.subplots(
        1, len(splits), figsize=(6 * len(splits), 5), squeeze=False, layout="constrained"
    )
    colours = plt.get_cmap("tab20").colors
    for ax, split in zip(axes[0], splits, strict=True):
        for i, method in enumerate(methods):
            points = [
                got[method]["judge"]
                for case, got in results.items()
                if case[0] == split and method in got
            ]
            if points:
                x, y = [p["content"] for p in points], [p["style"] for p in points]
                marker = "s" if method in (TUTORIAL, PEER) else "o"
                ax.scatter(x, y, label=method, color=colours[2 * i % 20 + i // 10], marker=marker)
        ax.set(title=f"{split} pairs", xlabel="content distance (judge)")
        ax.set(ylabel="style distance (judge)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle("The judge (EfficientNet-Lite0 features): lower is better on both")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plan(cases, presets: list[str], args) -> list[tuple[str, float]]:
    """(what, seconds) of the work a run would do: kept tutorial runs and cached peer pictures
    cost nothing."""
    work = []
    for split, size, content, style in cases:
        scale = (size / 384) ** 2
        name = f"{pair_name(content, style)} at {size} px ({split})"
        if cached(content, style, size, STEPS) is None and not args.kept_tutorial_only:
            work.append((f"tutorial, 1000 steps: {name}", PLAN_SECONDS["tutorial"] * scale))
        if size in args.peer_sizes and not peer.cached(DATA / content, DATA / style, size):
            work.append((f"peer {peer.NAME}: {name}", PLAN_SECONDS["peer"] * scale))
        runs = args.runs * (PLAN_SECONDS["pace"] + len(presets) * PLAN_SECONDS["impasto"])
        work.append((f"impasto ({len(presets)} presets x {args.runs}) + paces: {name}", runs))
        work.append((f"judging: {name}", PLAN_SECONDS["judging"] * (len(presets) + 2)))
    return work


def paint_impasto(cases, presets, args, paced) -> tuple[dict, dict, dict]:
    """Every preset's picture and times per case, and the tutorial's paces for the paced cases,
    interleaved."""
    runs = {(case, p): [] for case in cases for p in presets}
    paces: dict = {case: [] for case in cases if case in paced}
    pictures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for case in cases:
                _, size, content, style = case
                if case in paces:
                    paces[case].append(tutorial_pace(content, style, size, args.pace_steps))
                for p in presets:
                    out = Path(tmp) / "out.png"  # read at once, then painted over
                    runs[case, p].append(
                        run_impasto(content, style, size, p, out, args.impasto_args)
                    )
                    pictures[case, p] = np.asarray(Image.open(out).convert("RGB"), np.float32)
                    pictures[case, p] /= 255
    return pictures, runs, paces


def same_shape(picture: np.ndarray, like: np.ndarray) -> np.ndarray:
    """picture resized to like's height and width if they differ (the peer rounds sizes its own
    way, by a pixel at most), so that the distances compare position by position."""
    if picture.shape == like.shape:
        return picture
    image = Image.fromarray((picture * 255 + 0.5).clip(0, 255).astype(np.uint8))
    image = image.resize((like.shape[1], like.shape[0]), Image.BICUBIC)
    return np.asarray(image, np.float32) / 255


def measure(cases, presets, args, run_peer: bool, run_judge: bool = True) -> dict:
    """{case: {method: {"picture", "judge", "vgg", "wall", "cpu", ...}}} for every method."""
    # With --kept-tutorial-only, a case without a kept 1000-step run leaves the tutorial out.
    find = cached if args.kept_tutorial_only else baseline
    tutorial = {c: found for c in cases if (found := find(c[2], c[3], c[1], STEPS))}
    peers = {}
    for case in cases:
        _, size, content, style = case
        if run_peer and size in args.peer_sizes:
            tiny = (2, 2) if SMOKE else None  # a smoke run: two iterations per scale
            peers[case] = peer.paint(DATA / content, DATA / style, size, tiny)
    pictures, runs, paces = paint_impasto(cases, presets, args, tutorial)
    results = {}
    for case in cases:
        _, size, content_name, style_name = case
        got = results[case] = {}
        if case in tutorial:
            image, meta = tutorial[case]
            got[TUTORIAL] = {"picture": image, "kept_wall": meta["wall_seconds"]}
            for what in ("wall", "cpu"):
                got[TUTORIAL][what] = STEPS * statistics.median(p[what] for p in paces[case])
        if case in peers:
            image, meta = peers[case]
            got[PEER] = {"picture": image, "wall": meta["wall_seconds"]}
            got[PEER] |= {"cpu": meta["cpu_seconds"], "load": meta["load_before"]}
            got[PEER]["measured"] = meta["measured"]
        for p in presets:
            got[p] = {"picture": pictures[case, p], "runs": [r["wall"] for r in runs[case, p]]}
            for what in ("wall", "cpu"):
                got[p][what] = statistics.median(r[what] for r in runs[case, p])
        content, style = load(content_name, size), load(style_name, size)
        for entry in got.values():
            entry["picture"] = same_shape(entry["picture"], content)
            entry["judge"] = (
                judge.distances(entry["picture"], content, style)
                if run_judge
                else dict.fromkeys(("content", "style"), math.nan)
            )
            entry["vgg"] = distances(entry["picture"], content, style)
    return results


def sheets(results: dict, methods: list[str], section: str) -> list[Path]:
    """One picture per pair: a row per size of photo, painting and every method's picture."""
    pairs = sorted({(case[2], case[3]) for case in results}, key=ALL_PAIRS.index)
    paths = []
    for content, style in pairs:
        rows = []
        for case in sorted(c for c in results if (c[2], c[3]) == (content, style)):
            size, got = case[1], results[case]
            row = [tile(load(content, size), f"photo, {size} px", 192)]
            row.append(tile(load(style, size), "painting", 192))
            row += [tile(got[m]["picture"], m, 192) for m in methods if m in got]
            rows.append(row)
        path = RESULTS / f"{section}-{stem(content)}-{stem(style)}.jpg"
        side_by_side(rows).save(path, quality=85)
        paths.append(path)
    return paths


def summary_table(results: dict, methods: list[str], split: str) -> list[str]:
    """Per method, over this split's pairs and sizes: medians of distances and times."""
    lines = [
        "| method | pictures | judge: content | judge: style | VGG19: content | VGG19: style "
        "| wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        got = [r[m] for case, r in results.items() if case[0] == split and m in r]
        if not got:
            continue
        med = {
            f"{ruler}_{d}": statistics.median(g[ruler][d] for g in got)
            for ruler in ("judge", "vgg")
            for d in ("content", "style")
        }
        wall = statistics.median(g["wall"] for g in got)
        cpu = statistics.median(g["cpu"] for g in got)
        lines.append(
            f"| {m} | {len(got)} | {med['judge_content']:.3f} | {med['judge_style']:.3f} | "
            f"{med['vgg_content']:.3f} | {med['vgg_style']:.3f} | {wall:.1f} | {cpu:.1f} |"
        )
    return lines


def against_peer(results: dict, presets: list[str], split: str) -> list[str]:
    """Per preset, over this split's pairs where the peer ran: on how many the judge finds it
    closer to the photo, to the painting, to both, than the peer; and the peer's wall time over
    the preset's (the median over those pairs). The goal: both on every held-out pair, at 100x."""
    cases = [c for c, got in results.items() if c[0] == split and PEER in got]
    if not cases:
        return []
    lines = [
        "| preset | closer to the photo | closer to the painting | closer to both "
        "| the peer's time over the preset's |",
        "|---|---|---|---|---|",
    ]
    for p in presets:
        closer = [
            {
                d: results[c][p]["judge"][d] < results[c][PEER]["judge"][d]
                for d in ("content", "style")
            }
            for c in cases
        ]
        ratio = statistics.median(results[c][PEER]["wall"] / results[c][p]["wall"] for c in cases)
        counts = [sum(x["content"] for x in closer), sum(x["style"] for x in closer)]
        counts.append(sum(x["content"] and x["style"] for x in closer))
        lines.append(
            f"| {p} | " + " | ".join(f"{n} of {len(cases)}" for n in counts) + f" | {ratio:.0f}x |"
        )
    return lines


def detail_table(results: dict, methods: list[str]) -> list[str]:
    lines = [
        "| pair | split | px | method | judge: content | judge: style | VGG19: content | "
        "VGG19: style | wall s | CPU s | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, got in results.items():
        split, size, content, style = case
        for m in (m for m in methods if m in got):
            g = got[m]
            if m == TUTORIAL:
                note = f"{STEPS} x pace; the kept run took {g['kept_wall']:.0f} s"
            elif m == PEER:
                note = f"one run, {g['measured']}, load {g['load']:.1f} before it"
            else:
                note = "runs: " + ", ".join(f"{w:.1f}" for w in g["runs"])
            lines.append(
                f"| {pair_name(content, style)} | {split} | {size} | {m} | "
                f"{g['judge']['content']:.3f} | {g['judge']['style']:.3f} | "
                f"{g['vgg']['content']:.3f} | {g['vgg']['style']:.3f} | "
                f"{g['wall']:.1f} | {g['cpu']:.1f} | {note} |"
            )
    return lines


def report(results: dict, methods: list[str], args, load_before: float, peer_problem) -> str:
    sizes = ", ".join(str(size) for size in args.peer_sizes)
    peer_line = (
        f"The peer, {peer.NAME} at commit `{peer.COMMIT[:12]}` and its defaults (PyTorch "
        f"{peer._version('torch')}, CPU): one run per pair at {sizes} px, cached "
        "(when, in its notes)."
        if not peer_problem
        else f"The peer {peer.NAME} did not run: {peer_problem}."
    )
    options = " ".join(args.impasto_args) or "none (each preset's own settings)"
    only = "; only on the pairs with a kept run (--kept-tutorial-only)"
    only = only if args.kept_tutorial_only else ""
    sheets_named = ", ".join(f"`{p.name}`" for p in sheets(results, methods, args.section))
    scatter(results, methods, RESULTS / f"{args.section}.png")
    parts = [
        "Lower is better on every distance. **judge**: EfficientNet-Lite0 features "
        "(`benchmarks/judge.py`), which impasto never optimises: content = relative squared "
        "feature distance to the photo at the end of stage 5; style = relative distance of each "
        "channel's mean and standard deviation to the painting's, averaged over five stages. "
        "**VGG19**: impasto's own ruler (what the presets optimise): block4_conv2 content, Gram "
        "style over block1..5_conv1. Pairs from `benchmarks/data/pairs.toml`: *tuning* pairs "
        "were used to tune the presets, *held-out* pairs never were; judge the presets on "
        "the held-out ones.",
        "",
        f"impasto: each shipped preset, `impasto stylize --preset NAME --size PX` (extra "
        f"options: {options}), the whole command, median of {args.runs} interleaved runs. "
        "The tutorial (TensorFlow's 1000-step recipe): its picture from a real 1000-step run "
        "kept in `benchmarks/results/tutorial/`; its times 1000 x its pace per step "
        f"({args.pace_steps} steps after warm-up), timed before each round of impasto runs{only}. "
        f"{peer_line} Load average {load_before:.1f} when this run began, "
        f"{os.getloadavg()[0]:.1f} when it ended.",
        "",
        f"Pictures (photo, painting, then each method; a row per size): {sheets_named}. "
        f"The judge's distances plotted: `{args.section}.png`.",
    ]
    for split in SPLITS:
        if any(case[0] == split for case in results):
            parts += ["", f"### {split.capitalize()} pairs: medians per method", ""]
            parts += summary_table(results, methods, split)
            versus = against_peer(results, [m for m in methods if m not in (TUTORIAL, PEER)], split)
            if versus:
                parts += ["", f"### {split.capitalize()} pairs: each preset against the peer", ""]
                parts += versus
    parts += ["", "### Every picture", "", *detail_table(results, methods)]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    parser.add_argument("--split", choices=("both", *SPLITS), default="both")
    parser.add_argument("--max-pairs", type=int, help="only the first N pairs of each split")
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=PRESETS)
    parser.add_argument("--runs", type=int, default=3, help="impasto runs per preset, pair, size")
    parser.add_argument("--pace-steps", type=int, default=20, help="tutorial steps timed per run")
    parser.add_argument(
        "--peer-sizes", type=int, nargs="*", default=[384], help="sizes the peer runs at (none: [])"
    )
    parser.add_argument("--section", default="quality", help="name of the results section")
    parser.add_argument(
        "--kept-tutorial-only",
        action="store_true",
        help="the tutorial only on pairs with a kept 1000-step run (none is made)",
    )
    parser.add_argument("--plan", action="store_true", help="print the work and its time; stop")
    parser.add_argument("impasto_args", nargs="*", help="extra `impasto stylize` options after --")
    args = parser.parse_args()
    # A smoke run: one tuning pair at 64 px, one run of one preset painting 2 steps, the peer
    # (if it can run) 2 iterations per scale.
    smoke(args, sizes=[64], split="tuning", max_pairs=1, runs=1, pace_steps=1)
    smoke(args, presets=["classic"], peer_sizes=[64], impasto_args=["--steps", "2"])
    splits = list(SPLITS) if args.split == "both" else [args.split]
    cases = [
        (split, size, content, style)
        for split in splits
        for size in args.sizes
        for content, style in SPLITS[split][: args.max_pairs]
    ]
    if args.plan:
        work = plan(cases, args.presets, args)
        for what, seconds in work:
            print(f"{seconds / 60:6.1f} min  {what}")
        print(f"{sum(s for _, s in work) / 3600:6.1f} h in all (on a quiet 2-core CPU)")
        return
    judge_problem = judge.available()
    if judge_problem and not SMOKE:
        sys.exit(f"the judge cannot run: {judge_problem}")
    peer_problem = peer.available() if args.peer_sizes else "not asked for (--peer-sizes)"
    load_before = os.getloadavg()[0]
    methods = [TUTORIAL, PEER, *args.presets]
    results = measure(cases, args.presets, args, not peer_problem, not judge_problem)
    body = report(results, methods, args, load_before, peer_problem)
    if judge_problem:  # a smoke run without the bench extra: the rest of the pipeline is checked
        body += f"\nThe judge did not run (its distances are nan): {judge_problem}.\n"
    print(body)
    title = f"Quality and speed: impasto's presets, the tutorial and a peer ({args.section})"
    print("written to", write_section(args.section, title, body))


if __name__ == "__main__":
    main()
