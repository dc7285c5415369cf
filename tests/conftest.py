"""Shared test set-up: the test images, isolated user folders, and external-program checks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The suite carries its own images (provenance in tests/data/SOURCES.md): a clone anywhere runs.
DATA = ROOT / "tests" / "data"
CAT = DATA / "chelsea_cat.png"
STARRY = DATA / "vangogh_starry_night_1889.jpg"
WAVE = DATA / "hokusai_great_wave_off_kanagawa_c1831.jpg"


def require_program(name: str) -> str:
    """The path of an external program; skip without it, but fail under CI so CI cannot pass
    by skipping."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message}, and CI must run this test (.ci/run installs it)")
        pytest.skip(message)
    return path


def _find_weights() -> str | None:
    from impasto import weights

    st = weights.status()
    return str(st.path) if st.path else None


_WEIGHTS = _find_weights()
if _WEIGHTS:
    # For the whole session, module-scoped fixtures (a server, an editor) included: they start
    # before the per-test folders below, whose empty data folder holds no weights.
    os.environ["IMPASTO_WEIGHTS"] = _WEIGHTS


@pytest.fixture(autouse=True)
def isolated_user_folders(tmp_path_factory, monkeypatch):
    """Each test gets empty config/data/cache folders, so a developer's own presets never leak in;
    the verified weights found at start stay reachable through IMPASTO_WEIGHTS (set above)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    yield


@pytest.fixture
def weights_available():
    if not _WEIGHTS:
        pytest.fail("VGG19 weights are not installed: run `impasto weights install` (make does)")
