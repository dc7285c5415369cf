"""`impasto stylize --mask`: one mask per style reaches the job (its file name in the PNG's
settings), `--mask none` leaves a style on the whole picture, and a bad mask is one line, exit
code 2, before any painting (each refusal beside the same command made valid)."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from impasto.images import read_settings
from tests.conftest import CAT, STARRY, WAVE
from tests.engine.test_cli import impasto

pytestmark = pytest.mark.usefixtures("weights_available")

CAT_SIZE = Image.open(CAT).size


def mask(path, size=CAT_SIZE, value=255):
    """The left half `value`, the rest black."""
    img = Image.new("L", size, 0)
    img.paste(value, (0, 0, size[0] // 2, size[1]))
    img.save(path)
    return path


def one_line_error(run) -> str:
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("impasto: error: "), run.stderr
    return lines[0]


def test_a_mask_per_style_is_recorded_in_the_settings(tmp_path):
    sky = mask(tmp_path / "sky.png", (CAT_SIZE[0] // 4, CAT_SIZE[1] // 4))  # any size
    out = tmp_path / "out.png"
    fast = ["--size", 64, "--steps", 2, "--progress", "none"]
    run = impasto("stylize", CAT, STARRY, WAVE, "--mask", "none", "--mask", sky, "-o", out, *fast)
    assert run.returncode == 0, run.stderr
    assert read_settings(out)["masks"] == [None, "sky.png"]
    assert Image.open(out).size == (64, 43)


def test_a_bad_mask_is_one_line_before_painting(tmp_path):
    out = tmp_path / "out.png"
    square = mask(tmp_path / "square.png", (80, 80))
    black = mask(tmp_path / "black.png", value=0)
    text = tmp_path / "text.png"
    text.write_text("not a picture")
    good = mask(tmp_path / "good.png")
    for masks, message in (
        ([square], r"mask 1 .*square.png.*80x80 does not have the photo's shape"),
        ([black], r"mask 1 .*black.png.*all black"),
        ([text], r"mask 1 image .*text.png.*not an image"),
        ([tmp_path / "missing.png"], r"mask 1 image .*missing.png.*file not found"),
        ([good, good], r"2 masks for 1 style"),
    ):
        args = [a for m in masks for a in ("--mask", m)]
        line = one_line_error(impasto("stylize", CAT, STARRY, *args, "-o", out, "--size", 64))
        assert re.search(message, line), line
        assert not out.exists()
    # the positive control: the same command with a good mask is checked and painted
    run = impasto(
        "stylize", CAT, STARRY, "--mask", good, "-o", out, "--size", 64, "--steps", 1,
        "--progress", "none",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert read_settings(out)["masks"] == ["good.png"]


def test_the_output_may_not_be_a_mask(tmp_path):
    sky = mask(tmp_path / "sky.png")
    before = sky.read_bytes()
    line = one_line_error(impasto("stylize", CAT, STARRY, "--mask", sky, "-o", sky))
    assert "is the mask 1" in line and "never writes over its inputs" in line
    assert sky.read_bytes() == before


def test_help_explains_mask():
    run = impasto("stylize", "--help")
    assert "--mask FILE" in run.stdout and "'none'" in run.stdout
