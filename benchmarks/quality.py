"""Quality and time: `impasto stylize` (default preset, the whole command, start-up included)
against the TensorFlow tutorial's plain single-scale loop, both at 512 px.

The tutorial's recipe (tensorflow.org "Neural style transfer"): Keras VGG19 in float32, content
block5_conv2, style block1..5_conv1, Gram / positions, mean squared errors, weights content 1e4 /
style 1e-2, tf.image.total_variation weight 30, Adam(lr 0.02, beta_1 0.99, epsilon 0.1), 1000
steps from the content image.

Both results are measured the same way, on the plain VGG19 (max pooling, float32):
  content distance = ||F - Fc||^2 / ||Fc||^2 at block4_conv2 against the content photo;
  style distance = mean over block1..5_conv1 of ||G - Gs||^2 / ||Gs||^2 against the style image.
Lower is better for both. The tutorial's result for a pair is cached in benchmarks/results/
(delete it, or pass --fresh, to run the 1000 steps again).

    python benchmarks/quality.py [--pairs N] [--runs N] [--fresh] [--tutorial-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
RESULTS = ROOT / "benchmarks" / "results"
PAIRS = [
    ("content/chelsea_cat.png", "styles/vangogh_starry_night_1889.jpg"),
    ("content/astronaut_eileen_collins.png", "styles/hokusai_great_wave_off_kanagawa_c1831.jpg"),
    ("content/coffee_cup.png", "styles/kandinsky_composition_vii_1913.jpg"),
]
SIZE = 512
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def load(path: Path, size: int = SIZE) -> np.ndarray:
    from impasto.images import fit_long_side, load_image, to_array

    img = load_image(path).rgb
    return to_array(img, fit_long_side(img.size, size))


def tutorial(content: np.ndarray, style: np.ndarray, steps: int) -> tuple[np.ndarray, float]:
    """The tutorial's loop, as published; returns the image and the loop's wall time."""
    import keras
    import tensorflow as tf

    from impasto.losses import gram
    from impasto.model import extractor

    features = extractor(("block5_conv2",) + STYLE_LAYERS, "max", "float32")
    content_t = features(tf.constant(content[None]))["block5_conv2"]
    style_t = {
        k: gram(v) for k, v in features(tf.constant(style[None])).items() if k in STYLE_LAYERS
    }
    image = tf.Variable(content[None])
    opt = keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            f = features(image)
            style_loss = tf.add_n(
                [tf.reduce_mean((gram(f[k]) - style_t[k]) ** 2) for k in STYLE_LAYERS]
            ) * (1e-2 / len(STYLE_LAYERS))
            content_loss = tf.reduce_mean((f["block5_conv2"] - content_t) ** 2) * 1e4
            loss = style_loss + content_loss + 30 * tf.reduce_sum(tf.image.total_variation(image))
        opt.apply_gradients([(tape.gradient(loss, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))

    started = time.perf_counter()
    for _ in range(steps):
        step()
    return image.numpy()[0], time.perf_counter() - started


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


def run_impasto(content: Path, style: Path, out: Path, extra: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "impasto.cli",
            "stylize",
            str(content),
            str(style),
            "-o",
            str(out),
            "--size",
            str(SIZE),
            "--progress",
            "none",
            *extra,
        ],
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1, help="how many content/style pairs (1-3)")
    parser.add_argument("--runs", type=int, default=3, help="impasto runs per pair (median)")
    parser.add_argument("--fresh", action="store_true", help="rerun the tutorial loop")
    parser.add_argument("--tutorial-steps", type=int, default=1000)
    parser.add_argument("impasto_args", nargs="*", help="extra `impasto stylize` options after --")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    for content_rel, style_rel in PAIRS[: args.pairs]:
        content_path, style_path = IMAGES / content_rel, IMAGES / style_rel
        content, style = load(content_path), load(style_path)
        key = f"{content_path.stem}__{style_path.stem}__{args.tutorial_steps}"
        cached = RESULTS / f"tutorial_{key}.json"
        if args.fresh or not cached.exists():
            image, seconds = tutorial(content, style, args.tutorial_steps)
            Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(
                RESULTS / f"tutorial_{key}.png"
            )
            cached.write_text(json.dumps({"seconds": seconds}))
        t_seconds = json.loads(cached.read_text())["seconds"]
        t_image = np.asarray(Image.open(RESULTS / f"tutorial_{key}.png"), np.float32) / 255
        t_dist = distances(t_image, content, style)
        times = []
        for _ in range(args.runs):
            out = RESULTS / f"impasto_{content_path.stem}__{style_path.stem}.png"
            times.append(run_impasto(content_path, style_path, out, args.impasto_args))
        i_image = np.asarray(Image.open(out).convert("RGB"), np.float32) / 255
        i_dist = distances(i_image, content, style)
        i_seconds = statistics.median(times)
        rows.append(
            (content_path.stem, style_path.stem, t_seconds, t_dist, i_seconds, i_dist, times)
        )
    print(
        f"\n{'pair':<48} {'tutorial s':>10} {'content':>8} {'style':>8} | "
        f"{'impasto s':>9} {'content':>8} {'style':>8} | {'speed-up':>8}"
    )
    for c, s, ts, td, isec, idist, times in rows:
        print(
            f"{c + ' / ' + s:<48} {ts:>10.1f} {td['content']:>8.4f} {td['style']:>8.4f} | "
            f"{isec:>9.1f} {idist['content']:>8.4f} {idist['style']:>8.4f} | {ts / isec:>7.1f}x"
        )
        print(
            f"{'':<48} impasto runs (s): {', '.join(f'{t:.1f}' for t in times)}; "
            f"better on content: {idist['content'] <= td['content']}, "
            f"on style: {idist['style'] <= td['style']}"
        )


if __name__ == "__main__":
    main()
