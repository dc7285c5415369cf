"""Tiled evaluation is the untiled step's objective, not an approximation of it: the same losses
and the same gradient, at sizes that fit untiled, with tiles small enough to force many of them
(edge tiles, inner tiles, a picture whose sides are not multiples of the tile or of 16)."""

from __future__ import annotations

import numpy as np
import pytest

from impasto.engine import tiling
from impasto.engine.terms import TERMS
from impasto.engine.vgg19 import LAYERS
from impasto.presets import apply_overrides, load_preset

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
    """The engine's untiled objective: targets eagerly, the loss and its gradient in one compiled
    function over the whole picture (tests/engine/test_terms.py checks it against the paper's
    formulas)."""
    from impasto.engine import terms
    from impasto.engine.objective import objective_for

    objective = objective_for(terms.layout(recipe), recipe.pooling, recipe.precision)
    return objective.at(content, [(style, 1.0)], terms.params(recipe))(x)


def tiled(recipe, content, style, x, tile):
    objective = tiling.TiledObjective(recipe, recipe.precision, content, [(style, 1.0)], tile)
    losses, grad = objective(x)
    return losses, grad, objective


def relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def only(term: str) -> dict:
    """Overrides that leave one term on, at weight 1 (TV with the content: alone, it has
    nothing to paint towards and the recipe is refused). Each term's loss is compared."""
    on = {term, "content"} if term == "tv" else {term}
    return {t.weight_key: float(t.name in on) for t in TERMS}


@pytest.mark.parametrize(
    "preset, pooling, shape, tile, over",
    [
        ("classic", "avg", (120, 150), 48, {}),  # block5 style: halo 80 px, 3x4 tiles
        ("bold-strokes", "max", (133, 101), 32, {}),  # block5_conv2 content, odd sides: 5x4 tiles
        ("fine-texture", "max", (100, 130), 16, {}),  # only up to block3: 16 px grid, 7x9 tiles
        # Every term alone, on classic's layers (its W2 and histogram use them too).
        *(("classic", "max", (120, 150), 48, only(t.name)) for t in TERMS),
    ],
    ids=lambda v: "+".join(k for k, w in v.items() if w) if isinstance(v, dict) else None,
)
def test_tiled_objective_equals_the_untiled_one_in_float32(preset, pooling, shape, tile, over):
    over = {"pooling": pooling, "precision": "float32", **over}
    recipe = apply_overrides(load_preset(preset), over)
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


def test_style_statistics_by_tiles_equal_the_whole_images():
    from impasto.engine import terms
    from impasto.engine.objective import objective_for, style_targets

    layers = {"block1_conv1": 1.0, "block3_conv1": 1.0, "block5_conv1": 1.0}
    recipe = apply_overrides(
        load_preset("classic"),
        {"style_layers": layers, "w2_weight": 1.0, "hist_weight": 1.0, "precision": "float32"},
    )
    layout = terms.layout(recipe)
    style = np.random.default_rng(5).uniform(0, 1, (40, 56, 3)).astype(np.float32)
    whole = style_targets(objective_for(layout, "max", "float32"), style)
    net = tiling._net(terms.layers_of(layout), "max", "float32")
    style_terms = [(terms.BY_NAME[n], ks) for n, ks in layout if terms.BY_NAME[n].source == "style"]
    by_tiles = tiling.summaries(net, style, 16, style_terms)
    assert set(by_tiles) == {"style", "w2", "hist"}
    for name, per_layer in whole.items():
        for layer, value in per_layer.items():
            for got, want in zip(*map(tf_flat, (by_tiles[name][layer], value)), strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def tf_flat(nest) -> list:
    import tensorflow as tf

    return [np.asarray(v) for v in tf.nest.flatten(nest)]


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
