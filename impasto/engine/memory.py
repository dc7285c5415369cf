"""The memory budget: parsing `--max-memory 8G`, the one place a job's budget is resolved
(budget()), and the choice between an untiled step and tiles of a given size (tiling.py).

No TensorFlow here: the doors check a budget before the engine starts.

The estimate of a scale's peak resident memory is
    BASE + held + picture pixels x PER_PICTURE_PIXEL
         + max(step pixels x STEP_BYTES[precision], style pass pixels x FORWARD_BYTES)
where the step pixels are the whole picture's untiled, or one tile's crop (core and halo) tiled;
the style pass is the largest style picture's forward pass for its Gram matrices (whole untiled,
one crop tiled), which runs before the steps and whose memory they reuse; `held` is what the job
keeps besides: the decoded inputs at full resolution, the style pictures at the scale's size and
the colour transfer's arrays and the masks (see impasto.engine.loop.memory_plans).
The constants come from peak RSS of fresh processes (classic's layers, which reach block5 as deep
as any shipped preset; shallower layer sets need less), rounded up for other allocators and
layouts. Measured in bfloat16: 1024 px in 512 px tiles (672 px crops) 1.49 GB, in one 1024 px
tile 2.48 GB, so about 1.75 KB per crop pixel; 4096x4096 in 1232 px tiles (1392 px crops)
5.70 GB (benchmarks/memory.py), leaving about 100 bytes per picture pixel. The estimate for that
last run is 8.5 GB: the budget is kept with room to spare.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from impasto.errors import InputError

log = logging.getLogger(__name__)

GIB = 2**30
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)(?:I?B)?\s*", re.I)

# TensorFlow, the VGG19 weights and the traced graphs: 0.9 GB measured at 64 px.
BASE = 1.0 * GIB
# Held for the whole picture whatever the tiles: the picture, Adam's two moments, the moving
# average, the gradient and the content image (float32 RGB, 12 bytes each), NumPy's temporaries
# of the update, and the content targets of the tiles' cores.
PER_PICTURE_PIXEL = 200
# A compiled step's activations and their gradients, per pixel it covers.
STEP_BYTES = {"float32": 2600, "bfloat16": 2100, "float16": 2100}
# A forward pass without gradients (a style picture's Grams), per pixel: 840 bytes measured at
# 1024x1024 in float32 and in bfloat16 (the classic preset's layers, the input arrays included).
FORWARD_BYTES = 1000
# Held per pixel of an input at full resolution (Pillow keeps RGB in 4 bytes, alpha in 1 more),
# of a style picture at a scale's size (its float32 array and its resized 8-bit image), and of
# a picture colour transfer works on (impasto.engine.color: float32 arrays and their temporaries).
INPUT_BYTES = 5
STYLE_BYTES = 16
COLOR_BYTES = 64
# A mask: its decoded "L" image at full resolution (1 byte a pixel, and a grey copy while it is
# checked), and per region at a scale's size its float32 array and the tiles' and graphs' copies
# of it (pooled ones add a third).
MASK_INPUT_BYTES = 2
MASK_BYTES = 16
# The tiles the doors' size limits leave room for (a 512 px crop): the halos of smaller tiles
# cost more work than their cores.
RESERVE_CROP = 512
# What the default budget leaves to the rest of the machine.
MARGIN = 0.2


def parse_size(value, what: str = "max_memory") -> int:
    """Bytes from '8G', '512M', '1.5G', '8GB', '8GiB' (powers of 1024) or a whole number of bytes.

    One-line errors name `what`: not a size, not finite, not positive.
    """
    if isinstance(value, bool):
        raise InputError(f"{what} must be a memory size like 8G or 512M, not {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        number, unit = float(match.group(1)), match.group(2).upper()
    else:
        shown = value if isinstance(value, str) else repr(value)
        raise InputError(f"{what}: {shown!r} is not a memory size like 8G, 512M or 1.5G")
    if not math.isfinite(number) or number <= 0:
        raise InputError(f"{what} must be a finite size greater than 0, not {value!r}")
    size = int(number * _UNITS[unit])
    if size < BASE:
        raise InputError(
            f"{what}: {format_size(size)} is less than impasto itself needs "
            f"(about {format_size(BASE)} for TensorFlow and the network)"
        )
    return size


def format_size(size: float) -> str:
    """'7.5G', '512M': the form parse_size reads."""
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.3g}{unit}"
    return f"{int(size)}"


def available() -> int | None:
    """MemAvailable from /proc/meminfo (what can be used without swapping), or None off Linux."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_budget() -> int:
    """What a job may use when nobody said: the free memory less a margin for everything else
    (other programs start, the page cache shrinks); 8G where the free memory is unknown."""
    free = available()
    if free is None:
        log.info("free memory unknown on this system: assuming a budget of 8G")
        return 8 * GIB
    return max(int(BASE), int(free * (1 - MARGIN)))


def budget(asked: int | None = None, door: int | None = None) -> int:
    """The bytes a job may use, decided here for every door: the job's own (its recipe's
    max_memory: a preset's, an override's, --max-memory), else the door's setting (the hot
    folder's daemon, the web server), else the machine's free memory less a margin."""
    return asked or door or default_budget()


def estimate(
    picture_pixels: int, step_pixels: int, precision: str, style_pixels: int = 0, held: int = 0
) -> int:
    """Peak resident bytes of a scale (see the module docstring)."""
    peak = max(step_pixels * STEP_BYTES[precision], style_pixels * FORWARD_BYTES)
    return int(BASE + held + picture_pixels * PER_PICTURE_PIXEL + peak)


@dataclass(frozen=True)
class Plan:
    """How one scale is computed: tile is None for one untiled step, else the core side in px."""

    tile: int | None
    estimate: int  # peak resident bytes expected


def choose_tile(
    size: tuple[int, int],
    halo: int,
    align: int,
    precision: str,
    budget: int,
    styles: Sequence[tuple[int, int]] = (),
    held: int = 0,
) -> Plan:
    """Untiled if the whole picture's step fits the budget, else the largest tiles that fit.

    size: (w, h) of the picture; halo and align: tiling.halo() and tiling.alignment() of the
    layers; styles: (w, h) of each style picture at this scale (their Grams are computed whole
    untiled, tile by tile tiled); held: bytes the job keeps besides. Raises InputError when even
    the smallest tiles do not fit, saying what would.
    """
    w, h = size
    pixels = w * h
    held += sum(sw * sh for sw, sh in styles) * STYLE_BYTES
    largest_style = max((sw * sh for sw, sh in styles), default=0)
    whole = estimate(pixels, pixels, precision, largest_style, held)
    if whole <= budget:
        return Plan(None, whole)
    for tile in range(max(w, h) // align * align, 0, -align):
        side = tile + 2 * halo
        crop = min(side, h) * min(side, w)
        style_crop = max((min(side, sh) * min(side, sw) for sw, sh in styles), default=0)
        need = estimate(pixels, crop, precision, style_crop, held)
        if need <= budget:
            return Plan(tile, need)
    # Where the style's pass outweighs the picture's step, a smaller style helps as much.
    styled = style_crop * FORWARD_BYTES > crop * STEP_BYTES[precision]
    lower = "--size or --style-scale" if styled else "--size"
    raise InputError(
        f"{w}x{h} px needs at least {format_size(need)} of memory "
        f"(the budget is {format_size(budget)}): raise --max-memory or lower {lower}"
    )


def largest_side(budget: int, precision: str, aspect: float = 1.0) -> int:
    """The longest side a picture whose sides are `aspect` (long/short) apart may have within
    the budget, tiled with a 512 px crop: for the doors' size limits."""
    room = budget - estimate(0, RESERVE_CROP**2, precision)
    return math.isqrt(max(0, int(room / PER_PICTURE_PIXEL * aspect)))
