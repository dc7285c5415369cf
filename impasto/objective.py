"""What the optimisers minimise: the weighted loss of a picture and its gradient, for one scale.

    total = content_weight * content error + style_weight * Gram error + tv_weight * roughness

`Objective` is compiled once per network layout (layers, pooling, precision); TensorFlow traces
its loss-and-gradient function once per image shape. An optimiser only ever calls the `Evaluate`
that `Objective.at(...)` returns, so how the loss is computed (on the whole picture, or tile by
tile at print sizes) is invisible to it.

The style image's Gram targets depend only on the style picture, its working size and the layout,
so they are kept for the next job with the same style (a hot-folder batch, the gallery, a web-app
session): `style_targets` computes each one once.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import threading

import numpy as np
import tensorflow as tf

from impasto.losses import content_loss, gram, style_loss, tv_loss
from impasto.model import extractor
from impasto.vgg19 import CHANNELS

# Gram targets kept per process: each is about 2.5 MB (all five style layers), so a few dozen
# styles cost little, and a long-running door does not grow without bound.
GRAM_CACHE_SIZE = 32


class Objective:
    """Loss and gradient of a picture for one network layout, compiled once and shared by every
    job with that layout; what a job aims at is bound by `at(...)`, so jobs in several threads
    never share targets."""

    def __init__(self, content_layers: tuple, style_layers: tuple, pooling: str, precision: str):
        self.features = extractor(content_layers + style_layers, pooling, precision)
        self.content_layers, self.style_layers = content_layers, style_layers
        self.key = (content_layers, style_layers, pooling, precision)
        # One shape-generic graph, traced once, serves every scale and photo size: a job does not
        # pay a trace per scale, and a long-running door does not keep a graph per size.
        self.compiled = tf.function(self._loss_and_gradient, input_signature=self._signature())

    def at(self, content: np.ndarray, styles: list[tuple[np.ndarray, float]], params) -> Evaluate:
        """The function an optimiser calls for this content picture and this blend of style
        pictures (arrays in [0, 1], at this scale's sizes)."""
        feats = self.features(tf.constant(content[None]))
        content_t = {name: feats[name] for name in self.content_layers}
        style_t = {name: tf.zeros((), tf.float32) for name in self.style_layers}
        for arr, weight in styles:
            grams = style_targets(self, arr)
            for name in self.style_layers:
                style_t[name] = style_t[name] + weight * grams[name]
        return Evaluate(self, content_t, style_t, params)

    def _signature(self) -> list:
        def channels(layer):
            return CHANNELS[int(layer[len("block")]) - 1]

        def spec(*shape):
            return tf.TensorSpec(shape, tf.float32)

        scalar = spec()
        return [
            spec(None, None, 3),
            {n: spec(1, None, None, channels(n)) for n in self.content_layers},
            {n: spec(channels(n), channels(n)) for n in self.style_layers},
            {
                "content_layers": {n: scalar for n in self.content_layers},
                "style_layers": {n: scalar for n in self.style_layers},
                **{k: scalar for k in ("content_weight", "style_weight", "tv_weight")},
            },
        ]

    def _loss_and_gradient(self, x, content_t, style_t, p):
        with tf.GradientTape() as tape:
            tape.watch(x)
            feats = self.features(x[None])
            c = content_loss(feats, content_t, p["content_layers"])
            losses = {
                "content": p["content_weight"] * c,
                "style": p["style_weight"] * style_loss(feats, style_t, p["style_layers"]),
                "tv": p["tv_weight"] * tv_loss(x),
            }
            losses["total"] = losses["content"] + losses["style"] + losses["tv"]
        return losses, tape.gradient(losses["total"], x)


class Evaluate:
    """evaluate(x) -> (weighted loss terms as floats, with "total"; d total / d x) for a
    [H, W, 3] picture; counts its calls (an optimiser step may take more than one)."""

    def __init__(self, objective: Objective, content_t: dict, style_t: dict, params: dict):
        self.objective, self.content_t, self.style_t, self.params = (
            objective,
            content_t,
            style_t,
            params,
        )
        self.calls = 0

    def __call__(self, x: np.ndarray) -> tuple[dict, np.ndarray]:
        self.calls += 1
        losses, grad = self.objective.compiled(
            tf.constant(x), self.content_t, self.style_t, self.params
        )
        return {k: float(v) for k, v in losses.items()}, grad.numpy()


@functools.cache
def objective_for(content_layers: tuple, style_layers: tuple, pooling: str, precision: str):
    """One Objective per layout per process (the traced graphs are what is worth keeping)."""
    return Objective(content_layers, style_layers, pooling, precision)


def params(recipe) -> dict:
    """The recipe's numbers as tensors: a job that only changes numbers reuses the traced graph."""
    f32 = lambda value: tf.constant(value, tf.float32)  # noqa: E731
    return {
        "content_layers": {k: f32(w) for k, w in recipe.content_layers.items()},
        "style_layers": {k: f32(w) for k, w in recipe.style_layers.items()},
        **{k: f32(getattr(recipe, k)) for k in ("content_weight", "style_weight", "tv_weight")},
    }


_grams: collections.OrderedDict = collections.OrderedDict()
_grams_lock = threading.Lock()
gram_cache_stats = {"hits": 0, "misses": 0}


def style_targets(objective: Objective, style: np.ndarray) -> dict:
    """Gram matrices of a style picture (at its working size) for the objective's style layers,
    computed once per picture, size and layout, least recently used dropped first."""
    key = (objective.key, style.shape, hashlib.blake2b(style.tobytes(), digest_size=16).digest())
    with _grams_lock:
        if key in _grams:
            _grams.move_to_end(key)
            gram_cache_stats["hits"] += 1
            return _grams[key]
    feats = objective.features(tf.constant(style[None]))
    grams = {name: gram(feats[name]) for name in objective.style_layers}
    with _grams_lock:
        gram_cache_stats["misses"] += 1
        _grams[key] = grams
        while len(_grams) > GRAM_CACHE_SIZE:
            _grams.popitem(last=False)
    return grams
