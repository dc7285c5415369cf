"""Images in and out through Pillow, with every check a user's file can fail.

Reading: EXIF orientation applied; alpha split off (put back on the output by the engine);
16-bit, palette, CMYK and grayscale converted to 8-bit RGB; decompression bombs, truncated,
empty and tiny files refused with one line naming the file. Writing: the format follows the
extension, the file appears atomically (temporary file in the same folder, then os.replace), and a
PNG carries the job's settings in a text chunk so the picture can be reproduced.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from impasto.atomic import atomic_write
from impasto.errors import InputError

log = logging.getLogger(__name__)

# Refuse images larger than this before decoding them: 100 megapixels is beyond any photo or
# scan a user would stylise, and decoding more could exhaust memory (decompression bombs).
MAX_PIXELS = 100_000_000
# Below this the VGG19 pyramid has nothing to work on (five 2x poolings).
MIN_SIDE = 16

OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
SETTINGS_KEY = "impasto"


@dataclass
class LoadedImage:
    """An RGB image ready for the engine, and the alpha channel it had (or None)."""

    rgb: Image.Image
    alpha: Image.Image | None
    source: str


def load_image(source: str | os.PathLike | Image.Image, role: str = "image") -> LoadedImage:
    """Open, check and normalise an image file (or an already-open PIL image).

    `role` ("content", "style") only makes error messages say which input was wrong.
    """
    if isinstance(source, Image.Image):
        return _normalise(source, f"{role} image", "<in-memory image>")
    path = Path(source)
    name = f"{role} image {str(path)!r}"
    if not path.exists():
        raise InputError(f"{name}: file not found")
    if not path.is_file():
        raise InputError(f"{name}: not a regular file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise InputError(f"{name}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_pixels(img, name)
                img.load()
                return _normalise(img, name, str(path))
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{name}: too many pixels (limit {MAX_PIXELS:,})") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports a cut-off file as OSError("image file is truncated ...") and damaged
        # headers as SyntaxError or ValueError; all mean the same to the user.
        raise InputError(f"{name}: damaged or truncated image ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_pixels(img: Image.Image, name: str) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise InputError(f"{name}: {w}x{h} is too many pixels (limit {MAX_PIXELS:,})")
    if min(w, h) < MIN_SIDE:
        raise InputError(f"{name}: {w}x{h} is too small (each side needs {MIN_SIDE} px or more)")


def _normalise(img: Image.Image, name: str, source: str) -> LoadedImage:
    _check_pixels(img, name)
    img = ImageOps.exif_transpose(img)
    alpha = None
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) gray: scale to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else arr.max()
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "1":
        img = img.convert("L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = img.getchannel("A")
        if alpha.getextrema() == (255, 255):
            alpha = None  # fully opaque: nothing to put back
    if img.mode == "CMYK":
        img = img.convert("RGB")
    elif img.mode != "RGB":
        img = img.convert("RGB")
    return LoadedImage(rgb=img, alpha=alpha, source=source)


def output_format(path: str | os.PathLike) -> str:
    """The Pillow format for an output path, or an InputError naming the supported extensions."""
    ext = Path(path).suffix.lower()
    if ext not in OUTPUT_FORMATS:
        known = ", ".join(sorted(OUTPUT_FORMATS))
        raise InputError(
            f"output {str(path)!r}: unknown extension {ext or '(none)'!r}; use {known}"
        )
    return OUTPUT_FORMATS[ext]


def check_output_path(path: str | os.PathLike) -> None:
    """Refuse an output we could not write, before spending minutes on the picture."""
    output_format(path)
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise InputError(f"output {str(path)!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"output {str(path)!r}: folder {str(folder)!r} is not writable")


def save_image(
    img: Image.Image,
    path: str | os.PathLike,
    settings: dict | None = None,
    alpha: Image.Image | None = None,
) -> Path:
    """Write img to path atomically, in the format its extension names.

    alpha, if given, is resized to the image and attached (dropped for JPEG, which has none).
    settings are embedded as JSON in a PNG text chunk (and as the WebP/TIFF description).
    """
    path = Path(path)
    fmt = output_format(path)
    if alpha is not None and fmt != "JPEG":
        img = img.convert("RGB")
        img.putalpha(alpha.resize(img.size, Image.Resampling.LANCZOS))
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    kwargs: dict = {}
    if fmt == "PNG" and settings is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(SETTINGS_KEY, json.dumps(settings, sort_keys=True))
        kwargs["pnginfo"] = info
    elif fmt == "JPEG":
        kwargs.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        kwargs.update(quality=95)
    with atomic_write(path) as fh:
        img.save(fh, format=fmt, **kwargs)
    log.info("wrote %s", path)
    return path


def read_settings(path: str | os.PathLike) -> dict | None:
    """The job settings embedded in a PNG written by save_image, or None."""
    with Image.open(path) as img:
        text = img.info.get(SETTINGS_KEY)
    return json.loads(text) if text else None


def fit_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(w, h) scaled so the longer side is long_side, keeping the aspect ratio."""
    w, h = size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_array(img: Image.Image, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB image as float32 HxWx3 in [0, 1], resized (Lanczos) to size=(w, h) if given."""
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def to_image(arr: np.ndarray) -> Image.Image:
    """HxWx3 float array in [0, 1] as an 8-bit RGB image."""
    return Image.fromarray(np.clip(np.asarray(arr) * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
