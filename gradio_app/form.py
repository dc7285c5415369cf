"""The web form's values -> a StyleJob, with one clear message for each thing a visitor can get
wrong. Kept apart from the page so it can be tested without a server.

The Run event is registered with preprocess=False: Gradio's own Image preprocessing opens every
upload with Pillow before our code runs, and a file that is not an image then fails with a bare
"Error". Raw payloads give us the uploaded file's path (already checked by Gradio to lie in its
upload folder), and impasto.check_job gives the one-line reason. The price is that numbers arrive
unchecked too, so they are checked here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from impasto import StyleJob
from impasto.errors import InputError, PresetError
from impasto.presets import Recipe

MIN_SIZE = 64  # below this the pyramid has nothing to paint on; the page's slider starts here
PREVIEWS_PER_JOB = 20  # about this many intermediate pictures per job, whatever its length
STRENGTH = (0.25, 4.0)  # style strength multiplies the preset's style weight by this much


@dataclass(frozen=True)
class Limits:
    """What one visitor may ask of this machine (set by `impasto serve --max-size/--max-steps`)."""

    max_size: int = 1024
    max_steps: int = 1000


def upload_path(payload, what: str) -> str | None:
    """The server-side path of an uploaded image from its raw payload (None when empty)."""
    if payload is None or payload == "":
        return None
    if isinstance(payload, str | Path):
        return str(payload)
    path = payload.get("path") if isinstance(payload, dict) else None
    if not path:
        raise InputError(f"the {what} did not arrive as a file; upload it again")
    return str(path)


def number(value, label: str, low: float, high: float, *, whole: bool = False) -> float | int:
    """A form number within [low, high], or one line saying what is allowed."""
    allowed = f"{'a whole number' if whole else 'a number'} from {_show(low)} to {_show(high)}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{label} must be {allowed}") from None
    if not math.isfinite(x) or not low <= x <= high or (whole and x != int(x)):
        raise InputError(f"{label} must be {allowed}, not {value!r}")
    return int(x) if whole else x


def _show(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def job_from_form(
    content,
    styles: list[tuple[object, object]],
    preset: str | None,
    recipe: Recipe | None,
    size,
    steps,
    strength,
    colour: str | None,
    seed,
    limits: Limits,
) -> tuple[StyleJob, list[str]]:
    """A StyleJob from the form, and the uploaded paths (content first) so that messages about a
    file can name it without the server's upload folders. Raises an ImpastoError to show."""
    content_path = upload_path(content, "photo")
    if content_path is None:
        raise InputError("add a photo (the content image) first")
    chosen = []
    for n, (payload, weight) in enumerate(styles, start=1):
        path = upload_path(payload, f"style image {n}")
        if path is not None:
            chosen.append((path, number(weight, f"blend weight of style {n}", 0, 1)))
    if not chosen:
        raise InputError("add at least one style image")
    if not preset:
        raise PresetError("pick a preset")
    if recipe is None:
        raise PresetError(f"preset {preset!r} cannot be loaded; pick another")
    size = number(size, "output size", MIN_SIZE, limits.max_size, whole=True)
    steps = number(steps, "steps", 1, limits.max_steps, whole=True)
    strength = number(strength, "style strength", *STRENGTH)
    seed = number(0 if seed in (None, "") else seed, "seed", 0, 2**31 - 1, whole=True)
    overrides: dict = {"steps": steps, "style_weight": recipe.style_weight * strength}
    if colour:
        overrides["preserve_color"] = colour
    job = StyleJob(
        content=content_path,
        styles=chosen,
        preset=preset,
        size=size,
        seed=seed,
        overrides=overrides,
        preview_every=max(1, steps // PREVIEWS_PER_JOB),
    )
    return job, [content_path, *(path for path, _ in chosen)]


def public_message(message: str, paths: list[str]) -> str:
    """A message with the server's upload folders cut down to the file names the visitor knows,
    and a capital first letter for the page."""
    for path in paths:
        message = message.replace(path, Path(path).name)
    return message[:1].upper() + message[1:]
