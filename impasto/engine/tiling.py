"""The engine's objective and its gradient computed tile by tile, exactly, in bounded memory.

A step on the whole picture keeps every layer's activations for the backward pass: about 2 KB a
pixel, 30 GB at 4096x4096. Here the picture is cut into tiles and the same numbers come out:
- Every term's loss is a function of statistics of the picture's features (terms.py): sums
  over positions (or rows, one per position), so each tile's core gives its part of them. A tile
  is run with a halo of real pixels as wide as the deepest layer's receptive field, so the core's
  features are the whole picture's; a tile at the picture's edge ends where the picture ends and
  is padded exactly as the whole picture is.
- Tile boundaries lie on the pooling grid (multiples of 2^pools of the deepest layer), so the
  2x2 pooling windows of a tile are the whole picture's windows.
- Terms whose loss is linear in their sums (content, TV: split "positions") are computed in one
  pass: each tile adds its core's share of the loss and of the gradient.
- The other terms (Gram, W2, histogram) need the whole picture's statistics S: a first pass sums
  (or stacks) them over the tiles' cores; the loss's derivative dL/dS is then known, and a
  second pass takes each tile's gradient of the surrogate <S_core, dL/dS>, whose gradient is the
  tile's share of the true one.
- The targets' norms and every count of positions are the whole picture's, summed over tiles.
- With masks (regions, see terms.py), each tile takes its core's part of the pixel masks:
  a core lies on the pooling grid, so its pooled masks are the whole picture's at its positions,
  and the weighted sums (and the masses) add up over tiles as the plain ones do.
Each tile's gradient covers its crop (core and halo); the picture's gradient is their sum, because
every feature position belongs to exactly one core. The cost is a second forward pass and the
halos: about 1.5x to 2x the work of an untiled step.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from impasto.engine.model import extractor
from impasto.engine.terms import (
    BY_NAME,
    layers_of,
    layout,
    level,
    params,
    positions,
    region_scales,
    targets_of,
)
from impasto.engine.vgg19 import BLOCKS, LAYERS

log = logging.getLogger(__name__)


def alignment(layers) -> int:
    """Tile boundaries are multiples of this, so every tile pools on the whole picture's grid."""
    return 2 ** max(level(name) for name in layers)


def halo(layers) -> int:
    """Pixels of real picture needed around a core so its deepest features are exact.

    A 'SAME' 3x3 convolution at a cut edge reads zeros where the picture goes on: the wrong values
    spread one position per convolution, and a 2x2 pooling halves the spread (rounding up).
    Counted in positions of the deepest layer, then in pixels (a multiple of the alignment).
    """
    deepest = max(LAYERS.index(name) for name in layers)
    spread, index = 0, 0
    for block, convs in enumerate(BLOCKS):
        if block:
            spread = math.ceil(spread / 2)
        for _ in range(convs):
            spread += 1
            if index == deepest:
                return spread * 2**block
            index += 1
    raise AssertionError("unreachable: the deepest layer is one of LAYERS")


@dataclass(frozen=True)
class Tile:
    """A core (the pixels whose features this tile owns) and the crop it is computed on (core
    plus halo, cut at the picture's edges). Rows then columns, in pixels, ends exclusive."""

    core: tuple[int, int, int, int]  # top, left, bottom, right
    crop: tuple[int, int, int, int]

    @property
    def crop_slices(self) -> tuple[slice, slice]:
        top, left, bottom, right = self.crop
        return slice(top, bottom), slice(left, right)

    @property
    def offsets(self) -> np.ndarray:
        """The core within the crop: top, left, bottom, right."""
        (t, l_, b, r), (ct, cl, _, _) = self.core, self.crop
        return np.array([t - ct, l_ - cl, b - ct, r - cl], np.int32)


def _bounds(length: int, tile: int, align: int) -> list[int]:
    """Cuts along one side on multiples of `align`, into about equal parts of at most `tile` px
    (a multiple of `align`): no sliver of a few pixels paying for a whole halo."""
    units = math.ceil(length / align)
    parts = math.ceil(units / (tile // align))
    return [k * units // parts * align for k in range(parts)] + [length]


def tiles(shape: tuple[int, int], tile: int, layers) -> list[Tile]:
    """The tiles of an HxW picture for cores of at most tile x tile px (rounded to the grid)."""
    height, width = shape
    align, margin = alignment(layers), halo(layers)
    tile = max(align, tile // align * align)
    rows, cols = _bounds(height, tile, align), _bounds(width, tile, align)
    out = []
    for top, bottom in itertools.pairwise(rows):
        for left, right in itertools.pairwise(cols):
            crop = (
                max(0, top - margin),
                max(0, left - margin),
                min(height, bottom + margin),
                min(width, right + margin),
            )
            out.append(Tile((top, left, bottom, right), crop))
    return out


def work_ratio(shape: tuple[int, int], tile: int, layers) -> float:
    """A tiled step's work over an untiled step's: every crop (core and halo) goes through a
    forward pass for the Grams (about a third of a forward-and-backward pass) and a
    forward-and-backward pass for the gradient."""
    crops = sum((b - t) * (r - l_) for t, l_, b, r in (c.crop for c in tiles(shape, tile, layers)))
    return 4 / 3 * crops / (shape[0] * shape[1])


class _TileNet:
    """The compiled per-tile computations for one set of layers (traced once per crop shape and
    layout; reduce_retracing makes it shape-generic after two shapes)."""

    def __init__(self, layers: tuple, pooling: str, precision: str):
        self.layers = layers
        self.features = extractor(layers, pooling, precision)
        self.dtype = self.features.dtype
        self.stats = tf.function(self._stats, reduce_retracing=True)
        self.gradient = tf.function(self._gradient, reduce_retracing=True)

    def core_features(self, crop, offsets, layers=None):
        feats = self.features(crop[None])
        out = {}
        for name in layers or self.layers:
            k = 2 ** level(name)
            top, left, bottom, right = (offsets[i] // k for i in range(4))
            out[name] = feats[name][0, top:bottom, left:right, :]
        return out

    def _stats(self, crop, offsets, terms, masks=None):
        """The statistics of these terms over the core: {term: {layer: ...}} (masks: the core's
        pixel masks [R, h, w] of a job with regions)."""
        feats = self.core_features(crop, offsets, layers_of(terms))
        return {
            n: BY_NAME[n].picture_stats(feats, (crop, offsets), {}, ks, masks) for n, ks in terms
        }

    def _gradient(self, crop, offsets, terms, local, targets, p, grads, shape, masks=None):
        """This tile's share of the "positions" terms' weighted losses, and the gradient over its
        crop of those shares plus <S_core, dL/dS> for the other terms (grads: their dL/dS)."""
        with tf.GradientTape() as tape:
            tape.watch(crop)
            feats = self.core_features(crop, offsets, layers_of(terms))
            shares, objective = {}, tf.zeros(())
            for name, layers in terms:
                term = BY_NAME[name]
                s = term.picture_stats(feats, (crop, offsets), local.get(name, {}), layers, masks)
                if name in grads:
                    for a, b in zip(tf.nest.flatten(s), tf.nest.flatten(grads[name]), strict=True):
                        objective += tf.reduce_sum(a * b)
                else:
                    lw = p["layers"].get(name, {})
                    loss = term.picture_loss(s, targets.get(name, {}), shape, lw)
                    shares[name] = p["weights"][name] * loss
                    objective += shares[name]
        return shares, tape.gradient(
            objective, crop, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )


@functools.cache
def _net(layers: tuple, pooling: str, precision: str) -> _TileNet:
    return _TileNet(layers, pooling, precision)


def _combine(parts: list, split: str):
    """The tiles' statistics of one term: summed, or rows stacked."""
    if split == "rows":
        return tf.nest.map_structure(lambda *xs: tf.concat(xs, axis=0), *parts)
    return tf.nest.map_structure(lambda *xs: tf.add_n(xs), *parts)


def _split_rows(g, parts: list) -> list:
    """dL/dS of stacked rows cut back into each tile's rows (g and each part: {layer: rows, or a
    structure of rows})."""
    out = [{} for _ in parts]
    for k, v in g.items():
        counts = [int(tf.nest.flatten(p[k])[0].shape[0]) for p in parts]
        pieces = [tf.split(t, counts) for t in tf.nest.flatten(v)]
        for i, per_tile in enumerate(out):
            per_tile[k] = tf.nest.pack_sequence_as(v, [p[i] for p in pieces])
    return out


def summaries(net: _TileNet, image: np.ndarray, tile: int, terms: list) -> dict:
    """For (term, layers) pairs: each layer's summary of the image's reference statistics,
    computed tile by tile (eagerly, as objective.py computes its targets: a compiled graph
    fuses the bias into the convolution and rounds bfloat16 differently)."""
    if not terms:
        return {}
    parts = []
    for t in tiles(image.shape[:2], tile, net.layers):
        feats = net.core_features(tf.constant(image[t.crop_slices]), t.offsets)
        parts.append(
            {term.name: {k: term.reference(feats[k], k) for k in ks} for term, ks in terms}
        )
    return {
        term.name: {
            k: term.summary(ref, positions(image.shape, k))
            for k, ref in _combine([p[term.name] for p in parts], term.split).items()
        }
        for term, ks in terms
    }


class TiledObjective:
    """The engine's objective at one scale, evaluated tile by tile; an objective.Evaluate
    with the same numbers: objective(x) -> (weighted losses with "total", d total / d x).

    content: the content image at this scale (HxWx3 in [0, 1]); its features are computed here,
        per tile, and only the cores' are kept (in the convolutions' dtype, which is what they
        were computed in, so nothing is rounded).
    styles: (style picture at its working size, blend weight) pairs; their statistics are
        computed tile by tile too (the style picture is as large as the output at style_scale 1).
    recipe: a presets.Recipe (its terms' weights and layers, and pooling); precision: a concrete
        one.
    masks: None, or with regions [R, H, W] in [0, 1], one per style (see impasto.engine.terms).
    """

    def __init__(
        self, recipe, precision: str, content: np.ndarray, styles: list, tile: int, masks=None
    ):
        self.layout, self.params = layout(recipe), params(recipe)
        self.terms = [(BY_NAME[name], ks) for name, ks in self.layout]
        layers = layers_of(self.layout)
        self.net = _net(layers, recipe.pooling, precision)
        self.shape = content.shape[:2]
        self.tile = tile
        self.tiles = tiles(self.shape, tile, layers)
        self.calls = 0
        by_source = {
            source: [(t, ks) for t, ks in self.terms if t.source == source]
            for source in ("content", "style")
        }
        self.local = []
        for t in self.tiles:
            feats = self.net.core_features(tf.constant(content[t.crop_slices]), t.offsets)
            self.local.append(
                {
                    term.name: {k: tf.cast(term.local(feats[k], k), self.net.dtype) for k in ks}
                    for term, ks in by_source["content"]
                }
            )
        found = [(summaries(self.net, content, tile, by_source["content"]), 1.0)]
        found += [(summaries(self.net, arr, tile, by_source["style"]), w) for arr, w in styles]
        regions = masks is not None
        self.targets = {
            term.name: {
                k: targets_of(
                    term, [(s[term.name][k], w) for s, w in found if term.name in s], k, regions
                )
                for k in ks
            }
            for term, ks in self.terms
            if ks
        }
        # Each tile's core of the masks, and what each region's loss counts.
        self.masks = [None] * len(self.tiles)
        self.scales = None
        if regions:
            self.masks = [
                tf.constant(masks[:, t.core[0] : t.core[2], t.core[1] : t.core[3]])
                for t in self.tiles
            ]
            self.scales = region_scales([w for _, w in styles])

    def describe(self) -> str:
        """For the start line: how the picture is cut."""
        rows = len({t.core[0] for t in self.tiles})
        cols = len({t.core[1] for t in self.tiles})
        top, left, bottom, right = self.tiles[0].core
        return f"{len(self.tiles)} tiles ({rows}x{cols}) of up to {right - left}x{bottom - top} px"

    def __call__(self, x: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """Weighted losses (per term, and total) at x, and the gradient of the total."""
        self.calls += 1
        x = np.asarray(x, np.float32)
        crops = [tf.constant(x[t.crop_slices]) for t in self.tiles]
        shape = tf.constant(self.shape, tf.int32)
        weights, layer_weights = self.params["weights"], self.params["layers"]
        # Pass 1: the global statistics' terms, their losses and dL/dS (per tile for rows).
        global_terms = tuple((t.name, ks) for t, ks in self.terms if t.split != "positions")
        losses, grads = {}, [{} for _ in self.tiles]
        if global_terms:
            parts = [
                self.net.stats(c, t.offsets, global_terms, m)
                for c, t, m in zip(crops, self.tiles, self.masks, strict=True)
            ]
            for name, _ in global_terms:
                term = BY_NAME[name]
                s = _combine([p[name] for p in parts], term.split)
                with tf.GradientTape() as tape:
                    tape.watch(s)
                    loss = weights[name] * term.picture_loss(
                        s, self.targets[name], self.shape, layer_weights[name], self.scales
                    )
                losses[name] = float(loss)
                g = tape.gradient(loss, s, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                if term.split == "rows":
                    for per_tile, rows in zip(
                        grads, _split_rows(g, [p[name] for p in parts]), strict=True
                    ):
                        per_tile[name] = rows
                else:
                    for per_tile in grads:
                        per_tile[name] = g
        # Pass 2: each tile's shares of the "positions" terms, and its part of the gradient.
        gradient = np.zeros_like(x)
        for crop, t, local, g, m in zip(
            crops, self.tiles, self.local, grads, self.masks, strict=True
        ):
            shares, grad = self.net.gradient(
                crop, t.offsets, self.layout, local, self.targets, self.params, g, shape, m
            )
            gradient[t.crop_slices] += grad.numpy()
            for name, value in shares.items():
                losses[name] = losses.get(name, 0.0) + float(value)
        losses = {name: losses[name] for name, _ in self.layout}
        losses["total"] = sum(losses.values())
        return losses, gradient
