"""The optimisation loop: coarse to fine, the picture itself is the variable.

For each scale of a pyramid (coarse to fine, sizes spaced geometrically from the preset's min_size
to the output size) an optimiser (impasto.engine.optimizers) moves the picture to a lower loss
(impasto.engine.objective). Departures from Gatys et al., and why:
- Coarse to fine: large-scale structure is settled where steps are cheap; the fine scales only
  add detail, so most of the work happens at low resolution.
- The optimiser's state is carried into the next scale where it can be (Adam's moments), so the
  first steps of a scale are not wasted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from impasto.engine import checkpoint as ckpt_io
from impasto.engine import color, memory, optimizers, terms, tiling
from impasto.engine.model import device
from impasto.engine.objective import objective_for
from impasto.engine.precision import resolve as resolve_precision
from impasto.images import MIN_SIDE, fit_for_network, fit_long_side, to_array, to_image
from impasto.job import CheckedJob, ProgressEvent, StyleJob, StyleResult, check_job

log = logging.getLogger(__name__)


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


def style_size(checked: CheckedJob, style: tuple[int, int], size: tuple[int, int]) -> tuple:
    """A style picture's (w, h) at a scale of working size `size`: style_scale times the scale's
    long side, but never more than the output's asked long side. A thin photo is worked on
    stretched (its short side raised to MIN_SIDE): a style sized from that would be 8192x8192
    for a 512:1 strip at --size 64, tens of gigabytes of activations for a 64 px picture."""
    long_side = round(min(max(size), checked.size) * checked.recipe.style_scale)
    return fit_for_network(style, max(MIN_SIDE, long_side))


def _inputs(checked: CheckedJob) -> tuple[Image.Image, list[tuple[Image.Image, float]]]:
    """Content and style images as the optimiser should see them, after colour preservation."""
    content = checked.content.rgb
    styles = [(img.rgb, w) for img, w in checked.styles]
    mode = checked.recipe.preserve_color
    if mode == "none":
        return content, styles
    # Colour statistics need no more pixels than the finest scale paints: brought down to it
    # first, the transfer's arrays cost kilobytes, not gigabytes (5.8 GB measured at full
    # resolution for a 6000x6000 photo and style).
    final = plan(checked)[-1][0]
    small = _at_most(content, final)
    styles = [(_at_most(s, style_size(checked, s.size, final)), w) for s, w in styles]
    if mode == "luminance":
        return color.luminance(small), [(color.matched_luminance(s, small), w) for s, w in styles]
    return content, [(color.matched_histogram(s, small), w) for s, w in styles]


def _at_most(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """img brought down to size (same aspect ratio), never up."""
    return img if max(img.size) <= max(size) else img.resize(size, Image.Resampling.LANCZOS)


def memory_plans(checked: CheckedJob, precision: str) -> list[memory.Plan]:
    """Per scale of plan(): untiled, or the tiles that keep everything the job allocates within
    its memory budget (memory.budget). Raises InputError when a scale cannot fit even in small
    tiles: before any work starts, so a job fits or is refused with one line."""
    recipe = checked.recipe
    layers = terms.layers_of(terms.layout(recipe))
    budget = job_budget(checked)
    halo, align = tiling.halo(layers), tiling.alignment(layers)
    scales = [size for size, _ in plan(checked)]
    # Held for the whole job: the decoded inputs, and the colour transfer's arrays (at the
    # finest scale's sizes, see _inputs).
    inputs = [checked.content.rgb.size, *(img.rgb.size for img, _ in checked.styles)]
    held = sum(w * h for w, h in inputs) * memory.INPUT_BYTES
    masks = [m.image.size for m in checked.masks or () if m is not None]
    held += sum(w * h for w, h in masks) * memory.MASK_INPUT_BYTES
    if recipe.preserve_color != "none":
        final = [scales[-1], *(style_size(checked, s, scales[-1]) for s in inputs[1:])]
        held += sum(w * h for w, h in final) * memory.COLOR_BYTES
    plans = []
    # The largest scale first: if any does not fit, the error names the size the user asked for.
    for size in scales[::-1]:
        styles = [style_size(checked, s, size) for s in inputs[1:]]
        # The masks at this scale (mask_arrays), and their copies in the graphs and tiles.
        regions = len(checked.masks or ()) * size[0] * size[1] * memory.MASK_BYTES
        plans.append(
            memory.choose_tile(size, halo, align, precision, budget, styles, held + regions)
        )
    return plans[::-1]


def job_budget(checked: CheckedJob) -> int:
    """The job's memory budget: its recipe's, else its door's, else from the free memory."""
    return memory.budget(checked.recipe.max_memory, checked.job.max_memory)


def describe(checked: CheckedJob) -> dict:
    """What a job will do, for the start line of a progress display and the log: the scales,
    which of them are tiled and with what tiles, and roughly how long it will take."""
    steps_plan = plan(checked)
    precision = resolve_precision(checked.recipe.precision)
    plans = memory_plans(checked, precision.precision)
    return {
        "preset": checked.recipe.name,
        "device": device(),
        "precision": precision.precision,
        "precision_reason": precision.reason,
        "optimizer": checked.recipe.optimizer,
        "scales": [[w, h, steps] for (w, h), steps in steps_plan],
        "total": sum(steps for _, steps in steps_plan),
        "max_memory": memory.format_size(job_budget(checked)),
        "tiles": [p.tile for p in plans],
        "estimate_seconds": estimate_seconds(
            steps_plan,
            plans,
            precision,
            terms.layers_of(terms.layout(checked.recipe)),
        ),
    }


# Seconds per pixel of one step (classic's layers, untiled) per second of the precision probe's
# pass per pixel: a property of the network's shapes more than of the CPU, so the estimate
# follows the user's own CPU through its probe. Measured here, probe and 384 px steps back to
# back in one process, three rounds: 1.10, 1.18, 1.56. Tiled steps cost more: tiling.work_ratio.
STEP_PER_PROBE = 1.3


def estimate_seconds(steps_plan, plans, precision, layers) -> float | None:
    """A rough time for the whole job from this machine's precision probe (None on a GPU or
    without a probe): good to a factor of about 1.5, enough to tell minutes from a night."""
    if device() != "CPU":
        return None
    # A forced precision has no probe of its own: the machine's (cached) one still tells speed.
    probe = precision.probe or resolve_precision("auto").probe or {}
    per_pass = probe.get(precision.precision)
    if not per_pass or not probe.get("size"):
        return None
    rate = STEP_PER_PROBE * per_pass / probe["size"] ** 2
    seconds = 0.0
    for ((w, h), steps), p in zip(steps_plan, plans, strict=True):
        ratio = 1 if p.tile is None else tiling.work_ratio((h, w), p.tile, layers)
        # One step more per scale: its targets (tile by tile: two forward passes) and tracing.
        seconds += (steps + 1) * w * h * rate * ratio
    return round(seconds)


def stylize(
    job: StyleJob | CheckedJob,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    cancel: threading.Event | None = None,
) -> StyleResult:
    """Paint job.content in the style of job.styles; see StyleJob and ProgressEvent.

    cancel: when set, the loop stops before its next step and the best image so far (brought to
    the output size) is returned with cancelled=True.
    """
    checked = job if isinstance(job, CheckedJob) else check_job(job)
    job, recipe = checked.job, checked.recipe
    if log.isEnabledFor(logging.INFO):  # describe() plans the tiles and estimates: only if shown
        log.info("stylizing: %s", describe(checked))
    steps_plan = plan(checked)
    resolved = resolve_precision(recipe.precision)
    precision = resolved.precision  # "auto" made concrete
    plans = memory_plans(checked, precision)  # fits the budget, or refused before any work
    layers = terms.layers_of(terms.layout(recipe))
    # The time left starts from the estimate; only from a probe already made ("auto"): a forced
    # precision would otherwise measure one here, seconds added to the job.
    estimate = estimate_seconds(steps_plan, plans, resolved, layers) if resolved.probe else None
    regions = 0 if checked.masks is None else len(checked.masks)
    objective = objective_for(terms.layout(recipe), recipe.pooling, precision, regions)
    content_img, style_imgs = _inputs(checked)
    resume = ckpt_io.load(job.resume, checked.settings()) if job.resume else None
    clock = _Clock(steps_plan, resume, estimate)
    save = _Checkpoints(job, checked.settings())
    opt, losses, cancelled, evaluations = None, {}, False, 0
    for index, (size, steps) in enumerate(steps_plan):
        if resume and index < resume.scale:
            continue
        content, tile = to_array(content_img, size), plans[index].tile
        evaluate = _evaluator(objective, checked, precision, content, style_imgs, size, tile)
        opt, scale_step = _start_scale(opt, recipe, content, job.seed, size, resume, index)
        del content
        clock.new_scale()
        while scale_step < steps:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            scale_step += 1
            losses = opt.step(evaluate, clock.done + 1)
            clock.tick(size)
            # A tiled step takes minutes: save after each, so a kill loses at most one.
            every = 1 if tile is not None else None
            save.maybe(opt, index, scale_step, clock.done, clock.done == clock.total, every)
            if on_progress is not None:
                on_progress(clock.event(index, size, losses, opt, job.preview_every))
        evaluations += evaluate.calls
        if cancelled:
            save.now(opt, index, scale_step, clock.done)
            break
    result = _result(checked, opt.output(), losses, clock, cancelled, precision)
    result.stats["evaluations"] = evaluations
    return result


def _evaluator(objective, checked, precision, content, style_imgs, size, tile):
    """What the optimiser calls at this scale: the whole picture at once, or tile by tile when
    the memory budget says so (the same loss and gradient either way; see impasto.engine.tiling)."""
    recipe = checked.recipe
    styles = _style_arrays(checked, style_imgs, size)
    masks = mask_arrays(checked, size)
    if tile is None:
        return objective.at(content, styles, terms.params(recipe), masks)
    log.info("scale %dx%d in tiles of up to %d px", *size, tile)
    return tiling.TiledObjective(recipe, precision, content, styles, tile, masks)


def mask_arrays(checked: CheckedJob, size: tuple[int, int]) -> np.ndarray | None:
    """The styles' masks at a scale's (w, h), [R, h, w] in [0, 1] (a style without one covers
    the whole picture), or None for a job without masks. Bilinear keeps a soft edge soft."""
    if checked.masks is None:
        return None
    w, h = size
    return np.stack(
        [
            np.ones((h, w), np.float32)
            if m is None
            else np.asarray(m.image.resize(size, Image.Resampling.BILINEAR), np.float32) / 255
            for m in checked.masks
        ]
    )


def _style_arrays(checked, style_imgs, size) -> list[tuple[np.ndarray, float]]:
    """The style pictures at their working size for this scale (see style_size)."""
    return [(to_array(img, style_size(checked, img.size, size)), w) for img, w in style_imgs]


def _start_scale(opt, recipe, content, seed, size, resume, index):
    """The optimiser for this scale and how many of its steps are already done: from the
    checkpoint, from the start picture, or carried up from the previous scale."""
    if resume and index == resume.scale:
        saved = {name: getattr(resume, name) for name in ckpt_io.ARRAYS}
        return optimizers.start(recipe, resume.image, saved), resume.scale_step
    if opt is None:
        x = content if recipe.init == "content" else _noise(content.shape, seed)
        return optimizers.start(recipe, x), 0
    return opt.grown(size), 0


# A scale's first step also traces the graph and computes the targets: a rate taken from the
# first steps said "119:39 left" for a job of minutes. Until this many steady steps are timed,
# the time left is the job's estimate (estimate_seconds) less the time spent.
STEADY_STEPS = 2


class _Clock:
    """Steps done and the time left. Work is counted in pixel-steps (a step at 512 px costs
    about four at 256 px); the rate leaves out each scale's first step, which also traces.
    estimate: estimate_seconds() for the whole job, or None (no probe, a GPU)."""

    def __init__(self, steps_plan, resume, estimate=None):
        self.steps_plan, self.started = steps_plan, time.perf_counter()
        self.total = sum(steps for _, steps in steps_plan)
        self.total_work = sum(w * h * n for (w, h), n in steps_plan)
        self.done = resume.step if resume else 0
        self.work = 0.0
        if resume:
            self.work = sum(w * h * n for (w, h), n in steps_plan[: resume.scale])
            (w, h), _ = steps_plan[resume.scale]
            self.work += w * h * resume.scale_step
        self.work_at_start = self.work
        # What is left of the estimate for a resumed job: its share of the work still to do.
        share = 1 - self.work / max(self.total_work, 1)
        self.estimate = None if estimate is None else estimate * share
        self.steady_seconds = self.steady_work = 0.0
        self.steady_steps = 0
        self.last, self.first_in_scale = self.started, True

    def new_scale(self):
        self.last, self.first_in_scale = time.perf_counter(), True

    def tick(self, size):
        now = time.perf_counter()
        self.done += 1
        self.work += size[0] * size[1]
        if not self.first_in_scale:
            self.steady_seconds += now - self.last
            self.steady_work += size[0] * size[1]
            self.steady_steps += 1
        self.last, self.first_in_scale = now, False

    def eta(self) -> float:
        if self.steady_steps < STEADY_STEPS and self.estimate is not None:
            return max(self.estimate - (self.last - self.started), 0.0)
        if self.steady_work:
            rate = self.steady_seconds / self.steady_work
        else:
            rate = (self.last - self.started) / max(self.work - self.work_at_start, 1)
        return rate * (self.total_work - self.work)

    def event(self, index, size, losses, opt, preview_every) -> ProgressEvent:
        show = self.done == self.total or (preview_every and self.done % preview_every == 0)
        return ProgressEvent(
            step=self.done,
            total=self.total,
            scale=index + 1,
            scales=len(self.steps_plan),
            size=size,
            losses=losses,
            elapsed=self.last - self.started,
            eta=self.eta(),
            preview=to_image(opt.output()) if show else None,
        )


class _Checkpoints:
    """Resumable state every job.checkpoint_every steps, at the last step and on cancel."""

    def __init__(self, job: StyleJob, settings: dict):
        self.path, self.every, self.settings = job.checkpoint, job.checkpoint_every, settings

    def maybe(self, opt, scale, scale_step, step, last, every=None):
        if self.path and (step % (every or self.every) == 0 or last):
            self.now(opt, scale, scale_step, step)

    def now(self, opt, scale, scale_step, step):
        if not self.path:
            return
        state = ckpt_io.Checkpoint(self.settings, scale, scale_step, step, **opt.state())
        try:
            ckpt_io.save(self.path, state)
        except OSError as exc:  # e.g. a full disk: the painting itself must go on
            log.warning("could not write the checkpoint %s (%s); going on", self.path, exc)


def _result(checked, picture, losses, clock, cancelled, precision) -> StyleResult:
    """The picture at the output size, colour and transparency put back, with its stats."""
    recipe = checked.recipe
    image = to_image(picture).resize(
        fit_long_side(checked.content.rgb.size, checked.size), Image.Resampling.LANCZOS
    )
    if recipe.preserve_color == "luminance":
        image = color.with_chroma_of(image, checked.content.rgb)
    if checked.content.alpha is not None:
        image.putalpha(checked.content.alpha.resize(image.size, Image.Resampling.LANCZOS))
    seconds = time.perf_counter() - clock.started
    stats = {
        "losses": losses,
        "steps": clock.done,
        "total_steps": clock.total,
        "seconds": round(seconds, 3),
        "scales": [list(size) for size, _ in clock.steps_plan],
        "device": device(),
        "precision": precision,
        "optimizer": recipe.optimizer,
    }
    log.info("done in %.1f s (%d steps)%s", seconds, clock.done, ", cancelled" if cancelled else "")
    return StyleResult(image=image, stats=stats, settings=checked.settings(), cancelled=cancelled)


def _noise(shape: tuple, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32)
