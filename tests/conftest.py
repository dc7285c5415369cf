"""Shared test set-up: the test images, isolated user folders, and external-program checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The suite carries its own images (provenance in tests/data/SOURCES.md): a clone anywhere runs.
DATA = ROOT / "tests" / "data"
CAT = DATA / "chelsea_cat.png"
STARRY = DATA / "vangogh_starry_night_1889.jpg"
WAVE = DATA / "hokusai_great_wave_off_kanagawa_c1831.jpg"


def skip_or_fail(message: str) -> None:
    """Skip a test whose external program or set-up is missing, but fail under CI, so that CI
    cannot pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run this test (.ci/run sets it up)")
    pytest.skip(message)


def require_program(name: str) -> str:
    """The path of an external program (see skip_or_fail when it is missing)."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed")
    return path


def as_unprivileged_user(check) -> str:
    """str(check()), or "ErrorName: message" if it raises, run as `nobody` when we are root
    (root reads and writes everything, so permission tests need another user), else as
    ourselves."""

    def outcome() -> str:
        try:
            return str(check())
        except Exception as exc:  # noqa: BLE001 - the test compares the message
            return f"{type(exc).__name__}: {exc}"

    if os.geteuid() != 0:
        return outcome()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, run the check, report, and leave without cleanup
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, outcome().encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as fh:
        return fh.read().decode()


def _find_weights() -> str | None:
    from impasto.engine import weights

    st = weights.status()
    return str(st.path) if st.path else None


_WEIGHTS = _find_weights()
if _WEIGHTS:
    # For the whole session, module-scoped fixtures (a server, an editor) included: they start
    # before the per-test folders below, whose empty data folder holds no weights.
    os.environ["IMPASTO_WEIGHTS"] = _WEIGHTS


# Precision `auto` decided once for the whole session, as a user's machine decides it once: on a
# busy machine a near tie could otherwise go one way in a test's reference run and the other way
# in the editor it compares with. Every test's cache folder starts with this decision (tests
# marked fresh_precision_cache excepted), and so do editors and servers that module fixtures
# start before the per-test folders exist.
_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="impasto-test-cache-"))
os.environ["XDG_CACHE_HOME"] = str(_SESSION_CACHE)
# No test, module fixtures' editors and servers included, reaches a developer's own engine
# server (impasto engine start): the socket is looked for in a runtime folder of the session's.
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="impasto-test-run-")
if _WEIGHTS:
    subprocess.run(
        [sys.executable, "-c", "from impasto.engine.precision import resolve; resolve('auto')"],
        check=True,
        capture_output=True,
    )
_PRECISION_CACHE = _SESSION_CACHE / "impasto" / "precision.json"


@pytest.fixture(autouse=True)
def isolated_user_folders(tmp_path_factory, monkeypatch, request):
    """Each test gets empty config/data/cache/runtime folders, so a developer's own presets (or
    engine server) never leak in; the verified weights found at start stay reachable through
    IMPASTO_WEIGHTS (set above), and the session's precision decision through the cache folder
    (see above)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    # Where the engine server's socket is looked for: never a developer's own running server.
    (home / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    if _PRECISION_CACHE.is_file() and not request.node.get_closest_marker("fresh_precision_cache"):
        (home / "cache" / "impasto").mkdir(parents=True)
        shutil.copy(_PRECISION_CACHE, home / "cache" / "impasto" / "precision.json")
    yield


@pytest.fixture
def weights_available():
    if not _WEIGHTS:
        pytest.fail("VGG19 weights are not installed: run `impasto weights install` (make does)")


def pytest_unconfigure(config):
    """A test that fails while a non-daemon thread of its own still runs (a server thread it
    meant to stop) would keep the interpreter waiting for that thread for ever after the
    summary: CI then times out instead of showing the failure. Give such threads a moment,
    then name them and leave with a failing status."""
    import threading

    stray = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    for thread in stray:
        thread.join(10)
    stray = [t.name for t in stray if t.is_alive()]
    if stray:
        sys.stderr.write(f"tests left threads running, exiting without them: {stray}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)
