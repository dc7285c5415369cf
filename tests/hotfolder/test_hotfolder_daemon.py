"""The real daemon: `impasto watch` in a child process on real folders, with the real engine on
small images and few steps. What a studio cares about: every good file ends with exactly one
output and in processed/, every bad one in failed/ with its reason, nothing else; kill -9 in the
middle of a job loses nothing and leaves no half-written output."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from impasto.images import read_settings
from tests.hotfolder.helpers import (
    CAT,
    STARRY,
    WAVE,
    cat,
    files_under,
    huge_png,
    image_bytes,
    jobs,
    rotated_jpeg,
)

pytestmark = pytest.mark.usefixtures("weights_available")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_config(root: Path, text: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hotfolder.toml").write_text(text)


def mixed_files() -> tuple[dict[str, bytes], dict[str, str]]:
    """Good inputs for route `paint` (name -> bytes) and bad ones (name -> expected reason)."""
    img = cat(80)
    alpha = img.convert("RGBA")
    alpha.putalpha(Image.linear_gradient("L").resize(img.size))
    deep = Image.fromarray(__import__("numpy").asarray(img.convert("L"), dtype="uint16") * 257)
    good = {
        "cat.png": image_bytes(img, "PNG"),
        "cat.jpg": image_bytes(img, "JPEG"),  # same stem: its output must not overwrite cat.png's
        "gray.png": image_bytes(img.convert("L"), "PNG"),
        "alpha.png": image_bytes(alpha, "PNG"),
        "palette.gif": image_bytes(img.convert("P"), "GIF"),
        "cmyk.jpg": image_bytes(img.convert("CMYK"), "JPEG"),
        "deep.png": image_bytes(deep, "PNG"),
        "rotated.jpg": rotated_jpeg(),
        "photo.tif": image_bytes(img, "TIFF"),
    }
    jpeg = image_bytes(cat(120), "JPEG")
    bad = {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "damaged or truncated"),
        "empty.png": (b"", "the file is empty (0 bytes)"),
        "notes.txt": (b"shopping list: bread, milk\n", "not an image"),
        "random.png": (random.Random(0).randbytes(3000), "not an image"),
        "huge.png": (huge_png(), "too many pixels"),
        "tiny.png": (image_bytes(img.resize((8, 6)), "PNG"), "too small"),
    }
    return good, {name: data for name, data in bad.items()}


@pytest.mark.slow
def test_twenty_mixed_files_dropped_at_once(tmp_path, watch):
    root = tmp_path / "studio"
    write_config(
        root,
        f"""
[daemon]
# Long enough that the file written slowly never settles between two of its writes, however
# busy the machine: it (like every file closed by its writer) is taken 0.3 s after its close.
settle_seconds = 10.0
closed_settle_seconds = 0.3
rescan_seconds = 600     # files must be found through events, not rescans

[routes.paint]
styles = ["{STARRY}"]
size = 64
steps = 2

[routes.blend]
styles = [{{ path = "{STARRY}", weight = 0.7 }}, {{ path = "{WAVE}", weight = 0.3 }}]
size = 64
steps = 2
format = "jpg"
preserve_color = "luminance"
save_every = 1
""",
    )
    daemon = watch(root)
    daemon.wait_for(lambda: daemon.log_has("watching"), what="the daemon to start watching")
    paint, blend = root / "inbox" / "paint", root / "inbox" / "blend"

    good, bad = mixed_files()
    originals = {}
    for name, data in good.items():
        (paint / name).write_bytes(data)
        originals[f"paint/{name}"] = data
    for name, (data, _) in bad.items():
        (paint / name).write_bytes(data)
    (paint / "outside.png").symlink_to(CAT)  # a valid image, but outside the hot folder
    os.mkfifo(paint / "pipe.png")
    (blend / "cat.png").write_bytes(good["cat.png"])
    originals["blend/cat.png"] = good["cat.png"]
    # temporary and hidden names: never taken
    ignored = {".hidden.png": b"x", "~$lock.png": b"x", "get.jpg.crdownload": good["cat.jpg"]}
    for name, data in ignored.items():
        (paint / name).write_bytes(data)
    # a copy in progress under a temporary name, renamed when complete
    (paint / "renamed.png.part").write_bytes(good["cat.png"][:500])
    # and one written slowly, in pieces, while the daemon is already busy
    slow = image_bytes(cat(72), "PNG")
    originals["paint/slow.png"] = slow

    def write_slowly():
        with open(paint / "slow.png", "wb") as fh:
            step = len(slow) // 10 + 1
            for i in range(0, len(slow), step):
                fh.write(slow[i : i + step])
                fh.flush()
                time.sleep(0.2)  # pacing a slow writer, not a decision: see settle_seconds

    writer = threading.Thread(target=write_slowly, daemon=True)
    writer.start()
    (paint / "renamed.png.part").write_bytes(good["cat.png"])
    os.rename(paint / "renamed.png.part", paint / "renamed.png")
    originals["paint/renamed.png"] = good["cat.png"]
    writer.join()

    expected_good = len(originals)  # 12 inputs
    expected_bad = len(bad) + 2  # 8 inputs: 20 in all
    assert expected_good + expected_bad == 20

    def settled():
        done = [j for j in jobs(root) if j["state"] in ("done", "failed")]
        return len(done) >= 20 and not any(j["state"] not in ("done", "failed") for j in jobs(root))

    daemon.wait_for(settled, timeout=180, what="all 20 files to be handled")

    # every good input: exactly one output, and the input untouched in processed/
    outbox = files_under(root / "outbox")
    assert outbox == {
        "paint/cat.png", "paint/cat-2.png", "paint/gray.png", "paint/alpha.png",
        "paint/palette.png", "paint/cmyk.png", "paint/deep.png", "paint/rotated.png",
        "paint/photo.png", "paint/slow.png", "paint/renamed.png", "blend/cat.jpg",
    }  # fmt: skip
    for rel in outbox:
        with Image.open(root / "outbox" / rel) as img:
            img.load()  # complete, decodable pictures
            assert max(img.size) == 64
    with Image.open(root / "outbox" / "paint" / "rotated.png") as img:
        assert img.height > img.width  # the EXIF orientation was honoured
    with Image.open(root / "outbox" / "paint" / "alpha.png") as img:
        assert img.mode == "RGBA"
    processed = files_under(root / "processed")
    assert processed == set(originals)
    for rel, data in originals.items():
        assert (root / "processed" / rel).read_bytes() == data

    # every bad input: in failed/ as it was, with one line that says why
    failed = files_under(root / "failed")
    bad_names = [*bad, "outside.png", "pipe.png"]
    assert failed == {f"paint/{n}" for n in bad_names} | {f"paint/{n}.error.txt" for n in bad_names}
    reasons = {name: why for name, (_, why) in bad.items()}
    reasons |= {"outside.png": "outside the hot folder", "pipe.png": "a named pipe (FIFO)"}
    for name, why in reasons.items():
        text = (root / "failed" / "paint" / f"{name}.error.txt").read_text()
        assert why in text and text.count("\n") == 1, (name, text)
    assert os.readlink(root / "failed" / "paint" / "outside.png") == str(CAT)
    for name, (data, _) in bad.items():
        assert (root / "failed" / "paint" / name).read_bytes() == data

    # nothing else: the ignored names are still in the inbox, untouched
    assert files_under(root / "inbox") == {f"paint/{n}" for n in ignored}
    assert sorted(os.listdir(root / "evolution" / "blend" / "cat")) == [
        "step_00001.png",
        "step_00002.png",
    ]

    # the same name dropped again: a new output beside the first, nothing overwritten
    before = {rel: sha(root / "outbox" / rel) for rel in outbox}
    (paint / "cat.png").write_bytes(good["cat.png"])
    daemon.wait_for(
        lambda: (root / "processed" / "paint" / "cat-2.png").exists(), what="the second cat.png"
    )
    assert files_under(root / "outbox") == outbox | {"paint/cat-3.png"}
    assert {rel: sha(root / "outbox" / rel) for rel in outbox} == before

    status = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "watch", str(root), "--status"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"running (pid {daemon.proc.pid})" in status.stdout
    assert "queue: 0 waiting" in status.stdout and "done: 13   failed: 8" in status.stdout
    assert daemon.stop(signal.SIGTERM) == 0
    assert "Traceback" not in daemon.stderr()


def running_job(root: Path, name: str, min_step: int):
    """The journal row of `name` while it is being painted past min_step, else None."""
    for job in jobs(root):
        if job["name"] == name and job["state"] == "running" and job["step"] >= min_step:
            return job
    return None


def assert_no_partial_outputs(root: Path) -> None:
    for rel in files_under(root / "outbox"):
        assert not Path(rel).name.startswith("."), f"half-written {rel}"
        with Image.open(root / "outbox" / rel) as img:
            img.load()


@pytest.mark.slow
def test_killed_twice_mid_job_then_restarted(tmp_path, watch):
    root = tmp_path / "studio"
    write_config(
        root,
        f"""
[daemon]
settle_seconds = 0.3
rescan_seconds = 600
checkpoint_every = 5

[routes.paint]
styles = ["{STARRY}"]
size = 64
steps = 400  # long enough that no job ends before the test kills it (a step at 64 px is ~20 ms)
""",
    )
    inbox = root / "inbox" / "paint"
    inbox.mkdir(parents=True)
    originals = {}
    first = time.time_ns() - 10_000_000_000
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        originals[name] = image_bytes(cat(70 + i), "PNG")
        (inbox / name).write_bytes(originals[name])
        os.utime(inbox / name, ns=(first + i * 10**9,) * 2)  # arrival order a, b, c
    mask = Image.new("L", cat(71).size, 0)  # b has a mask: it travels through every crash
    mask.paste(255, (0, 0, mask.width // 2, mask.height))
    originals["b.mask.png"] = image_bytes(mask, "PNG")
    (inbox / "b.mask.png").write_bytes(originals["b.mask.png"])
    args = ("--polling",)

    # first run: a is done; killed in the middle of b
    daemon = watch(root, *args)
    job = daemon.wait_for(lambda: running_job(root, "b.png", 12), what="b.png to be half-way")
    daemon.stop(signal.SIGKILL)
    assert files_under(root / "outbox") == {"paint/a.png"}
    assert_no_partial_outputs(root)

    # second run: b resumes from its checkpoint, and is killed again once it has checkpointed
    # further (the checkpoint, not the journal's once-a-second progress row, so that a fast
    # machine cannot finish b between two looks)
    checkpoint = root / ".hotfolder" / "checkpoints" / f"job-{job['id']}.npz"
    first_checkpoint = checkpoint.stat().st_mtime_ns
    daemon = watch(root, *args)
    daemon.wait_for(lambda: daemon.log_has("resuming from step"), what="b.png to resume")
    daemon.wait_for(
        lambda: checkpoint.exists() and checkpoint.stat().st_mtime_ns != first_checkpoint,
        what="b.png to checkpoint further",
    )
    again = next(j for j in jobs(root) if j["name"] == "b.png")
    assert again["state"] == "running" and again["crashes"] == 1
    # a second daemon on the same folder is refused while this one runs
    second = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "watch", str(root)], capture_output=True, text=True
    )
    assert second.returncode == 2
    assert f"already running on {root} (pid {daemon.proc.pid})" in second.stderr
    daemon.stop(signal.SIGKILL)
    assert_no_partial_outputs(root)

    # third run: a file dropped now is found by the polling observer (rescans are 600 s apart);
    # SIGTERM in the middle of c stops cleanly, keeping c's place
    daemon = watch(root, *args)
    daemon.wait_for(lambda: daemon.log_has("watching"), what="the third run to watch")
    originals["d.png"] = image_bytes(cat(75), "PNG")
    (inbox / "d.png").write_bytes(originals["d.png"])
    daemon.wait_for(lambda: running_job(root, "c.png", 8), timeout=180, what="c.png to start")
    assert daemon.stop(signal.SIGTERM) == 0
    c = next(j for j in jobs(root) if j["name"] == "c.png")
    assert c["state"] == "queued" and c["crashes"] == 0
    assert (root / ".hotfolder" / "checkpoints" / f"job-{c['id']}.npz").is_file()

    # fourth run, --once: everything finishes, nothing is done twice
    finish = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "watch", str(root), "--once", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert finish.returncode == 0, finish.stderr
    log = (root / "hotfolder.log").read_text()
    assert log.count("painted paint/a.png") == 1 and log.count("painted paint/b.png") == 1
    assert log.count("resuming from step") >= 3  # b twice, c once
    assert files_under(root / "outbox") == {f"paint/{n}" for n in originals if ".mask" not in n}
    assert read_settings(root / "outbox" / "paint" / "b.png")["masks"] == ["b.mask.png"]
    assert_no_partial_outputs(root)
    assert {
        rel: (root / "processed" / rel).read_bytes() for rel in files_under(root / "processed")
    } == {f"paint/{n}": data for n, data in originals.items()}
    assert files_under(root / "inbox") == set() and files_under(root / "failed") == set()
    assert [j["state"] for j in jobs(root)] == ["done"] * 4
    assert os.listdir(root / ".hotfolder" / "checkpoints") == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '[routes.paint]\nstyles = ["{style}"]\npreset = "no-such-preset"\n',
            r"hotfolder.toml \[routes.paint\]: unknown preset 'no-such-preset'",
        ),
        (
            '[routes.paint]\nstyles = ["missing.jpg"]\n',
            r"hotfolder.toml \[routes.paint\]: style image '.*missing.jpg': file not found",
        ),
        (
            '[routes.paint]\nstyles = ["{style}"]\nstyle_wieght = 3\n',
            r"unknown key 'style_wieght'; did you mean 'style_weight'\?",
        ),
    ],
)
def test_config_errors_stop_the_daemon_at_start_with_one_line(tmp_path, config, message):
    root = tmp_path / "studio"
    write_config(root, config.format(style=STARRY))
    run = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "watch", str(root)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("impasto: error: "), run.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (root / "inbox").exists()  # nothing was set up from a broken config


def test_init_writes_a_config_that_runs(tmp_path):
    root = tmp_path / "studio"
    cmd = [
        sys.executable,
        "-m",
        "impasto.cli",
        "watch",
        str(root),
        "--init",
        "--style",
        str(STARRY),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"drop files into {root / 'inbox' / 'default'}" in run.stdout
    for kind in ("inbox", "outbox", "processed", "failed"):
        assert (root / kind / "default").is_dir()
    text = (root / "hotfolder.toml").read_text()
    assert str(STARRY) in text and "# " in text
    # a second --init keeps the edited config
    (root / "hotfolder.toml").write_text(text + "\n# mine\n")
    subprocess.run(cmd, capture_output=True, check=True, timeout=60)
    assert (root / "hotfolder.toml").read_text().endswith("# mine\n")
