"""The objective's terms: one small class each, and TERMS, the one list everything loops over.

A term has a name (its key in the losses of progress events, stats and plots), its recipe keys
(a weight, and a layer table for the terms on features) and, per layer, these functions of
float32 tensors of one region's features F [h, w, C] (a tile's core, or the whole picture):
- stats(F, local, layer): what the loss needs from a region, as sums over its positions (added
  over regions) or, for `split == "rows"`, as rows (stacked over regions);
- reference(F, layer) and summary(ref, n): the same kind of statistics of a content or style
  picture, reduced to what a target needs (cached per style picture: small);
- targets([(summary, blend weight)], layer): what the term aims at, computed once per job;
- loss(S, target, n): the relative error of the whole picture from its statistics S, with n
  positions in the layer.
The loss on the whole picture is loss(stats(whole picture)); tiling.py sums (or stacks)
each tile core's stats first. `split` says how a term is cut into tiles:
- "positions": the loss is linear in sums over positions (content, TV), so each tile adds its
  share of the loss and of the gradient in one pass;
- "sums": a global statistic first (Gram, W2): the tiles' sums, then dL/dS, then each tile's
  gradient of <stats(tile), dL/dS>;
- "rows": the same with rows stacked (the histogram's projections, sorted globally).
Every loss is relative (divided by a norm of its target, see losses.py), so weights do
not depend on the layer or the picture's size, and stays in float32 (float64 for W2's roots).

Regions (a mask per style, Gatys et al. 2017, "Controlling Perceptual Factors"): when a job has
masks, each style is a region with its own targets (its own picture's statistics, not a blend),
and the style terms take weighted statistics: every position counts with the region's mask at
the layer's resolution (the pixel mask average-pooled 2x2 as often as the layer's poolings, which
gives exactly its positions grid). region_stats(F, m, layer), m [n, R] (one column per region),
returns the sums (Gram: sum m f f^T and sum m; W2: also sum m f) or rows (the histogram's
projections and the weights) that the tiles add up as before; region_loss(S, target, r) is
region r's relative error from them. A region's loss counts blend weight x number of regions
(region_scales), so equal weights give every region the preset's full style strength. Where no
mask covers a position, only the content and TV terms act: the photo stays.

Adding a term: a class here, an entry in TERMS, its keys in presets.Recipe (which imports no
TensorFlow, hence not this module), and a preset that uses it.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from impasto.engine.losses import relative_error
from impasto.engine.vgg19 import CHANNELS, LAYERS

EPS = 1e-8  # losses.relative_error's guard against an all-zero target
HIST_DIRECTIONS = 32  # projections per layer: half of block1's channels, far less deeper
HIST_QUANTILES = 4096  # a style picture's sorted projections are kept at this many quantiles
W2_EPS = 1e-2  # W2's roots: sqrt(l + e) - sqrt(e), e = (W2_EPS tr(C_s) / C)^2


def channels(layer: str) -> int:
    return CHANNELS[int(layer[len("block")]) - 1]


def level(layer: str) -> int:
    """How many 2x2 poolings lie before this layer (block1: 0 ... block5: 4)."""
    return int(layer.removeprefix("block").split("_")[0]) - 1


def positions(shape, layer: str):
    """Feature positions of a layer for an HxW picture (ints or int tensors)."""
    k = 2 ** level(layer)
    return (shape[0] // k) * (shape[1] // k)


def _spec(*shape) -> tf.TensorSpec:
    return tf.TensorSpec(shape, tf.float32)


def _flat(f: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.cast(f, tf.float32), (-1, tf.shape(f)[-1]))


def _ftf(f: tf.Tensor) -> tf.Tensor:
    flat = _flat(f)
    return tf.matmul(flat, flat, transpose_a=True)


def _weighted_ftf(flat: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
    """[R, C, C]: sum over positions of m_r f f^T, one region (column of m [n, R]) at a time."""
    return tf.stack(
        [tf.matmul(flat * m[:, r : r + 1], flat, transpose_a=True) for r in range(m.shape[1])]
    )


def mask_at(masks: tf.Tensor, layer: str) -> tf.Tensor:
    """Pixel masks [R, h, w] of a picture (or a tile's core, which lies on the pooling grid) at
    a layer's positions, flattened as the features are: [n, R]."""
    m = tf.transpose(masks, (1, 2, 0))[None]
    for _ in range(level(layer)):
        m = tf.nn.avg_pool2d(m, ksize=2, strides=2, padding="VALID")
    return tf.reshape(m, (-1, tf.shape(masks)[0]))


def region_scales(weights) -> list[float]:
    """What each region's style loss counts: its blend weight (weights sum to 1) times the number
    of regions, so equal weights give every region the preset's full style strength."""
    return [w * len(weights) for w in weights]


class Term:
    """One term of the objective on features (see the module doc); TV overrides the per-picture
    methods. Subclasses set name, weight_key, layers_key, source, split and the functions."""

    name: str
    weight_key: str
    layers_key: str | None = None
    source: str | None = "style"  # whose picture gives the targets: "content", "style", None
    split = "sums"

    def layers(self, recipe) -> dict:
        """layer -> relative weight; a style term without its own table uses style_layers."""
        if self.layers_key is None:
            return {}
        return getattr(recipe, self.layers_key) or recipe.style_layers

    # What the traced graphs take: per layer, the targets' and the local targets' shapes.
    def target_spec(self, layer: str):
        raise NotImplementedError

    local_spec = None  # a function of the layer for terms with local targets (content)

    def local(self, f: tf.Tensor, layer: str):
        """Per-position targets of a region (only the content term has any)."""
        return None

    def reference(self, f: tf.Tensor, layer: str):
        return self.stats(f, None, layer)

    def summary(self, ref, n):
        """A picture's reference statistics reduced to what targets need (default: means)."""
        return tf.nest.map_structure(lambda s: s / n, ref)

    def stats(self, f: tf.Tensor, local, layer: str):
        raise NotImplementedError

    def targets(self, summaries: list, layer: str):
        raise NotImplementedError

    def loss(self, s, target, n) -> tf.Tensor:
        raise NotImplementedError

    # Regions (a job with masks; only the style terms): see the module doc.
    def region_stats(self, f: tf.Tensor, m: tf.Tensor, layer: str):
        raise NotImplementedError

    def region_loss(self, s, target, r: int) -> tf.Tensor:
        raise NotImplementedError

    def by_regions(self, regions: bool) -> bool:
        """Whether this term works by regions in a job with (regions) or without masks: only
        the style terms do; content and TV act on the whole picture."""
        return regions and self.source == "style"

    # Per picture (or tile core): pixels is (crop, core offsets in it); layers, the term's;
    # masks: None, or the core's pixel masks [R, h, w].
    def picture_stats(self, feats: dict, pixels, local: dict, layers, masks=None) -> dict:
        if self.by_regions(masks is not None):
            return {k: self.region_stats(feats[k], mask_at(masks, k), k) for k in layers}
        return {k: self.stats(feats[k], local.get(k), k) for k in layers}

    def picture_loss(self, s: dict, targets: dict, shape, layer_weights: dict, scales=None):
        """The weighted loss over layers; with regions (scales: one per region, see
        region_scales), targets hold one target per region and their losses add up."""
        if self.by_regions(scales is not None):
            return tf.add_n(
                [
                    w * scales[r] * self.region_loss(s[k], targets[k][r], r)
                    for k, w in layer_weights.items()
                    for r in range(len(targets[k]))
                ]
            )
        return tf.add_n(
            [
                w * self.loss(s[k], targets[k], tf.cast(positions(shape, k), tf.float32))
                for k, w in layer_weights.items()
            ]
        )


class Content(Term):
    """Gatys et al.'s content error, relative: ||F - T||^2 / ||T||^2 per layer."""

    name, weight_key, layers_key, source, split = (
        "content",
        "content_weight",
        "content_layers",
        "content",
        "positions",
    )

    def target_spec(self, layer):
        return _spec()  # ||T||^2 over the whole picture

    def local_spec(self, layer):  # only terms with local targets have one
        return _spec(None, None, channels(layer))

    def local(self, f, layer):
        return f

    def reference(self, f, layer):
        return tf.reduce_sum(tf.square(tf.cast(f, tf.float32)))

    def summary(self, ref, n):
        return ref

    def targets(self, summaries, layer):
        ((norm, _),) = summaries
        return norm + EPS

    def stats(self, f, local, layer):
        return tf.reduce_sum(tf.square(tf.cast(f, tf.float32) - tf.cast(local, tf.float32)))

    def loss(self, s, target, n):
        return s / target


class Gram(Term):
    """Gatys et al.'s style error: relative error of the Gram matrix G = F^T F / n. A blend of
    styles aims at the blend of their Grams."""

    name, weight_key, layers_key = "style", "style_weight", "style_layers"

    def target_spec(self, layer):
        return _spec(channels(layer), channels(layer))

    def stats(self, f, local, layer):
        return _ftf(f)

    def targets(self, summaries, layer):
        return tf.add_n([w * g for g, w in summaries])

    def loss(self, s, target, n):
        return relative_error(s / n, target)

    def region_stats(self, f, m, layer):
        return {"ftf": _weighted_ftf(_flat(f), m), "mass": tf.reduce_sum(m, axis=0)}

    def region_loss(self, s, target, r):
        # The region's Gram: its positions' mean of f f^T, each weighing its mask.
        return self.loss(s["ftf"][r], target, s["mass"][r] + EPS)


class W2(Term):
    """Wasserstein-2 distance between Gaussian fits of the picture's and the style's features
    (mean mu, covariance C), per layer:
        W2^2 = |mu_x - mu_s|^2 + tr(C_x) + tr(C_s) - 2 tr((C_s^1/2 C_x C_s^1/2)^1/2)
    divided by E|f_s|^2 = tr(C_s) + |mu_s|^2, so it is relative like the other terms.
    Unlike a Gram, it separates the mean from the spread, so a colour cast or a washed-out
    contrast counts as such. Departures, for stability with rank-deficient covariances (ReLU
    features): roots by eigendecomposition in float64 with negative eigenvalues clipped; the
    picture's side takes only eigenvalues (tf.linalg.eigvalsh: its gradient V diag(f') V^T has no
    1/(l_i - l_j) term, so repeated eigenvalues are harmless), and each root sqrt(l) taken as
    sqrt(l + e) - sqrt(e), e = (W2_EPS tr(C_s)/C)^2, whose slope is finite at l = 0. The same
    is done to the style's own eigenvalues in the constant part, so the loss is 0 at the style's
    statistics; elsewhere it is off by at most 2 W2_EPS of the norm. A smaller W2_EPS (1e-3) made
    the gradient so sensitive to float32 rounding that tiled and untiled steps differed.
    A blend of styles aims at the mixture's mean and covariance."""

    name, weight_key, layers_key = "w2", "w2_weight", "w2_layers"

    def target_spec(self, layer):
        c = channels(layer)
        return {k: _spec() for k in ("eps", "constant", "norm")} | {
            "mean": _spec(c),
            "root": _spec(c, c),
        }

    def stats(self, f, local, layer):
        return {"sum": tf.reduce_sum(_flat(f), axis=0), "ftf": _ftf(f)}

    def targets(self, summaries, layer):
        mean = tf.add_n([w * s["sum"] for s, w in summaries])
        second = tf.add_n([w * s["ftf"] for s, w in summaries])
        cov = tf.cast(second - mean[:, None] * mean[None, :], tf.float64)
        vals, vecs = tf.linalg.eigh((cov + tf.transpose(cov)) / 2)
        vals = tf.maximum(vals, 0.0)
        eps = tf.square(W2_EPS * tf.reduce_sum(vals) / channels(layer)) + 1e-30
        # tr(C_s) - 2 tr(C_s) + 2 tr(C_s), the last one's roots taken as the picture's are.
        constant = 2 * tf.reduce_sum(_root(tf.square(vals), eps)) - tf.reduce_sum(vals)
        return {
            "mean": mean,
            "root": tf.cast((vecs * tf.sqrt(vals)) @ tf.transpose(vecs), tf.float32),
            "eps": tf.cast(eps, tf.float32),
            "constant": tf.cast(constant, tf.float32),
            "norm": tf.linalg.trace(second) + EPS,
        }

    def loss(self, s, target, n):
        f64 = lambda t: tf.cast(t, tf.float64)  # noqa: E731
        mean = f64(s["sum"]) / f64(n)
        cov = f64(s["ftf"]) / f64(n) - mean[:, None] * mean[None, :]
        root = f64(target["root"])
        m = root @ cov @ root
        cross = tf.reduce_sum(_root(tf.linalg.eigvalsh((m + tf.transpose(m)) / 2), target["eps"]))
        w2 = tf.reduce_sum(tf.square(mean - f64(target["mean"]))) + tf.linalg.trace(cov)
        return tf.cast(w2 + f64(target["constant"]) - 2 * cross, tf.float32) / target["norm"]

    def region_stats(self, f, m, layer):
        flat = _flat(f)
        return {
            "sum": tf.matmul(m, flat, transpose_a=True),
            "ftf": _weighted_ftf(flat, m),
            "mass": tf.reduce_sum(m, axis=0),
        }

    def region_loss(self, s, target, r):
        # The region's weighted mean and covariance, against its own style's.
        return self.loss({"sum": s["sum"][r], "ftf": s["ftf"][r]}, target, s["mass"][r] + EPS)


def _root(eigenvalues: tf.Tensor, eps) -> tf.Tensor:
    """sqrt(l + e) - sqrt(e) of eigenvalues clipped at 0: sqrt(l) with a finite slope at 0."""
    eps = tf.cast(eps, eigenvalues.dtype)
    return tf.sqrt(tf.maximum(eigenvalues, 0.0) + eps) - tf.sqrt(eps)


@functools.cache
def directions(layer: str) -> np.ndarray:
    """HIST_DIRECTIONS random unit vectors [C, K] for a layer: a fixed seed per layer, so every
    job, scale and tile projects on the same ones."""
    rng = np.random.default_rng(LAYERS.index(layer))
    d = rng.normal(size=(channels(layer), HIST_DIRECTIONS))
    return (d / np.linalg.norm(d, axis=0)).astype(np.float32)


class Histogram(Term):
    """Sliced Wasserstein: the features projected on K fixed random directions per layer,
    sorted, against the style's sorted projections resampled to the picture's positions
    (quantile matching), relative: sum (sort(P) - Q)^2 / sum Q^2. Risser et al. (2017) match
    each channel's histogram to cure the Gram loss's instabilities and washed-out colours; random
    directions (Heitz et al. 2021) also constrain how channels vary together. Departures: the
    directions are fixed per layer (not redrawn every step) so the loss is a fixed function the
    optimiser (L-BFGS) and the tiles agree on; the style's quantiles are kept at no more than
    HIST_QUANTILES points (linear interpolation) so a cached style stays small."""

    name, weight_key, layers_key, split = "hist", "hist_weight", "hist_layers", "rows"

    def target_spec(self, layer):
        return _spec(None, HIST_DIRECTIONS)

    def stats(self, f, local, layer):
        return _flat(f) @ tf.constant(directions(layer))

    def summary(self, ref, n):
        return _resample(tf.sort(ref, axis=0), min(HIST_QUANTILES, int(ref.shape[0])))

    def targets(self, summaries, layer):
        summaries = [(q.numpy(), w) for q, w in summaries if w > 0]
        if len(summaries) == 1:
            return tf.constant(summaries[0][0])
        # The blend's quantiles: every style's quantiles, each weighing its blend weight.
        count = max(len(q) for q, _ in summaries)
        values = np.concatenate([q for q, _ in summaries])
        mass = np.concatenate([np.full(len(q), w / len(q)) for q, w in summaries])
        grid = (np.arange(count) + 0.5) / count
        out = np.empty((count, values.shape[1]), np.float32)
        for k in range(values.shape[1]):
            order = np.argsort(values[:, k], kind="stable")
            cum = np.cumsum(mass[order]) - mass[order] / 2
            out[:, k] = np.interp(grid, cum / mass.sum(), values[order, k])
        return tf.constant(out)

    def loss(self, s, target, n):
        want = _resample(target, tf.shape(s)[0])
        return relative_error(tf.sort(s, axis=0), want)

    def region_stats(self, f, m, layer):
        # Rows: each position's projections and its weight in every region.
        return {"proj": self.stats(f, None, layer), "weight": m}

    def region_loss(self, s, target, r):
        """Weighted quantile matching: the projections sorted with their weights carried along,
        each compared with the style's quantile at its weight's cumulative position (the middle
        of its share), the squared errors weighted, relative. With every weight 1 it is loss()."""
        proj = tf.transpose(s["proj"])  # [K, n]
        order = tf.argsort(proj, axis=1, stable=True)
        values = tf.gather(proj, order, batch_dims=1)
        weight = tf.gather(s["weight"][:, r], order)  # [K, n]
        total = tf.reduce_sum(weight, axis=1, keepdims=True) + EPS
        at = (tf.cumsum(weight, axis=1) - weight / 2) / total
        want = _quantiles_at(tf.transpose(target), at)
        return tf.reduce_sum(weight * tf.square(values - want)) / (
            tf.reduce_sum(weight * tf.square(want)) + EPS
        )


def _resample(quantiles: tf.Tensor, n) -> tf.Tensor:
    """Sorted values [m, K] at the n quantiles (i + 1/2) / n, by linear interpolation."""
    m = tf.shape(quantiles)[0]
    at = (tf.range(n, dtype=tf.float32) + 0.5) / tf.cast(n, tf.float32) * tf.cast(m, tf.float32)
    at = tf.clip_by_value(at - 0.5, 0.0, tf.cast(m - 1, tf.float32))
    low = tf.cast(tf.floor(at), tf.int32)
    high = tf.minimum(low + 1, m - 1)
    frac = (at - tf.floor(at))[:, None]
    return tf.gather(quantiles, low) * (1 - frac) + tf.gather(quantiles, high) * frac


def _quantiles_at(quantiles: tf.Tensor, at: tf.Tensor) -> tf.Tensor:
    """Sorted values [K, m] (at the quantiles (i + 1/2) / m) read at fractions at [K, n] in
    [0, 1], by linear interpolation as _resample does."""
    m = tf.shape(quantiles)[1]
    pos = tf.clip_by_value(at * tf.cast(m, tf.float32) - 0.5, 0.0, tf.cast(m - 1, tf.float32))
    low = tf.cast(tf.floor(pos), tf.int32)
    high = tf.minimum(low + 1, m - 1)
    frac = pos - tf.floor(pos)
    low_v = tf.gather(quantiles, low, batch_dims=1)
    high_v = tf.gather(quantiles, high, batch_dims=1)
    return low_v * (1 - frac) + high_v * frac


class TV(Term):
    """Total variation: mean squared difference of neighbouring pixels (a smoothness prior; the
    paper has none). Its sums are over the pixel pairs whose first pixel is in the region."""

    name, weight_key, source, split = "tv", "tv_weight", None, "positions"

    def picture_stats(self, feats, pixels, local, layers, masks=None):
        crop, offsets = pixels
        top, left, bottom, right = (offsets[i] for i in range(4))
        h, w = tf.shape(crop)[0], tf.shape(crop)[1]
        dy = crop[1:, :, :] - crop[:-1, :, :]
        dx = crop[:, 1:, :] - crop[:, :-1, :]
        sum_y = tf.reduce_sum(tf.square(dy[top : tf.minimum(bottom, h - 1), left:right]))
        sum_x = tf.reduce_sum(tf.square(dx[top:bottom, left : tf.minimum(right, w - 1)]))
        return tf.stack([sum_y, sum_x])

    def picture_loss(self, s, targets, shape, layer_weights, scales=None):
        h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        return s[0] / tf.maximum((h - 1) * w * 3, 1.0) + s[1] / tf.maximum(h * (w - 1) * 3, 1.0)


TERMS: tuple[Term, ...] = (Content(), Gram(), W2(), Histogram(), TV())
BY_NAME = {t.name: t for t in TERMS}


def layout(recipe) -> tuple:
    """The recipe's active terms (weight > 0) and their layers: (name, (layer, ...)) pairs. With
    the pooling and precision, it decides the traced graphs; numbers are passed as tensors."""
    return tuple(
        (t.name, tuple(t.layers(recipe))) for t in TERMS if getattr(recipe, t.weight_key) > 0
    )


def layers_of(layout: tuple) -> tuple:
    """Every layer a layout needs, in network order."""
    return tuple(sorted({k for _, ks in layout for k in ks}, key=LAYERS.index))


def targets_of(term: Term, summaries: list, layer: str, regions: bool):
    """A term's targets from [(summary, blend weight)]: the blend's, or with regions one per
    style (each region aims at its own picture, whatever the weights)."""
    if term.by_regions(regions):
        return [term.targets([(summary, 1.0)], layer) for summary, _ in summaries]
    return term.targets(summaries, layer)


def params(recipe) -> dict:
    """The recipe's numbers for its active terms, as tensors (jobs that change only numbers
    reuse the traced graph): {"weights": {term: w}, "layers": {term: {layer: w}}}."""
    f32 = lambda value: tf.constant(value, tf.float32)  # noqa: E731
    active = layout(recipe)
    return {
        "weights": {n: f32(getattr(recipe, BY_NAME[n].weight_key)) for n, _ in active},
        "layers": {n: {k: f32(w) for k, w in BY_NAME[n].layers(recipe).items()} for n, _ in active},
    }
