"""What the page offers, built without serving it: presets read from the library (with their
descriptions and gallery tiles, broken ones left out), examples where examples/ has them, and
the loss plot's data."""

from __future__ import annotations

import re
import shutil

import gradio as gr
from PIL import Image

from impasto import ProgressEvent
from impasto.gradio_app.app import (
    _APPS,
    LossHistory,
    _progress_line,
    build_app,
    close,
)
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


def test_the_description_says_what_the_preset_does_in_words():
    (view,) = [v for v in preset_views() if v.name == "classic"]
    recipe = load_preset("classic")
    text = describe_markdown(view, recipe)
    assert view.description in text
    assert f"{recipe.total_steps} steps" in text and f"{recipe.size} px" in text
    scales = [s for s in recipe.steps if s]
    assert f"small first, then larger ({len(scales)} sizes)" in text
    assert "keeps the painting's colours" in text
    # The recipe's terms are in the tooltip, not in the text a visitor reads.
    shown = re.sub(r"<[^>]*>", "", text)
    assert " + ".join(map(str, scales)) not in shown and "auto" not in shown
    assert f'title="steps per size: {" + ".join(map(str, scales))}' in text


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


def event(step, scale, losses_total, eta=0.0, elapsed=0.0, scales=2, total=1000):
    size = (8 * scale, 8 * scale)
    return ProgressEvent(step, total, scale, scales, size, {"total": losses_total}, elapsed, eta)


def test_the_loss_plot_has_one_line_per_size_falling_from_100_and_at_most_200_steps():
    """Each size's loss as a percentage of where that size began: the raw loss jumps up at a
    change of size (more pixels), which looked like an error."""
    history = LossHistory()
    for step in range(1, 1001):
        scale, first = (1, 1) if step <= 500 else (2, 501)
        raw = (10.0 if scale == 1 else 400.0) / (1 + step - first)  # a jump at the new size
        history.add(event(step, scale, raw))
    frame = history.frame()
    assert list(frame["size"].unique()) == ["8×8", "16×16"]
    for _, line in frame.groupby("size"):
        assert line["loss"].iloc[0] == 100 and line["loss"].max() <= 100  # never above its start
    steps = sorted(set(frame["step"]))
    assert len(steps) <= 201 and steps[0] == 1 and steps[-1] == 1000


def test_the_progress_line_says_sizes_and_steps_in_words():
    line = _progress_line(event(12, 1, 1.0, scales=3, total=50, eta=95.0))
    assert line == "size 1 of 3 (8×8) · step 12 of 50 · about 1:35 left"
    single = _progress_line(event(1, 1, 1.0, scales=1, total=50, eta=61.0))
    assert single == "step 1 of 50 · about 1:01 left"


def test_every_size_of_the_job_is_in_the_plot_from_its_first_update():
    """The page's plot fixes its colours from the first data it gets: a size first seen later
    was not drawn. Sizes not reached yet are named, without a value to draw."""
    history = LossHistory([[8, 8, 10], [16, 16, 5]])
    history.add(event(1, 1, 4.0))
    frame = history.frame()
    assert set(frame["size"]) == {"8×8", "16×16"}
    assert frame[frame["size"] == "16×16"]["loss"].isna().all()
    history.add(event(11, 2, 9.0))
    assert history.frame()["loss"].notna().all()  # once reached, only real values


def test_the_region_editors_show_only_a_photo_uploaded_to_this_server():
    """The page puts the photo under the region brushes: a payload naming another file of the
    server's (/etc/passwd) shows nothing; the uploaded photo is shown in every editor."""
    demo = build_app(examples_dir=None)
    try:
        app = _APPS[demo]
        assert app.photo_changed({"path": "/etc/passwd"}) == [None, None, None]
        photo = app.uploads / "cat.png"
        shutil.copy(CAT, photo)
        shown = app.photo_changed({"path": str(photo)})
        assert [v["background"] for v in shown] == [str(photo)] * 3
        assert all(v["layers"] == [] for v in shown)  # strokes start afresh
    finally:
        close(demo)
