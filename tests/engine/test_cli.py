"""The `impasto stylize` command as a user meets it: messages, exit codes, files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from PIL import Image

from impasto.images import read_settings
from tests.conftest import CAT, STARRY, WAVE

pytestmark = pytest.mark.usefixtures("weights_available")


def impasto(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "impasto.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def test_stylize_writes_png_with_settings_and_json_progress(tmp_path):
    out = tmp_path / "out.png"
    run = impasto(
        "stylize",
        CAT,
        STARRY,
        WAVE,
        "-o",
        out,
        "--size",
        64,
        "--steps",
        3,
        "--style-blend",
        "0.7,0.3",
        "--seed",
        5,
        "--progress",
        "json",
    )
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["device"] == "CPU"
    assert [e["step"] for e in events if e["event"] == "progress"] == [1, 2, 3]
    assert events[-1]["event"] == "done" and events[-1]["output"] == str(out)
    assert Image.open(out).size == (64, 43)
    settings = read_settings(out)
    assert settings["seed"] == 5 and settings["recipe"]["name"] == "classic"
    assert settings["styles"] == [[STARRY.name, 0.7], [WAVE.name, 0.3]]
    assert run.stderr == ""  # no TensorFlow chatter


def test_evolution_images(tmp_path):
    out = tmp_path / "o.jpg"
    run = impasto(
        "stylize",
        CAT,
        STARRY,
        "-o",
        out,
        "--size",
        64,
        "--steps",
        4,
        "--save-every",
        2,
        "--progress",
        "none",
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "o_evolution").iterdir()) == [
        "step_00002.png",
        "step_00004.png",
    ]


@pytest.mark.parametrize(
    "setup,args,message",
    [
        (lambda d: (d / "e.png").write_bytes(b""), ["{d}/e.png", STARRY], r"empty \(0 bytes\)"),
        (lambda d: (d / "t.txt").write_text("no"), ["{d}/t.txt", STARRY], "not an image"),
        (
            lambda d: (d / "c.png").write_bytes(CAT.read_bytes()[:5000]),
            ["{d}/c.png", STARRY],
            "truncated",
        ),
        (
            lambda d: Image.new("RGB", (1, 1)).save(d / "p.png"),
            [CAT, "{d}/p.png"],
            "1x1 is too small",
        ),
        (lambda d: None, [CAT, "{d}/missing.jpg"], "style image .*missing.jpg.*file not found"),
        (
            lambda d: None,
            [CAT, STARRY, "--preset", "clasic"],
            "unknown preset 'clasic'; did you mean 'classic'",
        ),
        (lambda d: None, [CAT, STARRY, "--style-blend", "1,2"], "2 weight.* for 1 style"),
        (lambda d: None, [CAT, STARRY, "--style-weight", "-3"], "style_weight must be 0 or more"),
        (lambda d: None, [CAT, STARRY, "--size", "5"], "size must be a whole number from 32"),
        (
            lambda d: None,
            [CAT, STARRY, "--max-memory", "8X"],
            "--max-memory: '8X' is not a memory size like 8G, 512M or 1.5G",
        ),
        (
            lambda d: None,
            [CAT, STARRY, "--max-memory", "1.1G", "--size", "4096"],
            r"4096x\d+ px needs at least .* of memory \(the budget is 1.1G\)",
        ),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, setup, args, message):
    import re

    setup(tmp_path)
    args = [str(a).replace("{d}", str(tmp_path)) for a in args]
    run = impasto("stylize", *args, "-o", tmp_path / "out.png")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("impasto: error: "), run.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out.png").exists()


def test_unknown_output_extension(tmp_path):
    run = impasto("stylize", CAT, STARRY, "-o", tmp_path / "out.gif")
    assert run.returncode == 2 and "unknown extension '.gif'" in run.stderr


def test_ctrl_c_writes_best_so_far_and_exits_130(tmp_path):
    out = tmp_path / "out.png"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "impasto.cli",
            "stylize",
            str(CAT),
            str(STARRY),
            "-o",
            str(out),
            "--size",
            "64",
            "--steps",
            "100000",
            "--progress",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            if json.loads(line).get("step") == 3:
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
    done = json.loads(rest.strip().splitlines()[-1])
    assert done["event"] == "done" and done["cancelled"] is True
    assert done["stats"]["steps"] < 10  # stopped within a step or so, not after 100000
    assert Image.open(out).size == (64, 43)


def test_weights_command_reports_verified_file():
    run = impasto("weights")
    assert run.returncode == 0 and "md5 verified" in run.stdout


def test_wrong_weights_are_refused(tmp_path):
    fake = tmp_path / "vgg19.h5"
    fake.write_bytes(b"not the weights" * 100)
    env = {**os.environ, "IMPASTO_WEIGHTS": str(fake)}
    run = impasto("stylize", CAT, STARRY, "-o", tmp_path / "o.png", "--size", 64, env=env)
    assert run.returncode == 2
    assert "weights" in run.stderr and "md5" in run.stderr and "Traceback" not in run.stderr
    status = impasto("weights", env=env)
    assert status.returncode == 1 and "not the expected" in status.stdout


def test_help_explains_every_option():
    run = impasto("stylize", "--help")
    for flag in (
        "--preset",
        "--size",
        "--steps",
        "--style-blend",
        "--style-scale",
        "--preserve-color",
        "--init",
        "--seed",
        "--precision",
        "--save-every",
        "--checkpoint",
        "--resume",
        "--progress",
    ):
        assert flag in run.stdout


def test_version():
    from impasto import __version__

    run = impasto("--version")
    assert run.returncode == 0 and run.stdout.strip() == f"impasto {__version__}"


# What TensorFlow's and absl's native start-up writes to stderr (oneDNN notes, CUDA probing,
# "All log messages before absl::InitializeLog()", glog-style "I0000 00:00..." lines).
TF_NOISE = ("oneDNN", "absl", "cuda", "tensorflow/", "I0000 ", "W0000 ", "E0000 ")


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(word in line for word in TF_NOISE)]


def test_no_tensorflow_noise_by_default_but_with_verbose(tmp_path):
    """`impasto doctor` and Keras's weight download (the first thing `make demo` shows) import
    TensorFlow: nothing of its start-up reaches stderr unless -v asks for it."""
    quiet = impasto("doctor")
    assert quiet.returncode == 0, quiet.stderr
    assert _noise(quiet.stderr) == []
    # The download path: a URL that fails at once, in a fresh Keras folder.
    download = (
        "import impasto.engine.weights as w; w.KERAS_URL = 'file:///nonexistent/vgg19.h5'\n"
        "try:\n    w._from_keras(print)\nexcept Exception as exc:\n    print('failed', exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", download],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_HOME": str(tmp_path / "keras")},
    )
    assert "failed" in run.stdout, run.stdout + run.stderr
    assert _noise(run.stderr) == [], run.stderr
    loud = impasto("-v", "doctor")  # the positive control: the same start-up, shown on request
    assert loud.returncode == 0 and _noise(loud.stderr), loud.stderr
