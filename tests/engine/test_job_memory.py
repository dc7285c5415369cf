"""One memory plan for everything a job allocates (issue 21): the style pictures (sized from what
was asked, their Gram pass counted), the decoded inputs, the colour transfer (at the working
size), and the one budget every door resolves the same way."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto.engine import color, memory
from impasto.errors import InputError
from impasto.job import StyleJob, check_job
from tests.conftest import STARRY

pytestmark = pytest.mark.usefixtures("weights_available")

G = 2**30


@pytest.fixture(scope="module")
def engine():
    return impasto.load_engine()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def test_a_thin_photo_keeps_its_style_at_the_asked_size_and_fits_2g(engine):
    # 512:1 at --size 64: worked on at 8192x16 so VGG19 has 16 px a side; the style used to be
    # sized from that stretched long side, 8192 px, tens of gigabytes for a 64 px picture.
    job = StyleJob(
        content=noise(8192, 16), styles=[STARRY], size=64, overrides={"max_memory": "2G"}
    )
    checked = check_job(job)
    [(size, _)] = engine.plan(checked)  # every scale is the same stretched picture
    assert size == (8192, 16)
    style = engine.style_size(checked, checked.styles[0][0].rgb.size, size)
    assert max(style) == 64  # the asked long side, at style_scale 1
    [plan] = engine.memory_plans(checked, "float32")
    assert plan.tile is None and plan.estimate <= 2 * G


def test_the_style_pass_is_counted_and_a_style_too_big_is_refused_before_any_work(engine):
    def plans(style_scale, budget):
        job = StyleJob(
            content=noise(128, 96),
            styles=[noise(2000, 2000)],
            size=64,
            overrides={"max_memory": budget, "style_scale": style_scale, "steps": [2]},
        )
        return engine.memory_plans(check_job(job), "float32")

    # Positive control: at the preset's scale the style is as small as the picture.
    [small] = plans(1.0, "1.1G")
    assert small.tile is None and small.estimate <= 1.1 * G
    # 40 times the 64 px output: a 2560 px style whose Gram pass alone is about 6.5 GB whole.
    # The plan counts it: tiles (the style's Grams are summed tile by tile too) within 1.3G ...
    [tiled] = plans(40.0, "1.3G")
    assert tiled.tile is not None and tiled.estimate <= 1.3 * G
    # ... and below what even the smallest tiles need, a refusal at once, in one line that
    # names the way out.
    with pytest.raises(InputError) as err:
        plans(40.0, "1.1G")
    assert "needs at least" in str(err.value) and "--style-scale" in str(err.value)
    assert "\n" not in str(err.value)


def test_the_plan_counts_the_inputs_at_full_resolution_and_the_colour_transfer(engine):
    def estimate(content, preserve_color="none"):
        job = StyleJob(
            content=content,
            styles=[noise(64, 64)],
            size=64,
            overrides={"preserve_color": preserve_color, "max_memory": "8G"},
        )
        return engine.memory_plans(check_job(job), "float32")[-1].estimate

    small, large = noise(300, 200), noise(3000, 2000)
    assert estimate(large) - estimate(small) == (3000 * 2000 - 300 * 200) * memory.INPUT_BYTES
    # The colour transfer at the finest scale's sizes: the picture 64x43 and the style 64x64.
    added = estimate(small, "histogram") - estimate(small)
    assert added == (64 * 43 + 64 * 64) * memory.COLOR_BYTES


def test_colour_transfer_works_at_the_working_size_not_the_photos(engine, monkeypatch):
    # It used to recolour the style at full resolution in float64 (5.8 GB for 6000x6000).
    seen = []

    def spy(style, content):
        seen.append((style.size, content.size))
        return matched(style, content)

    matched = color.matched_histogram
    monkeypatch.setattr(color, "matched_histogram", spy)
    photo = Image.fromarray(
        (np.random.default_rng(1).random((2000, 3000, 3)) * [60, 20, 20] + [180, 30, 30]).astype(
            np.uint8
        )
    )
    job = StyleJob(
        content=photo,
        styles=[noise(2400, 2400)],
        size=64,
        overrides={"preserve_color": "histogram"},
    )
    checked = check_job(job)
    _, [(style, _)] = engine._inputs(checked)
    assert seen == [((64, 64), (64, 43))]
    # And it still does its work: the style now has the photo's colours.
    assert np.allclose(np.asarray(style).reshape(-1, 3).mean(0), [210, 40, 40], atol=4)


def test_one_budget_the_jobs_own_then_the_doors_then_the_free_memory(engine, monkeypatch):
    monkeypatch.setattr(memory, "available", lambda: 10 * G)

    def budget(overrides=None, door=None):
        job = StyleJob(content=noise(64, 64), styles=[noise(64, 64)], overrides=overrides or {})
        job.max_memory = door
        checked = check_job(job)
        assert engine.describe(checked)["max_memory"] == memory.format_size(
            engine.job_budget(checked)
        )
        return engine.job_budget(checked)

    assert budget() == 8 * G  # 80% of the free memory
    assert budget(door="3G") == 3 * G  # the hot folder's daemon setting
    assert budget({"max_memory": "2G"}, door=3 * G) == 2 * G  # a route's (or preset's) own
    with pytest.raises(InputError, match="max_memory: 'lots' is not a memory size"):
        budget(door="lots")


def test_stylize_paints_the_thin_photo_within_2g(tmp_path):
    # The same request as above, end to end (a 64x1 picture: the strip at 64 px long).
    strip = tmp_path / "strip.png"
    noise(8192, 16).save(strip)
    out = tmp_path / "out.png"
    args = [strip, STARRY, "-o", out, "--size", 64, "--steps", 2, "--max-memory", "2G"]
    run = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "stylize", *map(str, args), "--progress", "none"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert Image.open(out).size == (64, 1)
