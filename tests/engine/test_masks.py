"""Regions: a mask per style in the engine (see the module doc of impasto/engine/terms.py).
A masked style term is zero at its region's own statistics and moves only its region; tiled and
untiled agree with masks; a blend weight scales its region's loss; and end to end, each masked
region takes its own style while the part no mask covers stays the photo, with colour
preservation and a resume too.
The job-level checks of a mask are in tests/engine/test_masks_job.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image, ImageDraw

import impasto
from impasto.engine import loop as engine
from impasto.engine import terms, tiling
from impasto.engine.objective import objective_for
from impasto.presets import apply_overrides, load_preset
from tests.conftest import CAT
from tests.engine.test_tiling import images, only, relative

pytestmark = pytest.mark.usefixtures("weights_available")


def band_masks(height: int, width: int) -> np.ndarray:
    """Two regions: the left third (a soft edge into the middle) and the right third (hard)."""
    m = np.zeros((2, height, width), np.float32)
    third = width // 3
    m[0, :, :third] = 1
    m[0, :, third : third + 8] = np.linspace(1, 0, 8, endpoint=False)
    m[1, :, 2 * third :] = 1
    return m


def masked(recipe, content, styles, masks, x):
    objective = objective_for(terms.layout(recipe), recipe.pooling, "float32", len(styles))
    return objective.at(content, styles, terms.params(recipe), masks)(x)


@pytest.mark.parametrize("term", ["style", "w2", "hist"])
def test_tiled_equals_untiled_with_masks(term):
    recipe = apply_overrides(
        load_preset("classic"), {"pooling": "max", "precision": "float32", **only(term)}
    )
    content, style, x = images(120, 150)
    other = np.random.default_rng(9).uniform(0, 1, (72, 96, 3)).astype(np.float32)
    styles, masks = [(style, 0.7), (other, 0.3)], band_masks(120, 150)
    want_losses, want_grad = masked(recipe, content, styles, masks, x)
    objective = tiling.TiledObjective(recipe, "float32", content, styles, 48, masks)
    losses, grad = objective(x)
    assert len(objective.tiles) >= 6
    for key, want in want_losses.items():
        assert losses[key] == pytest.approx(want, rel=1e-5), key
    assert relative(grad, want_grad) < 1e-5
    assert np.abs(grad - want_grad).max() < 1e-4 * np.abs(want_grad).max()


@pytest.mark.parametrize("term", ["style", "w2", "hist"])
def test_a_mask_of_ones_is_the_unmasked_term(term):
    recipe = apply_overrides(load_preset("classic"), {"precision": "float32", **only(term)})
    content, style, x = images(64, 80)
    plain = objective_for(terms.layout(recipe), recipe.pooling, "float32")
    want, want_grad = plain.at(content, [(style, 1.0)], terms.params(recipe))(x)
    losses, grad = masked(recipe, content, [(style, 1.0)], np.ones((1, 64, 80), np.float32), x)
    assert losses[term] == pytest.approx(want[term], rel=1e-5)
    assert relative(grad, want_grad) < 1e-4


def features(seed: int):
    """Correlated features [20, 15, 64] for block1 (the histogram's directions need 64)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(64, 64)) / 8 + np.eye(64)
    return (rng.normal(size=(300, 64)) @ mix + rng.uniform(1, 3, 64)).reshape(20, 15, 64)


@pytest.mark.parametrize("term", [terms.Gram(), terms.W2(), terms.Histogram()])
def test_a_masked_term_is_zero_at_its_regions_statistics_and_moves_only_its_region(term):
    """The picture's features: the painting's on the left, others on the right. Masked to the
    left, the loss is 0; masked to the right, it is not. Its gradient is zero where the mask is,
    and a small step along it brings the right half's statistics towards the painting's."""
    import tensorflow as tf

    layer = "block1_conv1"
    painting, other = features(0), features(1)
    n = float(painting.shape[0] * painting.shape[1])
    summary = term.summary(term.reference(tf.constant(painting, tf.float32), layer), n)
    (target,) = terms.targets_of(term, [(summary, 1.0)], layer, regions=True)
    picture = tf.constant(np.concatenate([painting, other], axis=1), tf.float32)
    left = np.zeros((20, 30, 1), np.float32)
    left[:, :15] = 1

    def loss(f, mask):
        return term.region_loss(
            term.region_stats(f, tf.constant(mask.reshape(-1, 1)), layer), target, 0
        )

    assert abs(float(loss(picture, left))) < 1e-5
    right = 1 - left
    with tf.GradientTape() as tape:
        tape.watch(picture)
        before = loss(picture, right)
    grad = tape.gradient(before, picture).numpy()
    assert float(before) > 1e-2
    assert np.abs(grad[:, :15]).max() == 0 and np.abs(grad[:, 15:]).max() > 0
    step = 1e-2 * float(before) / np.sum(grad**2)
    after = loss(picture - step * grad, right)
    assert float(after) < float(before)


def test_blend_weights_scale_each_regions_loss():
    """weight x number of regions: (0.75, 0.25) on two regions count 1.5 and 0.5 times each
    region's loss alone (its own targets, not the blend's)."""
    recipe = apply_overrides(load_preset("classic"), {"precision": "float32", **only("style")})
    content, style, x = images(64, 80)
    other = np.random.default_rng(9).uniform(0, 1, (64, 64, 3)).astype(np.float32)
    masks = band_masks(64, 80)
    both, _ = masked(recipe, content, [(style, 0.75), (other, 0.25)], masks, x)
    alone = [
        masked(recipe, content, [(s, 1.0)], m[None], x)[0]
        for s, m in ((style, masks[0]), (other, masks[1]))
    ]
    want = 1.5 * alone[0]["style"] + 0.5 * alone[1]["style"]
    assert both["style"] == pytest.approx(want, rel=1e-5)


# End to end: a photo, two strongly different paintings, masks on thirds.
SIZE = 96
RED, BLUE = np.array([230, 30, 30.0]), np.array([30, 60, 230.0])


def red_stripes() -> Image.Image:
    img = Image.new("RGB", (96, 96), (250, 235, 220))
    draw = ImageDraw.Draw(img)
    for x in range(0, 96, 12):
        draw.rectangle((x, 0, x + 5, 95), fill=tuple(int(v) for v in RED))
    return img


def blue_dots() -> Image.Image:
    img = Image.new("RGB", (96, 96), (20, 20, 40))
    draw = ImageDraw.Draw(img)
    for y in range(4, 96, 16):
        for x in range(4, 96, 16):
            draw.ellipse((x, y, x + 9, y + 9), fill=tuple(int(v) for v in BLUE))
    return img


def thirds(size: tuple[int, int]) -> list[Image.Image]:
    """Masks for the left and the right third of the photo; the middle third has none."""
    w, h = size
    left, right = Image.new("L", size, 0), Image.new("L", size, 0)
    left.paste(255, (0, 0, w // 3, h))
    right.paste(255, (w - w // 3, 0, w, h))
    return [left, right]


def job(masks=None, **kw) -> impasto.StyleJob:
    over = {"steps": [25], "min_size": SIZE, "precision": "float32"}
    over.update(kw.pop("overrides", {}))
    return impasto.StyleJob(
        content=CAT,
        styles=[red_stripes(), blue_dots()],
        size=SIZE,
        overrides=over,
        masks=masks,
        **kw,
    )


def bands(img: Image.Image) -> list[np.ndarray]:
    """The inner parts of the left, middle and right thirds (away from the masks' edges)."""
    a = np.asarray(img.convert("RGB"), np.float32)
    w = a.shape[1]
    cuts = [(2, w // 3 - 4), (w // 3 + 4, w - w // 3 - 4), (w - w // 3 + 4, w - 2)]
    return [a[:, lo:hi] for lo, hi in cuts]


def colour_distance(region: np.ndarray, picture: np.ndarray | Image.Image) -> float:
    """Distance of a region's mean colour to a picture's."""
    picture = np.asarray(picture, np.float32).reshape(-1, 3)
    return float(np.linalg.norm(region.reshape(-1, 3).mean(0) - picture.mean(0)))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(CAT) as img:
        return img.convert("RGB")


@pytest.fixture(scope="module")
def blended():
    return impasto.stylize(job())


def test_each_masked_region_takes_its_own_style_and_the_rest_stays_the_photo(photo, blended):
    result = impasto.stylize(job(masks=thirds(photo.size)))
    assert result.settings["masks"] == ["<in-memory image>", "<in-memory image>"]
    assert set(result.stats["losses"]) == set(blended.stats["losses"])  # the same keys
    left, middle, right = bands(result.image)
    b_left, b_middle, b_right = bands(blended.image)
    p_left, p_middle, p_right = bands(photo.resize(result.image.size, Image.Resampling.LANCZOS))
    red, blue = red_stripes(), blue_dots()
    # Each region is closer to its own painting than the blend makes it, and than to the other.
    assert colour_distance(left, red) < colour_distance(b_left, red) - 10
    assert colour_distance(right, blue) < colour_distance(b_right, blue) - 10
    assert colour_distance(left, red) < colour_distance(left, blue)
    assert colour_distance(right, blue) < colour_distance(right, red)
    # Where no mask is, the photo stays: its colour much closer to the photo's than in the blended
    # job, its pixels closer too. Not untouched: the deep layers' features in a masked region
    # see some way past its edge, and at 96 px that reaches into the middle third.
    assert colour_distance(middle, p_middle) < 0.5 * colour_distance(b_middle, p_middle)
    assert np.abs(middle - p_middle).mean() < 0.8 * np.abs(b_middle - p_middle).mean()
    assert np.abs(middle - p_middle).mean() < 0.5 * np.abs(left - p_left).mean()


def test_preserve_color_and_blend_weights_with_masks(photo):
    """Luminance transfer keeps the photo's colours in a styled region (its stripes' texture
    still there); uneven weights still paint each region in its own style."""
    over = {"preserve_color": "luminance"}
    styled = job(masks=thirds(photo.size), overrides=over)
    styled.styles = [(red_stripes(), 3.0), (blue_dots(), 1.0)]
    result = impasto.stylize(styled)
    left, middle, _ = bands(result.image)
    p_left, p_middle, _ = bands(photo.resize(result.image.size, Image.Resampling.LANCZOS))
    assert colour_distance(left, p_left) < 8
    luma = lambda a: a @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    assert (
        np.abs(luma(left) - luma(p_left)).mean()
        > 1.5 * np.abs(luma(middle) - luma(p_middle)).mean()
    )


def test_resume_with_masks_matches_an_uninterrupted_run_also_in_tiles(tmp_path, photo):
    """A masked job stopped after 3 steps and resumed (in tiles: a tiny memory budget, which a
    checkpoint does not depend on) gives the uninterrupted untiled picture."""
    from tests.engine.test_tiled_engine import TINY

    over = {"steps": [4, 4], "min_size": 64, "optimizer": "adam"}

    def masked_job(**kw):
        j = job(masks=thirds(photo.size), overrides=over, **kw)
        j.preset, j.size = "fine-texture", 128
        return j

    full = impasto.stylize(masked_job())
    cancel, ckpt = threading.Event(), tmp_path / "state.npz"
    first = impasto.stylize(
        masked_job(checkpoint=ckpt, checkpoint_every=100),
        on_progress=lambda event: event.step == 3 and cancel.set(),
        cancel=cancel,
    )
    assert first.cancelled and ckpt.exists()
    resumed_job = masked_job(resume=ckpt, max_memory=TINY)
    assert engine.describe(impasto.check_job(resumed_job))["tiles"][-1] is not None
    resumed = impasto.stylize(resumed_job)
    assert not resumed.cancelled and resumed.stats["steps"] == 8
    diff = np.abs(np.asarray(resumed.image, np.float32) - np.asarray(full.image, np.float32))
    assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
    # The same job without its masks is another job: its checkpoint is refused.
    unmasked = masked_job(resume=ckpt)
    unmasked.masks = None
    with pytest.raises(impasto.InputError, match="differs in masks"):
        impasto.stylize(unmasked)


def test_the_memory_plan_counts_the_masks(photo):
    plain = impasto.check_job(job())
    with_masks = impasto.check_job(job(masks=thirds(photo.size)))
    (a,), (b,) = engine.memory_plans(plain, "float32"), engine.memory_plans(with_masks, "float32")
    (w, h), _ = engine.plan(with_masks)[0]
    from impasto.engine import memory

    want = (
        2 * w * h * memory.MASK_BYTES + 2 * photo.size[0] * photo.size[1] * memory.MASK_INPUT_BYTES
    )
    assert a.tile is None and b.tile is None
    assert b.estimate - a.estimate == want
