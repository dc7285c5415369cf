"""The web app through its API (gradio_client), as a script or a second front-end would use it:
jobs complete with the picture a visitor asked for, several at once all complete one after the
other, bad uploads get a clear message without breaking the app, and Cancel keeps the best so far.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from gradio_client.utils import QueueError, Status
from PIL import Image

from impasto import StyleResult
from impasto.gradio_app.app import build_app, close, launch
from impasto.gradio_app.runner import EngineRunner
from impasto.images import read_settings
from tests.conftest import CAT, ROOT, STARRY, WAVE, require_program
from tests.gradio_app.conftest import free_port


def stylize(
    client: Client, content, *styles, size=64, steps=3, preset="classic", submit=False, masks=()
):
    """Call /stylize by its parameters' names; styles are (path, weight) pairs or paths, masks
    paths (or None) in the styles' order."""
    named = {"photo": handle_file(str(content)), "style_1": None}
    for n, mask in enumerate(masks, start=1):
        named[f"mask_{n}"] = handle_file(str(mask)) if mask else None
    for n, style in enumerate(styles, start=1):
        path, weight = style if isinstance(style, tuple) else (style, 1.0)
        named |= {f"style_{n}": handle_file(str(path)), f"weight_{n}": weight}
    named |= {"preset": preset, "size": size, "steps": steps, "style_strength": 1.0}
    named |= {"colours": "none", "seed": 0}
    if submit:
        return client.submit(**named, api_name="/stylize")
    return client.predict(**named, api_name="/stylize")


@pytest.fixture
def client(served):
    return Client(served.url, verbose=False)


def test_a_job_completes_with_the_size_asked_for_and_its_settings(client):
    status, image, download, plot = stylize(client, CAT, STARRY, size=96, steps=4)
    assert status.startswith("Done: 96×64")
    with Image.open(image) as img:
        assert img.size == (96, 64)  # the cat is 3:2; long side as asked
    settings = read_settings(image)
    assert settings["recipe"]["name"] == "classic"
    assert settings["size"] == 96 and settings["recipe"]["steps"][-1] >= 1
    assert settings["content"] == CAT.name  # the visitor's file name, not the server's path
    assert Path(download["value"]).name == Path(image).name
    assert max(row[0] for row in plot["data"]) == 4  # the plot covers every step


def test_two_styles_are_blended_by_their_weights(client):
    status, image, _, _ = stylize(client, CAT, (STARRY, 0.75), (WAVE, 0.25), size=64, steps=2)
    assert status.startswith("Done")
    styles = read_settings(image)["styles"]
    assert [name for name, _ in styles] == [STARRY.name, WAVE.name]
    assert [round(w, 3) for _, w in styles] == [0.75, 0.25]


def test_the_api_names_its_parameters(client):
    (endpoint,) = [
        info
        for name, info in client.view_api(print_info=False, return_format="dict")[
            "named_endpoints"
        ].items()
        if name == "/stylize"
    ]
    names = [p["parameter_name"] for p in endpoint["parameters"]]
    assert names == [
        "photo", "style_1", "weight_1", "style_2", "weight_2", "style_3", "weight_3",
        "preset", "size", "steps", "style_strength", "colours", "seed",
        "mask_1", "mask_2", "mask_3",
    ]  # fmt: skip
    required = [
        p["parameter_name"] for p in endpoint["parameters"] if not p["parameter_has_default"]
    ]
    assert required == ["photo", "style_1"]


def test_masks_reach_the_engine_one_per_style(client, served, tmp_path):
    """The engine's contract (StyleJob.masks): the job the API builds carries them, checked."""
    w, h = Image.open(CAT).size
    left = tmp_path / "left.png"
    mask = Image.new("L", (w // 4, h // 4), 0)
    mask.paste(255, (0, 0, w // 8, h // 4))
    mask.save(left)
    status, image, _, _ = stylize(client, CAT, STARRY, WAVE, steps=2, masks=[left, None])
    assert status.startswith("Done")
    masks = served.engine.last.masks
    assert masks[1] is None and masks[0].image.size == (w // 4, h // 4)
    assert masks[0].image.getpixel((1, 1)) == 255 and masks[0].image.getpixel((w // 4 - 1, 1)) == 0
    assert read_settings(image)["masks"] == ["left.png", None]


def test_a_mask_of_another_shape_gets_one_clear_line(client, served, tmp_path):
    square = tmp_path / "square.png"
    Image.new("L", (64, 64), 255).save(square)
    before = served.engine.calls
    with pytest.raises(ValidationError) as refused:
        stylize(client, CAT, STARRY, masks=[square])
    message = str(refused.value).splitlines()[-1]
    assert message.endswith(
        "Mask 1 'square.png': 64x64 does not have the photo's shape (512x341); a mask must "
        "have the photo's aspect ratio (any size)".replace(
            "512x341", "x".join(map(str, Image.open(CAT).size))
        )
    )
    assert served.engine.calls == before  # refused before it queued
    wide = tmp_path / "wide.png"
    Image.new("L", Image.open(CAT).size, 255).save(wide)
    assert stylize(client, CAT, STARRY, steps=1, masks=[wide])[0].startswith("Done")  # control


def test_the_docs_python_example_runs_as_written(client, served, tmp_path, monkeypatch):
    """docs/web-app.md's gradio_client example, with the cat and the Starry Night, a tiny size
    and few steps: it gets a picture."""
    code = _docs_example("python")
    code = code.replace("http://127.0.0.1:7860/", served.url)
    code = code.replace('"photo.jpg"', repr(str(CAT))).replace('"starry.jpg"', repr(str(STARRY)))
    code = code.replace("size=512", "size=64").replace("steps=200", "steps=2")
    scope: dict = {}
    exec(compile(code, "web-app.md", "exec"), scope)  # noqa: S102 - our own docs
    assert scope["status"].startswith("Done: 64×43")
    with Image.open(scope["picture"]) as img:
        assert img.size == (64, 43)


def test_the_docs_curl_example_runs_as_written(served, tmp_path):
    """docs/web-app.md's curl example, run by sh with the server's address, the test images and
    a tiny job: its last line is the stream's "complete" event with the picture."""
    done = _run_curl_example(served, ", 64, 2,", "-eu", timeout=300)
    assert done.returncode == 0, done.stderr
    events = [line for line in done.stdout.splitlines() if line.startswith("event:")]
    assert events[-1] == "event: complete", done.stdout[-500:]
    last_data = done.stdout.strip().splitlines()[-1]
    status, picture, *_ = json.loads(last_data.removeprefix("data:"))
    assert status.startswith("Done: 64×43")
    assert picture["path"].endswith(".png")


def test_the_curl_example_with_a_bad_size_gets_one_clear_error(served):
    """The same HTTP calls with a size beyond the server's limit: one line saying what is
    allowed (the test above is the positive control)."""
    done = _run_curl_example(served, ", 4096, 2,", "-u", timeout=120)
    assert (
        "Output size must be a whole number from 64 to 256, not 4096" in done.stdout + done.stderr
    )


def _run_curl_example(served, size_and_steps: str, flags: str, timeout: float):
    """docs/web-app.md's curl example run by sh against this server, with the test images and
    the documented ", 512, 200," (size, steps) replaced by size_and_steps."""
    curl = require_program("curl")
    require_program("jq")
    script = _docs_example("sh").replace("http://127.0.0.1:7860", served.url.rstrip("/"))
    script = script.replace("photo.jpg", str(CAT)).replace("starry.jpg", str(STARRY))
    script = script.replace(", 512, 200,", size_and_steps)
    return subprocess.run(
        ["sh", flags, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PATH": f"{Path(curl).parent}:{os.environ['PATH']}"},
    )


def _docs_example(language: str) -> str:
    """The first ```language block of docs/web-app.md's API section."""
    text = (ROOT / "docs" / "web-app.md").read_text()
    section = text[text.index("## Its API") :]
    start = section.index(f"```{language}\n") + len(language) + 4
    return section[start : section.index("```", start)]


def test_three_jobs_at_once_all_complete_one_engine_run_at_a_time(served):
    before = served.engine.calls
    clients = [Client(served.url, verbose=False) for _ in range(3)]  # three browser tabs
    jobs = [
        # Enough steps that the second and third tab wait while the first paints (the engine got
        # fast: at 3 steps a job could end between two looks at the queue).
        stylize(c, CAT, STARRY, size=64 + 16 * n, steps=20, submit=True)
        for n, c in enumerate(clients)
    ]
    waited = []

    def watch(job):
        while not job.done():
            s = job.status()
            if s.code == Status.IN_QUEUE and s.rank:
                waited.append(s.rank)
            time.sleep(0.05)

    watchers = [threading.Thread(target=watch, args=(j,), daemon=True) for j in jobs]
    for w in watchers:
        w.start()
    results = [job.result(timeout=300) for job in jobs]
    for w in watchers:
        w.join()
    sizes = []
    for status, image, _, _ in results:
        assert status.startswith("Done")
        with Image.open(image) as img:
            sizes.append(max(img.size))
    assert sizes == [64, 80, 96]  # each tab got its own picture
    assert served.engine.calls - before == 3
    assert served.engine.most_at_once == 1
    assert waited, "no waiting job was told its place in the queue"


def test_not_an_image_gives_a_clear_message_and_the_next_job_works(client, tmp_path, served):
    notes = tmp_path / "notes.png"
    notes.write_text("hello, not a picture")
    with pytest.raises(ValidationError) as caught:
        stylize(client, notes, STARRY)
    message = str(caught.value)
    assert "notes.png" in message and "not an image" in message
    assert str(tmp_path) not in message and "/tmp/gradio" not in message  # no server paths
    status, image, _, _ = stylize(client, CAT, STARRY, size=64, steps=2)
    assert status.startswith("Done")


def test_an_engine_failure_is_reported_without_internals_and_the_app_recovers(client, served):
    served.engine.fail_next = RuntimeError("boom in /srv/secret/engine.py")
    with pytest.raises(AppError) as caught:
        stylize(client, CAT, STARRY)
    assert "The engine failed (RuntimeError)" in str(caught.value)
    assert "secret" not in str(caught.value)
    status, _, _, _ = stylize(client, CAT, STARRY, size=64, steps=2)
    assert status.startswith("Done")


def test_missing_style_gives_a_clear_message(client):
    with pytest.raises(ValidationError, match="at least one style image"):
        stylize(client, CAT)


def test_too_many_pixels_is_refused_before_decoding(client, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (10_001, 10_001)).save(huge)  # 100,020,001 px, a few kB on disk
    with pytest.raises(ValidationError, match="huge.png.*too many pixels"):
        stylize(client, CAT, huge)


def test_an_upload_over_the_size_limit_is_refused(client, tmp_path):
    big = tmp_path / "big.png"
    noise = Image.effect_noise((1200, 1200), 80).convert("RGB")  # ~3 MB PNG, limit is 2 MB
    noise.save(big)
    assert big.stat().st_size > 2_000_000
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        stylize(client, CAT, big)


def test_size_beyond_the_servers_limit_is_refused(client):
    with pytest.raises(ValidationError, match="Output size must be .* from 64 to 256"):
        stylize(client, CAT, STARRY, size=4096)


def test_cancel_stops_within_a_step_and_keeps_the_best_picture(client):
    job = stylize(client, CAT, STARRY, size=128, steps=400, submit=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = job.status().progress_data
        if progress and progress[0].index and progress[0].index >= 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the job never reported progress")
    assert client.predict(api_name="/cancel").startswith("Stopping")
    status, image, download, _ = job.result(timeout=120)
    assert status.startswith("Stopped at step")
    stopped_at = int(status.split()[3])
    assert 2 <= stopped_at < 400
    with Image.open(image) as img:
        assert img.size == (128, 85)  # the best so far, still at the size asked for
    assert read_settings(image)["size"] == 128


def test_beyond_the_queue_bound_a_visitor_is_told_the_queue_is_full():
    """With a stand-in engine that holds the first job: one job runs, one waits, the next is
    refused (queue_size=1)."""
    entered, release = threading.Event(), threading.Event()

    def held_engine(checked, on_progress=None, cancel=None):
        entered.set()
        release.wait(60)
        stats = {"steps": 1, "total_steps": 1, "seconds": 0, "device": "CPU"}
        return StyleResult(image=Image.new("RGB", (64, 43)), stats=stats, settings={})

    demo = build_app(EngineRunner(held_engine), queue_size=1, examples_dir=None)
    launch(demo, server_name="127.0.0.1", server_port=free_port())
    try:
        clients = [Client(demo.local_url, verbose=False) for _ in range(3)]
        running = stylize(clients[0], CAT, STARRY, submit=True)
        assert entered.wait(30), "the first job never reached the engine"
        waiting = stylize(clients[1], CAT, STARRY, submit=True)
        deadline = time.monotonic() + 30
        while len(demo._queue) < 1:  # Gradio's count of waiting jobs (not a public API)
            assert time.monotonic() < deadline, "the second job never joined the queue"
            time.sleep(0.05)
        refused = stylize(clients[2], CAT, STARRY, submit=True)
        with pytest.raises(QueueError, match="Queue is full"):
            refused.result(timeout=30)
        release.set()
        assert running.result(timeout=60)[0].startswith("Done")
        assert waiting.result(timeout=60)[0].startswith("Done")
    finally:
        release.set()
        close(demo)
