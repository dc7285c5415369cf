"""Nothing lost, nothing cryptic: inputs are never written, an output is checked before the work,
a picture that cannot be saved is kept elsewhere, numbers are finite, odd paths and odd shapes
get one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from impasto.engine.loop import scale_sizes
from impasto.images import MIN_SIDE, load_image
from tests.conftest import CAT, STARRY, as_unprivileged_user

pytestmark = pytest.mark.usefixtures("weights_available")


def impasto(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "impasto.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def one_line_error(run) -> str:
    """The single stderr line of a run that refused its input with exit code 2."""
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("impasto: error: "), run.stderr
    return lines[0]


@pytest.fixture
def public_tmp():
    """A folder in the system's temporary folder that `nobody` may enter (pytest's own are
    private to us), for tests that need a user without root's rights."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(CAT.read_bytes())
    return path


# --- 1. inputs are never written ------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: ("photo.png", "photo.png"), id="same-path"),
        pytest.param(lambda d: ("photo.png", "./photo.png"), id="same-file-other-spelling"),
        pytest.param(
            lambda d: ((d / "link.png").symlink_to(d / "photo.png"), ("link.png", "photo.png"))[1],
            id="content-is-a-symlink-to-the-output",
        ),
        pytest.param(
            lambda d: ((d / "link.png").symlink_to(d / "photo.png"), ("photo.png", "link.png"))[1],
            id="output-is-a-symlink-to-the-content",
        ),
        pytest.param(
            lambda d: (os.link(d / "photo.png", d / "hard.png"), ("photo.png", "hard.png"))[1],
            id="output-is-a-hard-link-to-the-content",
        ),
    ],
)
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, photo, make):
    content, output = make(tmp_path)
    before = photo.read_bytes()
    line = one_line_error(impasto("stylize", content, STARRY, "-o", output, cwd=tmp_path))
    assert "is the content image" in line and "never writes over its inputs" in line
    assert photo.read_bytes() == before


def test_an_output_that_is_the_style_image_is_refused(tmp_path, photo):
    style = tmp_path / "style.jpg"
    style.write_bytes(STARRY.read_bytes())
    line = one_line_error(impasto("stylize", photo, style, "-o", style))
    assert "is the style image" in line
    assert style.read_bytes() == STARRY.read_bytes()


def test_a_checkpoint_or_an_evolution_image_that_is_an_input_is_refused(tmp_path, photo):
    line = one_line_error(
        impasto("stylize", photo, STARRY, "-o", tmp_path / "out.png", "--checkpoint", photo)
    )
    assert line.startswith("impasto: error: checkpoint") and "is the content image" in line
    step = tmp_path / "evo" / "step_00002.png"
    step.parent.mkdir()
    step.write_bytes(CAT.read_bytes())
    args = ("-o", tmp_path / "out.png", "--steps", 4, "--save-every", 2)
    line = one_line_error(
        impasto("stylize", step, STARRY, *args, "--evolution-dir", tmp_path / "evo")
    )
    assert "evolution image" in line and "is the content image" in line
    assert step.read_bytes() == CAT.read_bytes()


def test_the_gallery_never_writes_over_its_inputs(tmp_path, photo):
    line = one_line_error(impasto("presets", "gallery", photo, STARRY, "-o", photo))
    assert "is the content image" in line
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    (tiles / "classic.png").write_bytes(CAT.read_bytes())
    line = one_line_error(
        impasto("presets", "gallery", tiles / "classic.png", STARRY, "-o", tmp_path / "s.png",
                "--tiles", tiles)
    )  # fmt: skip
    assert "tile" in line and "is the content image" in line


# --- 2. the output is checked before the work -------------------------------------------------
def test_an_existing_folder_as_output_is_refused_before_tensorflow_starts(tmp_path, photo):
    (tmp_path / "result.png").mkdir()
    code = (
        "import sys\n"
        "from impasto.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('tensorflow' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, "stylize", str(photo), str(STARRY), "-o", "result.png"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert one_line_error(run) == (
        "impasto: error: output 'result.png' is a folder; give a file name, "
        "e.g. 'result.png/out.png'"
    )
    assert run.stdout.strip() == "False"  # refused before the engine was even imported


@pytest.mark.parametrize(
    "output,message",
    [
        ("missing/out.png", "folder 'missing' does not exist"),
        ("x" * 300 + ".png", "cannot write there (the name is too long)"),
        ("photo.png/out.png", "'photo.png' is not a folder"),
    ],
)
def test_outputs_that_cannot_be_written_are_refused(tmp_path, photo, output, message):
    line = one_line_error(impasto("stylize", photo, STARRY, "-o", output, cwd=tmp_path))
    assert message in line
    assert sorted(os.listdir(tmp_path)) == ["photo.png"]  # and nothing was left behind


def test_a_folder_this_user_cannot_write_is_refused(public_tmp):
    locked = public_tmp / "locked"
    locked.mkdir(mode=0o555)
    from impasto.outputs import check_output_path

    outcome = as_unprivileged_user(lambda: check_output_path(locked / "out.png"))
    assert (
        outcome == f"InputError: output '{locked}/out.png': cannot write there (permission denied)"
    )
    assert os.listdir(locked) == []


def test_a_painting_that_cannot_be_saved_is_kept_and_the_message_says_where(tmp_path, photo):
    """The output's folder vanishes during the run (an unplugged disk, a folder removed): the
    picture goes to the cache folder and the error names it."""
    out_dir = tmp_path / "usb"
    out_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto.cli", "stylize", photo, STARRY, "-o", out_dir / "p.png",
         "--size", "64", "--steps", "30", "--progress", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "start"  # the checks passed; the painting begins
        out_dir.rmdir()
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 2, (stdout, stderr)
    from impasto.paths import cache_dir

    (kept,) = (cache_dir() / "recovered").iterdir()
    assert stderr.strip() == (
        f"impasto: error: could not write '{out_dir}/p.png' (its folder is gone); "
        f"the picture is saved in '{kept}'"
    )
    assert json.loads(stdout.splitlines()[-1])["event"] == "error"
    with Image.open(kept) as img:
        assert img.size == (64, 43)  # the whole painting at the size asked for


def test_recovery_goes_beside_the_output_first_and_never_replaces_a_file(tmp_path):
    from impasto.outputs import SaveError, save_or_recover

    out = tmp_path / "out.png"
    failing = {out}

    def save(path):
        if path in failing:
            raise OSError(28, "No space left on device")
        Image.new("RGB", (8, 8)).save(path)
        return path

    with pytest.raises(SaveError) as first:
        save_or_recover(save, out)
    with pytest.raises(SaveError) as second:
        save_or_recover(save, out)
    assert first.value.recovered.parent == tmp_path
    assert second.value.recovered.parent == tmp_path
    assert first.value.recovered != second.value.recovered
    assert "(no space left on the disk)" in str(first.value)


# --- 3, 4. numbers and odd paths --------------------------------------------------------------
@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--steps", "nan", "argument --steps: 'nan' is not a whole number"),
        ("--size", "inf", "argument --size: 'inf' is not a whole number"),
        ("--style-weight", "nan", "argument --style-weight: 'nan' is not a finite number"),
        ("--tv-weight", "-inf", "argument --tv-weight: '-inf' is not a finite number"),
        ("--seed", "lots", "argument --seed: 'lots' is not a whole number"),
        ("--style-blend", "nan", "--style-blend: 'nan' is not a list of finite numbers"),
    ],
)
def test_a_bad_number_on_the_command_line_is_one_line(tmp_path, option, value, message):
    run = impasto("stylize", CAT, STARRY, "-o", tmp_path / "o.png", f"{option}={value}")
    line = one_line_error(run)
    assert message in line
    assert "usage:" not in line


def test_a_missing_argument_is_one_line_too():
    line = one_line_error(impasto("stylize", CAT))
    assert "required: style, -o/--output" in line and "impasto stylize --help" in line


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: (d / "loop.png").symlink_to(d / "loop.png"), "a loop of symbolic links"),
        (
            lambda d: (d / "loop.png").symlink_to(d / "gone.png"),
            "a symbolic link to '{d}/gone.png', which does not exist",
        ),
        (lambda d: (d / "loop.png").mkdir(), "it is a folder, not a file"),
    ],
)
def test_odd_content_paths_say_what_is_wrong(tmp_path, make, message):
    make(tmp_path)
    line = one_line_error(
        impasto("stylize", tmp_path / "loop.png", STARRY, "-o", tmp_path / "o.png")
    )
    assert f"content image '{tmp_path}/loop.png': " + message.format(d=tmp_path) in line


def test_an_unreadable_photo_says_permission_denied(public_tmp):
    locked = public_tmp / "locked"
    locked.mkdir(mode=0o700)  # nobody may not even look inside
    (locked / "photo.png").write_bytes(CAT.read_bytes())
    outcome = as_unprivileged_user(lambda: load_image(locked / "photo.png", "content"))
    assert outcome == f"InputError: content image '{locked}/photo.png': permission denied"


def test_names_with_odd_characters_are_painted_and_named_in_one_line(tmp_path):
    odd = os.fsdecode(b"caf\xe9\nphoto \xff.png")  # not UTF-8, with a line break in it
    (tmp_path / odd).write_bytes(CAT.read_bytes())
    out = os.fsdecode(b"r\xe9sultat\n.png")
    done = impasto("stylize", odd, STARRY, "-o", out, "--size", 64, "--steps", 1,
                   "--progress", "json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / out).size == (64, 43)
    line = one_line_error(impasto("stylize", "gone" + odd, STARRY, "-o", "o.png", cwd=tmp_path))
    assert line.endswith(": file not found") and "\\n" in line  # the break shown, not taken


# --- 8. any aspect ratio --------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(300, 60), (60, 300), (2000, 20), (20, 2000), (640, 17)])
def test_the_pyramid_never_makes_a_side_smaller_than_vgg19_needs(shape):
    for long_side in (32, 64, 512, 1024):
        sizes = scale_sizes(shape, long_side, 192, 3)
        assert all(min(size) >= MIN_SIDE for size in sizes), (long_side, sizes)
        aspect = shape[0] / shape[1]
        for w, h in sizes:  # the photo's shape, within the rounding of the short side
            assert abs(w / h - aspect) <= aspect / min(w, h)


def test_a_panorama_is_painted_at_the_size_and_shape_asked_for(tmp_path):
    """A 300x60 photo at 64 px (64x13: under what VGG19 needs), in the style of a 60x300
    painting: both are worked on at a size the network can see."""
    cat = Image.open(CAT).convert("RGB")
    cat.resize((300, 60)).save(tmp_path / "pano.png")
    cat.resize((60, 300)).save(tmp_path / "tall.png")
    done = impasto("stylize", tmp_path / "pano.png", tmp_path / "tall.png",
                   "-o", tmp_path / "out.png", "--size", 64, "--steps", 2)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == (64, 13)


def test_a_picture_too_thin_for_any_working_size_is_one_line(tmp_path):
    Image.new("RGB", (8400, 16), "white").save(tmp_path / "strip.png")
    line = one_line_error(
        impasto("stylize", tmp_path / "strip.png", STARRY, "-o", tmp_path / "o.png")
    )
    assert line == (
        f"impasto: error: content image '{tmp_path}/strip.png': 8400x16 is too long and thin to "
        "paint (the long side may be at most 512 times the short one)"
    )
