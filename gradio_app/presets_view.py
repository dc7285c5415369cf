"""What the web app shows about presets: the choices, a description, and a gallery tile.

The list is read from the preset library every time (never hard-coded), so a preset the user adds
to their preset folder appears on the next page load. A broken preset file is left out of the
choices and logged, rather than offered and failing on Run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from impasto.errors import ImpastoError
from impasto.limits import DEFAULT_PRESET
from impasto.presets import Recipe, list_presets, load_library_preset

log = logging.getLogger(__name__)

TILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class PresetView:
    name: str
    description: str
    tile: Path | None


def preset_views() -> list[PresetView]:
    """Every loadable preset, sorted by name."""
    views = []
    for info in list_presets():
        if info.error:
            log.warning("preset %s left out of the web app: %s", info.name, info.error)
            continue
        views.append(PresetView(info.name, info.description, preset_tile(info.path)))
    return views


def preset_tile(preset_file: Path) -> Path | None:
    """The preset's gallery tile, where the library has one: an image named like the preset,
    next to its .toml file or in a gallery/ folder beside it."""
    folder, stem = preset_file.parent, preset_file.stem
    for where in (folder, folder / "gallery"):
        for suffix in TILE_SUFFIXES:
            candidate = where / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def default_preset(views: list[PresetView]) -> str | None:
    names = [v.name for v in views]
    if DEFAULT_PRESET in names:
        return DEFAULT_PRESET
    return names[0] if names else None


def recipe_or_none(name: object) -> Recipe | None:
    """The library preset of that name (names only: the page's visitors send it)."""
    if not name:
        return None
    try:
        return load_library_preset(name)
    except ImpastoError as exc:
        log.warning("preset not shown: %s", exc)
        return None


COLOURS_IN_WORDS = {
    "none": "the painting's colours",
    "luminance": "the photo's colours",
    "histogram": "the photo's palette",
}


def describe_markdown(view: PresetView | None, recipe: Recipe | None) -> str:
    """The few lines under the dropdown: what the preset is for and what it does, in a
    photographer's words; the recipe's terms (steps per scale, precision) in a tooltip."""
    if view is None or recipe is None:
        return "*This preset cannot be loaded; pick another.*"
    steps = [s for s in recipe.steps if s]
    sizes = f", small first, then larger ({len(steps)} sizes)" if len(steps) > 1 else ""
    colours = COLOURS_IN_WORDS.get(recipe.preserve_color, recipe.preserve_color)
    details = f"steps per size: {' + '.join(map(str, steps))} · precision: {recipe.precision}"
    return (
        f"{view.description}\n\n"
        f'<small title="{details}">Paints {recipe.size} px pictures (long side) by default, in '
        f"{recipe.total_steps} steps{sizes}; keeps {colours}.</small>"
    )
