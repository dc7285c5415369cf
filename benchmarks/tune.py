"""Tuning the presets' numbers on the tuning pairs only, by the independent judge.

Candidate recipes (a shipped preset and overrides, CANDIDATES below) are painted in one warm
process on every tuning pair of data/pairs.toml at --size: one warm-up run per candidate (its
tracing), then --runs timed runs (the median seconds of stylize(); a whole command adds its
start-up, about 4 s cold and 0.4 s with the engine server: startup.py). Each picture is scored
by the judge (judge.py, a network impasto never optimises) and by VGG19 (quality.distances, what
the presets optimise). Where the peer's picture of a tuning pair is cached (peer_crowsonkb.py),
its scores and its time are shown beside, and a candidate is marked "both" on a pair when the
judge finds it closer to the photo and closer to the painting than the peer there.

Held-out pairs are never read here: quality.py judges the chosen presets on those.

    python benchmarks/tune.py [--size 384] [--runs 1] [--only NAME ...] [--peer]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import judge  # noqa: E402
import peer_crowsonkb as peer  # noqa: E402
from levers import run as paint  # noqa: E402
from quality import distances, same_shape  # noqa: E402
from report import SMOKE, smoke, write_section  # noqa: E402
from tutorial_baseline import DATA, PAIRS, load  # noqa: E402

W2_ONLY = {"style_weight": 0.0}
# The peer's style layers weigh 256, 64, 16, 4, 1 from block 1 to block 5: mostly colour and fine
# texture, little of the deep layers that redraw the photo's shapes.
SHALLOW = {f"block{i}_conv1": 4.0 ** (5 - i) for i in range(1, 6)}
# Halfway between: each block half the weight of the one before.
HALVING = {f"block{i}_conv1": 2.0 ** (5 - i) for i in range(1, 6)}
# The same without block5_conv1 (the peer gives it 1/341 of the style): the network then stops at
# block4_conv2, the content layer, which saves three convolutions forward and back per step.
HALVING_4 = {f"block{i}_conv1": 2.0 ** (4 - i) for i in range(1, 5)}
NO_BLOCK_5 = {"w2_weight": 10.0, "w2_layers": HALVING_4, "style_layers": HALVING_4}
# name -> (shipped preset, overrides). Each names the lever it tries against its base.
CANDIDATES = {
    "classic": ("classic", {}),
    "quick-draft": ("quick-draft", {}),
    "faithful": ("faithful", {}),
    "balanced": ("balanced", {}),
    # The photo is where balanced loses to the peer: does holding it harder cost less painting
    # than the other levers did?
    "balanced, content 2": ("balanced", {"content_weight": 2.0}),
    "balanced, content 3": ("balanced", {"content_weight": 3.0}),
    "balanced, content 4": ("balanced", {"content_weight": 4.0}),
    # The same with two full-size steps fewer, for the 1/100 time budget.
    "balanced, content 4, steps 30/12/6": (
        "balanced",
        {"content_weight": 4.0, "steps": [30, 12, 6]},
    ),
    "classic, content 2": ("classic", {"content_weight": 2.0}),
    "classic, content 4": ("classic", {"content_weight": 4.0}),
    "classic, style 10": ("classic", {"style_weight": 10.0}),
    "W2 3 (no Gram)": ("classic", {**W2_ONLY, "w2_weight": 3.0}),
    "W2 10 (no Gram)": ("classic", {**W2_ONLY, "w2_weight": 10.0}),
    "W2 30 (no Gram)": ("classic", {**W2_ONLY, "w2_weight": 30.0}),
    "W2 10 + Gram 3": ("classic", {"w2_weight": 10.0}),
    "faithful, W2 10": ("faithful", {"w2_weight": 10.0}),
    "W2 10, avg pooling": ("classic", {**W2_ONLY, "w2_weight": 10.0, "pooling": "avg"}),
    "W2 10, steps 20/8/5": ("classic", {**W2_ONLY, "w2_weight": 10.0, "steps": [20, 8, 5]}),
    "W2 10, steps 30/12": ("classic", {**W2_ONLY, "w2_weight": 10.0, "steps": [30, 12]}),
    "W2 10, shallow layers": ("classic", {**W2_ONLY, "w2_weight": 10.0, "w2_layers": SHALLOW}),
    "W2 30, shallow layers": ("classic", {**W2_ONLY, "w2_weight": 30.0, "w2_layers": SHALLOW}),
    "Gram 3, shallow layers": ("classic", {"style_layers": SHALLOW}),
    "Gram 10, shallow layers": ("classic", {"style_weight": 10.0, "style_layers": SHALLOW}),
    "W2 100, shallow layers": ("classic", {**W2_ONLY, "w2_weight": 100.0, "w2_layers": SHALLOW}),
    "W2 10, halving layers": ("classic", {**W2_ONLY, "w2_weight": 10.0, "w2_layers": HALVING}),
    "W2 30, halving layers": ("classic", {**W2_ONLY, "w2_weight": 30.0, "w2_layers": HALVING}),
    "W2 10 + Gram 3, halving": (
        "classic",
        {"w2_weight": 10.0, "w2_layers": HALVING, "style_layers": HALVING},
    ),
    "W2 10 + Gram 3, halving, no block 5": ("classic", NO_BLOCK_5),
    "W2 10 + Gram 3, halving, no block 5, steps 30/12/5": (
        "classic",
        {**NO_BLOCK_5, "steps": [30, 12, 5]},
    ),
}


# (closer to the photo, closer to the painting) than the peer -> the table's words
VERDICTS = {
    (True, True): "both",
    (True, False): "photo only",
    (False, True): "painting only",
    (False, False): "neither",
}


def scores(picture, content, style, judged: bool = True) -> dict:
    picture = same_shape(picture, content)
    judged = (
        judge.distances(picture, content, style)
        if judged
        else dict.fromkeys(("content", "style"), math.nan)  # a smoke run without the bench extra
    )
    return {"judge": judged, "vgg": distances(picture, content, style)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="candidate names (default: all)")
    parser.add_argument("--peer", action="store_true", help="paint the peer where not cached")
    parser.add_argument("--section", help="results section (default: tune-SIZE)")
    args = smoke(parser.parse_args(), size=64, runs=1, only=["quick-draft"])
    problem = judge.available()
    if problem and not SMOKE:
        sys.exit(f"the judge cannot run: {problem}")
    chosen = {k: v for k, v in CANDIDATES.items() if not args.only or k in args.only}
    pairs = PAIRS[:1] if SMOKE else PAIRS
    lines = [
        f"Tuning pairs only, {args.size} px, seconds: median of {args.runs} warm run(s) of "
        "stylize() (start-up excluded). Judge and VGG19 distances, lower is better; "
        '"both": closer to the photo and to the painting than the peer on that pair, by the judge.',
        "",
        "| candidate | pair | seconds | judge content | judge style | VGG content | VGG style "
        "| against the peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    wins: dict[str, int] = dict.fromkeys(chosen, 0)
    compared = 0  # pairs with a peer picture to compare with
    seconds_of: dict[str, list[float]] = {k: [] for k in chosen}
    for index, (content_name, style_name) in enumerate(pairs):
        content, style = load(content_name, args.size), load(style_name, args.size)
        pair = f"{Path(content_name).stem} / {Path(style_name).stem}"
        reference = None
        asked = args.peer and peer.available() is None
        if asked or peer.cached(DATA / content_name, DATA / style_name, args.size):
            tiny = (2, 2) if SMOKE else None
            image, meta = peer.paint(DATA / content_name, DATA / style_name, args.size, tiny)
            reference = scores(image, content, style, not problem)
            compared += 1
            lines.append(row("peer (its defaults)", pair, meta["wall_seconds"], reference, ""))
        for name, (preset, overrides) in chosen.items():
            if index == 0:
                paint(content_name, style_name, args.size, overrides, preset)  # warm-up
            runs = [
                paint(content_name, style_name, args.size, overrides, preset)
                for _ in range(args.runs)
            ]
            seconds = statistics.median(s for s, _, _ in runs)
            seconds_of[name].append(seconds)
            got = scores(runs[-1][1], content, style, not problem)
            verdict = ""
            if reference:
                closer = tuple(
                    got["judge"][k] < reference["judge"][k] for k in ("content", "style")
                )
                verdict = VERDICTS[closer]
                wins[name] += verdict == "both"
            lines.append(row(name, pair, seconds, got, verdict))
            print(lines[-1], flush=True)
    lines += ["", "| candidate | median seconds | pairs where closer on both than the peer |"]
    lines += ["|---|---|---|"]
    for name in chosen:
        against = f"{wins[name]} of {compared}" if compared else "no peer picture to compare"
        lines.append(f"| {name} | {statistics.median(seconds_of[name]):.1f} | {against} |")
    body = "\n".join(lines)
    print(body)
    section = args.section or f"tune-{args.size}"
    print("written to", write_section(section, f"Tuning at {args.size} px ({section})", body))


def row(name: str, pair: str, seconds: float, got: dict, verdict: str) -> str:
    j, v = got["judge"], got["vgg"]
    return (
        f"| {name} | {pair} | {seconds:.1f} | {j['content']:.3f} | {j['style']:.4f} | "
        f"{v['content']:.3f} | {v['style']:.4f} | {verdict} |"
    )


if __name__ == "__main__":
    main()
