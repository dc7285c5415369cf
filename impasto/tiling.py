"""The engine's objective and its gradient computed tile by tile, exactly, in bounded memory.

A step on the whole picture keeps every layer's activations for the backward pass: about 2 KB a
pixel, 30 GB at 4096x4096. Here the picture is cut into tiles and the same numbers come out:
- Content and TV terms are sums over positions, so each tile adds the part of the sum that falls
  in its core. A tile is run with a halo of real pixels as wide as the deepest layer's receptive
  field, so the core's features are the whole picture's; a tile at the picture's edge ends where
  the picture ends and is padded exactly as the whole picture is.
- Tile boundaries lie on the pooling grid (multiples of 2^pools of the deepest layer), so the
  2x2 pooling windows of a tile are the whole picture's windows.
- The style term needs the whole picture's Gram matrices G = F^T F / n: a first pass sums F^T F
  over the tiles' cores; the error's derivative dL/dG is then known, and a second pass pushes
  dL/dF = F (dL/dG + dL/dG^T) / n back through each tile. That is the gradient of the surrogate
  <F_core^T F_core / n, dL/dG>, which is what the second pass differentiates.
- The relative errors' denominators (the targets' squared norms) and the Gram's n are global:
  they are summed over all tiles before any tile's gradient is taken.
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

from impasto.model import extractor
from impasto.vgg19 import BLOCKS, LAYERS

log = logging.getLogger(__name__)

# relative_error's guard against an all-zero target (impasto/losses.py): the same here, or the
# tiled numbers would differ from the untiled ones for a black photo.
_EPS = 1e-8


def level(layer: str) -> int:
    """How many 2x2 poolings lie before this layer (block1: 0 ... block5: 4)."""
    return int(layer.removeprefix("block").split("_")[0]) - 1


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
    """The compiled per-tile computations for one network layout (traced once per crop shape;
    reduce_retracing makes it shape-generic after two shapes)."""

    def __init__(self, layers: tuple, pooling: str, precision: str):
        self.features = extractor(layers, pooling, precision)
        self.dtype = self.features.dtype
        self.core_features = tf.function(self._core_features, reduce_retracing=True)
        self.gram_sums = tf.function(self._gram_sums, reduce_retracing=True)
        self.gradient = tf.function(self._gradient, reduce_retracing=True)

    def _core_features(self, crop, offsets, layers):
        feats = self.features(crop[None])
        out = {}
        for name in layers:
            k = 2 ** level(name)
            top, left, bottom, right = (offsets[i] // k for i in range(4))
            out[name] = feats[name][0, top:bottom, left:right, :]
        return out

    def _gram_sums(self, crop, offsets, layers):
        """Sum over the core's positions of F^T F, per layer (float32)."""
        return {
            name: _ftf(f) for name, f in self._core_features(crop, offsets, tuple(layers)).items()
        }

    def _gradient(self, crop, offsets, content_t, content_scale, style_s, tv_scale):
        """This tile's content and TV sums, and the gradient over its crop of
        content_weight * content + style surrogate + tv_weight * tv (see the module doc)."""
        layers = tuple(content_t) + tuple(style_s)
        with tf.GradientTape() as tape:
            tape.watch(crop)
            feats = self._core_features(crop, offsets, layers)
            content = tf.zeros((), tf.float32)
            for name, target in content_t.items():
                diff = feats[name] - tf.cast(target, tf.float32)
                content += content_scale[name] * tf.reduce_sum(tf.square(diff))
            style = tf.zeros((), tf.float32)
            for name, s in style_s.items():
                style += tf.reduce_sum(_ftf(feats[name]) * s)
            tv = _tv_sums(crop, offsets)
            objective = content + style + tv_scale[0] * tv[0] + tv_scale[1] * tv[1]
        return content, tv, tape.gradient(objective, crop)


def _ftf(features: tf.Tensor) -> tf.Tensor:
    flat = tf.reshape(features, (-1, tf.shape(features)[-1]))
    return tf.matmul(flat, flat, transpose_a=True)


def _tv_sums(crop, offsets):
    """Sums of squared differences of the pixel pairs whose first pixel is in the core (the pair
    below and the pair to the right); the picture's edges have no pair beyond them."""
    top, left, bottom, right = (offsets[i] for i in range(4))
    h, w = tf.shape(crop)[0], tf.shape(crop)[1]
    dy = crop[1:, :, :] - crop[:-1, :, :]
    dx = crop[:, 1:, :] - crop[:, :-1, :]
    sum_y = tf.reduce_sum(tf.square(dy[top : tf.minimum(bottom, h - 1), left:right]))
    sum_x = tf.reduce_sum(tf.square(dx[top:bottom, left : tf.minimum(right, w - 1)]))
    return tf.stack([sum_y, sum_x])


@functools.cache
def _net(layers: tuple, pooling: str, precision: str) -> _TileNet:
    return _TileNet(layers, pooling, precision)


def grams(
    image: np.ndarray, layers: tuple, pooling: str, precision: str, tile: int
) -> dict[str, tf.Tensor]:
    """The Gram matrices of an HxWx3 image (losses.gram's: mean over positions), tile by tile."""
    layers = tuple(sorted(set(layers), key=LAYERS.index))
    net = _net(layers, pooling, precision)
    return _grams(net, image, tiles(image.shape[:2], tile, layers), layers, eager=True)


def _grams(net: _TileNet, image: np.ndarray, cut: list[Tile], layers: tuple, eager: bool) -> dict:
    sums: dict = {}
    gram_sums = net._gram_sums if eager else net.gram_sums
    for t in cut:
        part = gram_sums(tf.constant(image[t.crop_slices]), t.offsets, layers)
        for name, value in part.items():
            sums[name] = sums[name] + value if name in sums else value
    h, w = image.shape[:2]
    return {name: sums[name] / _positions(h, w, name) for name in layers}


def _positions(height: int, width: int, layer: str) -> float:
    k = 2 ** level(layer)
    return float((height // k) * (width // k))


class TiledObjective:
    """The engine's objective at one scale, evaluated tile by tile; an impasto.objective.Evaluate
    with the same numbers: objective(x) -> (weighted losses with "total", d total / d x).

    content: the content image at this scale (HxWx3 in [0, 1]); its features are computed here,
        per tile, and only the cores' are kept (in the convolutions' dtype, which is what they
        were computed in, so nothing is rounded).
    styles: (style picture at its working size, blend weight) pairs; their Gram matrices are
        computed tile by tile too (the style picture is as large as the output at style_scale 1).
    recipe: anything with content_layers, style_layers (layer -> weight), content_weight,
        style_weight, tv_weight and pooling (a presets.Recipe); precision: a concrete one.
    """

    def __init__(self, recipe, precision: str, content: np.ndarray, styles: list, tile: int):
        self.content_w = {k: float(v) for k, v in recipe.content_layers.items()}
        self.style_w = {k: float(v) for k, v in recipe.style_layers.items()}
        self.weights = {
            "content": float(recipe.content_weight),
            "style": float(recipe.style_weight),
            "tv": float(recipe.tv_weight),
        }
        layers = tuple(sorted(set(self.content_w) | set(self.style_w), key=LAYERS.index))
        self.net = _net(layers, recipe.pooling, precision)
        self.shape = content.shape[:2]
        self.tile = tile
        self.tiles = tiles(self.shape, tile, layers)
        self.calls = 0
        style_layers = tuple(self.style_w)
        self.style_t = dict.fromkeys(style_layers, tf.zeros((), tf.float32))
        for arr, weight in styles:
            for name, g in grams(arr, style_layers, recipe.pooling, precision, tile).items():
                self.style_t[name] = self.style_t[name] + weight * g
        self.style_norm = {
            name: float(tf.reduce_sum(tf.square(g))) + _EPS for name, g in self.style_t.items()
        }
        self.content_t = []
        norms = dict.fromkeys(self.content_w, 0.0)
        for t in self.tiles:
            # Eagerly, as impasto.objective computes its targets (a compiled graph fuses the
            # bias into the convolution and rounds bfloat16 differently).
            feats = self.net._core_features(
                tf.constant(content[t.crop_slices]), t.offsets, tuple(self.content_w)
            )
            self.content_t.append({k: tf.cast(f, self.net.dtype) for k, f in feats.items()})
            for name, f in feats.items():
                norms[name] += float(tf.reduce_sum(tf.square(f)))
        self.content_norm = {name: n + _EPS for name, n in norms.items()}

    def describe(self) -> str:
        """For the start line: how the picture is cut."""
        rows = len({t.core[0] for t in self.tiles})
        cols = len({t.core[1] for t in self.tiles})
        top, left, bottom, right = self.tiles[0].core
        return f"{len(self.tiles)} tiles ({rows}x{cols}) of up to {right - left}x{bottom - top} px"

    def __call__(self, x: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """Weighted losses (content, style, tv, total) at x, and the gradient of the total."""
        self.calls += 1
        x = np.asarray(x, np.float32)
        height, width = self.shape
        # Pass 1: the picture's Gram matrices, and the style error's derivative dL/dG.
        g = _grams(self.net, x, self.tiles, tuple(self.style_w), eager=False)
        style = 0.0
        style_s = {}
        for name, w in self.style_w.items():
            diff = g[name] - self.style_t[name]
            style += w * float(tf.reduce_sum(tf.square(diff))) / self.style_norm[name]
            # d(style_weight * w * ||G - T||^2 / norm)/dG, then /n for G = F^T F / n.
            scale = self.weights["style"] * w * 2.0 / self.style_norm[name]
            style_s[name] = scale * diff / _positions(height, width, name)
        content_scale = {
            name: tf.constant(self.weights["content"] * w / self.content_norm[name], tf.float32)
            for name, w in self.content_w.items()
        }
        # tv_loss is mean(dy^2) + mean(dx^2) over the whole picture.
        tv_count = np.array([(height - 1) * width * 3, height * (width - 1) * 3], np.float64)
        tv_scale = tf.constant(self.weights["tv"] / np.maximum(tv_count, 1), tf.float32)
        # Pass 2: each tile's share of the content and TV sums and of the gradient.
        gradient = np.zeros_like(x)
        content, tv = 0.0, np.zeros(2)
        for t, target in zip(self.tiles, self.content_t, strict=True):
            c, tv_part, grad = self.net.gradient(
                tf.constant(x[t.crop_slices]), t.offsets, target, content_scale, style_s, tv_scale
            )
            gradient[t.crop_slices] += grad.numpy()
            content += float(c)
            tv += tv_part.numpy()
        tv_value = float(np.sum(tv / np.maximum(tv_count, 1)))
        losses = {
            "content": content,  # already weighted: content_scale carries content_weight
            "style": self.weights["style"] * style,
            "tv": self.weights["tv"] * tv_value,
        }
        losses["total"] = losses["content"] + losses["style"] + losses["tv"]
        return losses, gradient
