"""The TensorFlow tutorial's style-transfer loop, as published, timed and kept as a baseline.

The tutorial's recipe (tensorflow.org "Neural style transfer"): Keras VGG19 in float32, content
block5_conv2, style block1..5_conv1, Gram / positions, mean squared errors, weights content 1e4 /
style 1e-2, tf.image.total_variation weight 30, Adam(lr 0.02, beta_1 0.99, epsilon 0.1), 1000
steps from the content image, at the long side asked for.

One run at 512 px takes 10 to 35 minutes on a 2-core CPU, so each result (picture, wall and CPU
seconds, the machine it ran on, the load average around it) is kept in
benchmarks/results/tutorial/ and reused by `quality.py` on the same CPU model, core count and
TensorFlow version. Each run is also timed in chunks of 50 steps (its fastest chunk's pace, times
the steps, is kept as "quiet" seconds), which shows how much a busy machine slowed it. The
speed-ups quality.py reports do not use these: it times the tutorial's pace afresh before each
impasto run (`--pace`), so both sides are timed under the same load.

    python benchmarks/tutorial_baseline.py --sizes 384 512 --pairs 6 [--fresh]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
import tomllib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from report import RESULTS, SMOKE, smoke  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
STORE = RESULTS / "tutorial"
STEPS = 4 if SMOKE else 1000  # the tutorial's steps (a smoke run: a few, in chunks of 2)
# The photo/painting pairs, split in data/pairs.toml: PAIRS may be used for tuning (levers.py
# does), HELD_OUT never is (quality.py judges the presets on them).
SPLIT = tomllib.loads((DATA / "pairs.toml").read_text())
PAIRS = [tuple(pair) for pair in SPLIT["tuning"]]
HELD_OUT = [tuple(pair) for pair in SPLIT["held_out"]]
ALL_PAIRS = PAIRS + HELD_OUT
CHUNK = 50  # steps per timed chunk
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def machine() -> dict:
    """What a timing depends on: the CPU model, its core count and TensorFlow's version."""
    import tensorflow as tf

    from impasto.engine.machine import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "tensorflow": tf.__version__}


def load(name: str, size: int) -> np.ndarray:
    from impasto.images import fit_long_side, load_image, to_array

    img = load_image(DATA / name).rgb
    return to_array(img, fit_long_side(img.size, size))


def loop(content: np.ndarray, style: np.ndarray):
    """The tutorial's compiled step and the picture it moves (a tf.Variable)."""
    import keras
    import tensorflow as tf

    vgg = keras.applications.VGG19(include_top=False, weights=None)
    from impasto.engine.weights import verified_path

    vgg.load_weights(str(verified_path()))
    vgg.trainable = False
    names = ["block5_conv2", *STYLE_LAYERS]
    model = keras.Model(vgg.input, [vgg.get_layer(n).output for n in names])

    def features(image):
        out = model(keras.applications.vgg19.preprocess_input(image * 255.0))
        return dict(zip(names, out, strict=True))

    def gram(f):
        result = tf.linalg.einsum("bijc,bijd->bcd", f, f)
        return result / tf.cast(tf.shape(f)[1] * tf.shape(f)[2], tf.float32)

    content_t = features(tf.constant(content[None]))["block5_conv2"]
    style_t = {k: gram(v) for k, v in features(tf.constant(style[None])).items() if k != names[0]}
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

    return step, image


def tutorial(content: np.ndarray, style: np.ndarray, steps: int) -> tuple[np.ndarray, dict]:
    """The tutorial's loop; returns the picture and its wall and CPU seconds (loop only)."""
    step, image = loop(content, style)
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    chunk = max(1, min(CHUNK, steps // 2))  # CHUNK, or fewer in a smoke run's few steps
    chunks = []  # (wall, CPU) seconds per chunk of steps after the first (which traces)
    for done in range(steps):
        step()
        if (done + 1) % chunk == 0:
            image.numpy()  # wait for the chunk's last step
            chunks.append((time.perf_counter(), time.process_time()))
    image.numpy()
    walls = [b[0] - a[0] for a, b in itertools.pairwise(chunks)]
    cpus = [b[1] - a[1] for a, b in itertools.pairwise(chunks)]
    return image.numpy()[0], {
        "wall_seconds": round(time.perf_counter() - wall, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        # What the loop would take on a quiet machine: every step at the pace of the fastest
        # chunk (a shared machine only ever slows it down), plus the first chunk as measured.
        "quiet_wall_seconds": round(chunks[0][0] - wall + min(walls) * (steps / chunk - 1), 2),
        "quiet_cpu_seconds": round(chunks[0][1] - cpu + min(cpus) * (steps / chunk - 1), 2),
        "chunk_wall_seconds": [round(w, 2) for w in walls],
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def pace(content: str, style: str, size: int, steps: int) -> dict:
    """Seconds per tutorial step now (wall and CPU), after two steps of warm-up (tracing): what
    quality.py interleaves with its impasto runs, so both are timed under the same load."""
    step, image = loop(load(content, size), load(style, size))
    for _ in range(2):
        step()
    image.numpy()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    image.numpy()
    return {
        "wall": (time.perf_counter() - wall) / steps,
        "cpu": (time.process_time() - cpu) / steps,
    }


def key(content: str, style: str, size: int, steps: int) -> str:
    return f"{Path(content).stem}__{Path(style).stem}__{size}px__{steps}steps"


def cached(content: str, style: str, size: int, steps: int) -> tuple[np.ndarray, dict] | None:
    """The stored result for this pair and size, if it was measured on a machine like this one."""
    meta_path = STORE / f"{key(content, style, size, steps)}.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    if meta["machine"] != machine() or "quiet_wall_seconds" not in meta:
        return None
    image = np.asarray(Image.open(meta_path.with_suffix(".png")).convert("RGB"), np.float32)
    return image / 255.0, meta


def measure(content: str, style: str, size: int, steps: int) -> tuple[np.ndarray, dict]:
    image, timing = tutorial(load(content, size), load(style, size), steps)
    meta = {
        "content": content,
        "style": style,
        "size": size,
        "steps": steps,
        "machine": machine(),
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **timing,
    }
    STORE.mkdir(parents=True, exist_ok=True)
    stem = STORE / key(content, style, size, steps)
    Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(stem.with_suffix(".png"))
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return image, meta


def baseline(content: str, style: str, size: int, steps: int, fresh=False):
    found = None if fresh else cached(content, style, size, steps)
    return found or measure(content, style, size, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    parser.add_argument(
        "--pairs",
        type=int,
        default=len(ALL_PAIRS),
        choices=range(1, len(ALL_PAIRS) + 1),
        help="the first N pairs of data/pairs.toml (tuning, then held-out)",
    )
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--fresh", action="store_true", help="measure again even if stored")
    parser.add_argument(
        "--pace",
        type=int,
        metavar="STEPS",
        help="only time STEPS steps, of pair number --pairs at the first of --sizes",
    )
    args = smoke(parser.parse_args(), sizes=[64], pairs=1, steps=STEPS)
    if args.pace:
        print(json.dumps(pace(*ALL_PAIRS[args.pairs - 1], args.sizes[0], args.pace)))
        return
    for size in args.sizes:
        for content, style in ALL_PAIRS[: args.pairs]:
            _, meta = baseline(content, style, size, args.steps, args.fresh)
            print(
                f"{key(content, style, size, args.steps)}: {meta['wall_seconds']} s wall, "
                f"{meta['cpu_seconds']} s CPU, {meta['quiet_wall_seconds']} s on a quiet machine",
                flush=True,
            )


if __name__ == "__main__":
    main()
