"""What the optimisers minimise: the weighted loss of a picture and its gradient, for one scale.

    total = sum over the recipe's active terms (impasto.engine.terms) of weight * term error

`Objective` is compiled once per layout (active terms and their layers, pooling, precision, and
the number of regions of a job with masks, see impasto.engine.terms);
TensorFlow traces its loss-and-gradient function once for every image shape and every job with
that layout: targets and weights are tensors. An optimiser only ever calls the `Evaluate` that
`Objective.at(...)` returns, so how the loss is computed (on the whole picture, or tile by tile
at print sizes) is invisible to it.

A style picture's target statistics (Gram matrices, means and covariances, sorted projections)
depend only on the picture, its working size and the layout, so they are kept for the next job
with the same style (a hot-folder batch, the gallery, a web-app session): `style_targets`
computes each one once.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import threading

import numpy as np
import tensorflow as tf

from impasto.engine.model import extractor
from impasto.engine.terms import BY_NAME, layers_of, params, positions, region_scales, targets_of

__all__ = ["Evaluate", "Objective", "objective_for", "params", "style_targets"]

# Gram targets kept per process: each is about 2.5 MB (all five style layers), so a few dozen
# styles cost little, and a long-running door does not grow without bound.
GRAM_CACHE_SIZE = 32


class Objective:
    """Loss and gradient of a picture for one layout, compiled once and shared by every job with
    that layout; what a job aims at is bound by `at(...)`, so jobs in several threads never share
    targets."""

    def __init__(self, layout: tuple, pooling: str, precision: str, regions: int = 0):
        self.terms = [(BY_NAME[name], layers) for name, layers in layout]
        self.features = extractor(layers_of(layout), pooling, precision)
        self.key = (layout, pooling, precision)  # what a style's statistics depend on
        self.regions = regions  # 0: no masks; else one region (mask and targets) per style
        # One shape-generic graph, traced once, serves every scale and photo size: a job does not
        # pay a trace per scale, and a long-running door does not keep a graph per size.
        self.compiled = tf.function(self._loss_and_gradient, input_signature=self._signature())

    def at(
        self,
        content: np.ndarray,
        styles: list[tuple[np.ndarray, float]],
        params,
        masks: np.ndarray | None = None,
    ) -> Evaluate:
        """The function an optimiser calls for this content picture and this blend of style
        pictures (arrays in [0, 1], at this scale's sizes); masks: with regions, [R, H, W] in
        [0, 1], one per style, at the content's size."""
        feats = {k: f[0] for k, f in self.features(tf.constant(content[None])).items()}
        refs = [(style_targets(self, arr), weight) for arr, weight in styles]
        local, targets = {}, {}
        for term, layers in self.terms:
            if term.source == "content":
                local[term.name] = {k: term.local(feats[k], k) for k in layers}
            for k in layers:
                if term.source == "content":
                    ref = term.reference(feats[k], k)
                    summaries = [(term.summary(ref, positions(content.shape, k)), 1.0)]
                else:
                    summaries = [(r[term.name][k], weight) for r, weight in refs]
                targets.setdefault(term.name, {})[k] = targets_of(
                    term, summaries, k, self.regions > 0
                )
        regions = None
        if self.regions:
            scales = region_scales([w for _, w in styles])
            regions = {"masks": tf.constant(masks, tf.float32), "scales": tf.constant(scales)}
        return Evaluate(self, local, targets, params, regions)

    def _signature(self) -> list:
        scalar = tf.TensorSpec((), tf.float32)
        with_layers = [(t, layers) for t, layers in self.terms if layers]

        def target_spec(term, k):  # with regions, a style term has one target per region
            spec = term.target_spec(k)
            return [spec] * self.regions if term.by_regions(self.regions > 0) else spec

        signature = [
            tf.TensorSpec((None, None, 3), tf.float32),
            {t.name: {k: t.local_spec(k) for k in ks} for t, ks in with_layers if t.local_spec},
            {t.name: {k: target_spec(t, k) for k in ks} for t, ks in with_layers},
            {
                "weights": {t.name: scalar for t, _ in self.terms},
                "layers": {t.name: dict.fromkeys(ks, scalar) for t, ks in with_layers},
            },
        ]
        if self.regions:
            signature.append(
                {
                    "masks": tf.TensorSpec((self.regions, None, None), tf.float32),
                    "scales": tf.TensorSpec((self.regions,), tf.float32),
                }
            )
        return signature

    def _loss_and_gradient(self, x, local, targets, p, regions=None):
        shape = (tf.shape(x)[0], tf.shape(x)[1])
        whole = tf.stack([0, 0, *shape])
        with tf.GradientTape() as tape:
            tape.watch(x)
            feats = {k: f[0] for k, f in self.features(x[None]).items()}
            losses = {}
            masks, scales = (regions["masks"], regions["scales"]) if regions else (None, None)
            for term, _ in self.terms:
                lw = p["layers"].get(term.name, {})
                s = term.picture_stats(feats, (x, whole), local.get(term.name, {}), lw, masks)
                loss = term.picture_loss(s, targets.get(term.name, {}), shape, lw, scales)
                losses[term.name] = p["weights"][term.name] * loss
            losses["total"] = tf.add_n([tf.zeros(()), *losses.values()])
        grad = tape.gradient(losses["total"], x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return losses, grad


class Evaluate:
    """evaluate(x) -> (weighted loss terms as floats, with "total"; d total / d x) for a
    [H, W, 3] picture; counts its calls (an optimiser step may take more than one)."""

    def __init__(self, objective: Objective, local: dict, targets: dict, params: dict, regions):
        self.objective, self.local, self.targets = objective, local, targets
        self.regions = () if regions is None else (regions,)
        self.params = {
            "weights": params["weights"],
            "layers": {k: v for k, v in params["layers"].items() if v},
        }
        self.calls = 0

    def __call__(self, x: np.ndarray) -> tuple[dict, np.ndarray]:
        self.calls += 1
        losses, grad = self.objective.compiled(
            tf.constant(x), self.local, self.targets, self.params, *self.regions
        )
        return {k: float(v) for k, v in losses.items()}, grad.numpy()


@functools.cache
def objective_for(layout: tuple, pooling: str, precision: str, regions: int = 0) -> Objective:
    """One Objective per layout per process (the traced graphs are what is worth keeping);
    layout: terms.layout(recipe); regions: the number of styles of a job with masks."""
    return Objective(layout, pooling, precision, regions)


_grams: collections.OrderedDict = collections.OrderedDict()
_grams_lock = threading.Lock()
gram_cache_stats = {"hits": 0, "misses": 0}


def style_targets(objective: Objective, style: np.ndarray) -> dict:
    """The summaries of a style picture (at its working size) that the objective's style terms
    aim at, {term: {layer: summary}}, computed once per picture, size and layout, least recently
    used dropped first."""
    key = (objective.key, style.shape, hashlib.blake2b(style.tobytes(), digest_size=16).digest())
    with _grams_lock:
        if key in _grams:
            _grams.move_to_end(key)
            gram_cache_stats["hits"] += 1
            return _grams[key]
    feats = {k: f[0] for k, f in objective.features(tf.constant(style[None])).items()}
    summaries = {
        term.name: {
            k: term.summary(term.reference(feats[k], k), positions(style.shape, k)) for k in layers
        }
        for term, layers in objective.terms
        if term.source == "style"
    }
    with _grams_lock:
        gram_cache_stats["misses"] += 1
        _grams[key] = summaries
        while len(_grams) > GRAM_CACHE_SIZE:
            _grams.popitem(last=False)
    return summaries
