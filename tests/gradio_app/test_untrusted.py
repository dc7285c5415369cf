"""What a visitor sends is untrusted (issue 14), tried against a served app through gradio_client
and plain HTTP: presets are taken by name only and anything else is refused without the file
being opened; images only from Gradio's upload folder; a preset's style_scale cannot take the
style image beyond --max-size; /cancel answers API callers; and no request, however malformed,
puts a traceback in the server's stderr."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import ValidationError
from PIL import Image

from impasto.gradio_app.app import results_folder
from impasto.images import read_settings
from impasto.presets import load_library_preset, shipped_preset_dir, user_preset_dir
from tests.conftest import CAT, STARRY
from tests.gradio_app.conftest import MAX_SIZE, MAX_STEPS, free_port
from tests.gradio_app.test_api import stylize
from tests.gradio_app.test_serve import start_serve, stop, wait_for_line


def recipe_text(name: str, style_scale: float = 1.0) -> str:
    """A valid recipe: the shipped classic, renamed, with the given style_scale."""
    text = (shipped_preset_dir() / "classic.toml").read_text()
    text = re.sub(r"(?m)^name\s*=.*$", f'name = "{name}"', text, count=1)
    return re.sub(r"(?m)^style_scale\s*=.*$", f"style_scale = {style_scale}", text, count=1)


def upload(base_url: str, path: Path) -> str:
    """Upload a file through Gradio's own upload route, as any visitor can; its server path."""
    with path.open("rb") as fh:
        answer = httpx.post(f"{base_url}gradio_api/upload", files=[("files", (path.name, fh))])
    answer.raise_for_status()
    (server_path,) = answer.json()
    return server_path


def refusal(exc: ValidationError) -> str:
    """The app's one line in gradio_client's report of a refused job."""
    return str(exc).splitlines()[-1].removeprefix("- photo: ")  # shown at the first input


def call(base_url: str, api_name: str, body: str) -> tuple[str, object]:
    """A plain-HTTP API call (POST, then read the event stream): the last event and its data,
    or ("refused", the app's message) when the job was refused before it queued."""
    with httpx.Client(base_url=base_url, timeout=120) as http:
        posted = http.post(
            f"gradio_api/call/{api_name}",
            content=body,
            headers={"content-type": "application/json"},
        )
        if posted.status_code == 422 and "validate" in posted.text:
            (message,) = [v["message"] for v in posted.json()["detail"] if not v["is_valid"]]
            return "refused", message
        if posted.status_code != 200:
            return f"HTTP {posted.status_code}", posted.text
        stream = http.get(f"gradio_api/call/{api_name}/{posted.json()['event_id']}").text
    event, data = re.findall(r"(?m)^event: (\w+)\ndata: (.*)$", stream)[-1]
    return event, json.loads(data)


PRESET, SIZE, STEPS = 7, 8, 9  # positions in /stylize's 16 values


def form_data(photo, style, changes: dict[int, object] | None = None) -> list:
    """The 16 values of /stylize as plain JSON (no masks), images as Gradio file payloads;
    changes replace values by position."""

    def file(path):
        return {"path": path, "meta": {"_type": "gradio.FileData"}}

    data = [file(photo), file(style), 1.0, None, 1.0, None, 1.0, "classic", 64, 2, 1.0, "none", 0]
    data += [None, None, None]
    for index, value in (changes or {}).items():
        data[index] = value
    return data


@pytest.fixture
def client(served):
    return Client(served.url, verbose=False)


@pytest.fixture
def evil_recipe(tmp_path) -> Path:
    """A valid recipe outside the preset library, asking for a 16x style image."""
    path = tmp_path / "evil.toml"
    path.write_text(recipe_text("evil", style_scale=16))
    return path


@pytest.mark.parametrize("kind", ["a system file", "a missing file", "a recipe file"])
def test_a_path_as_preset_is_refused_without_the_file_being_opened(
    client, served, evil_recipe, opened_files, kind
):
    target = {
        "a system file": Path("/etc/passwd"),
        "a missing file": evil_recipe.with_name("missing.toml"),
        "a recipe file": evil_recipe,
    }[kind]
    before = served.engine.calls
    with pytest.raises(ValidationError) as refused:
        stylize(client, CAT, STARRY, preset=str(target))
    assert not opened_files.saw(target)
    assert served.engine.calls == before
    message = refusal(refused.value)
    assert message.startswith("Unknown preset") and "choose one of:" in message
    assert "classic" in message  # the visitor learns what they may pick
    load_library_preset("classic")  # the spy does see preset files being opened
    assert opened_files.saw(shipped_preset_dir() / "classic.toml")


def test_an_uploaded_recipe_named_by_its_server_path_is_refused_unopened(
    client, served, evil_recipe, opened_files
):
    server_path = upload(served.url, evil_recipe)
    assert Path(server_path).is_file()  # it is there, on this machine
    opened_files.paths.clear()
    before = served.engine.calls
    with pytest.raises(ValidationError) as refused:
        stylize(client, CAT, STARRY, preset=server_path)
    assert not opened_files.saw(server_path)
    assert served.engine.calls == before
    assert re.match(r"Unknown preset '/.+; choose one of: ", refusal(refused.value))


def test_an_image_named_by_a_server_path_is_refused_unopened(served, tmp_path, opened_files):
    """With preprocess=False, Gradio passes a file payload without its "meta" straight through;
    the app itself refuses any image that is not in Gradio's upload folder."""
    secret = tmp_path / "secret.png"
    Image.new("RGB", (64, 64), "red").save(secret)
    data = form_data(None, upload(served.url, STARRY), {0: {"path": str(secret)}})
    opened_files.paths.clear()  # the test's own writing of it
    before = served.engine.calls
    event, answer = call(served.url, "stylize", json.dumps({"data": data}))
    assert event == "refused"
    assert answer == "The photo was not uploaded to this server; upload it again"
    assert not opened_files.saw(secret)
    assert served.engine.calls == before


def test_a_presets_style_scale_cannot_take_the_style_beyond_max_size(client, monkeypatch):
    """A preset of the server's own library asking for a 16x style image: the style is worked
    at --max-size (256 here) at most, and the visitor is told."""
    user_preset_dir().mkdir(parents=True, exist_ok=True)
    (user_preset_dir() / "huge-style.toml").write_text(recipe_text("huge-style", style_scale=16))
    worked = []  # the (w, h) of every image the engine turns into an array

    import impasto.engine.loop

    real = impasto.engine.loop.to_array

    def spy(img, size=None):
        array = real(img, size)
        worked.append(array.shape[1::-1])
        return array

    monkeypatch.setattr(impasto.engine.loop, "to_array", spy)
    status, image, _, _ = stylize(client, CAT, STARRY, size=64, steps=2, preset="huge-style")
    assert status.startswith("Done: 64×43")
    assert f"style images worked at {MAX_SIZE} px, this server's limit" in status
    assert max(max(size) for size in worked) == MAX_SIZE  # the style, at the limit, no more
    recipe = read_settings(image)["recipe"]
    assert recipe["name"] == "huge-style" and recipe["style_scale"] * 64 == MAX_SIZE


def test_cancel_answers_an_api_caller_with_nothing_running(client):
    answer = client.submit(api_name="/cancel").result(timeout=30)
    assert answer == "Nothing of yours is running."


def test_odd_values_from_plain_http_get_one_line_each(served):
    """Values no page would send (NaN and infinity as JSON carries them, wrong types): each
    gets its own one-line answer, not Gradio's generic error, and the app still paints."""
    photo, style = upload(served.url, CAT), upload(served.url, STARRY)
    cases = [
        ({PRESET: 5}, "Unknown preset 5; choose one of: "),
        ({SIZE: float("nan")}, f"Output size must be a whole number from 64 to {MAX_SIZE}"),
        ({STEPS: float("inf")}, f"Steps must be a whole number from 1 to {MAX_STEPS}, not inf"),
        ({2: float("nan")}, "Blend weight of style 1 must be a number from 0 to 1, not nan"),
        ({10: "lots"}, "Style strength must be a number from 0.25 to 4, not 'lots'"),
        ({11: ["none"]}, "Colours must be one of none, luminance, histogram"),
    ]
    for changes, message in cases:
        body = json.dumps({"data": form_data(photo, style, changes)})  # NaN as JSON allows
        event, answer = call(served.url, "stylize", body)
        assert event == "refused" and answer.startswith(message)
    event, answer = call(served.url, "stylize", json.dumps({"data": form_data(photo, style)}))
    assert event == "complete" and answer[0].startswith("Done")


def test_output_names_are_built_from_sanitised_pieces(client, served, tmp_path):
    """The picture's file name comes from the photo's name and the preset's, made safe."""
    user_preset_dir().mkdir(parents=True, exist_ok=True)
    (user_preset_dir() / "my look;1.toml").write_text(recipe_text("my look"))
    photo = tmp_path / "we;ird $(name) «é».png"
    shutil.copy(CAT, photo)
    status, _, _, _ = stylize(client, photo, STARRY, size=64, steps=1, preset="my look;1")
    assert status.startswith("Done")
    (name,) = [p.name for p in results_folder(served.demo).rglob("*my-look-1-seed0.png")]
    assert re.fullmatch(r"we-ird-[\w-]+-é--my-look-1-seed0\.png", name)  # letters, digits, - _


def test_no_request_puts_a_traceback_in_the_servers_stderr(evil_recipe, tmp_path):
    """`impasto serve` as users run it, sent every kind of bad request we know of: the log keeps
    one line per refused job or request, never a traceback, never a file's contents."""
    port = free_port()
    proc, lines = start_serve("--port", str(port), "--max-size", "128")
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for_line(lines, "impasto: serving on")
        harmless = tmp_path / "harmless.toml"  # a quick job before this issue: painted, crashed
        harmless.write_text(recipe_text("harmless"))
        photo, style = upload(base, CAT), upload(base, STARRY)
        refused_jobs = [
            {PRESET: "/etc/passwd"},
            {PRESET: upload(base, harmless)},
            {PRESET: str(evil_recipe)},
            {PRESET: ["classic"]},
            {SIZE: float("nan")},
            {0: {"path": "/etc/hostname"}},
        ]
        for changes in refused_jobs:
            body = json.dumps({"data": form_data(photo, style, changes)})
            assert call(base, "stylize", body)[0] == "refused"
        malformed = [
            form_data(photo, style)[:5],  # too few values
            form_data(photo, style, {0: "/etc/hostname"}),  # a file slot holding a string
            form_data("/etc/hostname", style),  # a file outside the upload folder
        ]
        # Refused by Gradio as it calls the app's check, before the job queues: HTTP 400 with
        # Gradio's one-line reason, nothing in the server's stderr.
        answers = [call(base, "stylize", json.dumps({"data": data}))[0] for data in malformed]
        assert answers == ["HTTP 400"] * len(malformed)
        assert call(base, "no-such-endpoint", json.dumps({"data": []}))[0] == "HTTP 500"
        assert call(base, "stylize", "{not json")[0] == "HTTP 422"
        answer = call(base, "cancel", json.dumps({"data": []}))
        assert answer == ("complete", ["Nothing of yours is running."])
        event, answer = call(base, "stylize", json.dumps({"data": form_data(photo, style)}))
        assert event == "complete" and answer[0].startswith("Done")
    finally:
        code, stderr = stop(proc)
    assert code == 0
    assert "Traceback" not in stderr
    assert "root:" not in stderr  # nothing of /etc/passwd
    log = [line for line in stderr.splitlines() if line not in START_AND_STOP]
    assert sum(line.startswith("impasto: refused a job: ") for line in log) == len(refused_jobs)
    others = [line for line in log if not line.startswith("impasto: refused a ")]
    assert len(others) == 1 and "Exception in ASGI application: FnIndexInferError" in others[0]


START_AND_STOP = {"impasto: loading the engine…", "impasto: stopping"}


def test_an_upload_over_the_size_limit_is_refused_over_plain_http(served, tmp_path):
    """gradio_client checks the limit itself; a hand-made request meets the server's check."""
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 3_000_000)  # the served app's limit is 2 MB
    with big.open("rb") as fh:
        answer = httpx.post(f"{served.url}gradio_api/upload", files=[("files", ("big.png", fh))])
    assert answer.status_code == 413
