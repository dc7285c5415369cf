"""The optimisers on problems whose answer is known, and the Gram-target cache."""

from __future__ import annotations

import numpy as np
import pytest

from impasto.engine import optimizers
from impasto.presets import apply_overrides, load_preset


def quadratic(target: np.ndarray, scales: np.ndarray):
    """evaluate(x) for sum(scales * (x - target)^2): badly conditioned when scales spread."""

    def evaluate(x):
        diff = x - target
        return {"total": float(np.sum(scales * diff**2))}, (2 * scales * diff).astype(np.float32)

    return evaluate


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    target = rng.uniform(-0.2, 1.2, (8, 8, 3)).astype(np.float32)  # partly outside [0, 1]
    scales = rng.uniform(0.1, 100.0, (8, 8, 3)).astype(np.float32)  # condition number ~1000
    return target, scales, np.full((8, 8, 3), 0.5, np.float32)


def test_lbfgs_finds_the_box_constrained_minimum(problem):
    target, scales, x0 = problem
    opt = optimizers.LBFGS(x0, first_step=0.05)
    evaluate = quadratic(target, scales)
    for _ in range(60):
        opt.step(evaluate)
    x = opt.output()
    assert x.min() >= 0 and x.max() <= 1, "the picture must stay in [0, 1]"
    # Projection onto the box is not exact L-BFGS, so the last digits wander; from 0.5 away, 0.01
    # close is found.
    np.testing.assert_allclose(x, np.clip(target, 0, 1), atol=1e-2)


def test_lbfgs_beats_adam_at_equal_evaluations(problem):
    target, scales, x0 = problem
    calls = {"lbfgs": 0, "adam": 0}

    def counted(name):
        inner = quadratic(target, scales)

        def evaluate(x):
            calls[name] += 1
            return inner(x)

        return evaluate

    lbfgs, adam = optimizers.LBFGS(x0, 0.05), optimizers.Adam(x0, 0.02, 0.0)
    ev_l, ev_a = counted("lbfgs"), counted("adam")
    for _ in range(20):
        lbfgs.step(ev_l)
    for t in range(1, calls["lbfgs"] + 1):
        adam.step(ev_a, t)
    assert calls["adam"] == calls["lbfgs"]
    loss = quadratic(np.clip(target, 0, 1), scales)
    assert loss(lbfgs.output())[0]["total"] < 0.1 * loss(adam.x)[0]["total"]


def test_lbfgs_never_accepts_a_step_that_raises_the_loss(problem):
    target, scales, x0 = problem
    opt = optimizers.LBFGS(x0, first_step=0.5)  # a first step far too long on purpose
    evaluate = quadratic(target, scales)
    seen = [evaluate(x0)[0]["total"]]
    for _ in range(15):
        seen.append(opt.step(evaluate)["total"])
    assert all(b <= a for a, b in zip(seen, seen[1:], strict=False)), seen


def test_optimizers_carry_over_to_a_larger_scale(problem):
    _, _, x0 = problem
    for opt in (optimizers.LBFGS(x0, 0.05), optimizers.Adam(x0, 0.02, 0.9)):
        grown = opt.grown((16, 12))
        assert grown.output().shape == (12, 16, 3)
        state = grown.state()
        assert state["image"].shape == (12, 16, 3)


def test_start_builds_the_recipes_optimizer_and_restores_saved_state(problem):
    _, _, x0 = problem
    recipe = load_preset()
    for name, kind in (("lbfgs", optimizers.LBFGS), ("adam", optimizers.Adam)):
        r = apply_overrides(recipe, {"optimizer": name})
        opt = optimizers.start(r, x0)
        assert isinstance(opt, kind)
        restored = optimizers.start(r, x0, opt.state())
        np.testing.assert_array_equal(restored.output(), opt.output())


def test_a_second_job_with_the_same_style_reuses_its_gram_targets():
    import impasto
    from impasto.engine import objective

    def job():
        return impasto.StyleJob(
            "tests/data/chelsea_cat.png",
            ["tests/data/hokusai_great_wave_off_kanagawa_c1831.jpg"],
            size=64,
            overrides={"steps": 2},
        )

    first = impasto.stylize(job())
    hits, misses = objective.gram_cache_stats["hits"], objective.gram_cache_stats["misses"]
    second = impasto.stylize(job())
    assert objective.gram_cache_stats["misses"] == misses, "no style target computed again"
    assert objective.gram_cache_stats["hits"] > hits
    np.testing.assert_array_equal(np.asarray(first.image), np.asarray(second.image))
