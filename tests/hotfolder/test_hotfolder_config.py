"""hotfolder.toml: every mistake a user can make is one clear line at start, naming the place."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from impasto.hotfolder.cli import add_arguments, build_config
from impasto.hotfolder.config import ConfigError, example_config, load_config, quick_start_config
from tests.hotfolder.helpers import STARRY, WAVE


def write(root, text: str):
    path = root / "hotfolder.toml"
    path.write_text(text)
    return path


def route(extra: str = "", style: str = str(STARRY)) -> str:
    return f'[routes.paint]\nstyles = ["{style}"]\n{extra}\n'


def test_example_written_by_init_loads_with_the_given_style(tmp_path):
    write(tmp_path, example_config([str(STARRY)], "classic"))
    config = load_config(tmp_path)
    assert list(config.routes) == ["default"]
    assert config.routes["default"].styles == ((str(STARRY), 1.0),)
    assert config.daemon.settle_seconds == 2.0


def test_example_without_a_style_says_which_style_is_missing(tmp_path):
    write(tmp_path, example_config())
    with pytest.raises(
        ConfigError, match=r"\[routes.default\]: style image .*your-artwork.jpg.*not found"
    ):
        load_config(tmp_path)


def test_styles_with_blend_weights_and_relative_paths(tmp_path):
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "wave.jpg").write_bytes(WAVE.read_bytes())
    write(
        tmp_path,
        f'[routes.mix]\nstyles = [{{ path = "{STARRY}", weight = 0.7 }}, '
        '{ path = "art/wave.jpg", weight = 0.3 }]\n'
        'preset = "classic"\nsize = 64\nsteps = 3\npreserve_color = "luminance"\nformat = "JPG"\n',
    )
    mix = load_config(tmp_path).routes["mix"]
    assert mix.styles == ((str(STARRY), 0.7), (str(tmp_path / "art" / "wave.jpg"), 0.3))
    assert mix.size == 64
    assert mix.overrides == {"steps": 3, "preserve_color": "luminance"}
    assert mix.output_suffix("photo.tif") == ".jpg"


def test_format_same_keeps_the_input_extension_when_it_can(tmp_path):
    write(tmp_path, route('format = "same"'))
    paint = load_config(tmp_path).routes["paint"]
    assert paint.output_suffix("a.JPG") == ".jpg"
    assert paint.output_suffix("a.gif") == ".png"  # GIF is not an output format


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (route("stpes = 3"), r"\[routes.paint\]: unknown key 'stpes'; did you mean 'steps'\?"),
        (
            route('preset = "clasic"'),
            r"\[routes.paint\]: unknown preset 'clasic'; did you mean 'classic'",
        ),
        (
            route('preserve_color = "sepia"'),
            r"preserve_color must be one of none, luminance, histogram",
        ),
        (route("steps = -1"), r"\[routes.paint\]: .*steps must be 0 or more"),
        (route('format = "bmp"'), r"format must be one of png, jpg"),
        (route("size = 10"), r"size must be 32 or more"),
        (
            route(style="/nowhere/art.jpg"),
            r"\[routes.paint\]: style image '/nowhere/art.jpg': file not found",
        ),
        ("[routes.paint]\npreset = 'classic'\n", r"no styles: add styles = "),
        ("[daemon]\nsettle_seconds = 2\n", r"no routes; add a \[routes.NAME\] table"),
        ("[routes.paint\n", r"not valid TOML"),
        ("[deamon]\n" + route(), r"unknown key 'deamon'; did you mean 'daemon'\?"),
        (
            "[daemon]\nsettle_seconds = 'soon'\n" + route(),
            r"\[daemon\]: settle_seconds must be a number",
        ),
        ("[daemon]\npolling = 1\n" + route(), r"polling must be true or false"),
        ("[routes.'.hidden']\nstyles = ['x.jpg']\n", r"cannot be a folder name"),
    ],
)
def test_config_errors_name_the_place_and_the_problem(tmp_path, text, message):
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_config_says_how_to_start(tmp_path):
    with pytest.raises(
        ConfigError, match=r"hotfolder.toml: not found; run `impasto watch .* --init`"
    ):
        load_config(tmp_path)


def test_a_broken_style_image_is_reported_at_start(tmp_path):
    bad = tmp_path / "art.jpg"
    bad.write_bytes(b"not a picture")
    write(tmp_path, route(style=str(bad)))
    with pytest.raises(ConfigError, match=r"style image .*art.jpg.*not an image"):
        load_config(tmp_path)


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_quick_start_makes_one_default_route(tmp_path):
    config = build_config(
        tmp_path, parse(str(tmp_path), "--style", str(STARRY), "--size", "64", "--settle", "0.2")
    )
    assert list(config.routes) == ["default"]
    assert config.routes["default"].size == 64
    assert config.daemon.settle_seconds == 0.2
    assert config.daemon.closed_settle_seconds == 0.2


def test_quick_start_refuses_to_shadow_a_config_file(tmp_path):
    write(tmp_path, route())
    with pytest.raises(ConfigError, match="--style makes a one-route config, but .* exists"):
        build_config(tmp_path, parse(str(tmp_path), "--style", str(STARRY)))


def test_quick_start_options_need_a_style(tmp_path):
    write(tmp_path, route())
    with pytest.raises(ConfigError, match="go with --style"):
        build_config(tmp_path, parse(str(tmp_path), "--steps", "3"))


def test_quick_start_checks_the_preset(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        quick_start_config(tmp_path, [str(STARRY)], "nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[daemon]\nsettle_seconds = nan\n" + route(),
            r"\[daemon\]: settle_seconds must be a finite",
        ),
        ("[daemon]\nrescan_seconds = inf\n" + route(), r"rescan_seconds must be a finite number"),
        (route("size = nan"), r"\[routes.paint\]: size must be a finite number, not nan"),
        (route("style_weight = -inf"), r"style_weight must be a finite number, not -inf"),
        (route("steps = nan"), r"steps must be a finite number, not nan"),
        (
            f'[routes.paint]\nstyles = [{{ path = "{STARRY}", weight = nan }}]\n',
            r"style weight must be a finite number, not nan",
        ),
    ],
)
def test_numbers_in_the_config_must_be_finite(tmp_path, text, message):
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("flag", ["--settle", "--rescan", "--steps", "--size"])
def test_a_bad_number_for_watch_is_one_line(tmp_path, flag):
    done = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "watch", str(tmp_path), "--style", str(STARRY),
         f"{flag}=nan"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"argument {flag}: 'nan' is not a" in done.stderr
    assert not (tmp_path / "inbox").exists()  # refused before anything was made


def symlinked(tmp_path, link: str, target: str):
    """ROOT/<link> made a symbolic link to ROOT/<target> (created), as a user might set up."""
    (tmp_path / target).mkdir(parents=True, exist_ok=True)
    (tmp_path / link).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / link).symlink_to(tmp_path / target)


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        (
            lambda d: symlinked(d, "outbox", "inbox/paint/out"),
            "",
            r"outbox/paint \(.*/inbox/paint/out/paint\) lies inside inbox/paint",
        ),
        (
            lambda d: symlinked(d, "failed", "inbox/paint"),
            "",
            r"failed/paint \(.*\) lies inside inbox/paint",
        ),
        (
            lambda d: symlinked(d, "inbox", "outbox"),
            "",
            r"outbox/paint \(.*/outbox/paint\) lies inside inbox/paint",
        ),
        (
            lambda d: symlinked(d, "inbox/paint", "processed"),
            "",
            r"processed/paint \(.*/processed/paint\) lies inside inbox/paint \(.*/processed\)",
        ),
        (lambda d: None, '[daemon]\nstate_dir = "inbox/paint/state"\n', r"the state folder"),
        (lambda d: None, '[daemon]\nlog_file = "inbox/paint/log.png"\n', r"the log file"),
    ],
)
def test_a_layout_where_outputs_land_in_an_inbox_is_refused(tmp_path, setup, extra, message):
    """Else the daemon would take its own outputs as new photos, or write where it reads."""
    setup(tmp_path)
    write(tmp_path, extra + route())
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_a_style_image_inside_an_inbox_is_refused(tmp_path):
    style = tmp_path / "inbox" / "paint" / "art.jpg"
    style.parent.mkdir(parents=True)
    style.write_bytes(STARRY.read_bytes())
    write(tmp_path, route(style="inbox/paint/art.jpg"))
    with pytest.raises(ConfigError, match=r"style image .*art.jpg.* lies inside inbox/paint"):
        load_config(tmp_path)
    assert style.read_bytes() == STARRY.read_bytes()


def test_the_usual_layout_and_symlinks_elsewhere_are_fine(tmp_path):
    symlinked(tmp_path, "outbox", "elsewhere/outbox")  # e.g. outputs on a bigger disk
    write(tmp_path, route())
    assert list(load_config(tmp_path).routes) == ["paint"]


def test_max_memory_for_the_daemon_and_per_route(tmp_path):
    write(
        tmp_path,
        '[daemon]\nmax_memory = "12G"\n'
        + route("size = 4096")
        + f'[routes.small]\nstyles = ["{STARRY}"]\nmax_memory = "2G"\nsize = 1024\n',
    )
    config = load_config(tmp_path)
    assert config.daemon.max_memory == 12 * 2**30
    assert config.routes["small"].overrides["max_memory"] == "2G"  # checked by the preset code


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[daemon]\nmax_memory = "lots"\n' + route(), r"\[daemon\]: max_memory: 'lots' is not"),
        ("[daemon]\nmax_memory = nan\n" + route(), r"max_memory must be a finite size"),
        (route('max_memory = "-1G"'), r"\[routes.paint\]: .*max_memory: '-1G' is not"),
        # A size the budget cannot paint even in tiles is refused at start, not per photo.
        (
            '[daemon]\nmax_memory = "4G"\n' + route("size = 8192"),
            r"\[routes.paint\]: size 8192 px needs more memory than 4G \(at most \d+ px",
        ),
    ],
)
def test_a_bad_memory_budget_is_one_line_at_start(tmp_path, text, message):
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path)
    assert "\n" not in str(info.value)
