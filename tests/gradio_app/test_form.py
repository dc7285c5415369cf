"""The web form's values become a StyleJob, or one clear message a visitor can act on.
No server, no TensorFlow."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image, ImageDraw

from impasto import check_job
from impasto.errors import ImpastoError
from impasto.gradio_app.form import (
    Limits,
    job_from_form,
    public_message,
    region_mask,
    upload_path,
)
from impasto.presets import load_preset
from tests.conftest import CAT, STARRY, WAVE

LIMITS = Limits(max_size=512, max_steps=300)


def upload(path) -> dict:
    """What Gradio hands an event registered with preprocess=False for an uploaded image."""
    return {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def form(**changes):
    values = {
        "content": upload(CAT),
        "styles": [(upload(STARRY), 1.0), (None, 1.0), (None, 1.0)],
        "preset": "classic",
        "size": 128,
        "steps": 40,
        "strength": 1.0,
        "color": "none",
        "seed": 0,
        "limits": LIMITS,
    }
    values.update(changes)
    return job_from_form(**values)


def test_a_filled_form_becomes_the_job_it_describes():
    made = form(
        styles=[(upload(STARRY), 0.75), (None, 1.0), (upload(WAVE), 0.25)],
        size=256,
        steps=60,
        strength=2.0,
        color="luminance",
        seed=7,
    )
    job = made.job
    assert job.content == str(CAT)
    assert job.styles == [(str(STARRY), 0.75), (str(WAVE), 0.25)]
    classic = load_preset("classic")
    assert (job.preset, job.size, job.seed) == (classic, 256, 7)
    # The strength goes to the engine as its relative override; the engine doubles the weight.
    # max_memory: the server's budget (none given here: the free memory decides).
    assert job.overrides == {
        "steps": 60,
        "style_strength": 2.0,
        "preserve_color": "luminance",
        "max_memory": None,
    }
    assert check_job(job).recipe.style_weight == classic.style_weight * 2.0
    assert job.preview_every == 3  # about 20 previews per job
    assert made.paths == [str(CAT), str(STARRY), str(WAVE)]
    assert made.notes == []


def test_the_servers_memory_budget_goes_with_every_job():
    limits = Limits(max_size=512, max_steps=300, max_memory=6 * 2**30)
    assert form(limits=limits).job.overrides["max_memory"] == 6 * 2**30


def test_short_jobs_preview_every_step():
    assert form(steps=5).job.preview_every == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"content": None}, "add a photo"),
        ({"styles": [(None, 1.0)] * 3}, "at least one style image"),
        ({"preset": ""}, "pick a preset"),
        ({"preset": "no-such-preset"}, "unknown preset 'no-such-preset'; choose one of: "),
        ({"preset": 3}, "unknown preset 3; choose one of: "),
        ({"color": "sepia"}, "colours must be one of none, luminance, histogram"),
        ({"size": float("inf")}, "output size must be a whole number from 64 to 512, not inf"),
        ({"steps": "nan"}, "steps must be a whole number from 1 to 300, not 'nan'"),
        ({"seed": float("-inf")}, "seed must be a whole number from 0"),
        ({"size": "9" * 1000}, r"output size must be .*, not '9{30,}…$"),
        (
            {"styles": [(upload(STARRY), float("nan"))]},
            "blend weight of style 1 must be a number from 0 to 1, not nan",
        ),
        ({"size": 1024}, "output size must be a whole number from 64 to 512, not 1024"),
        ({"size": 32}, "output size must be a whole number from 64 to 512"),
        ({"steps": 0}, "steps must be a whole number from 1 to 300"),
        ({"steps": 12.5}, "steps must be a whole number"),
        ({"size": "big"}, "output size must be a whole number"),
        ({"strength": float("nan")}, "style strength must be a number from 0.25 to 4"),
        ({"seed": -1}, "seed must be a whole number from 0"),
        (
            {"styles": [(upload(STARRY), 2.0)]},
            "blend weight of style 1 must be a number from 0 to 1",
        ),
        ({"content": {"url": "data:image/png;base64,AAAA"}}, "photo did not arrive as a file"),
    ],
)
def test_each_mistake_gets_its_own_message(changes, message):
    with pytest.raises(ImpastoError, match=message):
        form(**changes)


def test_an_empty_seed_means_zero():
    assert form(seed=None).job.seed == 0


def test_upload_path_accepts_a_plain_path_for_callers_in_python():
    assert upload_path(str(CAT), "photo") == str(CAT)
    assert upload_path(None, "photo") is None


def test_messages_name_files_without_the_servers_upload_folders():
    server_path = "/tmp/gradio/3f2a9c/holiday photo.jpg"
    known = "(BMP, GIF, JPEG, PNG, TIFF, WEBP)"
    text = f"content image {server_path!r}: not an image impasto reads {known}"
    assert public_message(text, [server_path]) == (
        f"Content image 'holiday photo.jpg': not an image impasto reads {known}"
    )


@pytest.mark.parametrize("name", ["a\u00a0b.jpg", "line\u2028break.jpg", "tab\there.jpg"])
def test_messages_drop_the_folder_when_repr_escapes_the_name(name):
    """repr() writes these names as 'a\\xa0b.jpg': the path's text is not in the message, its
    folder is."""
    server_path = f"/tmp/impasto-web-x1/uploads/9066ab/{name}"
    text = f"content image {server_path!r}: damaged or truncated image (broken data stream)"
    message = public_message(text, [server_path])
    assert message == f"Content image {name!r}: damaged or truncated image (broken data stream)"
    assert "/tmp" not in message


def painted_layer(path, size, stroke=None) -> dict:
    """What the page's region editor sends: its brush layer, transparent but for the stroke
    (a box), as an uploaded RGBA PNG."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    if stroke:
        ImageDraw.Draw(layer).rectangle(stroke, fill=(255, 60, 140, 255))
    layer.save(path)
    return {"background": upload(CAT), "layers": [upload(path)], "composite": None}


def test_a_painted_region_becomes_the_styles_mask_and_an_unpainted_one_none(tmp_path):
    w, h = Image.open(CAT).size
    painted = region_mask(painted_layer(tmp_path / "a.png", (w, h), (0, 0, w // 2, h)), 1)
    assert painted.source == "painted region of style 1"
    assert painted.rgb.getpixel((2, 2)) == (255, 255, 255)  # the stroke, whatever its colour
    assert painted.rgb.getpixel((w - 2, 2)) == (0, 0, 0)  # not painted: not this style
    assert region_mask(painted_layer(tmp_path / "b.png", (w, h)), 1) is None  # nothing painted
    assert region_mask(None, 1) is None
    made = form(
        styles=[(upload(STARRY), 1.0), (upload(WAVE), 1.0), (None, 1.0)],
        masks=[painted, None, None],
    )
    assert made.job.masks == [painted, None]  # one per style, in the styles' order
    checked = check_job(made.job)
    assert checked.masks[0].image.getpixel((2, 2)) == 255 and checked.masks[1] is None


def test_masks_through_the_api_are_uploaded_images_of_the_photos_shape(tmp_path):
    w, h = Image.open(CAT).size
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("L", (w // 4, h // 4), 255).save(good)  # any size with the photo's shape
    Image.new("L", (64, 64), 255).save(bad)  # square: not the cat's 3:2
    made = form(masks=[upload(good)])
    assert made.job.masks == [str(good)]
    assert check_job(made.job).masks[0].image.size == (w // 4, h // 4)  # positive control
    with pytest.raises(ImpastoError) as refused:
        check_job(form(masks=[upload(bad)]).job)
    message = public_message(str(refused.value), form(masks=[upload(bad)]).paths)
    assert message == (
        "Mask 1 'bad.png': 64x64 does not have the photo's shape (512x341); a mask must have "
        "the photo's aspect ratio (any size)"
    ).replace("512x341", f"{w}x{h}")
    assert str(tmp_path) not in message


def test_a_mask_for_a_style_slot_without_an_image_is_refused(tmp_path):
    mask = tmp_path / "m.png"
    Image.new("L", Image.open(CAT).size, 255).save(mask)
    with pytest.raises(ImpastoError, match="^mask 2 is for style 2, which has no image"):
        form(masks=[None, upload(mask)])
    assert form(masks=[upload(mask), None]).job.masks == [str(mask)]  # positive control


def test_a_mask_not_uploaded_to_this_server_is_refused(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    photo, style = uploads / CAT.name, uploads / STARRY.name
    shutil.copy(CAT, photo)
    shutil.copy(STARRY, style)
    outside, inside = tmp_path / "m.png", uploads / "m.png"
    for mask in (outside, inside):
        Image.new("L", Image.open(CAT).size, 255).save(mask)
    given = {"content": upload(photo), "styles": [(upload(style), 1.0)], "upload_folder": uploads}
    with pytest.raises(ImpastoError, match="mask 1 was not uploaded to this server"):
        form(masks=[upload(outside)], **given)
    assert form(masks=[upload(inside)], **given).job.masks == [str(inside)]  # positive control
