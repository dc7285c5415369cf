"""The engine does what the paper says: tests that fail if a loss, the loop or the colour
handling is wrong. Small images (64-96 px) and few steps keep them quick on a CPU."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto.images import to_array
from tests.conftest import CAT, STARRY, WAVE

pytestmark = pytest.mark.usefixtures("weights_available")


def job(**kw):
    defaults = dict(content=CAT, styles=[STARRY], size=64, seed=0, overrides={"steps": 6})
    defaults.update(kw)
    return impasto.StyleJob(**defaults)


def test_gram_matches_numpy():
    import tensorflow as tf

    from impasto.engine.losses import gram

    f = np.random.default_rng(1).normal(size=(1, 5, 7, 3)).astype(np.float32)
    flat = f.reshape(-1, 3)
    np.testing.assert_allclose(gram(tf.constant(f)).numpy(), flat.T @ flat / 35, rtol=1e-5)


def test_gram_stays_finite_in_reduced_precision():
    """Large activations (as at high resolution) would overflow a float16 Gram matrix."""
    import tensorflow as tf

    from impasto.engine.losses import gram

    f = tf.cast(tf.fill((1, 256, 256, 8), 300.0), tf.float16)
    g = gram(f)
    assert g.dtype == tf.float32 and np.isfinite(g.numpy()).all()
    np.testing.assert_allclose(g.numpy(), 90000.0, rtol=1e-3)


def test_loss_terms_do_not_depend_on_the_image_size():
    """The same weights must give the same balance at any output size. A picture tiled 3x3 is
    the same picture at 9 times the pixels: each loss term (of a noisy photo against the photo
    and the painting) must stay about the same, where a sum over positions, as in the paper's
    content loss, would grow 9-fold and tip the balance towards the photo at large sizes."""
    import tensorflow as tf

    from impasto.engine.losses import content_loss, gram, style_loss, tv_loss
    from impasto.engine.model import extractor
    from impasto.images import fit_long_side, load_image
    from impasto.presets import load_preset

    recipe = load_preset("classic")
    layers = recipe.content_layers, recipe.style_layers
    features = extractor((*layers[0], *layers[1]), "avg", "float32")
    photo, painting = (load_image(p).rgb for p in (CAT, STARRY))
    photo, painting = (to_array(img, fit_long_side(img.size, 128)) for img in (photo, painting))
    noisy = np.random.default_rng(0).normal(0, 0.1, photo.shape).astype(np.float32)
    noisy = np.clip(photo + noisy, 0, 1)

    def terms(tiles):
        x, p, s = (tf.constant(np.tile(a, (tiles, tiles, 1))) for a in (noisy, photo, painting))
        fx, fp, fs = (features(a[None]) for a in (x, p, s))
        grams = {k: gram(fs[k]) for k in layers[1]}
        return np.array(
            [content_loss(fx, fp, layers[0]), style_loss(fx, grams, layers[1]), tv_loss(x)]
        )

    ratio = terms(3) / terms(1)
    assert np.all((0.75 < ratio) & (ratio < 1.33)), ratio


def test_each_loss_term_falls():
    """Start from noise: content, style and roughness must all come down over a short run."""
    seen = []
    impasto.stylize(
        job(overrides={"steps": 30, "init": "noise", "precision": "float32"}),
        on_progress=seen.append,
    )
    first, last = seen[0].losses, seen[-1].losses
    for term in ("content", "style", "tv", "total"):
        assert last[term] < first[term], (term, first[term], last[term])


def test_content_only_reconstructs_the_photo():
    """With style and smoothness off, optimising from noise must find the photo again."""
    result = impasto.stylize(
        job(
            styles=[WAVE],
            overrides={
                "steps": 150,
                "init": "noise",
                "style_weight": 0.0,
                "tv_weight": 0.0,
                "content_layers": {"block1_conv1": 1.0},
                "learning_rate": 0.05,
                "precision": "float32",
                "ema_decay": 0.0,
            },
        )
    )
    target = to_array(Image.open(CAT).convert("RGB"), result.image.size)
    noise = np.random.default_rng(0).uniform(size=target.shape)
    out = to_array(result.image)
    err = np.abs(out - target).mean()
    assert err < 0.4 * np.abs(noise - target).mean(), err
    assert np.corrcoef(out.ravel(), target.ravel())[0, 1] > 0.8


def _style_distance(img: Image.Image, style_path) -> float:
    import tensorflow as tf

    from impasto.engine.losses import gram, relative_error
    from impasto.engine.model import extractor
    from impasto.images import fit_long_side

    layers = ("block1_conv1", "block2_conv1", "block3_conv1")
    fe = extractor(layers, "avg", "float32")
    style = Image.open(style_path).convert("RGB")
    s = fe(tf.constant(to_array(style, fit_long_side(style.size, 64))[None]))
    x = fe(tf.constant(to_array(img.convert("RGB"))[None]))
    return float(np.mean([relative_error(gram(x[k]), gram(s[k])) for k in layers]))


def test_style_only_moves_grams_towards_the_style():
    result = impasto.stylize(job(overrides={"steps": 40, "content_weight": 0.0}))
    photo = Image.open(CAT).convert("RGB").resize(result.image.size)
    assert _style_distance(result.image, STARRY) < 0.5 * _style_distance(photo, STARRY)


def test_blend_sits_between_two_styles():
    one = impasto.stylize(job(styles=[(STARRY, 1.0)], overrides={"steps": 30})).image
    two = impasto.stylize(job(styles=[(WAVE, 1.0)], overrides={"steps": 30})).image
    mix = impasto.stylize(job(styles=[(STARRY, 1.0), (WAVE, 1.0)], overrides={"steps": 30})).image
    # The blended picture is nearer to each style than the other style's picture is.
    assert _style_distance(mix, STARRY) < _style_distance(two, STARRY)
    assert _style_distance(mix, WAVE) < _style_distance(one, WAVE)


def test_luminance_keeps_the_photo_colours():
    strong = {"steps": 10, "style_weight": 10.0}  # enough style in 10 steps to move the colours
    result = impasto.stylize(job(overrides={**strong, "preserve_color": "luminance"}))
    photo = Image.open(CAT).convert("RGB").resize(result.image.size, Image.Resampling.LANCZOS)
    out = np.asarray(result.image.convert("YCbCr"), np.float32)
    ref = np.asarray(photo.convert("YCbCr"), np.float32)
    plain = np.asarray(impasto.stylize(job(overrides=strong)).image.convert("YCbCr"), np.float32)
    chroma = lambda a: a[..., 1:]  # noqa: E731
    assert np.abs(chroma(out) - chroma(ref)).mean() < 1.0  # chroma is the photo's
    assert np.abs(chroma(plain) - chroma(ref)).mean() > 5.0  # and without it, it is not
    assert np.abs(out[..., 0] - ref[..., 0]).mean() > 2.0  # while the luma was stylised


def test_histogram_recolours_the_style_to_the_photo():
    from impasto.engine.color import matched_histogram

    style, photo = Image.open(STARRY).convert("RGB"), Image.open(CAT).convert("RGB")
    out = np.asarray(matched_histogram(style, photo), np.float32)
    ref = np.asarray(photo, np.float32)
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), ref.reshape(-1, 3).mean(0), atol=3)


@pytest.mark.parametrize("size", [64, 100])
def test_output_size_and_aspect(size):
    result = impasto.stylize(job(size=size, overrides={"steps": 2}))
    w, h = Image.open(CAT).size
    assert max(result.image.size) == size
    assert result.image.size == (size, round(h * size / w))


def test_alpha_is_put_back(tmp_path):
    rgba = Image.open(CAT).convert("RGBA").resize((96, 64))
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, 48, 64))
    rgba.putalpha(alpha)
    result = impasto.stylize(job(content=rgba, overrides={"steps": 2}))
    assert result.image.mode == "RGBA"
    a = np.asarray(result.image.getchannel("A"))
    assert a[:, :28].max() < 20 and a[:, 36:].min() > 235  # left half clear at 64x43


def test_same_seed_same_picture():
    a = impasto.stylize(job(overrides={"steps": 4, "init": "noise"}, seed=3)).image
    b = impasto.stylize(job(overrides={"steps": 4, "init": "noise"}, seed=3)).image
    c = impasto.stylize(job(overrides={"steps": 4, "init": "noise"}, seed=4)).image
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_cancel_stops_within_a_step_and_returns_the_best_so_far():
    cancel = threading.Event()
    seen = []

    def on_progress(event):
        seen.append(event.step)
        if event.step == 3:
            cancel.set()

    result = impasto.stylize(job(overrides={"steps": 50}), on_progress=on_progress, cancel=cancel)
    assert result.cancelled and seen == [1, 2, 3] and result.stats["steps"] == 3
    assert max(result.image.size) == 64


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_resume_matches_an_uninterrupted_run(tmp_path, optimizer):
    # Two scales (min_size 48 to 80 px) so the resume crosses a scale boundary.
    over = {"steps": [6, 6], "min_size": 48, "optimizer": optimizer}
    full = impasto.stylize(job(size=80, overrides=over))
    cancel = threading.Event()
    ckpt = tmp_path / "state.npz"

    def stop_at_4(event):
        if event.step == 4:
            cancel.set()

    first = impasto.stylize(
        job(size=80, overrides=over, checkpoint=ckpt, checkpoint_every=100),
        on_progress=stop_at_4,
        cancel=cancel,
    )
    assert first.cancelled and ckpt.exists()
    resumed = impasto.stylize(job(size=80, overrides=over, resume=ckpt))
    assert not resumed.cancelled and resumed.stats["steps"] == 12
    diff = np.abs(np.asarray(resumed.image, np.float32) - np.asarray(full.image, np.float32))
    if optimizer == "adam":  # Adam's whole state is in the checkpoint: the same picture
        assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
    else:  # L-BFGS rebuilds its curvature estimate after a resume: as good, not identical
        total = full.stats["losses"]["total"]
        assert resumed.stats["losses"]["total"] < 1.1 * total
        assert diff.mean() < 8, diff.mean()


def test_resume_refuses_another_jobs_checkpoint(tmp_path):
    ckpt = tmp_path / "state.npz"
    impasto.stylize(job(overrides={"steps": 2}, checkpoint=ckpt))
    with pytest.raises(impasto.InputError, match="different job.*seed"):
        impasto.stylize(job(overrides={"steps": 2}, seed=9, resume=ckpt))


def test_bfloat16_and_float32_agree_roughly():
    a = impasto.stylize(job(overrides={"steps": 5, "precision": "float32"})).image
    b = impasto.stylize(job(overrides={"steps": 5, "precision": "bfloat16"})).image
    assert np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() < 12


def test_the_time_left_starts_from_the_estimate_then_follows_the_measured_rate(monkeypatch):
    """A scale's first step also traces the graph: a rate taken from it said "119:39 left" for
    a job of minutes. Until STEADY_STEPS steady steps are timed the time left is the job's
    estimate less the time spent; then the rate of the steady steps."""
    from impasto.engine import loop as engine

    now = [0.0]
    monkeypatch.setattr(engine.time, "perf_counter", lambda: now[0])
    plan = [((10, 10), 4), ((20, 20), 4)]  # work: 400 + 1600 pixel-steps
    clock = engine._Clock(plan, None, estimate=120.0)
    now[0] = 9.0  # the first step: tracing, the targets
    clock.tick((10, 10))
    assert clock.eta() == 111.0  # the estimate less the time spent, not ~2000 pixel-steps at 9 s
    for _ in range(engine.STEADY_STEPS):
        now[0] += 0.1
        clock.tick((10, 10))
    # measured: 0.1 s per 100 pixel-steps, 1700 pixel-steps left
    assert clock.eta() == pytest.approx(1.7)
    assert engine._Clock(plan, None, estimate=None).eta() >= 0  # no estimate: the rate alone


def test_a_resumed_jobs_estimate_counts_only_the_work_left():
    from impasto.engine import loop as engine

    resume = type("Resume", (), {"step": 4, "scale": 1, "scale_step": 0})()
    plan = [((10, 10), 4), ((20, 20), 4)]
    assert engine._Clock(plan, resume, estimate=100.0).estimate == pytest.approx(80.0)
