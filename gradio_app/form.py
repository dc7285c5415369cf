"""The web form's values -> a StyleJob, with one clear message for each thing a visitor can get
wrong. Kept apart from the page so it can be tested without a server.

The Run event is registered with preprocess=False: Gradio's own Image preprocessing opens every
upload with Pillow before our code runs, and a file that is not an image then fails with a bare
"Error". Raw payloads give us the uploaded file's path, and impasto.check_job gives the one-line
reason. The price is that everything arrives unchecked, so it is checked here: Gradio checks a
file payload's path only when the payload carries its "meta" marker, so the upload folder is
checked here too, and so are the numbers and the preset (a name from the library, nothing else).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from impasto import StyleJob
from impasto.errors import InputError, PresetError
from impasto.images import LoadedImage, load_image
from impasto.limits import (
    PRESERVE_COLOR,
    WEB_MAX_SEED,
    WEB_MAX_SIZE,
    WEB_MAX_STEPS,
    WEB_MIN_SIZE,
    WEB_STYLE_STRENGTH,
)
from impasto.presets import load_library_preset, shipped_preset_dir, user_preset_dir

PREVIEWS_PER_JOB = 20  # about this many intermediate pictures per job, whatever its length


@dataclass(frozen=True)
class Limits:
    """What one visitor may ask of this machine (set by `impasto serve --max-size/--max-steps`)."""

    max_size: int = WEB_MAX_SIZE
    max_steps: int = WEB_MAX_STEPS
    max_memory: int | None = None  # the server's budget per job (None: the free memory)


def upload_path(payload, what: str, folder: Path | None = None) -> str | None:
    """The server-side path of an uploaded image from its raw payload (None when empty). With
    folder (the server's upload folder), a path anywhere else is refused without being opened:
    only what a visitor uploaded can be painted, never another file on the server."""
    if payload is None or payload == "":
        return None
    path = payload.get("path") if isinstance(payload, dict) else payload
    if not isinstance(path, str | Path) or not str(path):
        raise InputError(f"the {what} did not arrive as a file; upload it again")
    if folder is not None and not _inside(Path(path), folder):
        raise InputError(f"the {what} was not uploaded to this server; upload it again")
    return str(path)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):  # e.g. a NUL byte in the name: no file of ours
        return False


def number(value, label: str, low: float, high: float, *, whole: bool = False) -> float | int:
    """A form number within [low, high] (never NaN or infinite), or one line saying what is
    allowed."""
    allowed = f"{'a whole number' if whole else 'a number'} from {_show(low)} to {_show(high)}"
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{label} must be {allowed}, not {shown(value)}") from None
    if not math.isfinite(x) or not low <= x <= high or (whole and x != int(x)):
        raise InputError(f"{label} must be {allowed}, not {shown(value)}")
    return int(x) if whole else x


def shown(value, limit: int = 40) -> str:
    """A visitor's value quoted for a message or the log, cut short: it may be anything."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def region_mask(payload, n: int, folder: Path | None = None) -> LoadedImage | None:
    """Style n's mask from the page's region editor (the photo with a brush layer over it): the
    strokes' opacity, whatever the brush's colour (the layer is transparent where nothing was
    painted). None when nothing was painted: that style covers the whole picture."""
    if not isinstance(payload, dict) or not payload.get("layers"):
        return None
    path = upload_path(payload["layers"][0], f"region of style {n}", folder)
    if path is None:
        return None
    layer = load_image(path, f"region of style {n}")
    if layer.alpha is None or layer.alpha.getextrema()[1] == 0:
        return None
    return replace(load_image(layer.alpha, "mask"), source=f"painted region of style {n}")


@dataclass
class FormJob:
    job: StyleJob
    paths: list[str]  # the uploaded files, content first: messages name them without folders
    notes: list[str]  # where this server's limits changed what the preset asks for


def job_from_form(
    content,
    styles: list[tuple[object, object]],
    preset,
    size,
    steps,
    strength,
    color,
    seed,
    limits: Limits,
    upload_folder: Path | None = None,
    masks: list | None = None,
) -> FormJob:
    """A StyleJob from the form. Images only from upload_folder (where given), the preset by
    name from the server's library only (anything else is refused before a file is opened),
    every number that costs time or memory held to the server's limits. masks: one per style
    slot, each an uploaded image's payload (the API), a mask image (the page's painted region,
    see region_mask) or None (the whole picture). Raises an ImpastoError to show."""
    content_path = upload_path(content, "photo", upload_folder)
    if content_path is None:
        raise InputError("add a photo (the content image) first")
    chosen, chosen_masks, mask_paths = [], [], []
    masks = list(masks or [])
    masks += [None] * (len(styles) - len(masks))
    for n, ((payload, weight), mask) in enumerate(zip(styles, masks, strict=True), start=1):
        path = upload_path(payload, f"style image {n}", upload_folder)
        if not isinstance(mask, LoadedImage):
            mask = upload_path(mask, f"mask {n}", upload_folder)
            mask_paths += [mask] if mask else []
        if path is None and mask is not None:
            raise InputError(f"mask {n} is for style {n}, which has no image: add one or drop it")
        if path is not None:
            chosen.append((path, number(weight, f"blend weight of style {n}", 0, 1)))
            chosen_masks.append(mask)
    if not chosen:
        raise InputError("add at least one style image")
    if preset is None or preset == "":
        raise PresetError("pick a preset")
    recipe = load_library_preset(preset)
    size = number(size, "output size", WEB_MIN_SIZE, limits.max_size, whole=True)
    steps = number(steps, "steps", 1, limits.max_steps, whole=True)
    strength = number(strength, "style strength", *WEB_STYLE_STRENGTH)
    seed = number(0 if seed in (None, "") else seed, "seed", 0, WEB_MAX_SEED, whole=True)
    if color not in PRESERVE_COLOR:
        raise InputError(f"colours must be one of {', '.join(PRESERVE_COLOR)}")
    # The strength is the engine's relative override: it resolves it against the preset.
    overrides: dict = {"steps": steps, "style_strength": strength, "preserve_color": color}
    overrides["max_memory"] = limits.max_memory  # the server's budget, never the visitor's
    notes = []
    # The engine works the style images at style_scale times the output size: held to
    # --max-size like the output itself.
    if recipe.style_scale * size > limits.max_size:
        overrides["style_scale"] = limits.max_size / size
        notes.append(
            f"style images worked at {limits.max_size} px, this server's limit, instead of the "
            f"preset's {recipe.style_scale:g} × {size} px"
        )
    job = StyleJob(
        content=content_path,
        styles=chosen,
        preset=recipe,
        size=size,
        seed=seed,
        overrides=overrides,
        preview_every=max(1, steps // PREVIEWS_PER_JOB),
        masks=chosen_masks if any(m is not None for m in chosen_masks) else None,
    )
    return FormJob(job, [content_path, *(path for path, _ in chosen), *mask_paths], notes)


def public_message(message: str, paths: list[str]) -> str:
    """A message with the server's upload and preset folders cut down to the file names the
    visitor knows, and a capital first letter for the page."""
    for path in paths:
        # The upload's folder, not its whole path as text: a message may quote the path with
        # repr(), which escapes characters of the name (U+00A0, U+2028) so that the path's
        # text is not in it, while the server's folder names (ours, ASCII) come out unchanged.
        message = message.replace(f"{Path(path).parent}{os.sep}", "")
    for folder in (user_preset_dir(), shipped_preset_dir()):
        message = message.replace(f"{folder}{os.sep}", "")
    return message[:1].upper() + message[1:]
