"""A contact sheet with one small stylised picture per preset, so people choose a look by seeing it.

Tiles are cached by what decides them (the bytes of both images, the preset's full recipe, the
tile size, seed and overrides), so a second sheet of the same pair is quick and a changed preset
is redrawn.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from impasto import paths
from impasto.images import fit_long_side, load_image, save_image
from impasto.job import StyleJob, check_job
from impasto.presets import list_presets

log = logging.getLogger(__name__)

LABEL_HEIGHT = 22
PAD = 6
COLUMNS = 5


def cache_dir() -> Path:
    return paths.cache_dir() / "gallery"


def _file_digest(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tile(
    content: str | os.PathLike,
    style: str | os.PathLike,
    preset: str,
    size: int,
    seed: int,
    overrides: dict,
) -> tuple[Image.Image, bool]:
    """One preset's picture at tile size, and whether it came from the cache."""
    job = StyleJob(
        content=content, styles=[style], preset=preset, size=size, seed=seed, overrides=overrides
    )
    checked = check_job(job)
    key = hashlib.sha256(
        json.dumps(
            [_file_digest(content), _file_digest(style), checked.recipe.to_dict(), size, seed],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:32]
    cached = cache_dir() / f"{key}.png"
    if cached.is_file():
        try:
            with Image.open(cached) as img:
                return img.convert("RGB"), True
        except OSError:
            log.warning("ignoring damaged cache file %s", cached)
    from impasto import stylize

    image = stylize(checked).image.convert("RGB")
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_image(image, cached)
    return image, False


def sheet(
    content: str | os.PathLike,
    style: str | os.PathLike,
    size: int = 192,
    seed: int = 0,
    overrides: dict | None = None,
    report: Callable[[str, bool], None] | None = None,
    tiles_dir: str | os.PathLike | None = None,
) -> Image.Image:
    """The contact sheet: the photo and the painting first, then one labelled tile per preset.
    With tiles_dir, each preset's picture is also saved there as <preset>.png (the web app shows
    such a tile beside the preset's description)."""
    photo = load_image(content, "content").rgb
    painting = load_image(style, "style").rgb
    tiles = [
        ("photo", photo.resize(fit_long_side(photo.size, size))),
        ("style", painting.resize(fit_long_side(painting.size, size))),
    ]
    if tiles_dir is not None:
        Path(tiles_dir).mkdir(parents=True, exist_ok=True)
    for info in list_presets():
        if info.error:
            log.warning("skipping broken preset %s: %s", info.name, info.error)
            continue
        image, was_cached = tile(content, style, info.name, size, seed, overrides or {})
        tiles.append((info.name, image))
        if tiles_dir is not None:
            save_image(image, Path(tiles_dir) / f"{info.name}.png")
        if report is not None:
            report(info.name, was_cached)
    return _layout(tiles, size)


def _layout(tiles: list[tuple[str, Image.Image]], size: int) -> Image.Image:
    cols = min(COLUMNS, len(tiles))
    rows = -(-len(tiles) // cols)
    cell_w, cell_h = size + PAD, size + LABEL_HEIGHT + PAD
    canvas = Image.new("RGB", (cols * cell_w + PAD, rows * cell_h + PAD), (245, 243, 238))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(9, min(14, size // 7)))
    for i, (label, img) in enumerate(tiles):
        x = PAD + (i % cols) * cell_w
        y = PAD + (i // cols) * cell_h
        # Pictures sit on the bottom of their cell, so every label is right under its picture.
        canvas.paste(img, (x + (size - img.width) // 2, y + size - img.height))
        width = draw.textlength(label, font=font)
        draw.text((x + (size - width) / 2, y + size + 3), label, fill=(40, 40, 40), font=font)
    return canvas
