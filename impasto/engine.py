"""The optimisation loop: coarse-to-fine Adam on the image itself.

For each scale of a pyramid (coarse to fine, sizes spaced geometrically from the preset's min_size
to the output size) the image is the variable and a compiled step moves it to lower
    content_weight * content error + style_weight * Gram error + tv_weight * roughness.
Departures from Gatys et al., and why:
- Coarse to fine: large-scale structure is settled where steps are cheap; the fine scales only
  add detail, so most of the work happens at low resolution.
- Adam's moment estimates are resized and carried into the next scale instead of starting cold,
  so the first steps of a scale are not wasted re-estimating them.
- The output is an exponential moving average of the iterates, which removes the high-frequency
  noise Adam leaves in the last iterate.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from PIL import Image

from impasto import checkpoint as ckpt_io
from impasto import color
from impasto.images import fit_for_network, fit_long_side, to_array, to_image
from impasto.job import CheckedJob, ProgressEvent, StyleJob, StyleResult, check_job
from impasto.losses import content_loss, gram, style_loss, tv_loss
from impasto.model import device, extractor

log = logging.getLogger(__name__)

# Adam's own constants (Kingma and Ba): they set how the optimiser averages gradients, not the
# look of the picture, which the preset's learning rate and weights decide.
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8


def scale_sizes(content_size: tuple[int, int], long_side: int, min_side: int, n: int) -> list:
    """(w, h) per scale, geometric from min_side to long_side; equal sizes collapse later.
    No side is under what VGG19 needs: a thin picture's short side is raised to it (and scales
    that would be smaller become the same size, so they merge)."""
    if n == 1 or long_side <= min_side:
        return [fit_for_network(content_size, long_side)] * n
    ratio = (long_side / min_side) ** (1 / (n - 1))
    return [fit_for_network(content_size, round(min_side * ratio**k)) for k in range(n - 1)] + [
        fit_for_network(content_size, long_side)
    ]


def plan(checked: CheckedJob) -> list[tuple[tuple[int, int], int]]:
    """[(size, steps)] per scale that has steps; scales of equal size are merged (small outputs
    do not need a pyramid)."""
    sizes = scale_sizes(
        checked.content.rgb.size, checked.size, checked.recipe.min_size, len(checked.recipe.steps)
    )
    merged: list[list] = []
    for size, steps in zip(sizes, checked.recipe.steps, strict=True):
        if merged and merged[-1][0] == size:
            merged[-1][1] += steps
        else:
            merged.append([size, steps])
    return [(tuple(size), steps) for size, steps in merged if steps > 0]


class _Step:
    """The compiled Adam step for one network layout; TensorFlow traces it once per image shape.

    Weights and learning rate are tensor arguments, not Python constants, so a job that only
    overrides numbers reuses the traced graph.
    """

    def __init__(self, content_layers: tuple, style_layers: tuple, pooling: str, precision: str):
        self.features = extractor(content_layers + style_layers, pooling, precision)
        self.content_layers, self.style_layers = content_layers, style_layers
        # reduce_retracing: after two shapes, one shape-generic graph serves every size, so a
        # long-running door (hot folder, web app) does not keep a graph per photo size.
        self.run = tf.function(self._step, reduce_retracing=True)

    def targets(self, content: np.ndarray, styles: list[tuple[np.ndarray, float]]):
        """Content features and blended style Gram matrices for one scale."""
        feats = self.features(tf.constant(content[None]))
        content_t = {name: feats[name] for name in self.content_layers}
        style_t = {name: tf.zeros((), tf.float32) for name in self.style_layers}
        for arr, weight in styles:
            sf = self.features(tf.constant(arr[None]))
            for name in self.style_layers:
                style_t[name] = style_t[name] + weight * gram(sf[name])
        return content_t, style_t

    def _step(self, x, m, v, ema, t, content_t, style_t, p):
        with tf.GradientTape() as tape:
            tape.watch(x)
            feats = self.features(x[None])
            c = content_loss(feats, content_t, p["content_layers"])
            s = style_loss(feats, style_t, p["style_layers"])
            tv = tv_loss(x)
            losses = {
                "content": p["content_weight"] * c,
                "style": p["style_weight"] * s,
                "tv": p["tv_weight"] * tv,
            }
            total = losses["content"] + losses["style"] + losses["tv"]
        g = tape.gradient(total, x)
        m = BETA1 * m + (1 - BETA1) * g
        v = BETA2 * v + (1 - BETA2) * tf.square(g)
        m_hat = m / (1 - tf.pow(BETA1, t))
        v_hat = v / (1 - tf.pow(BETA2, t))
        x = tf.clip_by_value(x - p["learning_rate"] * m_hat / (tf.sqrt(v_hat) + EPSILON), 0.0, 1.0)
        ema = p["ema_decay"] * ema + (1 - p["ema_decay"]) * x
        losses["total"] = total
        return x, m, v, ema, losses


@functools.cache
def _step_for(content_layers: tuple, style_layers: tuple, pooling: str, precision: str) -> _Step:
    return _Step(content_layers, style_layers, pooling, precision)


def _params(recipe) -> dict:
    f32 = lambda value: tf.constant(value, tf.float32)  # noqa: E731
    return {
        "content_layers": {k: f32(w) for k, w in recipe.content_layers.items()},
        "style_layers": {k: f32(w) for k, w in recipe.style_layers.items()},
        **{
            key: f32(getattr(recipe, key))
            for key in ("content_weight", "style_weight", "tv_weight", "learning_rate", "ema_decay")
        },
    }


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an HxWxC float array to size=(w, h); values stay in their range, so
    Adam's second moments stay non-negative."""
    w, h = size
    return tf.image.resize(arr, (h, w), method="bilinear").numpy()


def _inputs(checked: CheckedJob) -> tuple[Image.Image, list[tuple[Image.Image, float]]]:
    """Content and style images as the optimiser should see them, after colour preservation."""
    content = checked.content.rgb
    styles = [(img.rgb, w) for img, w in checked.styles]
    mode = checked.recipe.preserve_color
    if mode == "luminance":
        return color.luminance(content), [
            (color.matched_luminance(s, content), w) for s, w in styles
        ]
    if mode == "histogram":
        return content, [(color.matched_histogram(s, content), w) for s, w in styles]
    return content, styles


def describe(checked: CheckedJob) -> dict:
    """What a job will do, for the start line of a progress display and the log."""
    steps_plan = plan(checked)
    return {
        "preset": checked.recipe.name,
        "device": device(),
        "precision": checked.recipe.precision,
        "scales": [[w, h, steps] for (w, h), steps in steps_plan],
        "total": sum(steps for _, steps in steps_plan),
    }


def stylize(
    job: StyleJob | CheckedJob,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    cancel: threading.Event | None = None,
) -> StyleResult:
    """Paint job.content in the style of job.styles; see StyleJob and ProgressEvent.

    cancel: when set, the loop stops before its next step and the best image so far (the moving
    average, brought to the output size) is returned with cancelled=True.
    """
    checked = job if isinstance(job, CheckedJob) else check_job(job)
    job, recipe = checked.job, checked.recipe
    started = time.perf_counter()
    settings = checked.settings()
    steps_plan = plan(checked)
    total = sum(steps for _, steps in steps_plan)
    log.info("stylising: %s", describe(checked))
    step_fn = _step_for(
        tuple(recipe.content_layers), tuple(recipe.style_layers), recipe.pooling, recipe.precision
    )
    params = _params(recipe)
    content_img, style_imgs = _inputs(checked)

    resume = ckpt_io.load(job.resume, settings) if job.resume else None
    done = resume.step if resume else 0
    # ETA counts work in pixel-steps: a step at 512 px costs about four at 256 px.
    total_work = sum(w * h * n for (w, h), n in steps_plan)
    work_done = sum(w * h * n for (w, h), n in steps_plan[: resume.scale]) if resume else 0
    if resume:
        work_done += (
            steps_plan[resume.scale][0][0] * steps_plan[resume.scale][0][1] * resume.scale_step
        )
    work_at_start = work_done
    # The rate behind the ETA leaves out each scale's first step, which also traces the graph.
    steady_seconds = steady_work = 0.0
    x = m = v = ema = None
    losses: dict = {}
    cancelled = False
    for index, (size, steps) in enumerate(steps_plan):
        if resume and index < resume.scale:
            continue
        content = to_array(content_img, size)
        style_long = max(16, round(max(size) * recipe.style_scale))
        styles = [(to_array(i, fit_for_network(i.size, style_long)), w) for i, w in style_imgs]
        content_t, style_t = step_fn.targets(content, styles)
        scale_step = 0
        if resume and index == resume.scale:
            x, m, v, ema, scale_step = (
                resume.image,
                resume.m,
                resume.v,
                resume.ema,
                resume.scale_step,
            )
        elif x is None:
            x = content if recipe.init == "content" else _noise(content.shape, job.seed)
            m, v = np.zeros_like(x), np.zeros_like(x)
            ema = x
        else:
            # Carry the picture and Adam's moments up to the new scale; the average restarts.
            x, m, v = _resize(ema, size), _resize(m, size), _resize(v, size)
            ema = x
        x, m, v, ema = (tf.constant(a, tf.float32) for a in (x, m, v, ema))
        tick, first_in_scale = time.perf_counter(), True
        while scale_step < steps:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            done += 1
            scale_step += 1
            work_done += size[0] * size[1]
            x, m, v, ema, losses = step_fn.run(
                x, m, v, ema, tf.constant(float(done)), content_t, style_t, params
            )
            last = done == total
            if job.checkpoint and (done % job.checkpoint_every == 0 or last):
                _save_checkpoint(job.checkpoint, settings, index, scale_step, done, x, m, v, ema)
            now = time.perf_counter()
            if not first_in_scale:
                steady_seconds += now - tick
                steady_work += size[0] * size[1]
            tick, first_in_scale = now, False
            if on_progress is not None:
                elapsed = now - started
                if steady_work:
                    rate = steady_seconds / steady_work
                else:
                    rate = elapsed / max(work_done - work_at_start, 1)
                show = last or (job.preview_every and done % job.preview_every == 0)
                on_progress(
                    ProgressEvent(
                        step=done,
                        total=total,
                        scale=index + 1,
                        scales=len(steps_plan),
                        size=size,
                        losses={k: float(val) for k, val in losses.items()},
                        elapsed=elapsed,
                        eta=rate * (total_work - work_done),
                        preview=to_image(ema.numpy()) if show else None,
                    )
                )
        x, m, v, ema = (a.numpy() for a in (x, m, v, ema))
        if cancelled:
            if job.checkpoint:
                _save_checkpoint(job.checkpoint, settings, index, scale_step, done, x, m, v, ema)
            break

    image = to_image(ema).resize(
        fit_long_side(content_img.size, checked.size), Image.Resampling.LANCZOS
    )
    if recipe.preserve_color == "luminance":
        image = color.with_chroma_of(image, checked.content.rgb)
    if checked.content.alpha is not None:
        image.putalpha(checked.content.alpha.resize(image.size, Image.Resampling.LANCZOS))
    seconds = time.perf_counter() - started
    stats = {
        "losses": {k: float(val) for k, val in losses.items()},
        "steps": done,
        "total_steps": total,
        "seconds": round(seconds, 3),
        "scales": [list(size) for size, _ in steps_plan],
        "device": device(),
        "precision": recipe.precision,
    }
    log.info("done in %.1f s (%d steps)%s", seconds, done, ", cancelled" if cancelled else "")
    return StyleResult(image=image, stats=stats, settings=settings, cancelled=cancelled)


def _noise(shape: tuple, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32)


def _save_checkpoint(path, settings, scale, scale_step, step, x, m, v, ema) -> None:
    arrays = [a.numpy() if hasattr(a, "numpy") else a for a in (x, m, v, ema)]
    try:
        ckpt_io.save(path, ckpt_io.Checkpoint(settings, scale, scale_step, step, *arrays))
    except OSError as exc:  # e.g. a full disk: the painting itself must go on
        log.warning("could not write the checkpoint %s (%s); going on without it", path, exc)
