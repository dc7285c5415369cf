"""Images in and out through Pillow, with every check a user's file can fail.

Reading: EXIF orientation applied; alpha split off (put back on the output by the engine);
16-bit, palette, CMYK and grayscale converted to 8-bit RGB; decompression bombs, truncated,
empty and tiny files refused with one line naming the file. Writing: the format follows the
extension, the file appears atomically (temporary file in the same folder, then os.replace), and a
PNG carries the job's settings in a text chunk so the picture can be reproduced.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from impasto.atomic import atomic_write
from impasto.errors import InputError, first_line
from impasto.limits import MAX_SIZE
from impasto.paths import reason, regular_file

log = logging.getLogger(__name__)

# Refuse images larger than this before decoding them: 100 megapixels is beyond any photo or
# scan a user would stylise, and decoding more could exhaust memory (decompression bombs).
MAX_PIXELS = 100_000_000
# Pillow's own bomb check (a warning above its limit, an error above twice that) would otherwise
# speak first at 89.5 MP; ours is the one limit, checked from the header before decoding.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # once, not per call
# Pillow also warns on stderr about damaged metadata it skips ("Corrupt EXIF data", "Truncated
# File Read"): the picture is then decoded or refused with our one line, which says it all.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
# The only formats impasto opens. Pillow would also open EPS and PS by running Ghostscript (no
# time limit, and PostScript is a program), and dozens of rarely used decoders: a file from a
# stranger is tried only against these, whatever its name says. (Pillow's JPEG opener also
# takes the MPO files many cameras write.)
INPUT_FORMATS = ("BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP")
# VGG19 halves the picture four times (2x2 pooling, no padding) before its deepest layers, so
# every side the network sees must be at least 2**4 px; smaller inputs are refused, and the
# engine paints a thin picture at a working size whose short side reaches this.
MIN_SIDE = 16
# With the longest side the engine paints (limits.MAX_SIZE), MIN_SIDE bounds the shape: a
# picture longer than MAX_SIZE / MIN_SIDE times its width cannot be painted at all.
MAX_ASPECT = MAX_SIZE // MIN_SIDE

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


def load_image(
    source: str | os.PathLike | bytes | Image.Image, role: str = "image", name: str | None = None
) -> LoadedImage:
    """Open, check and normalise an image file, the bytes of one (read once by a caller that
    checked the file it read them from), or an already-open PIL image.

    `role` ("content", "style") only makes error messages say which input was wrong; `name`, for
    bytes, is the file name they came from.
    """
    if isinstance(source, Image.Image):
        return _normalise(source, f"{role} image", "<in-memory image>")
    if isinstance(source, bytes):
        shown = name or "<bytes>"
        label, fp = f"{role} image {shown!r}", io.BytesIO(source)
        size = len(source)
    else:
        shown = str(Path(source))
        label, fp = f"{role} image {shown!r}", Path(source)
        size = regular_file(fp, label).st_size
    if size == 0:
        raise InputError(f"{label}: the file is empty (0 bytes)")
    return _decode(fp, label, shown)


# What Pillow's parsers raise on a damaged file: a cut-off one as OSError("image file is
# truncated ..."), damaged headers as SyntaxError or ValueError, and from deeper in its plug-ins
# the errors of reading past a short buffer or a bad offset. All mean the same to the user.
_DAMAGED = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
    ZeroDivisionError, struct.error,
)  # fmt: skip


def _decode(fp, name: str, source: str) -> LoadedImage:
    try:
        with Image.open(fp, formats=INPUT_FORMATS) as img:
            _check_pixels(img, name)
            img.load()
            return _normalise(img, name, source)
    except InputError:
        raise
    except UnidentifiedImageError:
        known = ", ".join(INPUT_FORMATS)
        raise InputError(f"{name}: not an image impasto reads ({known})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{name}: too many pixels (limit {MAX_PIXELS:,})") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    except MemoryError:
        raise InputError(f"{name}: not enough memory to decode it") from None
    except _DAMAGED as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # the disk's error, not Pillow's
            raise InputError(f"{name}: cannot read it ({reason(exc)})") from None
        raise InputError(f"{name}: damaged or truncated image ({first_line(exc)})") from None


def _check_pixels(img: Image.Image, name: str) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise InputError(f"{name}: {w}x{h} is too many pixels (limit {MAX_PIXELS:,})")
    if min(w, h) < MIN_SIDE:
        raise InputError(f"{name}: {w}x{h} is too small (each side needs {MIN_SIDE} px or more)")
    if max(w, h) > min(w, h) * MAX_ASPECT:
        raise InputError(
            f"{name}: {w}x{h} is too long and thin to paint (the long side may be at most "
            f"{MAX_ASPECT} times the short one)"
        )


# EXIF orientation (tag 0x0112) -> the transpose that makes the picture upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(img: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation says. Not ImageOps.exif_transpose: that also
    rewrites the EXIF block for the turned copy, and one damaged tag the engine never reads then
    refuses a good picture (struct.error, found by tests/engine/test_fuzz_images.py)."""
    method = _UPRIGHT.get(img.getexif().get(0x0112))
    return img.transpose(method) if method is not None else img


def _normalise(img: Image.Image, name: str, source: str) -> LoadedImage:
    _check_pixels(img, name)
    img = _upright(img)
    alpha = None
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) gray: scale to 8 bits instead of clipping at 255.
        img = _gray_to_8bit(img, lambda peak: 65535.0 if peak > 255 else 255.0)
    elif mode == "F":
        img = _gray_to_8bit(img, lambda peak: 1.0 if peak <= 1.0 else peak)
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


def _gray_to_8bit(img: Image.Image, top) -> Image.Image:
    """A 16/32-bit gray image as 8-bit L, its values scaled so top(its maximum) becomes 255.
    One float32 array worked in place: 4 bytes a pixel more than the image (float64 and a
    temporary per operation took about 40, 4 GB for a 100 MP scan)."""
    arr = np.asarray(img, dtype=np.float32)
    if not arr.flags.writeable:  # the same dtype as the image's: a read-only view of it
        arr = arr.copy()
    arr *= 255.0 / top(float(arr.max()))
    arr += 0.5
    np.clip(arr, 0, 255, out=arr)
    return Image.fromarray(arr.astype(np.uint8), "L")


def output_format(path: str | os.PathLike) -> str:
    """The Pillow format for an output path, or an InputError naming the supported extensions."""
    ext = Path(path).suffix.lower()
    if ext not in OUTPUT_FORMATS:
        known = ", ".join(sorted(OUTPUT_FORMATS))
        raise InputError(
            f"output {str(path)!r}: unknown extension {ext or '(none)'!r}; use {known}"
        )
    return OUTPUT_FORMATS[ext]


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
    with Image.open(path, formats=("PNG",)) as img:
        text = img.info.get(SETTINGS_KEY)
    return json.loads(text) if text else None


def fit_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(w, h) scaled so the longer side is long_side, keeping the aspect ratio."""
    w, h = size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit_for_network(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """fit_long_side, but never a side under MIN_SIDE: a thin picture is worked on with its short
    side at MIN_SIDE (and its long side longer than asked), then brought to the asked size."""
    w, h = fit_long_side(size, long_side)
    if min(w, h) >= MIN_SIDE:
        return w, h
    scale = MIN_SIDE / min(size)
    return max(MIN_SIDE, round(size[0] * scale)), max(MIN_SIDE, round(size[1] * scale))


def to_array(img: Image.Image, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB image as float32 HxWx3 in [0, 1], resized (Lanczos) to size=(w, h) if given."""
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def to_image(arr: np.ndarray) -> Image.Image:
    """HxWx3 float array in [0, 1] as an 8-bit RGB image."""
    return Image.fromarray(np.clip(np.asarray(arr) * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
