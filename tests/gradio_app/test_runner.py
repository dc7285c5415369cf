"""The web app paints through the core's engine host (its tests: tests/engine/test_host.py)."""

from impasto.gradio_app.runner import EngineRunner
from impasto.host import EngineHost


def test_the_web_app_runner_is_the_engine_host():
    assert EngineRunner is EngineHost
