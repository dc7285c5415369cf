"""Masks at the job level: check_job opens each style's mask, checks it against the photo and
refuses a bad one with one line; a good one (the positive control beside each refusal) passes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from impasto.errors import InputError
from impasto.job import StyleJob, check_job


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def photo():
    return Image.new("RGB", (120, 80), (120, 140, 160))


@pytest.fixture
def style():
    return Image.new("RGB", (64, 64), (200, 60, 30))


def half(size, value=255):
    """The left half white, the rest black."""
    img = Image.new("L", size, 0)
    img.paste(value, (0, 0, size[0] // 2, size[1]))
    return img


def test_a_mask_of_the_photos_shape_at_another_size_is_taken(photo, style):
    checked = check_job(StyleJob(photo, [style, style], size=64, masks=[half((60, 40)), None]))
    mask, whole = checked.masks
    assert whole is None
    assert mask.image.mode == "L" and mask.image.size == (60, 40)
    assert mask.image.getpixel((5, 5)) == 255 and mask.image.getpixel((55, 5)) == 0
    assert checked.settings()["masks"] == ["<in-memory image>", None]


def test_no_masks_leaves_the_job_and_its_settings_as_before(photo, style):
    for masks in (None, [], [None, None]):
        checked = check_job(StyleJob(photo, [style, style], size=64, masks=masks))
        assert checked.masks is None
        assert "masks" not in checked.settings()


def test_fewer_masks_than_styles_leave_the_rest_on_the_whole_picture(photo, style):
    checked = check_job(StyleJob(photo, [style, style], size=64, masks=[half((120, 80))]))
    assert checked.masks[0] is not None and checked.masks[1] is None


def test_a_transparent_pixel_of_a_mask_covers_nothing(photo, style):
    strokes = Image.new("RGBA", (120, 80), (255, 255, 255, 0))
    strokes.paste((255, 255, 255, 255), (0, 0, 30, 80))
    (mask,) = check_job(StyleJob(photo, [style], size=64, masks=[png(strokes)])).masks
    assert mask.image.getpixel((10, 10)) == 255 and mask.image.getpixel((100, 10)) == 0


def test_a_mask_of_another_shape_is_refused_in_one_line(photo, style):
    with pytest.raises(InputError, match=r"mask 1 .*80x80 does not have the photo's shape") as e:
        check_job(StyleJob(photo, [style], size=64, masks=[half((80, 80))]))
    assert "\n" not in str(e.value)
    # within a pixel of the shape (an editor's rounding): taken
    assert check_job(StyleJob(photo, [style], size=64, masks=[half((61, 40))])).masks


def test_an_all_black_mask_is_refused(photo, style):
    with pytest.raises(InputError, match="mask 2 .*all black"):
        check_job(StyleJob(photo, [style, style], size=64, masks=[None, half((120, 80), 0)]))
    assert check_job(StyleJob(photo, [style, style], size=64, masks=[None, half((120, 80), 1)]))


def test_more_masks_than_styles_are_refused(photo, style):
    two = [half((120, 80)), half((120, 80))]
    with pytest.raises(InputError, match="2 masks for 1 style: give at most one mask per style"):
        check_job(StyleJob(photo, [style], size=64, masks=two))
    assert check_job(StyleJob(photo, [style, style], size=64, masks=two)).masks


def test_a_mask_that_is_not_an_image_is_refused(photo, style, tmp_path):
    text = tmp_path / "sky.png"
    text.write_text("not a picture")
    with pytest.raises(InputError, match=r"mask 1 image .*sky.png.*not an image"):
        check_job(StyleJob(photo, [style], size=64, masks=[str(text)]))
    good = tmp_path / "good.png"
    half((120, 80)).save(good)
    checked = check_job(StyleJob(photo, [style], size=64, masks=[str(good)]))
    assert checked.settings()["masks"] == ["good.png"]
    assert checked.masks[0].source.endswith("good.png")
