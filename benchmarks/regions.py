"""Regions (issue 19): a photo with two paintings, each masked to its own part of the picture,
against the same job without masks (the two paintings blended over the whole picture).

Three photos of benchmarks/data, each cut into three bands: one painting on the left 40%, another
on the right 40% (the astronaut: Hokusai's Great Wave and Van Gogh's Starry Night; the cat: Van
Gogh and Kandinsky; the coffee cup: Kandinsky and Hokusai), each with a soft edge into the middle
20%, which no mask covers (there the photo should stay). Both jobs use the default preset at
--size px. Measured on each band's inner part (away from the masks' edges), the same way for both
pictures and independently of the engine's own losses:
  colour distance = half the L1 distance between colour histograms (8 bins a channel), 0 for
    the same colours, 1 for no colour in common;
  style distance = mean over block1..5_conv1 of ||G - Gs||^2 / ||Gs||^2 (plain VGG19, max
    pooling, float32) of the band against the painting, as benchmarks/quality.py measures;
  photo distance (the middle band) = mean absolute difference from the photo, in levels of 255.
Lower is closer. Writes benchmarks/results/regions-<cpu>-<N>cores.md and a picture (photo,
masks, without masks, with masks) regions-<cpu>-<N>cores.jpg.

    python benchmarks/regions.py [--size 384]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402
from report import RESULTS, smoke  # noqa: E402

from impasto.engine.machine import cpu_model  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
PAINTINGS = {
    "Hokusai": DATA / "hokusai_great_wave_off_kanagawa_c1831.jpg",
    "Van Gogh": DATA / "vangogh_starry_night_1889.jpg",
    "Kandinsky": DATA / "kandinsky_composition_vii_1913.jpg",
}
# photo, the painting on its left, the one on its right
CASES = [
    ("astronaut", DATA / "astronaut_eileen_collins.png", "Hokusai", "Van Gogh"),
    ("cat", DATA / "chelsea_cat.png", "Van Gogh", "Kandinsky"),
    ("coffee cup", DATA / "coffee_cup.png", "Kandinsky", "Hokusai"),
]
STYLE_LAYERS = tuple(f"block{i}_conv1" for i in range(1, 6))


def masks(size: tuple[int, int]) -> list[Image.Image]:
    """The left 40% and the right 40%, each with a soft edge (a blur of 2% of the width)."""
    w, h = size
    left, right = Image.new("L", size, 0), Image.new("L", size, 0)
    left.paste(255, (0, 0, round(0.4 * w), h))
    right.paste(255, (round(0.6 * w), 0, w, h))
    soft = ImageFilter.GaussianBlur(0.02 * w)
    return [left.filter(soft), right.filter(soft)]


def bands(a: np.ndarray) -> dict[str, np.ndarray]:
    """The inner parts of the three bands of an [h, w, 3] picture."""
    w = a.shape[1]
    cut = lambda lo, hi: a[:, round(lo * w) : round(hi * w)]  # noqa: E731
    return {"left": cut(0.0, 0.32), "none": cut(0.44, 0.56), "right": cut(0.68, 1.0)}


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of the 8x8x8 colour histograms of two pictures in [0, 1]."""

    def hist(x):
        q = np.clip((x.reshape(-1, 3) * 8).astype(int), 0, 7)
        counts = np.bincount(q[:, 0] * 64 + q[:, 1] * 8 + q[:, 2], minlength=512)
        return counts / counts.sum()

    return float(np.abs(hist(a) - hist(b)).sum() / 2)


def style_distance(a: np.ndarray, painting: np.ndarray) -> float:
    import tensorflow as tf

    from impasto.engine.losses import gram, relative_error
    from impasto.engine.model import extractor

    features = extractor(STYLE_LAYERS, "max", "float32")
    fa, fp = (features(tf.constant(x[None])) for x in (a, painting))
    return float(np.mean([relative_error(gram(fa[k]), gram(fp[k])) for k in STYLE_LAYERS]))


def array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), np.float32) / 255


def paint(photo_path: Path, styles: list, size: int, steps, with_masks: bool) -> np.ndarray:
    import impasto

    with Image.open(photo_path) as photo:
        shape = photo.size
    job = impasto.StyleJob(
        content=photo_path,
        styles=[PAINTINGS[name] for name in styles],
        size=size,
        overrides={"steps": steps} if steps else {},
        masks=masks(shape) if with_masks else None,
    )
    return array(impasto.stylize(job).image)


def mask_picture(size: tuple[int, int]) -> Image.Image:
    """The masks shown in colour: the left painting's region blue, the right's yellow, the rest
    black."""
    left, right = (np.asarray(m, np.float32)[..., None] / 255 for m in masks(size))
    rgb = left * np.array([60, 110, 220]) + right * np.array([240, 200, 40])
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def side_by_side(pictures: list[Image.Image], height: int = 384) -> Image.Image:
    tiles = [p.resize((round(p.width * height / p.height), height)) for p in pictures]
    out = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), height), "white")
    x = 0
    for tile in tiles:
        out.paste(tile, (x, 0))
        x += tile.width + 8
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--steps", type=int, default=0, help="steps (default: the preset's)")
    parser.add_argument("--cases", type=int, default=len(CASES), help="the first N photos")
    args = smoke(parser.parse_args(), size=64, steps=2, cases=1)
    rows, sheets = [], []
    for name, photo_path, left, right in CASES[: args.cases]:
        case_rows, sheet = measure(name, photo_path, left, right, args)
        rows += case_rows
        sheets.append(sheet)
    cpu = re.sub(r"[^A-Za-z0-9]+", "-", cpu_model()).strip("-")
    stem = f"regions-{cpu}-{os.cpu_count()}cores"
    RESULTS.mkdir(parents=True, exist_ok=True)
    width, height = max(s.width for s in sheets), sum(s.height + 8 for s in sheets) - 8
    stacked = Image.new("RGB", (width, height), "white")
    y = 0
    for sheet in sheets:
        stacked.paste(sheet, (0, y))
        y += sheet.height + 8
    stacked.save(RESULTS / f"{stem}.jpg", quality=88)
    steps = f"--steps {args.steps}" if args.steps else "the preset's steps"
    text = "\n".join(
        [
            f"# Regions: a mask per style ({time.strftime('%Y-%m-%d')})",
            "",
            f"`python benchmarks/regions.py --size {args.size}"
            + (f" --steps {args.steps}`" if args.steps else "`"),
            f"on {cpu_model()}, {os.cpu_count()} cores.",
            "",
            f"Each photo at {args.size} px with the default preset ({steps}): one painting "
            "masked to the left 40%, another to the right 40% (soft edges), the middle 20% "
            "covered by no mask; against the same job without masks (the two paintings "
            "blended, 50/50, over the whole picture). Each band measured on its inner part. "
            "Colour: histogram distance (0 same colours, 1 none in common); style: Gram "
            "distance (benchmarks/quality.py's); photo: mean absolute difference in levels of "
            "255. Lower is closer.",
            "",
            "| photo | job | band | colour to own painting | colour to the other "
            "| style to own painting | style to the other | to the photo |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Pictures (a row per photo: photo, masks, without masks, with masks): `{stem}.jpg`.",
        ]
    )
    (RESULTS / f"{stem}.md").write_text(text + "\n")
    print(text)
    print("written to", RESULTS / f"{stem}.md")


def measure(name: str, photo_path: Path, left: str, right: str, args) -> tuple[list, Image.Image]:
    """One photo's rows of the table, and its row of pictures."""
    styles = [left, right]
    results = {flag: paint(photo_path, styles, args.size, args.steps, flag) for flag in (0, 1)}
    h, w = results[True].shape[:2]
    with Image.open(photo_path) as img:
        photo = array(img.resize((w, h), Image.Resampling.LANCZOS))
    paintings = {}
    for painter in styles:
        with Image.open(PAINTINGS[painter]) as img:
            img.thumbnail((args.size, args.size), Image.Resampling.LANCZOS)
            paintings[painter] = array(img)
    rows = []
    for flag, label in ((False, "without masks (blended)"), (True, "with masks")):
        part = bands(results[flag])
        for band, own, other in (("left", left, right), ("right", right, left)):
            rows.append(
                f"| {name} | {label} | {own}'s band | "
                f"{colour_distance(part[band], paintings[own]):.3f} | "
                f"{colour_distance(part[band], paintings[other]):.3f} | "
                f"{style_distance(part[band], paintings[own]):.3f} | "
                f"{style_distance(part[band], paintings[other]):.3f} | |"
            )
        middle, photo_middle = part["none"], bands(photo)["none"]
        rows.append(
            f"| {name} | {label} | the unmasked middle | | | | | "
            f"{np.abs(middle - photo_middle).mean() * 255:.1f} "
            f"(colour {colour_distance(middle, photo_middle):.3f}) |"
        )
    pictures = [photo, array(mask_picture((w, h))), results[False], results[True]]
    sheet = side_by_side([Image.fromarray((p * 255 + 0.5).astype(np.uint8)) for p in pictures])
    return rows, sheet


if __name__ == "__main__":
    main()
