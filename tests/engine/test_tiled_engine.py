"""The engine above its memory budget: a small picture with a tiny budget is painted in tiles,
gives the picture an untiled run gives, says so at the start, checkpoints every step and
resumes. fine-texture's layers (down to block3: a 16 px halo) keep the tiles cheap here."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import impasto
from impasto.engine import memory
from impasto.engine.checkpoint import load
from tests.conftest import CAT, STARRY

pytestmark = pytest.mark.usefixtures("weights_available")

# A budget in which 128x85 px does not fit untiled but tiles of about 48 px do.
TINY = int(memory.BASE + 20 * 2**20)


def job(budget=None, **kw):
    over = {"steps": [3], "min_size": 128, "precision": "float32", "max_memory": budget}
    over.update(kw.pop("overrides", {}))
    return impasto.StyleJob(
        content=CAT, styles=[STARRY], preset="fine-texture", size=128, overrides=over, **kw
    )


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, np.float32)


def test_a_tiny_budget_tiles_and_gives_the_untiled_picture():
    engine = impasto.load_engine()
    tiled_job = impasto.check_job(job(TINY))
    info = engine.describe(tiled_job)
    assert info["tiles"][0] is not None and info["tiles"][0] < 128
    assert info["max_memory"] == memory.format_size(TINY)
    whole = engine.describe(impasto.check_job(job()))
    assert whole["tiles"] == [None]

    tiled = engine.stylize(tiled_job)
    untiled = engine.stylize(job())
    for key, value in untiled.stats["losses"].items():
        assert tiled.stats["losses"][key] == pytest.approx(value, rel=1e-4), key
    # The same steps: the pictures differ by float32 rounding at most (one level of 255).
    assert np.abs(pixels(tiled) - pixels(untiled)).max() <= 1


def test_the_start_line_says_tiles_and_how_long(capsys):
    from impasto.progress import BarProgress

    info = impasto.load_engine().describe(impasto.check_job(job(TINY)))
    BarProgress().start(info)
    line = capsys.readouterr().err
    assert f"128x85 (in tiles of {info['tiles'][0]} px)" in line
    assert f"tiled to stay within {info['max_memory']} of memory" in line
    if info["estimate_seconds"] is not None:
        assert "on this machine" in line


def test_an_overnight_job_is_called_one(capsys):
    from impasto.progress import BarProgress

    info = {"preset": "print", "device": "CPU", "precision": "bfloat16", "total": 40,
            "scales": [[4096, 4096, 40]], "tiles": [1232], "max_memory": "8G",
            "estimate_seconds": 9 * 3600}  # fmt: skip
    BarProgress().start(info)
    line = capsys.readouterr().err
    assert "about 9 h 00 min on this machine (an overnight job" in line


def test_a_budget_too_small_for_any_tile_is_refused_before_painting():
    with pytest.raises(impasto.ImpastoError, match=r"needs at least .* of memory"):
        impasto.stylize(job(int(memory.BASE + 2**20), overrides={"steps": [1]}), cancel=None)


def test_tiled_checkpoints_every_step_and_resume_gives_the_uninterrupted_picture(tmp_path):
    over = {"steps": [4]}
    full = impasto.stylize(job(TINY, overrides=over))
    ckpt = tmp_path / "state.npz"
    cancel = threading.Event()
    saved_at = []

    def watch(event):
        # checkpoint_every is 50, but a tiled step is saved as soon as it is done.
        saved_at.append(int(np.load(ckpt)["position"][2]))
        if event.step == 2:
            cancel.set()

    first = impasto.stylize(
        job(TINY, overrides=over, checkpoint=ckpt, checkpoint_every=50),
        on_progress=watch,
        cancel=cancel,
    )
    assert first.cancelled and saved_at == [1, 2]
    # Resumed, it finishes the uninterrupted picture; a checkpoint fits any budget (last line).
    resumed = impasto.stylize(job(TINY, overrides=over, resume=ckpt))
    assert resumed.stats["steps"] == 4
    assert np.abs(pixels(resumed) - pixels(full)).max() <= 1
    assert load(ckpt, impasto.check_job(job(None, overrides=over)).settings()).step == 2
