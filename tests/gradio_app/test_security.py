"""Issue 21, the web app: inputs are checked before a job queues for the engine (a hostile EPS
is refused at once while another visitor's job paints), one visitor cannot fill the queue, the
server's folders stay private and out of messages, and the Guard throttles logins, closes the
routes Gradio leaves open with --auth and holds each address to an upload quota.

The engine here is a stand-in that paints nothing and holds each job until the test lets it go,
so these tests need neither TensorFlow nor the weights and control exactly what runs when.
"""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import ValidationError
from PIL import Image

from impasto.gradio_app import guard
from impasto.gradio_app.app import build_app, close, launch, server_folder
from impasto.gradio_app.runner import EngineRunner
from impasto.job import StyleResult
from tests.conftest import CAT, STARRY
from tests.gradio_app.conftest import free_port
from tests.gradio_app.test_api import stylize
from tests.gradio_app.test_untrusted import upload

# PostScript that never ends: Ghostscript, if anything handed the file to it, would spin forever.
HOSTILE_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ } loop\n"


class HeldEngine:
    """Holds every job until release() (or its cancel); returns a small picture."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = threading.Semaphore(0)
        self.calls = 0

    def __call__(self, checked, on_progress=None, cancel=None):
        self.calls += 1
        self.started.release()
        while not (self.go.is_set() or cancel.is_set()):
            time.sleep(0.02)
        stats = {"steps": 1, "total_steps": 1, "seconds": 0.1, "device": "CPU"}
        image = Image.new("RGB", (64, 43), "gray")
        return StyleResult(image, stats, checked.settings(), cancelled=cancel.is_set())

    def wait_started(self) -> None:
        assert self.started.acquire(timeout=30), "the engine never got the job"


@pytest.fixture
def held():
    """An app around a HeldEngine, 2 jobs per visitor; every test's jobs end with the test."""
    engine = HeldEngine()
    demo = build_app(EngineRunner(engine), examples_dir=None, jobs_per_visitor=2)
    launch(demo, server_name="127.0.0.1", server_port=free_port())
    try:
        yield demo, engine
    finally:
        engine.go.set()
        close(demo)


def client_of(demo) -> Client:
    return Client(demo.local_url, verbose=False)


def test_a_hostile_eps_is_refused_at_once_while_another_job_paints(held, tmp_path):
    """The check runs before the job queues, not in the engine's one slot: the EPS (named .jpg
    too) is refused in well under a second although the engine is busy, and the same request
    with a real photo is accepted and painted once the engine is free."""
    demo, engine = held
    painting = stylize(client_of(demo), CAT, STARRY, submit=True)
    engine.wait_started()
    for name in ("hostile.eps", "hostile.jpg"):
        eps = tmp_path / name
        eps.write_bytes(HOSTILE_EPS)
        visitor = client_of(demo)
        started = time.monotonic()
        with pytest.raises(ValidationError) as refused:  # not a TimeoutError: not queued
            stylize(visitor, eps, STARRY, submit=True).result(timeout=5)
        assert time.monotonic() - started < 1.0
        (line,) = [ln for ln in str(refused.value).splitlines() if name in ln]
        assert line.endswith(
            f"Content image '{name}': not an image impasto reads (BMP, GIF, JPEG, PNG, TIFF, WEBP)"
        )
        assert not painting.done()  # the other visitor's job is still painting
    valid = stylize(client_of(demo), CAT, STARRY, submit=True)  # positive control
    engine.go.set()
    assert painting.result(timeout=60)[0].startswith("Done")
    assert valid.result(timeout=60)[0].startswith("Done")
    assert engine.calls == 2


def test_one_visitor_cannot_fill_the_queue(held):
    """Two jobs waiting or painting per visitor: a third is refused at once, not queued; once
    one has finished, the same request is accepted."""
    demo, engine = held
    first = stylize(client_of(demo), CAT, STARRY, submit=True)
    engine.wait_started()
    second = stylize(client_of(demo), CAT, STARRY, submit=True)  # another tab, same visitor
    with pytest.raises(ValidationError, match="You already have 2 jobs waiting or painting"):
        stylize(client_of(demo), CAT, STARRY, submit=True).result(timeout=30)
    assert engine.calls == 1
    engine.go.set()
    assert first.result(timeout=60)[0].startswith("Done")
    assert second.result(timeout=60)[0].startswith("Done")
    status, *_ = stylize(client_of(demo), CAT, STARRY)  # positive control
    assert status.startswith("Done")


def test_simultaneous_submissions_cannot_slip_past_the_limit(held):
    """Five tabs of one visitor press Run at the same moment: two jobs are taken, three refused."""
    demo, engine = held
    jobs = [stylize(client_of(demo), CAT, STARRY, submit=True) for _ in range(5)]
    deadline = time.monotonic() + 30
    while sum(job.done() for job in jobs) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.go.set()
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(job.result(timeout=60)[0].split(":")[0])
        except ValidationError:
            outcomes.append("refused")
    assert sorted(outcomes) == ["Done", "Done", "refused", "refused", "refused"]


def test_uploads_and_results_stay_in_a_private_folder_removed_at_close(tmp_path):
    engine = HeldEngine()
    engine.go.set()
    demo = build_app(EngineRunner(engine), examples_dir=None)
    launch(demo, server_name="127.0.0.1", server_port=free_port())
    root = server_folder(demo)
    try:
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        uploaded = Path(upload(demo.local_url, CAT))
        assert uploaded.is_relative_to(root)  # not the shared /tmp/gradio
        status, image, _, _ = stylize(client_of(demo), CAT, STARRY)
        assert status.startswith("Done")
        kept = {p.relative_to(root).parts[0] for p in root.rglob(Path(image).name)}
        assert kept == {"results", "uploads"}  # the picture, and Gradio's copy for the page
    finally:
        close(demo)
    assert not root.exists()


@pytest.mark.parametrize("name", ["a\u00a0b.jpg", "line\u2028break.jpg"])
def test_a_broken_upload_with_an_escaped_name_is_named_without_the_servers_folder(
    held, tmp_path, name
):
    demo, _ = held
    broken = tmp_path / name
    broken.write_bytes(CAT.read_bytes()[:2000])  # a JPEG cut short
    with pytest.raises(ValidationError) as refused:
        stylize(client_of(demo), broken, STARRY)
    message = str(refused.value)
    assert f"Content image {name!r}: " in message
    assert str(server_folder(demo)) not in message and "/tmp" not in message
    held[1].go.set()
    status, *_ = stylize(client_of(demo), CAT, STARRY)  # positive control
    assert status.startswith("Done")


@pytest.fixture
def locked():
    """An app with --auth."""
    engine = HeldEngine()
    engine.go.set()
    demo = build_app(EngineRunner(engine), examples_dir=None, upload_quota=3 * 1024**2)
    launch(demo, server_name="127.0.0.1", server_port=free_port(), auth=("ana", "long-secret"))
    try:
        yield demo.local_url
    finally:
        close(demo)


def login(http: httpx.Client, password: str) -> int:
    return http.post("login", data={"username": "ana", "password": password}).status_code


def test_failed_logins_are_throttled_per_address(locked):
    with httpx.Client(base_url=locked) as http:
        for _ in range(guard.LOGIN_FAILURES):
            assert login(http, "guess") == 400
        answer = http.post("login", data={"username": "ana", "password": "long-secret"})
        assert answer.status_code == 429  # even the right password, until the window passes
        assert "Too many failed logins" in answer.json()["detail"]


def test_routes_gradio_leaves_open_need_the_login(locked):
    probes = [
        ("GET", "gradio_api/heartbeat/abc", None),
        ("POST", "gradio_api/cancel", {"session_hash": "x", "fn_index": 0, "event_id": "y"}),
        ("POST", "gradio_api/reset", {"session_hash": "x", "fn_index": 0, "event_id": "y"}),
        ("POST", "gradio_api/stream/abc", {"data": [], "session_hash": "x"}),
    ]
    with httpx.Client(base_url=locked, timeout=10) as http:
        for method, path, body in probes:
            assert http.request(method, path, json=body).status_code == 401, path
        assert login(http, "long-secret") == 200  # positive control: logged in, answered
        for method, path, body in probes[1:3]:
            assert http.request(method, path, json=body).status_code != 401, path


def test_logins_expire(locked, monkeypatch):
    with httpx.Client(base_url=locked) as http:
        assert login(http, "long-secret") == 200
        assert http.get("config").status_code == 200
        monkeypatch.setattr(guard, "LOGIN_LIFETIME", 0.0)
        time.sleep(0.01)
        assert http.get("config").status_code == 401  # Gradio itself forgot the token


def test_uploads_are_held_to_a_quota_per_address(locked, tmp_path):
    """3 MB an hour here: a 2 MB upload passes, a second one does not."""
    picture = tmp_path / "two-mb.png"
    picture.write_bytes(b"\0" * 2 * 1024**2)
    with httpx.Client(base_url=locked, timeout=30) as http:
        assert login(http, "long-secret") == 200
        for expected in (200, 413):
            with picture.open("rb") as fh:
                answer = http.post("gradio_api/upload", files=[("files", (picture.name, fh))])
            assert answer.status_code == expected
        assert "Upload quota reached" in answer.json()["detail"]
