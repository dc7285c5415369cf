"""The shared plug-in client, without any editor: command building, progress parsing, engine
errors and cancel. Fake engines (small Python scripts) play the misbehaving cases; the real
`impasto` command checks that the client and the CLI agree on the format and the messages."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from impasto.job import ProgressEvent
from impasto.plugin import client, install
from impasto.presets import apply_overrides, load_preset
from impasto.progress import JsonProgress
from tests.conftest import CAT, ROOT, STARRY, WAVE
from tests.plugin.helpers import IMPASTO, process_gone

# -- command building ----------------------------------------------------------------------


def test_command_carries_every_setting_and_asks_for_json_progress():
    settings = client.StyleSettings(
        styles=[str(STARRY), str(WAVE)],
        preset="classic",
        size=96,
        steps=12,
        style_weight=25.0,
        preserve_color="luminance",
        seed=7,
    )
    cmd = client.build_command(["/venv/bin/impasto"], "in.png", "out.png", settings)
    assert cmd == [
        "/venv/bin/impasto", "stylize", "in.png", str(STARRY), str(WAVE), "-o", "out.png",
        "--preset", "classic", "--seed", "7", "--size", "96", "--steps", "12",
        "--style-weight", "25.0", "--preserve-color", "luminance", "--progress", "json",
    ]  # fmt: skip


def test_unset_values_leave_the_preset_in_charge():
    settings = client.StyleSettings(styles=[str(STARRY)])
    cmd = client.build_command(["impasto"], "in.png", "out.png", settings)
    for flag in ("--size", "--steps", "--style-weight", "--preserve-color"):
        assert flag not in cmd
    assert cmd[cmd.index("--seed") + 1] == "0"


def test_the_command_prefix_may_be_an_interpreter_and_a_module():
    settings = client.StyleSettings(styles=[str(STARRY)])
    cmd = client.build_command(["/usr/bin/python3", "-m", "impasto.cli"], "a", "b", settings)
    assert cmd[:4] == ["/usr/bin/python3", "-m", "impasto.cli", "stylize"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"styles": []}, "choose at least one style image"),
        ({"styles": ["/no/such/style.jpg"]}, "'/no/such/style.jpg': file not found"),
        ({"size": 16}, "output size must be from 32 to 8192 px"),
        ({"steps": 0}, "steps must be 1 or more"),
        ({"style_weight": 0.0}, "style strength must be greater than 0"),
        ({"preserve_color": "sepia"}, "colour preservation must be one of none, luminance"),
        ({"seed": -1}, "seed must be 0 or more"),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(change, message):
    settings = client.StyleSettings(**{"styles": [str(STARRY)], **change})
    with pytest.raises(client.EngineError, match=message.replace("(", r"\(")):
        client.build_command(["impasto"], "in.png", "out.png", settings)


def test_a_mask_goes_to_every_style_and_a_bad_selection_mode_is_refused():
    settings = client.StyleSettings(styles=[str(STARRY), str(WAVE)])
    cmd = client.build_command(["impasto"], "in.png", "out.png", settings, mask="sel.png")
    assert [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--mask"] == ["sel.png", "sel.png"]
    assert "--mask" not in client.build_command(["impasto"], "in.png", "out.png", settings)
    settings.selection_mode = "crop"
    client.build_command(["impasto"], "in.png", "out.png", settings)
    settings.selection_mode = "inside"
    with pytest.raises(client.EngineError, match="selection mode must be one of mask, crop"):
        client.build_command(["impasto"], "in.png", "out.png", settings)


def test_selection_values_become_a_greyscale_mask_png_the_engine_reads(tmp_path):
    from PIL import Image

    from impasto.images import load_image
    from impasto.job import load_mask

    values = bytes(x * 255 // 23 for y in range(16) for x in range(24))  # a soft ramp
    mask = client.selection_mask(values, 24, 16)
    path = tmp_path / "sel.png"
    client.write_mask_png(str(path), mask, 24, 16)
    with Image.open(path) as img:
        assert img.mode == "L" and img.size == (24, 16)
        assert img.tobytes() == values
    content = load_image(Image.new("RGB", (48, 32)), "content")
    assert load_mask(str(path), content, 0).image.tobytes() == values  # the engine takes it
    assert client.selection_mask(b"\xff" * 384, 24, 16) is None  # everything: no mask needed
    with pytest.raises(client.EngineError, match="does not cover any of the picture"):
        client.selection_mask(bytes(384), 24, 16)


def test_style_strength_is_relative_to_the_preset():
    """The dialogs send a strength; the engine, not the plug-in, multiplies the preset's weight
    (a strength of 1 sends nothing)."""
    recipe = load_preset("classic")
    assert client.strength_setting(1.0) is None
    for strength in (2.5, 0.5):
        settings = client.StyleSettings(styles=[str(STARRY)], style_strength=strength)
        cmd = client.build_command(["impasto"], "in.png", "out.png", settings)
        assert cmd[cmd.index("--style-strength") + 1] == repr(strength)
        resolved = apply_overrides(recipe, {"style_strength": strength})
        assert resolved.style_weight == recipe.style_weight * strength
    with pytest.raises(client.EngineError, match="style strength must be from 0.05 to 50"):
        client.StyleSettings(styles=[str(STARRY)], style_strength=0.01).check()


def test_default_size_is_the_long_side_within_the_engine_limits():
    assert client.default_size(96, 64) == 96
    assert client.default_size(20, 10) == 32
    assert client.default_size(10000, 50) == 8192


def test_layer_name_names_preset_and_styles():
    settings = client.StyleSettings(styles=[str(STARRY), str(WAVE)], preset="classic")
    assert settings.layer_name() == f"impasto classic: {STARRY.stem} + {WAVE.stem}"


# -- progress lines ------------------------------------------------------------------------


def _engine_lines() -> list[str]:
    """The lines the CLI's own JSON reporter writes, so a format change breaks this test."""

    class Result:
        cancelled = False
        stats = {"steps": 2, "seconds": 1.5}

    out = io.StringIO()
    reporter = JsonProgress()
    event = ProgressEvent(
        step=2, total=30, scale=1, scales=3, size=(64, 43),
        losses={"content": 0.1, "style": 2.0, "tv": 0.01, "total": 2.11}, elapsed=1.0, eta=75.0,
    )  # fmt: skip
    with redirect_stdout(out):
        reporter.start({"preset": "classic", "device": "CPU", "precision": "bfloat16",
                        "scales": [[64, 43, 20], [96, 64, 10]], "total": 30})  # fmt: skip
        reporter.progress(event)
        reporter.done(Result(), Path("/tmp/out.png"))
        reporter.error(ValueError("boom\nsecond line"))
    return out.getvalue().splitlines()


def test_parses_every_event_the_engine_writes():
    start, progress, done, error = (client.parse_line(line) for line in _engine_lines())
    assert start == client.Start(
        total=30, scales=[[64, 43, 20], [96, 64, 10]], preset="classic", device="CPU",
        precision="bfloat16",
    )  # fmt: skip
    assert isinstance(progress, client.Progress)
    assert (progress.step, progress.total, progress.scale, progress.scales) == (2, 30, 1, 3)
    assert progress.size == (64, 43) and progress.losses["total"] == pytest.approx(2.11)
    assert progress.fraction == pytest.approx(2 / 30)
    assert progress.label() == "Scale 1/3 (64\u00d743), step 2/30, 1:15 left"
    stats = {"steps": 2, "seconds": 1.5}
    assert done == client.Done(output="/tmp/out.png", cancelled=False, stats=stats)
    assert isinstance(error, client.Failed)
    assert error.message == "ValueError: boom second line"  # always one line


@pytest.mark.parametrize(
    "line",
    [
        "",
        "W tensorflow: some warning on stdout",
        "{not json",
        "[1, 2]",
        '{"event": "progress", "step": 1}',  # fields missing
        '{"event": "something-new", "x": 1}',
    ],
)
def test_anything_else_on_stdout_is_ignored(line):
    assert client.parse_line(line) is None


# -- running fake engines ------------------------------------------------------------------


def fake_engine(tmp_path, body: str) -> list[str]:
    """A command running a small Python script in place of the engine."""
    script = tmp_path / "fake_engine.py"
    script.write_text(
        "import json, os, signal, sys, time\n"
        "def emit(**obj):\n"
        "    print(json.dumps(obj), flush=True)\n" + textwrap.dedent(body)
    )
    return [sys.executable, str(script)]


def run(command, **kw) -> tuple[list, client.EngineRun]:
    events = []
    with client.EngineRun(command, **kw) as r:
        for event in r.events(timeout=60):
            events.append(event)
        return events, r


PROGRESS = (
    'emit(event="progress", step={s}, total=3, scale=1, scales=1, size=[8, 8], '
    'losses={{"total": 1.0}}, elapsed=0.1, eta=0.1)'
)


def test_a_good_run_yields_start_progress_done_in_order(tmp_path):
    body = 'print("chatter from a library")\n'
    body += 'emit(event="start", total=3, scales=[[8, 8, 3]])\n'
    body += "\n".join(PROGRESS.format(s=s) for s in (1, 2, 3)) + "\n"
    body += 'emit(event="done", output="out.png", cancelled=False, stats={})\n'
    events, r = run(fake_engine(tmp_path, body))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Start", "Progress", "Progress", "Progress", "Done"]
    assert [e.step for e in events if isinstance(e, client.Progress)] == [1, 2, 3]
    assert r.result().output == "out.png"


@pytest.mark.parametrize(
    "body, message",
    [
        (
            'emit(event="error", message="style image \'x.jpg\': not an image")\n'
            "print(\"impasto: error: style image 'x.jpg': not an image\", file=sys.stderr)\n"
            "sys.exit(2)\n",
            "style image 'x.jpg': not an image",
        ),
        (
            'print("impasto: error: VGG19 weights not found: run impasto weights install",'
            " file=sys.stderr)\nsys.exit(2)\n",
            "VGG19 weights not found: run impasto weights install",
        ),
        ('raise MemoryError("out of memory in conv2d")\n', "MemoryError: out of memory in conv2d"),
        ("os.kill(os.getpid(), signal.SIGKILL)\n", "the engine was killed by signal 9"),
        ("sys.exit(0)\n", "the engine exited without writing a result"),
        (
            'emit(event="done", output="o.png", cancelled=True, stats={})\nsys.exit(143)\n',
            "the engine was stopped before it finished",
        ),
    ],
    ids=["json-error", "stderr-error", "traceback", "killed", "silent", "stopped-elsewhere"],
)
def test_failures_become_one_line_messages(tmp_path, body, message):
    _, r = run(fake_engine(tmp_path, body))
    with pytest.raises(client.EngineError) as info:
        r.result()
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_missing_command_is_a_clear_error(tmp_path):
    with pytest.raises(client.EngineError, match="cannot start the impasto command"):
        client.EngineRun([str(tmp_path / "gone" / "impasto"), "stylize"])


def test_the_editors_python_settings_do_not_reach_the_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/opt/krita/lib/python3.10")
    monkeypatch.setenv("PYTHONHOME", "/opt/krita")
    body = (
        'emit(event="done", output=os.environ.get("PYTHONPATH", "") + "|" '
        '+ os.environ.get("PYTHONHOME", ""), cancelled=False, stats={})\n'
    )
    _, r = run(fake_engine(tmp_path, body))
    assert r.result().output == "|"


# -- cancel --------------------------------------------------------------------------------

# A fake engine in its step loop. It records the signals it receives in signals.txt; `policy`
# says what it does on SIGINT / SIGTERM: "finish" (write the best so far and exit like the
# CLI), or "ignore".
LOOP = """
marks = open(sys.argv[1], "a")
def on_signal(signum, frame):
    marks.write(signal.Signals(signum).name + "\\n"); marks.flush()
    if POLICY.get(signum) == "finish":
        emit(event="done", output="best.png", cancelled=True, stats={})
        sys.exit(130 if signum == signal.SIGINT else 143)
signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)
emit(event="start", total=1000, scales=[[8, 8, 1000]])
for s in range(1, 1001):
    emit(event="progress", step=s, total=1000, scale=1, scales=1, size=[8, 8],
         losses={"total": 1.0}, elapsed=0.1, eta=9.0)
    time.sleep(0.05)
"""


def cancel_after_first_step(tmp_path, policy: str, **grace) -> tuple[client.EngineRun, list]:
    marks = tmp_path / "signals.txt"
    command = [*fake_engine(tmp_path, f"POLICY = {policy}\n" + LOOP), str(marks)]
    with client.EngineRun(command) as r:
        for event in r.events(timeout=60):
            if isinstance(event, client.Progress) and not r.cancel_requested:
                r.cancel(**grace)
        with pytest.raises(client.Cancelled):
            r.result()
    signals = marks.read_text().split() if marks.exists() else []
    return r, signals


def test_cancel_interrupts_and_the_engine_finishes_its_step(tmp_path):
    r, signals = cancel_after_first_step(
        tmp_path, "{signal.SIGINT: 'finish', signal.SIGTERM: 'finish'}"
    )
    assert signals == ["SIGINT"]
    assert r.process.returncode == 130


def test_cancel_terminates_an_engine_that_ignores_the_interrupt(tmp_path):
    r, signals = cancel_after_first_step(
        tmp_path,
        "{signal.SIGINT: 'ignore', signal.SIGTERM: 'finish'}",
        interrupt_grace=0.5,
        terminate_grace=5,
    )
    assert signals == ["SIGINT", "SIGTERM"]
    assert r.process.returncode == 143


def test_cancel_kills_an_engine_that_ignores_everything(tmp_path):
    r, signals = cancel_after_first_step(
        tmp_path,
        "{signal.SIGINT: 'ignore', signal.SIGTERM: 'ignore'}",
        interrupt_grace=0.5,
        terminate_grace=0.5,
    )
    assert signals == ["SIGINT", "SIGTERM"]
    assert r.process.returncode == -9


def test_close_kills_what_the_engine_started(tmp_path):
    """A helper process the engine started (in its group) must not outlive the job."""
    pid_file = tmp_path / "child.pid"
    body = f"""
import subprocess
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
emit(event="start", total=1, scales=[[8, 8, 1]])
time.sleep(600)
"""
    with client.EngineRun(fake_engine(tmp_path, body)) as r:
        for event in r.events(timeout=60):
            if isinstance(event, client.Start):
                break
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not process_gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_gone(child)
    assert process_gone(r.process.pid)


def test_run_job_cancels_from_another_thread(tmp_path):
    marks = tmp_path / "signals.txt"
    command = [*fake_engine(tmp_path, "POLICY = {signal.SIGINT: 'finish'}\n" + LOOP), str(marks)]
    cancel = threading.Event()
    seen = []

    def on_event(event):
        seen.append(event)
        if isinstance(event, client.Progress):
            cancel.set()

    # run_job builds its own command line; give it our fake engine as the "impasto" prefix.
    settings = client.StyleSettings(styles=[str(STARRY)])
    original = client.build_command
    try:
        client.build_command = lambda *a, **k: command
        with pytest.raises(client.Cancelled):
            client.run_job(["unused"], "in.png", "out.png", settings, on_event, cancel)
    finally:
        client.build_command = original
    assert marks.read_text().split() == ["SIGINT"]
    assert any(isinstance(e, client.Progress) for e in seen)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_engine_stops_after_its_step_when_the_editor_dies(tmp_path):
    """GIMP kills its plug-in when the user cancels the progress bar; an editor may crash."""
    import shutil
    import signal
    import subprocess

    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    marks = tmp_path / "signals.txt"
    engine = [*fake_engine(tmp_path, "POLICY = {signal.SIGTERM: 'finish'}\n" + LOOP), str(marks)]
    editor_code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
        "from impasto.plugin import client\n"
        f"run = client.EngineRun({engine!r})\n"
        "print(run.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    editor = subprocess.Popen(
        [sys.executable, "-c", editor_code], stdout=subprocess.PIPE, text=True
    )
    engine_pid = None
    try:
        engine_pid = int(editor.stdout.readline())
        deadline = time.monotonic() + 30
        while not (marks.exists() or time.monotonic() > deadline):
            time.sleep(0.1)  # the fake engine opens its marks file once it runs
        editor.kill()
        editor.wait()
        deadline = time.monotonic() + 30
        while not process_gone(engine_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process_gone(engine_pid)
        assert marks.read_text().split() == ["SIGTERM"]
    finally:
        editor.kill()
        editor.wait()
        if engine_pid is not None and not process_gone(engine_pid):
            os.kill(engine_pid, signal.SIGKILL)


def test_scratch_folders_of_dead_plugin_processes_are_cleaned_up(tmp_path, monkeypatch):
    import subprocess
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left_by_dead = tmp_path / f"impasto-test-{dead.pid}-abc"
    alive = tmp_path / f"impasto-test-{os.getppid()}-abc"
    mine = tmp_path / f"impasto-test-{os.getpid()}-abc"
    unrelated = tmp_path / f"other-{dead.pid}-abc"
    for folder in (left_by_dead, alive, mine, unrelated):
        folder.mkdir()
        (folder / "layer.png").write_bytes(b"x")
    new = Path(client.scratch_dir("impasto-test-"))
    assert new.is_dir() and new.name.startswith(f"impasto-test-{os.getpid()}-")
    assert not left_by_dead.exists()
    assert alive.exists() and mine.exists() and unrelated.exists()


# -- the plug-in's settings file -----------------------------------------------------------


def test_settings_file_round_trip_and_checks(tmp_path):
    with pytest.raises(client.EngineError, match="missing or broken"):
        client.read_engine_command(tmp_path)
    install.write_settings(tmp_path, [str(IMPASTO)], "krita")
    assert client.read_engine_command(tmp_path) == [str(IMPASTO)]
    install.write_settings(tmp_path, [str(tmp_path / "moved" / "impasto")], "krita")
    with pytest.raises(client.EngineError, match="is gone"):
        client.read_engine_command(tmp_path)
    assert json.loads((tmp_path / client.SETTINGS_FILE).read_text())["editor"] == "krita"


# -- against the real impasto command ------------------------------------------------------


def test_real_engine_error_reaches_the_plugin_as_its_one_line(tmp_path):
    bad = tmp_path / "style.jpg"
    bad.write_text("not a picture")
    settings = client.StyleSettings(styles=[str(bad)], size=64, steps=2)
    cmd = client.build_command([str(IMPASTO)], str(CAT), str(tmp_path / "out.png"), settings)
    events, r = run(cmd)
    with pytest.raises(client.EngineError) as info:
        r.result()
    assert str(info.value) == (
        f"style image {str(bad)!r}: not an image impasto reads (BMP, GIF, JPEG, PNG, TIFF, WEBP)"
    )
    assert r.process.returncode == 2
    assert not (tmp_path / "out.png").exists()


def test_real_engine_refuses_to_write_over_the_layer_it_reads(tmp_path):
    """The plug-ins give the engine a fresh temporary folder for each job, so the output is
    never the layer's file; should a caller pass the same file anyway, the engine refuses it
    before starting, and the file is untouched."""
    layer = tmp_path / "layer.png"
    layer.write_bytes(CAT.read_bytes())
    settings = client.StyleSettings(styles=[str(STARRY)], size=64, steps=2)
    events, r = run(client.build_command([str(IMPASTO)], str(layer), str(layer), settings))
    with pytest.raises(client.EngineError, match="is the content image .* never writes over"):
        r.result()
    assert r.process.returncode == 2
    assert layer.read_bytes() == CAT.read_bytes()


def test_real_presets_are_listed_with_their_recipes():
    presets = client.list_presets([str(IMPASTO)])
    names = [p["name"] for p in presets]
    assert "classic" in names
    recipe = client.preset_recipe([str(IMPASTO)], "classic")
    assert recipe["style_weight"] > 0 and sum(recipe["steps"]) > 0
    with pytest.raises(client.EngineError, match="unknown preset 'nope'"):
        client.preset_recipe([str(IMPASTO)], "nope")


@pytest.mark.slow
@pytest.mark.usefixtures("weights_available")
def test_real_engine_cancel_stops_within_a_step_and_keeps_nothing(tmp_path):
    out = tmp_path / "out.png"
    settings = client.StyleSettings(styles=[str(STARRY)], size=64, steps=2000)
    cmd = client.build_command([str(IMPASTO)], str(CAT), str(out), settings)
    with client.EngineRun(cmd) as r:
        steps = []
        for event in r.events(timeout=300):
            if isinstance(event, client.Progress):
                steps.append(event.step)
                if not r.cancel_requested:
                    r.cancel()
        with pytest.raises(client.Cancelled):
            r.result()
    assert r.process.returncode == 130
    assert len(steps) < 50
    assert os.path.exists(out)  # the CLI keeps the best so far; the plug-ins throw it away
