"""Fixtures for the plug-in tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import CAT
from tests.plugin.helpers import CONTENT_SIZE


@pytest.fixture
def small_content(tmp_path) -> Path:
    """The cat, 96 x 64, as the document the editor opens."""
    path = tmp_path / "cat96.png"
    Image.open(CAT).convert("RGB").resize(CONTENT_SIZE, Image.Resampling.LANCZOS).save(path)
    return path
