"""The engine contract as plain data: a job in, progress events out, a result back.

Every front-end builds a StyleJob the same way. check_job() turns it into a CheckedJob (images
opened and normalised, preset loaded, overrides applied) or raises one ImpastoError, all before
TensorFlow is imported, so a user learns about a bad file at once rather than after start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image, ImageChops

from impasto.engine.memory import parse_size
from impasto.errors import InputError, PresetError
from impasto.images import LoadedImage, load_image, save_image
from impasto.limits import DEFAULT_PRESET, MAX_SIZE, MIN_SIZE
from impasto.numbers import finite
from impasto.paths import regular_file
from impasto.presets import Recipe, apply_overrides, load_preset

# Bytes are a file a door read once and checked (the hot folder); a LoadedImage is one a door
# has already decoded (the engine server decodes the bytes a client sent, named by its path).
ImageSource = str | os.PathLike | bytes | Image.Image | LoadedImage


@dataclass
class StyleJob:
    """What to paint, in which style, with which recipe.

    content: a path, a PIL image, or the bytes of a file already read (content_name names it).
    styles: style images, each a path/PIL image or a (source, blend weight) pair.
    preset: a preset name or .toml path, or a Recipe a door has already loaded (the web app
        looks presets up by name only, see presets.load_library_preset).
    size: long side of the output in px (default: the preset's).
    overrides: recipe keys to change for this job only (see presets.Recipe).
    preview_every: attach a preview image to every Nth progress event (0: never).
    checkpoint: write resumable state to this .npz every checkpoint_every steps and on cancel.
    resume: continue from a checkpoint written by an earlier run of the same job.
    max_memory: the door's memory budget in bytes (the hot folder's daemon setting), for a
        recipe that sets none; None: the machine's free memory less a margin (memory.budget).
    masks: where each style goes, one entry per style in the order of `styles` (fewer entries:
        the rest cover the whole picture): a greyscale picture (white = this style, grey = a
        soft edge; any size with the photo's aspect ratio) as a path, bytes, PIL image or
        LoadedImage, or None for the whole picture. Where no mask covers a pixel, the photo
        stays (only the content and smoothness terms act there). See load_mask.
    """

    content: ImageSource
    styles: list
    preset: str | Recipe = DEFAULT_PRESET
    size: int | None = None
    seed: int = 0
    overrides: dict = field(default_factory=dict)
    preview_every: int = 0
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 50
    resume: str | os.PathLike | None = None
    max_memory: int | None = None
    content_name: str | None = None  # the file name content bytes came from (messages, settings)
    masks: list | None = None


@dataclass
class CheckedJob:
    """A StyleJob whose inputs have been opened and checked; what the engine actually runs."""

    job: StyleJob
    recipe: Recipe
    content: LoadedImage
    styles: list[tuple[LoadedImage, float]]  # blend weights normalised to sum 1
    size: int
    # One per style (None: the whole picture), "L" images in [0, 255] at their own size; None
    # when no style has a mask (then the styles are blended over the whole picture as before).
    masks: list[Mask | None] | None = None

    def settings(self) -> dict:
        """What reproduces this picture; embedded in PNG outputs and checkpoints."""
        from impasto import __version__

        settings = {
            "impasto": __version__,
            "content": _label(self.content.source),
            "styles": [[_label(img.source), w] for img, w in self.styles],
            "size": self.size,
            "seed": self.job.seed,
            "recipe": self.recipe.to_dict(),
        }
        if self.masks is not None:  # absent without masks: older settings stay comparable
            settings["masks"] = [None if m is None else _label(m.source) for m in self.masks]
        return settings


def _label(source: str) -> str:
    return os.path.basename(source) if os.sep in source or "/" in source else source


@dataclass
class ProgressEvent:
    """Handed to on_progress after every step."""

    step: int  # 1-based, counted over all scales
    total: int
    scale: int  # 1-based index of the current scale
    scales: int
    size: tuple[int, int]  # (w, h) of the current scale
    losses: dict[str, float]  # weighted, per active term (impasto.engine.terms), and total
    elapsed: float  # seconds since the job started
    eta: float  # estimated seconds left
    preview: Image.Image | None = None  # set every job.preview_every steps, and at the last step


@dataclass
class StyleResult:
    image: Image.Image  # RGB, or RGBA when the content had transparency
    stats: dict  # losses per term, steps, seconds, scales, device
    settings: dict  # see CheckedJob.settings
    cancelled: bool = False

    def save(self, path: str | os.PathLike) -> Path:
        """Write the picture atomically, with its settings embedded where the format allows."""
        img = self.image
        alpha = img.getchannel("A") if img.mode == "RGBA" else None
        return save_image(img.convert("RGB"), path, settings=self.settings, alpha=alpha)


@dataclass
class Mask:
    """A style's region: image is mode "L" (255 = this style), source names its file."""

    image: Image.Image
    source: str


# A mask may be a little off the photo's aspect ratio (an editor's rounding, a mask drawn at a
# smaller size): up to this fraction, or one pixel of the mask's short side, whichever is more.
MASK_ASPECT_TOLERANCE = 0.01


def load_mask(source, content: LoadedImage, index: int) -> Mask:
    """Open and check style index's mask (0-based) against the photo: an image of the photo's
    aspect ratio that is not all black. Its grey level (luminance) is the mask; a transparent
    pixel covers nothing (a brush layer's strokes on a clear background are its region)."""
    role = f"mask {index + 1}"
    loaded = source if isinstance(source, LoadedImage) else load_image(source, role)
    gray = loaded.rgb.convert("L")
    if loaded.alpha is not None:
        gray = ImageChops.multiply(gray, loaded.alpha)
    label = f"{role} {_label(loaded.source)!r}"
    (mw, mh), (cw, ch) = gray.size, content.rgb.size
    off = abs(mw / mh - cw / ch) / (cw / ch)
    if off > max(MASK_ASPECT_TOLERANCE, 1 / min(mw, mh)):
        raise InputError(
            f"{label}: {mw}x{mh} does not have the photo's shape ({cw}x{ch}); a mask must have "
            "the photo's aspect ratio (any size)"
        )
    if gray.getextrema()[1] == 0:
        raise InputError(
            f"{label}: it is all black, so the style would go nowhere (white marks where a "
            "style goes)"
        )
    return Mask(image=gray, source=loaded.source)


def _load(source: ImageSource, role: str, name: str | None = None) -> LoadedImage:
    return source if isinstance(source, LoadedImage) else load_image(source, role, name=name)


def check_job(job: StyleJob) -> CheckedJob:
    """Open and check everything a job names; raise one ImpastoError on the first problem."""
    recipe = job.preset if isinstance(job.preset, Recipe) else load_preset(job.preset)
    recipe = apply_overrides(recipe, job.overrides)
    size = recipe.size if job.size is None else job.size
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"size must be a whole number from {MIN_SIZE} to {MAX_SIZE}, not {size!r}")
    if isinstance(job.seed, bool) or not isinstance(job.seed, int) or job.seed < 0:
        raise InputError(f"seed must be a whole number 0 or more, not {job.seed!r}")
    if job.max_memory is not None:  # a door's budget: bytes from here on
        job = replace(job, max_memory=parse_size(job.max_memory, "max_memory"))
    if not job.styles:
        raise InputError("no style image given: name at least one")
    pairs = [s if isinstance(s, tuple | list) else (s, 1.0) for s in job.styles]
    weights = []
    for _, w in pairs:
        if finite(w, "style blend weight", PresetError) < 0:
            raise PresetError(f"style blend weight must be a number 0 or more, not {w!r}")
        weights.append(float(w))
    if sum(weights) <= 0:
        raise PresetError("style blend weights must not all be 0")
    content = _load(job.content, "content", job.content_name)
    styles = [
        (_load(src, "style"), w / sum(weights)) for (src, _), w in zip(pairs, weights, strict=True)
    ]
    masks = _masks(job.masks, content, len(styles))
    if job.resume is not None:
        regular_file(job.resume, f"checkpoint {str(job.resume)!r}")
    return CheckedJob(
        job=job, recipe=recipe, content=content, styles=styles, size=size, masks=masks
    )


def _masks(sources: list | None, content: LoadedImage, styles: int) -> list[Mask | None] | None:
    """One checked mask (or None) per style, or None when no style has a mask."""
    sources = list(sources or [])
    if len(sources) > styles:
        raise InputError(
            f"{len(sources)} masks for {styles} style{'s' if styles > 1 else ''}: give at most "
            "one mask per style, in the order of the styles"
        )
    if all(s is None for s in sources):
        return None
    sources += [None] * (styles - len(sources))
    return [None if s is None else load_mask(s, content, i) for i, s in enumerate(sources)]
