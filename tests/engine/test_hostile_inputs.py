"""Hostile files at the engine's doors (issue 21): PostScript that would loop for ever in
Ghostscript, headers that claim too many pixels, and 16-bit scans; each refusal beside the same
request made valid, which succeeds."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from impasto.errors import InputError
from impasto.images import MAX_PIXELS, load_image
from impasto.job import StyleJob, check_job
from tests.conftest import CAT, STARRY

# Bounding box 200x200, then a loop with no end: Ghostscript, if Pillow ever ran it, never returns.
LOOP_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 200 200\n{ } loop\nshowpage\n%%EOF\n"


def impasto(*args, timeout=120):
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "impasto.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return run, time.monotonic() - started


@pytest.fixture
def files(tmp_path):
    """The hostile EPS as .eps and as .jpg, and a real photo as .jpg."""
    (tmp_path / "loop.eps").write_bytes(LOOP_EPS)
    (tmp_path / "loop.jpg").write_bytes(LOOP_EPS)
    with Image.open(CAT) as img:
        img.convert("RGB").save(tmp_path / "photo.jpg")
    return tmp_path


@pytest.mark.parametrize("name", ["loop.eps", "loop.jpg"])
def test_check_job_refuses_postscript_at_once(files, name):
    started = time.monotonic()
    with pytest.raises(InputError) as err:
        check_job(StyleJob(content=str(files / name), styles=[STARRY], size=64))
    assert time.monotonic() - started < 1.0
    assert str(err.value) == (
        f"content image {str(files / name)!r}: not an image impasto reads "
        "(BMP, GIF, JPEG, PNG, TIFF, WEBP)"
    )
    # As a style too; and the same job with a real photo is accepted.
    with pytest.raises(InputError, match="style image .*not an image impasto reads"):
        check_job(StyleJob(content=str(files / "photo.jpg"), styles=[str(files / name)], size=64))
    check_job(StyleJob(content=str(files / "photo.jpg"), styles=[STARRY], size=64))


@pytest.mark.usefixtures("weights_available")
@pytest.mark.parametrize("name", ["loop.eps", "loop.jpg"])
def test_stylize_refuses_postscript_with_one_line_and_exit_2(files, name):
    run, seconds = impasto("stylize", files / name, STARRY, "-o", files / "out.png", timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "not an image impasto reads" in run.stderr
    assert seconds < 20  # Python's start on a busy machine; before TensorFlow loads
    assert not (files / "out.png").exists()


@pytest.mark.usefixtures("weights_available")
def test_stylize_paints_the_same_request_with_a_photo(files):
    args = ["--size", 32, "--steps", 1, "--progress", "none"]
    run, _ = impasto("stylize", files / "photo.jpg", STARRY, "-o", files / "out.png", *args)
    assert run.returncode == 0, run.stderr
    assert Image.open(files / "out.png").size == (32, 21)


@pytest.mark.usefixtures("weights_available")
def test_batch_skips_postscript_with_its_reason_and_paints_the_photo(files):
    out = files / "out"
    args = ["-s", STARRY, "-o", out, "--size", 32, "--steps", 1, "--progress", "none"]
    run, _ = impasto("batch", files / "loop.eps", files / "loop.jpg", files / "photo.jpg", *args)
    assert run.returncode == 2, run.stderr  # some files failed
    for name in ("loop.eps", "loop.jpg"):
        assert f"skipping {files / name}: content image '{name}': not an image impasto reads" in (
            run.stderr
        )
    assert "1 painted, 0 already there, 2 failed" in run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["photo.png"]


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height (1-bit gray) and holds no pixel data: the header alone."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_a_header_over_100_megapixels_is_refused_by_our_check_not_pillows(tmp_path):
    (tmp_path / "over.png").write_bytes(png_header(10_001, 10_000))
    (tmp_path / "at.png").write_bytes(png_header(10_000, 10_000))
    with pytest.raises(InputError) as err:
        load_image(tmp_path / "over.png", "content")
    assert str(err.value) == (
        f"content image {str(tmp_path / 'over.png')!r}: 10001x10000 is too many pixels "
        f"(limit {MAX_PIXELS:,})"
    )
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS  # Pillow's own limit (89.5 MP) never speaks
    # Exactly at the limit the header check lets it through (Pillow's too): what stops this
    # one is that it holds no pixels.
    with pytest.raises(InputError) as err:
        load_image(tmp_path / "at.png")
    assert "too many pixels" not in str(err.value) and "damaged or truncated" in str(err.value)


def test_16_bit_scans_are_converted_without_float64_copies():
    side = 1000
    values = (np.arange(side * side, dtype=np.uint32) % 65536).astype(np.uint16)
    scan = Image.frombytes("I;16", (side, side), values.tobytes())
    tracemalloc.start()
    try:
        loaded = load_image(scan)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One float32 array and the 8-bit result (float64 and its temporaries took 40 bytes a pixel).
    assert peak < 6.5 * side * side
    gray = np.asarray(loaded.rgb)[..., 0]
    assert gray[0, 0] == 0 and gray[0, 255] == 1 and gray[65, 535] == 255  # 65535 -> 255


@pytest.mark.usefixtures("weights_available")
def test_a_damaged_tiff_is_one_line_without_pillows_warnings(tmp_path):
    # The header of a TIFF and nothing more: Pillow warns "Corrupt EXIF data" on stderr before
    # it fails; the user sees only our line.
    with Image.open(CAT) as img:
        img.convert("RGB").save(tmp_path / "photo.tif")
    (tmp_path / "cut.tif").write_bytes((tmp_path / "photo.tif").read_bytes()[:8])
    run, _ = impasto("stylize", tmp_path / "cut.tif", STARRY, "-o", tmp_path / "out.png")
    assert run.returncode == 2
    assert run.stderr.startswith("impasto: error: content image") and run.stderr.count("\n") == 1
    check_job(StyleJob(content=str(tmp_path / "photo.tif"), styles=[STARRY], size=64))
