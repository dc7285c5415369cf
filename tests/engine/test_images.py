"""Images in and out: every kind of bad or unusual file a user may hand us."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

from impasto.errors import InputError
from impasto.images import MAX_PIXELS, load_image, read_settings, save_image
from tests.conftest import CAT


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_image(tmp_path / "nope.png", "content")


def test_zero_bytes(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.jpg.*empty \(0 bytes\)"):
        load_image(tmp_path / "empty.jpg", "content")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello, not a picture")
    with pytest.raises(InputError, match="notes.png.*not an image"):
        load_image(tmp_path / "notes.png", "style")


def test_truncated(tmp_path):
    data = CAT.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png.*truncated"):
        load_image(tmp_path / "cut.png")


def test_one_pixel(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(InputError, match="dot.png.*1x1 is too small"):
        load_image(tmp_path / "dot.png")


def test_decompression_bomb_refused_before_decoding(tmp_path):
    # A PNG header claiming more pixels than the limit; refused from the header alone.
    side = int(MAX_PIXELS**0.5) + 100
    img = Image.new("1", (side, side))
    img.save(tmp_path / "bomb.png", optimize=True)
    with pytest.raises(InputError, match="bomb.png.*too many pixels"):
        load_image(tmp_path / "bomb.png")


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").rgb.size == (20, 40)


@pytest.mark.parametrize(
    "mode,make",
    [
        ("L", lambda: Image.new("L", (32, 32), 128)),
        ("P", lambda: Image.new("RGB", (32, 32), (10, 200, 30)).convert("P")),
        ("CMYK", lambda: Image.new("CMYK", (32, 32), (255, 0, 0, 0))),
        ("I;16", lambda: Image.fromarray(np.full((32, 32), 40000, np.uint16))),
    ],
)
def test_modes_converted_to_rgb(tmp_path, mode, make):
    path = tmp_path / ("img.tif" if mode == "CMYK" else "img.png")
    make().save(path)
    loaded = load_image(path)
    assert loaded.rgb.mode == "RGB" and loaded.alpha is None
    if mode == "I;16":  # 16-bit values are scaled, not clipped to white
        assert loaded.rgb.getpixel((0, 0)) == (156, 156, 156)
    if mode == "CMYK":  # cyan stays cyan
        r, g, b = loaded.rgb.getpixel((0, 0))
        assert r < 30 and g > 200 and b > 200


def test_alpha_kept_aside(tmp_path):
    img = Image.new("RGBA", (32, 32), (0, 0, 255, 255))
    img.putpixel((0, 0), (0, 0, 255, 0))
    img.save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded.rgb.mode == "RGB"
    assert loaded.alpha.getpixel((0, 0)) == 0 and loaded.alpha.getpixel((5, 5)) == 255


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_save_formats_atomic_and_settings(tmp_path, ext):
    img = Image.new("RGB", (20, 10), (1, 2, 3))
    path = save_image(img, tmp_path / f"out{ext}", settings={"seed": 7, "preset": "classic"})
    assert Image.open(path).size == (20, 10)
    assert [p.name for p in tmp_path.iterdir()] == [f"out{ext}"]  # no temporary left behind
    if ext == ".png":
        assert read_settings(path) == {"seed": 7, "preset": "classic"}


def test_saved_files_have_the_users_usual_permissions(tmp_path):
    """A temporary file is private (0600); the result must not be, or a studio sharing an
    output folder could not open it."""
    path = save_image(Image.new("RGB", (4, 4)), tmp_path / "out.png")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_save_unknown_extension(tmp_path):
    with pytest.raises(InputError, match=r"unknown extension '.gif'"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "x.gif")


def test_save_failure_leaves_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_image(Image.new("RGB", (4, 4)), target)
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_png_settings_are_json(tmp_path):
    path = save_image(Image.new("RGB", (4, 4)), tmp_path / "o.png", settings={"a": [1, 2]})
    assert json.loads(Image.open(path).info["impasto"]) == {"a": [1, 2]}
