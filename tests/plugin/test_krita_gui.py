"""The real Krita, under Xvfb, with the plug-in installed by `impasto plugin install krita
--dest <profile>`: the menu action, the dialog, the progress dialog and the result layer.

The plug-in's self-test switch (IMPASTO_KRITA_SELFTEST, off by default) triggers the action on
the document Krita was started with, fills the dialog, presses its buttons, saves the document
and quits Krita; the test then reads the saved .kra without Krita.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import STARRY, require_program
from tests.plugin import kra
from tests.plugin.helpers import (
    HERE,
    SEED,
    STEPS,
    assert_soft_mask,
    editor_env,
    engine_output,
    install_krita_plugin,
    log_tail,
    process_gone,
    run_group,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("weights_available")]

LAYER = "impasto classic: " + STARRY.stem
SCREEN = "-screen 0 1280x800x24"


def run_krita(
    tmp_path, content, selftest: dict, extra_env: dict | None = None, engine: list | None = None
) -> dict:
    """Start Krita on content with the self-test file; return its report. engine: another
    command to record in the installed plug-in's settings (a stand-in for the engine)."""
    require_program("krita")
    require_program("xvfb-run")
    env = editor_env(tmp_path / "home")
    env.update(extra_env or {})
    krita_dir = tmp_path / "home" / "data" / "krita"
    install = install_krita_plugin(env, krita_dir)
    kritarc = tmp_path / "home" / "config" / "kritarc"
    assert "enable_impasto_krita=true" in kritarc.read_text(), install.stdout
    if engine is not None:
        settings = krita_dir / "pykrita" / "impasto_krita" / "impasto_settings.json"
        recorded = json.loads(settings.read_text())
        settings.write_text(json.dumps({**recorded, "command": engine}))

    out = tmp_path / "out"
    out.mkdir()
    report = out / "report.json"
    spec = {"report": str(report), "save_as": str(out / "result.kra"), **selftest}
    spec_path = tmp_path / "selftest.json"
    spec_path.write_text(json.dumps(spec))
    env["IMPASTO_KRITA_SELFTEST"] = str(spec_path)
    log = tmp_path / "krita.log"
    cmd = [shutil.which("xvfb-run"), "-a", "-s", SCREEN, "krita", "--nosplash", str(content)]
    run_group(cmd, env, timeout=400, log_path=log, done=report.exists)
    assert report.exists(), f"Krita wrote no self-test report:\n{log_tail(log)}"
    result = json.loads(report.read_text())
    assert "trace" not in result, result["trace"]
    result["kra"] = out / "result.kra"
    return result


def test_menu_action_adds_the_engine_output_as_a_layer(tmp_path, small_content):
    shots = {"dialog": str(tmp_path / "dialog.png"), "window": str(tmp_path / "window.png")}
    report = run_krita(
        tmp_path,
        small_content,
        {"dialog": {"styles": [str(STARRY)], "steps": STEPS, "seed": SEED}, "screenshots": shots},
    )
    assert report["status"] == "done", report
    assert report["saved"] is True
    assert report["events"][-1] == "job done"
    assert report["engine_returncode"] == 0
    assert process_gone(report["engine_pid"])
    # What the dialog sent: its defaults (size = the layer's long side) and the values set.
    command = report["command"]
    for flag, value in (("--size", "96"), ("--steps", str(STEPS)), ("--seed", str(SEED))):
        assert command[command.index(flag) + 1] == value
    assert "--style-weight" not in command  # strength 1.0 leaves the preset's weight alone

    doc = kra.read_kra(report["kra"])
    assert [layer.name for layer in doc.layers] == [LAYER, "Background"]
    source = np.asarray(Image.open(small_content).convert("RGBA"))
    assert np.array_equal(doc.pixels(doc.layer("Background")), source), "source layer changed"
    result = doc.pixels(doc.layer(LAYER))
    assert result.shape == (64, 96, 4) and (result[..., 3] == 255).all()
    expected = engine_output(small_content, tmp_path / "ref.png", size=96)
    # Same engine, pixels, settings and seed on the same machine: equal (see test_krita_runner).
    assert np.array_equal(result[..., :3], expected)

    for shot in shots.values():
        with Image.open(shot) as img:
            assert img.width > 200 and img.height > 150


def test_feathered_selection_goes_to_the_engine_as_a_soft_mask_of_the_canvas(
    tmp_path, small_content
):
    """The dialog's default with a selection: the whole canvas (its size proposed) and the
    selection as the mask. A recording stand-in plays the engine and returns the photo."""
    selection, feather = (16, 8, 48, 40), 6
    record = tmp_path / "record"
    report = run_krita(
        tmp_path,
        small_content,
        {
            "dialog": {"styles": [str(STARRY)], "steps": STEPS, "seed": SEED},
            "select": list(selection),
            "feather": feather,
        },
        engine=[sys.executable, str(HERE / "recording_engine.py"), str(record)],
    )
    assert report["status"] == "done", report
    assert report["dialog_size"] == 96  # the canvas's long side, not the selection's
    assert report["region"] == [0, 0, 96, 64]
    command = report["command"]
    assert command.count("--mask") == 1
    with Image.open(record / "mask-1.png") as img:
        assert img.mode == "L" and img.size == (96, 64)
        assert_soft_mask(np.asarray(img), selection, feather)
    doc = kra.read_kra(report["kra"])
    layer = doc.layer(LAYER)
    assert (layer.x, layer.y) == (0, 0)
    result = doc.pixels(layer)
    assert result.shape == (64, 96, 4)
    # The photo the stand-in returned, with the selection as its alpha (the layer below shows
    # outside it).
    with Image.open(record / "mask-1.png") as img:
        assert np.array_equal(result[..., 3], np.asarray(img))
    photo = np.asarray(Image.open(small_content).convert("RGB"))
    seen = result[..., 3] > 0
    assert np.array_equal(result[..., :3][seen], photo[seen])


def test_cancel_button_stops_the_engine_and_adds_no_layer(tmp_path, small_content):
    report = run_krita(
        tmp_path,
        small_content,
        {"dialog": {"styles": [str(STARRY)], "steps": 2000, "seed": SEED}, "cancel_after": 2},
    )
    assert report["status"] == "cancelled", report
    assert any(e.startswith("pressing Cancel at step") for e in report["events"])
    assert report["engine_returncode"] == 130  # stopped by SIGINT after its current step
    assert process_gone(report["engine_pid"])
    assert report["new_layer"] is None
    doc = kra.read_kra(report["kra"])
    assert [layer.name for layer in doc.layers] == ["Background"]


def test_engine_error_appears_in_a_message_box_with_the_engines_line(tmp_path, small_content):
    missing = tmp_path / "no-such-weights.h5"
    report = run_krita(
        tmp_path,
        small_content,
        {"dialog": {"styles": [str(STARRY)], "steps": STEPS, "seed": SEED}},
        extra_env={"IMPASTO_WEIGHTS": str(missing)},  # the engine will not find its weights
    )
    assert report["status"] == "error", report
    assert report["engine_returncode"] == 2
    box = report["message_box"]
    assert box["title"] == "impasto"
    assert box["text"] == report["message"]
    assert "VGG19 weights" in box["text"] and str(missing) in box["text"]
    assert "\n" not in box["text"]
    doc = kra.read_kra(report["kra"])
    assert [layer.name for layer in doc.layers] == ["Background"]
