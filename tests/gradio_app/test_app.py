"""What the page offers, built without serving it: presets read from the library (with their
descriptions and gallery tiles, broken ones left out), examples where examples/ has them, and
the loss plot's data."""

from __future__ import annotations

import re
import shutil

import gradio as gr
from PIL import Image

from impasto import ProgressEvent
from impasto.gradio_app.app import LossHistory, build_app, close
from impasto.gradio_app.presets_view import describe_markdown, preset_views
from impasto.presets import load_preset, shipped_preset_dir, user_preset_dir
from tests.conftest import CAT, STARRY


def add_user_preset(name: str, description: str) -> None:
    folder = user_preset_dir()
    folder.mkdir(parents=True, exist_ok=True)
    text = (shipped_preset_dir() / "classic.toml").read_text()
    text = re.sub(r"(?m)^name\s*=.*$", f'name = "{name}"', text, count=1)
    text = re.sub(r"(?m)^description\s*=.*$", f'description = "{description}"', text, count=1)
    (folder / f"{name}.toml").write_text(text)


def components(demo, kind):
    return [b for b in demo.blocks.values() if isinstance(b, kind)]


def preset_dropdown(demo) -> gr.Dropdown:
    (dropdown,) = [d for d in components(demo, gr.Dropdown) if d.elem_id == "impasto-preset"]
    return dropdown


def test_presets_come_from_the_library_with_descriptions_and_tiles():
    add_user_preset("dreamy", "Soft and vague.")
    Image.new("RGB", (64, 64), "purple").save(user_preset_dir() / "dreamy.png")
    (user_preset_dir() / "broken.toml").write_text("name = 'broken'\n")
    views = {v.name: v for v in preset_views()}
    assert "classic" in views and "dreamy" in views
    assert "broken" not in views  # offered, it could only fail on Run
    assert views["dreamy"].description == "Soft and vague."
    assert views["dreamy"].tile == user_preset_dir() / "dreamy.png"
    demo = build_app(examples_dir=None)
    try:
        dropdown = preset_dropdown(demo)
        assert [value for _, value in dropdown.choices] == sorted(views)
        assert dropdown.value == "classic"  # the default preset comes first
    finally:
        close(demo)


def test_a_tile_may_live_in_a_gallery_folder_beside_the_presets():
    add_user_preset("inky", "Ink and wash.")
    (user_preset_dir() / "gallery").mkdir()
    Image.new("RGB", (64, 64), "black").save(user_preset_dir() / "gallery" / "inky.webp")
    views = {v.name: v for v in preset_views()}
    assert views["inky"].tile == user_preset_dir() / "gallery" / "inky.webp"
    assert views["classic"].tile is None or views["classic"].tile.is_file()


def test_the_description_says_what_the_preset_will_cost():
    (view,) = [v for v in preset_views() if v.name == "classic"]
    recipe = load_preset("classic")
    text = describe_markdown(view, recipe)
    assert view.description in text
    assert f"{recipe.total_steps} steps" in text and f"{recipe.size} px" in text


def test_examples_appear_when_examples_has_them(tmp_path):
    shutil.copy(CAT, tmp_path / "content.jpg")  # the name is what matters here
    shutil.copy(STARRY, tmp_path / "style.png")
    demo = build_app(examples_dir=tmp_path)
    try:
        (examples,) = components(demo, gr.Dataset)
        assert len(examples.samples) == 1
    finally:
        close(demo)
    demo = build_app(examples_dir=tmp_path / "missing")
    try:
        assert components(demo, gr.Dataset) == []
    finally:
        close(demo)


def test_the_loss_plot_keeps_every_term_and_at_most_200_steps():
    history = LossHistory()
    for step in range(1, 1001):
        losses = {"content": 1.0, "style": 2.0, "tv": 0.1, "total": 3.1}
        history.add(ProgressEvent(step, 1000, 1, 1, (8, 8), losses, 0.0, 0.0))
    frame = history.frame()
    assert set(frame["term"]) == {"content", "style", "tv", "total"}
    steps = sorted(set(frame["step"]))
    assert len(steps) <= 201 and steps[0] == 1 and steps[-1] == 1000
