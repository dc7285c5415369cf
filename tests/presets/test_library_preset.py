"""Presets by name only (load_library_preset), for doors whose input comes from people who are
not the machine's user: a known name loads, the user's preset wins over a shipped one, and
anything else (a path, a file name, a name from another folder, another type) is refused with
the names there are."""

from __future__ import annotations

from pathlib import Path

import pytest

from impasto.errors import PresetError
from impasto.presets import load_library_preset, shipped_preset_dir, user_preset_dir

CLASSIC = (shipped_preset_dir() / "classic.toml").read_text()


def test_a_known_name_loads_and_the_users_preset_wins():
    assert load_library_preset("classic").name == "classic"
    user_preset_dir().mkdir(parents=True)
    (user_preset_dir() / "classic.toml").write_text(
        CLASSIC.replace("style_weight = 3.0", "style_weight = 77.0")
    )
    (user_preset_dir() / "mine.toml").write_text(CLASSIC.replace('"classic"', '"mine"', 1))
    assert load_library_preset("classic").style_weight == 77.0
    assert load_library_preset("mine").name == "mine"


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "classic.toml",
        "../presets/classic",
        str(Path(__file__).parents[2] / "presets" / "classic.toml"),  # a real, valid recipe
        "",
        None,
        5,
        ["classic"],
    ],
)
def test_anything_but_a_known_name_is_refused(name):
    with pytest.raises(PresetError, match=r"^unknown preset .*; choose one of: .*classic"):
        load_library_preset(name)


def test_a_valid_recipe_in_another_folder_is_refused_by_its_name_too(tmp_path, monkeypatch):
    (tmp_path / "elsewhere.toml").write_text(CLASSIC.replace('"classic"', '"elsewhere"', 1))
    monkeypatch.chdir(tmp_path)  # not even the working folder counts
    with pytest.raises(PresetError, match="unknown preset 'elsewhere'"):
        load_library_preset("elsewhere")


def test_a_long_value_is_cut_short_in_the_message():
    with pytest.raises(PresetError) as refused:
        load_library_preset("x" * 10_000)
    assert len(str(refused.value).split(";")[0]) < 80
