"""`impasto batch` with the engine here (no cluster): one output per photo, named after it,
bad files reported with their reason without stopping the others, and a second run that skips
what is done."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import CAT, STARRY

pytestmark = pytest.mark.usefixtures("weights_available")


def batch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "impasto.cli", "batch", *args, "--size", "64", "--steps", "3"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def photo(size: int) -> Image.Image:
    with Image.open(CAT) as img:
        img = img.convert("RGB")
    img.thumbnail((size, size))
    return img


def test_a_folder_then_a_rerun_that_finishes_it(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    photo(80).save(photos / "cat.png")
    photo(72).save(photos / "cat.jpg")  # same stem: both get their own output
    photo(90).save(photos / "wide.webp")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (photos / "notes.txt").write_text("not a photo: not taken from a folder")
    (photos / ".hidden.png").write_bytes(b"x")
    out.mkdir()
    photo(64).save(out / "wide.png")  # already there: skipped, left as it is
    before = (out / "wide.png").read_bytes()
    inputs = {p.name: p.read_bytes() for p in photos.iterdir()}

    run = batch(str(photos), "-s", str(STARRY), "-o", str(out))
    assert run.returncode == 2, run.stderr
    assert sorted(os.listdir(out)) == ["cat_jpg.png", "cat_png.png", "wide.png"]
    assert (out / "wide.png").read_bytes() == before
    for name in ("cat_jpg.png", "cat_png.png"):
        with Image.open(out / name) as img:
            img.load()
            assert max(img.size) == 64
    summary = run.stderr.strip().splitlines()
    assert "impasto: 2 painted, 1 already there, 1 failed in" in run.stderr
    assert summary[-1].startswith(f"  {photos / 'broken.jpg'}: content image 'broken.jpg': ")
    assert "Traceback" not in run.stderr
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == inputs  # inputs never written

    (photos / "broken.jpg").unlink()
    again = batch(str(photos / "cat.png"), str(photos), "-s", str(STARRY), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert "impasto: 0 painted, 3 already there, 0 failed" in again.stderr


def test_an_output_that_would_be_its_input_is_refused(tmp_path):
    photo(80).save(tmp_path / "cat.png")
    run = batch(str(tmp_path / "cat.png"), "-s", str(STARRY), "-o", str(tmp_path))
    assert run.returncode == 2
    assert "impasto never writes over its inputs" in run.stderr
    assert "0 painted, 0 already there, 1 failed" in run.stderr


def test_a_bad_style_stops_the_batch_before_any_painting(tmp_path):
    photo(80).save(tmp_path / "cat.png")
    run = batch(
        str(tmp_path / "cat.png"), "-s", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "o")
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"impasto: error: style image {str(tmp_path / 'nope.jpg')!r}: file not found"
    ]


def test_masks_beside_their_photos(tmp_path):
    """--masks-beside: cat.mask.png goes with cat.png (its name in the output's settings), is
    not painted as a photo, and a mask for a style the batch does not have fails its photo
    alone."""
    from impasto.images import read_settings

    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name in ("cat.png", "dog.png"):
        photo(80).save(photos / name)
    w, h = photo(80).size
    mask = Image.new("L", (w, h), 0)
    mask.paste(255, (0, 0, w // 2, h))
    mask.save(photos / "cat.mask.png")
    mask.save(photos / "dog.mask2.png")
    args = ["-s", str(STARRY), "-o", str(out), "--masks-beside"]
    run = batch(str(photos / "cat.png"), str(photos), *args)
    assert run.returncode == 2, run.stderr
    assert sorted(os.listdir(out)) == ["cat.png"]
    assert read_settings(out / "cat.png")["masks"] == ["cat.mask.png"]
    assert "impasto: 1 painted, 0 already there, 1 failed" in run.stderr
    assert f"{photos / 'dog.png'}: mask 'dog.mask2.png' is for style 2, but there is 1 style" in (
        run.stderr
    )
