"""The GIMP 3 plug-in for real, in a Debian 13 root (Debian 12 has only GIMP 2.10).

IMPASTO_GIMP3_ROOT names a root made by tests/plugin/make_gimp3_root.sh (about 70 s from the
Debian mirror; .ci/run builds it, so CI runs this test and fails if it cannot). Without it the
test skips with that reason, as it does without root rights or unshare(1). Inside the root,
gimp-console-3.0 runs tests/plugin/gimp3_batch.py, which calls the installed plug-in's procedure
through GIMP's PDB; the engine is the project's own virtual environment, bind-mounted in
(gimp3_chroot.sh). Where what the plug-in sends matters more than the painting (the selection's
mask), a recording stand-in plays the engine (tests/plugin/recording_engine.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import STARRY, skip_or_fail
from tests.plugin.helpers import (
    HERE,
    IMPASTO,
    MASKED_STEPS,
    SEED,
    STEPS,
    assert_composite_keeps_photo_outside,
    assert_soft_mask,
    engine_output,
    log_tail,
    run_group,
    selection_areas,
    sent_mask,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("weights_available")]

ROOT_ENV = "IMPASTO_GIMP3_ROOT"
LAYER = "impasto classic: " + STARRY.stem
SELECTION = (16, 8, 48, 40)
HOLE = (28, 18, 16, 12)
FEATHER = 6  # px, the soft selection's edge
PATCH = (50, 30, 40, 30)  # a layer of this size at this offset, x, y, w, h


@pytest.fixture(scope="module")
def gimp3(tmp_path_factory):
    root = os.environ.get(ROOT_ENV)
    if not root:
        skip_or_fail(
            f"the GIMP 3 test needs {ROOT_ENV}: a Debian 13 root made by "
            "tests/plugin/make_gimp3_root.sh (Debian 12 has only GIMP 2.10)"
        )
    root = Path(root)
    if not (root / "usr" / "bin" / "gimp-console-3.0").exists():
        pytest.fail(f"{ROOT_ENV}={root} has no usr/bin/gimp-console-3.0")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        skip_or_fail("the GIMP 3 test needs root and unshare(1) for its bind mounts")

    work = tmp_path_factory.mktemp("gimp3")
    profile = work / "config" / "GIMP" / "3.0"
    install = _run_impasto("plugin", "install", "gimp", "--dest", profile)
    assert "installed the GIMP 3 plug-in" in install

    from tests.conftest import CAT
    from tests.plugin.helpers import CONTENT_SIZE

    content = work / "cat96.png"
    Image.open(CAT).convert("RGB").resize(CONTENT_SIZE, Image.Resampling.LANCZOS).save(content)
    bad_style = work / "not_an_image.jpg"
    bad_style.write_text("this is not a picture\n")
    (work / "out").mkdir()
    spec = {
        "content": str(content),
        "style": str(STARRY),
        "bad_style": str(bad_style),
        "steps": STEPS,
        "seed": SEED,
        "selection": SELECTION,
        "hole": HOLE,
        "feather": FEATHER,
        "patch": PATCH,
        "plugin_dir": str(profile / "plug-ins" / "impasto"),
        "recorder": [sys.executable, str(HERE / "recording_engine.py")],
        "masked_steps": MASKED_STEPS,
        "out_dir": str(work / "out"),
        "report": str(work / "report.json"),
    }
    batch = str(HERE / "gimp3_batch.py")
    code = f"SPEC = {json.dumps(json.dumps(spec))}; exec(open({batch!r}).read())"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "XDG_CONFIG_HOME": str(work / "config"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "XDG_DATA_HOME": str(work / "data"),
    }
    if os.environ.get("IMPASTO_WEIGHTS"):
        env["IMPASTO_WEIGHTS"] = os.environ["IMPASTO_WEIGHTS"]
    cmd = [
        str(HERE / "gimp3_chroot.sh"), str(root), str(work),
        "env", "-i", *[f"{k}={v}" for k, v in env.items()],
        "gimp-console-3.0", "-i", "--quit", "--batch-interpreter=python-fu-eval", "-b", code,
    ]  # fmt: skip
    log = work / "gimp.log"
    code_ = run_group(cmd, dict(os.environ), timeout=600, log_path=log)
    if code_ == 3 and "cannot be mounted" in log.read_text():
        skip_or_fail(log_tail(log, 2))
    report = work / "report.json"
    assert report.exists(), f"GIMP wrote no report:\n{log_tail(log)}"
    return {
        "report": json.loads(report.read_text()),
        "content": content,
        "log": log,
        "out": work / "out",
    }


def _run_impasto(*args) -> str:
    import subprocess

    proc = subprocess.run(
        [str(IMPASTO), *[str(a) for a in args]], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _entry(gimp3, name):
    entry = gimp3["report"][name]
    assert "trace" not in entry, entry["trace"]
    return entry


def test_gimp3_adds_the_engine_output_as_a_new_layer(gimp3, tmp_path):
    entry = _entry(gimp3, "plain")
    assert entry["status"] == "success", entry
    assert entry["layers"] == [LAYER, "Background"]
    assert entry["new_layer"] == {"offset": [0, 0], "size": [96, 64]}
    got = np.asarray(Image.open(entry["png"]).convert("RGB"))
    expected = engine_output(gimp3["content"], tmp_path / "ref.png", size=96)
    assert np.array_equal(got, expected)


def test_gimp3_crop_mode_gives_a_layer_of_just_the_selected_part(gimp3, tmp_path):
    entry = _entry(gimp3, "selection")
    assert entry["status"] == "success", entry
    x, y, w, h = SELECTION
    assert entry["new_layer"] == {"offset": [x, y], "size": [w, h]}
    got = np.asarray(Image.open(entry["png"]).convert("RGBA"))
    inside = np.zeros(got.shape[:2], bool)
    inside[y : y + h, x : x + w] = True
    hx, hy, hw, hh = HOLE
    inside[hy : hy + hh, hx : hx + hw] = False
    assert (got[..., 3][inside] == 255).all() and (got[..., 3][~inside] == 0).all()
    crop = tmp_path / "crop.png"
    Image.open(gimp3["content"]).crop((x, y, x + w, y + h)).save(crop)
    expected = engine_output(crop, tmp_path / "ref.png", size=max(w, h))
    keep = inside[y : y + h, x : x + w]
    assert np.array_equal(got[y : y + h, x : x + w, :3][keep], expected[keep])


def test_gimp3_feathered_selection_is_sent_as_a_soft_mask_of_the_whole_canvas(gimp3):
    entry = _entry(gimp3, "feathered")
    assert entry["status"] == "success", entry
    record = gimp3["out"] / "feathered"
    argv = json.loads((record / "argv.json").read_text())
    assert argv.count("--mask") == 1  # one style, one mask
    assert_soft_mask(sent_mask(record / "mask-1.png"), SELECTION, FEATHER)
    sent = np.asarray(Image.open(record / "content.png").convert("RGB"))
    photo = np.asarray(Image.open(gimp3["content"]).convert("RGB"))
    assert np.array_equal(sent, photo)  # the whole canvas
    # The stand-in returns the photo, opaque: the new layer holds it, canvas-sized at (0, 0),
    # with the selection's values as its alpha (what is seen outside is the layer below).
    assert entry["new_layer"] == {"offset": [0, 0], "size": [96, 64]}
    got = np.asarray(Image.open(entry["png"]).convert("RGBA"))
    assert np.array_equal(got[..., 3], sent_mask(record / "mask-1.png"))
    seen = got[..., 3] > 0
    assert np.array_equal(got[..., :3][seen], photo[seen])


def test_gimp3_a_layer_with_an_offset_is_sent_aligned_with_its_transparency(gimp3):
    entry = _entry(gimp3, "patch_layer")
    assert entry["status"] == "success", entry
    assert entry["layers"] == [LAYER, "Patch", "Background"]
    record = gimp3["out"] / "patch_layer"
    px, py, pw, ph = PATCH
    patch = np.zeros((64, 96), bool)
    patch[py : py + ph, px : px + pw] = True
    sent = np.asarray(Image.open(record / "content.png").convert("RGBA"))
    assert sent.shape == (64, 96, 4)
    assert (sent[..., 3][patch] == 255).all() and (sent[..., 3][~patch] == 0).all()
    assert (sent[..., :3][patch] == 255).all()  # the white layer, where it is on the canvas
    assert_soft_mask(sent_mask(record / "mask-1.png"), SELECTION, FEATHER)
    # The layer's own alpha times the selection's: the patch, cut to the selection.
    inside, outside = selection_areas(patch.shape, SELECTION, FEATHER)
    assert entry["new_layer"] == {"offset": [0, 0], "size": [96, 64]}
    alpha = np.asarray(Image.open(entry["png"]).convert("RGBA"))[..., 3]
    assert (alpha[patch & inside] == 255).all() and (alpha[~patch | outside] == 0).all()
    assert 0 < alpha[patch].mean() < 255  # the patch's part across the soft edge


def test_gimp3_feathered_selection_paints_inside_and_keeps_the_photo_outside(gimp3):
    entry = _entry(gimp3, "feathered_real")
    assert entry["status"] == "success", entry
    assert entry["new_layer"] == {"offset": [0, 0], "size": [96, 64]}
    got = np.asarray(Image.open(entry["png"]).convert("RGBA")).astype(int)
    photo = np.asarray(Image.open(gimp3["content"]).convert("RGB")).astype(int)
    assert_composite_keeps_photo_outside(got, photo, SELECTION, FEATHER)


def test_gimp3_sixteen_bit_image_gets_a_converted_layer(gimp3, tmp_path):
    entry = _entry(gimp3, "sixteen_bit")
    assert entry["status"] == "success", entry
    assert "U16" in entry["precision"]
    assert entry["layers"] == [LAYER, "Background"]
    got = np.asarray(Image.open(entry["png"]).convert("RGB")).astype(int)
    expected = engine_output(gimp3["content"], tmp_path / "ref.png", size=96).astype(int)
    assert np.abs(got - expected).max() <= 1  # 8 -> 16 -> 8 bit rounding only


def test_gimp3_engine_error_is_the_engines_one_line_and_adds_nothing(gimp3):
    entry = _entry(gimp3, "engine_error")
    assert entry["status"] == "execution-error"
    assert "not_an_image.jpg" in entry["message"] and "not an image" in entry["message"]
    assert entry["layers"] == ["Background"]
