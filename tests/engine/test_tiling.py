"""Tiled evaluation is the untiled step's objective, not an approximation of it: the same losses
and the same gradient, at sizes that fit untiled, with tiles small enough to force many of them
(edge tiles, inner tiles, a picture whose sides are not multiples of the tile or of 16)."""

from __future__ import annotations

import numpy as np
import pytest

from impasto import tiling
from impasto.presets import apply_overrides, load_preset
from impasto.vgg19 import LAYERS

pytestmark = pytest.mark.usefixtures("weights_available")


def images(height: int, width: int):
    """A photo-like content, a style image of another size, and a picture between them."""
    rng = np.random.default_rng(3)
    smooth = rng.uniform(0, 1, (height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    content = np.kron(smooth, np.ones((8, 8, 1), np.float32))[:height, :width]
    content = np.clip(content + rng.normal(0, 0.05, content.shape), 0, 1).astype(np.float32)
    style = rng.uniform(0, 1, (88, 104, 3)).astype(np.float32)
    x = np.clip(content + rng.normal(0, 0.1, content.shape), 0, 1).astype(np.float32)
    return content, style, x


def untiled(recipe, content, style, x):
    """The engine's untiled objective, as _Step computes it: targets eagerly, the loss and its
    gradient in one compiled function over the whole picture."""
    import tensorflow as tf

    from impasto.losses import content_loss, gram, style_loss, tv_loss
    from impasto.model import extractor

    features = extractor(
        tuple(recipe.content_layers) + tuple(recipe.style_layers), recipe.pooling, recipe.precision
    )
    fc = features(tf.constant(content[None]))
    content_t = {k: fc[k] for k in recipe.content_layers}
    fs = features(tf.constant(style[None]))
    style_t = {k: gram(fs[k]) for k in recipe.style_layers}

    @tf.function
    def objective(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            f = features(x[None])
            losses = {
                "content": recipe.content_weight
                * content_loss(f, content_t, recipe.content_layers),
                "style": recipe.style_weight * style_loss(f, style_t, recipe.style_layers),
                "tv": recipe.tv_weight * tv_loss(x),
            }
            total = losses["content"] + losses["style"] + losses["tv"]
        return losses, total, tape.gradient(total, x)

    losses, total, grad = objective(tf.constant(x))
    losses = {k: float(v) for k, v in losses.items()} | {"total": float(total)}
    return losses, grad.numpy()


def tiled(recipe, content, style, x, tile):
    objective = tiling.TiledObjective(recipe, recipe.precision, content, [(style, 1.0)], tile)
    losses, grad = objective(x)
    return losses, grad, objective


def relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(
    "preset, pooling, shape, tile",
    [
        ("classic", "avg", (120, 150), 48),  # block5 style: halo 80 px, 3x4 tiles
        ("bold-strokes", "max", (133, 101), 32),  # block5_conv2 content, odd sides: 5x4 tiles
        ("fine-texture", "max", (100, 130), 16),  # only up to block3: 16 px grid, 7x9 tiles
    ],
)
def test_tiled_objective_equals_the_untiled_one_in_float32(preset, pooling, shape, tile):
    recipe = apply_overrides(load_preset(preset), {"pooling": pooling, "precision": "float32"})
    content, style, x = images(*shape)
    want_losses, want_grad = untiled(recipe, content, style, x)
    losses, grad, objective = tiled(recipe, content, style, x, tile)
    assert len(objective.tiles) >= 6
    for key, want in want_losses.items():
        assert losses[key] == pytest.approx(want, rel=1e-5), key
    assert relative(grad, want_grad) < 1e-5
    # Not only on average: no pixel, at an edge or where tiles meet, is off.
    assert np.abs(grad - want_grad).max() < 1e-4 * np.abs(want_grad).max()


def test_tiled_objective_in_bfloat16_differs_only_by_bfloat16_rounding():
    """Forward, the tiles' bfloat16 features are the whole picture's, bit for bit, so the losses
    agree to float32 rounding. The backward pass rounds partial sums to bfloat16 where tiles
    overlap: the gradients then differ by about bfloat16's rounding (2^-8), far less than the
    untiled bfloat16 gradient differs from the float32 one."""
    base = apply_overrides(load_preset("classic"), {"pooling": "avg"})
    bf16 = apply_overrides(base, {"precision": "bfloat16"})
    f32 = apply_overrides(base, {"precision": "float32"})
    content, style, x = images(112, 144)
    want_losses, want_grad = untiled(bf16, content, style, x)
    losses, grad, _ = tiled(bf16, content, style, x, 48)
    for key, want in want_losses.items():
        assert losses[key] == pytest.approx(want, rel=1e-5), key
    _, exact_grad = untiled(f32, content, style, x)
    assert relative(grad, want_grad) < 1e-2
    assert relative(grad, want_grad) < 0.25 * relative(want_grad, exact_grad)


def test_style_grams_by_tiles_equal_the_whole_images():
    import tensorflow as tf

    from impasto.losses import gram
    from impasto.model import extractor

    layers = ("block1_conv1", "block3_conv1", "block5_conv1")
    _, style, _ = images(16, 16)
    whole = extractor(layers, "max", "float32")(tf.constant(style[None]))
    by_tiles = tiling.grams(style, layers, "max", "float32", 16)
    for name in layers:
        np.testing.assert_allclose(by_tiles[name], gram(whole[name]), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("shape, tile", [((120, 150), 48), ((17, 300), 64), ((40, 40), 512)])
def test_tile_cores_cover_the_picture_once_and_lie_on_the_pooling_grid(shape, tile):
    layers = ("block2_conv1", "block5_conv1")
    cover = np.zeros(shape, int)
    cut = tiling.tiles(shape, tile, layers)
    for t in cut:
        top, left, bottom, right = t.core
        cover[top:bottom, left:right] += 1
        assert top % 16 == 0 and left % 16 == 0
        assert bottom - top <= max(tile, 16) and right - left <= max(tile, 16)
        # The crop reaches a full halo beyond the core, or the picture's edge.
        ct, cl, cb, cr = t.crop
        assert ct == max(0, top - 80) and cl == max(0, left - 80)
        assert cb == min(shape[0], bottom + 80) and cr == min(shape[1], right + 80)
    assert (cover == 1).all()
    if max(shape) <= tile:
        assert len(cut) == 1 and cut[0].crop == (0, 0, *shape)


def test_halo_is_the_receptive_field_at_a_cut():
    assert tiling.halo(("block1_conv1",)) == 1  # one 3x3 convolution reads one pixel over
    assert tiling.halo(("block1_conv2",)) == 2
    # Two convolutions, a pooling (spread 1), two more: 3 positions at half resolution.
    assert tiling.halo(("block2_conv2",)) == 6
    assert tiling.halo(("block1_conv1", "block5_conv1")) == 80
    assert tiling.halo((LAYERS[-1],)) == 128
    assert tiling.alignment(("block3_conv1", "block1_conv1")) == 4


def test_cuts_are_aligned_and_no_part_exceeds_the_tile():
    for length in range(1, 400, 3):
        for tile, align in ((16, 16), (48, 16), (512, 16), (20, 4), (7, 1)):
            cuts = tiling._bounds(length, tile, align)
            parts = np.diff(cuts)
            assert cuts[0] == 0 and cuts[-1] == length
            assert (parts > 0).all() and (parts <= tile).all()
            assert all(c % align == 0 for c in cuts[:-1])
            # As few parts as the tile allows, give or take the grid.
            assert len(parts) <= -(-length // tile) + 1
