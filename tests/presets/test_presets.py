"""The preset library: shipped recipes, user overrides, and every kind of broken preset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto.errors import PresetError
from impasto.presets import (
    apply_overrides,
    list_presets,
    load_preset,
    shipped_preset_dir,
    user_preset_dir,
)
from tests.conftest import CAT, STARRY

SHIPPED = sorted(p.stem for p in shipped_preset_dir().glob("*.toml"))
CLASSIC = (shipped_preset_dir() / "classic.toml").read_text()


def cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "impasto.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def user_preset(name: str, text: str) -> Path:
    path = user_preset_dir() / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_at_least_eight_presets_that_differ():
    assert len(SHIPPED) >= 8
    recipes = [load_preset(name).to_dict() for name in SHIPPED]
    for r in recipes:
        r.pop("name"), r.pop("description")
    assert len({json.dumps(r, sort_keys=True) for r in recipes}) == len(recipes)
    for name in (
        "classic",
        "quick-draft",
        "fine-texture",
        "bold-strokes",
        "soft-blend",
        "keep-colors",
        "print",
    ):
        assert name in SHIPPED


def test_classic_follows_gatys():
    r = load_preset("classic")
    assert list(r.content_layers) == ["block4_conv2"]
    assert list(r.style_layers) == [f"block{b}_conv1" for b in range(1, 6)]


@pytest.mark.usefixtures("weights_available")
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_runs_two_steps(name):
    result = impasto.stylize(
        impasto.StyleJob(content=CAT, styles=[STARRY], preset=name, size=64, overrides={"steps": 2})
    )
    assert result.stats["steps"] == 2 and max(result.image.size) == 64
    assert np.isfinite(result.stats["losses"]["total"])


def test_user_preset_overrides_shipped_one():
    user_preset("classic", CLASSIC.replace("style_weight = 3.0", "style_weight = 77.0"))
    assert load_preset("classic").style_weight == 77.0
    listed = {p.name: p for p in list_presets()}
    assert listed["classic"].origin == "user"


def test_user_preset_adds_a_name_and_path_works(tmp_path):
    user_preset("mine", CLASSIC.replace('name = "classic"', 'name = "mine"'))
    assert load_preset("mine").name == "mine"
    file = tmp_path / "direct.toml"
    file.write_text(CLASSIC.replace("tv_weight = 2.0", "tv_weight = 5.0"))
    assert load_preset(str(file)).tv_weight == 5.0


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda t: t + "\nsteps = [1", r"not valid TOML"),
        (
            lambda t: t.replace("block4_conv2 = 1.0", "block4_conv9 = 1.0"),
            r"unknown layer 'block4_conv9'; valid layers: block1_conv1, .*block5_conv4",
        ),
        (
            lambda t: t.replace("style_weight = 3.0", "style_weight = -1.0"),
            r"style_weight must be 0 or more, not -1.0",
        ),
        (
            lambda t: t.replace("tv_weight = 2.0", 'tv_weight = "lots"'),
            r"tv_weight must be a number, not 'lots'",
        ),
        (
            lambda t: t.replace("learning_rate = 0.02\n", ""),
            r"missing required key\(s\) learning_rate",
        ),
        (
            lambda t: t.replace("style_weight =", "style_wieght ="),
            r"unknown key 'style_wieght'; did you mean 'style_weight'\?",
        ),
        (
            lambda t: t.replace('pooling = "max"', 'pooling = "median"'),
            r"pooling must be one of max, avg, not 'median'",
        ),
        (lambda t: t.replace("size = 512", "size = nan"), r"size must be a finite number, not nan"),
        (
            lambda t: t.replace("style_weight = 3.0", "style_weight = inf"),
            r"style_weight must be a finite number, not inf",
        ),
        (
            lambda t: t.replace("steps = [30, 12, 8]", "steps = [30, -inf, 8]"),
            r"steps must be a finite number, not -inf",
        ),
        (
            lambda t: t.replace("block4_conv2 = 1.0", "block4_conv2 = nan"),
            r"content_layers.block4_conv2 must be a finite number, not nan",
        ),
        (lambda t: t + '\nmax_memory = "8X"', r"max_memory: '8X' is not a memory size like 8G"),
        (lambda t: t + "\nmax_memory = inf", r"max_memory must be a finite size greater than 0"),
        (lambda t: t + '\nmax_memory = "0.5G"', r"max_memory: 512M is less than impasto itself"),
        (lambda t: t + "\nw2_weight = -1", r"w2_weight must be 0 or more, not -1"),
        (
            lambda t: t.replace("style_weight = 3.0", "style_weight = 0").replace(
                "content_weight = 1.0", "content_weight = 0"
            ),
            r"content_weight, style_weight, w2_weight, hist_weight must not all be 0",
        ),
        (
            lambda t: t + "\nhist_wieght = 1",
            r"unknown key 'hist_wieght'; did you mean 'hist_weight'",
        ),
        (
            lambda t: t + "\nhist_layers = { block9_conv1 = 1 }",
            r"hist_layers names unknown layer 'block9_conv1'",
        ),
        (lambda t: t + "\nw2_layers = 3", r"w2_layers must be a table of layer = weight"),
    ],
)
def test_bad_preset_named_with_file_key_and_problem(edit, message):
    path = user_preset("broken", edit(CLASSIC))
    with pytest.raises(PresetError, match=message) as err:
        load_preset("broken")
    assert str(path) in str(err.value)


def test_max_memory_is_optional_and_read_as_a_size():
    assert load_preset("classic").max_memory is None  # the machine's free memory decides
    user_preset("big", CLASSIC + '\nmax_memory = "12G"\n')
    assert load_preset("big").max_memory == 12 * 2**30
    over = apply_overrides(load_preset("classic"), {"max_memory": "1.5G"})
    assert over.max_memory == int(1.5 * 2**30)


def test_further_style_terms_are_off_unless_set_and_use_the_style_layers():
    classic = load_preset("classic")
    assert classic.w2_weight == classic.hist_weight == 0.0
    assert classic.w2_layers is classic.hist_layers is None
    faithful = load_preset("faithful")
    assert faithful.w2_weight > 0 and faithful.hist_weight > 0 and faithful.style_weight == 0
    over = apply_overrides(classic, {"hist_weight": 2, "hist_layers": {"block1_conv1": 3}})
    assert over.hist_weight == 2.0 and over.hist_layers == {"block1_conv1": 1.0}
    with pytest.raises(PresetError, match=r"override: w2_weight must be 0 or more"):
        apply_overrides(classic, {"w2_weight": -0.5})
    # "More style" means more of every style term the preset mixes.
    stronger = apply_overrides(faithful, {"style_strength": 2})
    assert stronger.w2_weight == 2 * faithful.w2_weight
    assert stronger.hist_weight == 2 * faithful.hist_weight
    assert stronger.content_weight == faithful.content_weight


def test_every_term_names_keys_a_recipe_has():
    pytest.importorskip("tensorflow")
    from impasto.engine.terms import TERMS
    from impasto.presets import RECIPE_KEYS

    for term in TERMS:
        assert term.weight_key in RECIPE_KEYS
        assert term.layers_key is None or term.layers_key in RECIPE_KEYS


def test_bad_override_is_refused_with_suggestion():
    with pytest.raises(
        PresetError, match=r"unknown key 'styleweight'; did you mean 'style_weight'"
    ):
        apply_overrides(load_preset("classic"), {"styleweight": 3})


def test_steps_override_shares_total_across_scales():
    r = apply_overrides(load_preset("classic"), {"steps": 31})
    assert sum(r.steps) == 31 and len(r.steps) == len(load_preset("classic").steps)
    assert r.steps[0] > r.steps[-1]  # same proportions: most work at the coarse scale


def test_style_strength_is_resolved_against_the_preset_weight():
    classic = load_preset("classic")
    assert apply_overrides(classic, {"style_strength": 3}).style_weight == classic.style_weight * 3
    # On top of an absolute weight given in the same overrides, whatever their order.
    both = apply_overrides(classic, {"style_strength": 0.5, "style_weight": 40.0})
    assert both.style_weight == 20.0
    for bad in (0.0, 51, float("nan"), "2"):
        with pytest.raises(PresetError, match="style_strength must be"):
            apply_overrides(classic, {"style_strength": bad})


def test_presets_show_json_is_the_recipe_the_engine_loads():
    show = cli("presets", "show", "bold-strokes", "--json")
    assert show.returncode == 0, show.stderr
    shown = json.loads(show.stdout)
    assert shown["origin"] == "shipped" and shown["path"].endswith("bold-strokes.toml")
    assert shown["recipe"] == load_preset("bold-strokes").to_dict()


def test_broken_user_preset_does_not_hide_shipped_ones():
    user_preset("oops", "this is = = not toml")
    run = cli("presets", "list")
    assert run.returncode == 0
    lines = {line.split()[0]: line for line in run.stdout.splitlines()}
    assert set(SHIPPED) <= set(lines)
    assert "BROKEN" in lines["oops"]
    listed = json.loads(cli("presets", "list", "--json").stdout)
    assert next(p for p in listed if p["name"] == "oops")["error"]


def test_one_bad_user_preset_never_hides_the_others_at_any_door():
    """A user preset with `size = nan` is listed with its problem; the shipped presets, the
    "did you mean" hint, the web app's list and a hot-folder route all go on with the rest."""
    user_preset("nan-size", CLASSIC.replace("size = 512", "size = nan"))
    user_preset("mine", CLASSIC.replace('name = "classic"', 'name = "mine"'))
    run = cli("presets", "list")
    assert run.returncode == 0, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines()}
    assert set(lines) == {*SHIPPED, "nan-size", "mine"}
    assert (
        "BROKEN: " in lines["nan-size"]
        and "size must be a finite number, not nan" in lines["nan-size"]
    )
    hint = cli("presets", "show", "mien")
    assert hint.returncode == 2 and "did you mean 'mine'?" in hint.stderr

    from impasto.gradio_app.presets_view import preset_views

    assert {v.name for v in preset_views()} == {*SHIPPED, "mine"}

    from impasto.hotfolder.config import quick_start_config

    assert list(quick_start_config(Path.cwd(), [str(STARRY)], "mine").routes) == ["default"]


def test_a_preset_file_that_is_not_text_is_listed_as_broken():
    path = user_preset_dir() / "binary.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xfe\x00garbage")
    (broken,) = [p for p in list_presets() if p.name == "binary"]
    assert broken.error == f"preset {path}: not a text file (TOML is UTF-8 text)"


def test_a_preset_that_fails_in_an_unforeseen_way_is_listed_not_fatal(monkeypatch):
    import impasto.presets as presets

    load = presets.load_preset_file

    def flaky(path):
        if path.stem == "classic":
            raise RuntimeError("something nobody foresaw")
        return load(path)

    monkeypatch.setattr(presets, "load_preset_file", flaky)
    listed = {p.name: p for p in list_presets()}
    assert set(listed) == set(SHIPPED)
    assert "RuntimeError: something nobody foresaw" in listed["classic"].error
    assert listed["print"].error is None


def test_presets_show_and_new():
    show = cli("presets", "show", "bold-strokes")
    assert show.returncode == 0 and "bold-strokes.toml" in show.stdout
    assert "style_layers" in show.stdout
    new = cli("presets", "new", "my-look", "--from", "soft-blend")
    assert new.returncode == 0, new.stderr
    copy = user_preset_dir() / "my-look.toml"
    assert str(copy) in new.stdout
    assert load_preset("my-look").name == "my-look"
    assert load_preset("my-look").content_weight == load_preset("soft-blend").content_weight
    again = cli("presets", "new", "my-look")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_broken_preset_refused_before_tensorflow_starts(tmp_path):
    user_preset("broken", CLASSIC.replace("block4_conv2", "conv42"))
    code = (
        "import sys, impasto\n"
        "try:\n"
        "    impasto.check_job(impasto.StyleJob(content=sys.argv[1], styles=[sys.argv[2]],"
        " preset='broken'))\n"
        "except impasto.PresetError as e:\n"
        "    print('tf' if 'tensorflow' in sys.modules else 'no-tf', e)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(CAT), str(STARRY)], capture_output=True, text=True
    )
    assert run.stdout.startswith("no-tf") and "unknown layer 'conv42'" in run.stdout


@pytest.mark.usefixtures("weights_available")
def test_gallery_has_one_tile_per_preset_and_uses_its_cache(tmp_path):
    out = tmp_path / "sheet.png"
    first = cli("presets", "gallery", CAT, STARRY, "-o", out, "--size", 64, "--steps", 1)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("painted") == len(SHIPPED)
    from impasto.gallery import COLUMNS, LABEL_HEIGHT, PAD

    tiles = len(SHIPPED) + 2  # the photo and the style come first
    rows = -(-tiles // COLUMNS)
    assert Image.open(out).size == (
        COLUMNS * (64 + PAD) + PAD,
        rows * (64 + LABEL_HEIGHT + PAD) + PAD,
    )
    second = cli(
        "presets", "gallery", CAT, STARRY, "-o", out, "--size", 64, "--steps", 1,
        "--tiles", tmp_path / "tiles",
    )  # fmt: skip
    assert second.stdout.count("from cache") == len(SHIPPED)
    tiles = {p.stem: Image.open(p).size for p in (tmp_path / "tiles").glob("*.png")}
    assert set(tiles) == set(SHIPPED) and max(tiles["classic"]) == 64
