"""`impasto serve` as a user starts it: a share link that cannot be made leaves the app serving
locally with one line saying why; sharing without --auth warns; --auth locks the app; a stop
signal ends it cleanly; bad options are one line and exit 2.

The share server is made unreachable on purpose (HTTPS_PROXY points at a closed local port), so
these tests behave the same with or without internet and never open a public tunnel.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.gradio_app.conftest import free_port


def start_serve(*options: str, env: dict | None = None) -> tuple[subprocess.Popen, queue.Queue]:
    """Run `impasto serve` and read its stdout lines in the background."""
    environment = {k: v for k, v in os.environ.items() if k != "IMPASTO_AUTH"}
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    environment.update(HTTPS_PROXY=nowhere, HTTP_PROXY=nowhere, NO_PROXY="127.0.0.1,localhost")
    environment.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto.cli", "serve", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    lines: queue.Queue = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def wait_for_line(lines: queue.Queue, starts: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith(starts):
            return line
    pytest.fail(f"no line starting {starts!r}; stdout was: {seen}")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("impasto serve did not stop after SIGTERM")
    return proc.returncode, proc.stderr.read()


def test_share_without_internet_keeps_serving_and_says_why_in_one_line():
    port = free_port()
    proc, lines = start_serve("--share", "--port", str(port))
    try:
        serving = wait_for_line(lines, "impasto: serving on")
        assert f"http://127.0.0.1:{port}/" in serving
        no_link = wait_for_line(lines, "impasto: no public link:")
        assert "cannot reach Gradio's share server" in no_link
        assert f"still serving on http://127.0.0.1:{port}/" in no_link
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "impasto" in page.text
    finally:
        code, stderr = stop(proc)
    assert code == 0
    assert "Traceback" not in stderr
    warnings = [line for line in stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "sharing without --auth" in warnings[0]


def test_auth_locks_the_app_and_silences_the_warning():
    port = free_port()
    proc, lines = start_serve("--port", str(port), env={"IMPASTO_AUTH": "ana:long-secret"})
    try:
        wait_for_line(lines, "impasto: serving on")
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/config", timeout=30).status_code == 401
        with httpx.Client(base_url=base, timeout=30) as browser:
            wrong = browser.post("/login", data={"username": "ana", "password": "guess"})
            assert wrong.status_code == 400
            assert browser.get("/config").status_code == 401
            right = browser.post("/login", data={"username": "ana", "password": "long-secret"})
            assert right.status_code == 200
            assert browser.get("/config").status_code == 200
    finally:
        code, stderr = stop(proc)
    assert code == 0
    assert "warning" not in stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--auth", "ana"], "--auth must be USER:PASS"),
        (["--port", "70000"], "--port must be 1 to 65535"),
        (["--max-size", "10"], "--max-size must be 64 to 8192"),
        (["--max-memory", "8X"], "--max-memory: '8X' is not a memory size like 8G"),
        (["--max-memory", "nan"], "--max-memory: 'nan' is not a memory size"),
        (["--jobs-per-visitor", "0"], "--max-steps, --queue-size, --jobs-per-visitor and"),
        (
            ["--max-memory", "2G", "--max-size", "8192"],
            "--max-size 8192 px needs more memory than --max-memory 2G (at most",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(options, message):
    done = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "serve", *options],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"impasto: error: {message}")
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "impasto.cli", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"impasto: error: port {port} on 127.0.0.1 is in use; pick another with --port"
    )
