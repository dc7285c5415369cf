"""The objective's terms (impasto/engine/terms.py): the whole-picture objective is the paper's
formulas, W2 and the histogram term are zero at the painting's statistics and their gradients move a
picture towards them, and progress events name the active terms. Tiled against untiled, for every
term: tests/engine/test_tiling.py."""

from __future__ import annotations

import numpy as np
import pytest

import impasto
from impasto.engine import terms
from impasto.presets import apply_overrides, load_preset
from tests.conftest import CAT, STARRY

pytestmark = pytest.mark.usefixtures("weights_available")

LAYERS = {"block1_conv1": 1.0, "block2_conv1": 1.0, "block3_conv1": 1.0}


def test_the_engine_objective_is_the_papers_formulas():
    """Content, Gram style and TV through the term list give losses.py's numbers."""
    import tensorflow as tf

    from impasto.engine.losses import content_loss, gram, style_loss, tv_loss
    from impasto.engine.model import extractor
    from impasto.engine.objective import objective_for

    recipe = apply_overrides(load_preset("classic"), {"precision": "float32"})
    rng = np.random.default_rng(0)
    content, style, x = (rng.uniform(0, 1, (48, 64, 3)).astype(np.float32) for _ in range(3))
    objective = objective_for(terms.layout(recipe), recipe.pooling, "float32")
    losses, grad = objective.at(content, [(style, 1.0)], terms.params(recipe))(x)
    assert list(losses) == ["content", "style", "tv", "total"]

    features = extractor(terms.layers_of(terms.layout(recipe)), recipe.pooling, "float32")
    fc, fs, fx = (features(tf.constant(a[None])) for a in (content, style, x))
    grams = {k: gram(fs[k]) for k in recipe.style_layers}
    want = {
        "content": recipe.content_weight * content_loss(fx, fc, recipe.content_layers),
        "style": recipe.style_weight * style_loss(fx, grams, recipe.style_layers),
        "tv": recipe.tv_weight * tv_loss(tf.constant(x)),
    }
    for name, value in want.items():
        assert losses[name] == pytest.approx(float(value), rel=1e-5), name
    assert losses["total"] == pytest.approx(sum(float(v) for v in want.values()), rel=1e-5)


def _features(shape=(300, 6), seed=0):
    """Well-conditioned correlated features [1, h, w, C] (full-rank covariance)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(6, 6)) + 3 * np.eye(6)
    f = rng.normal(size=shape) @ mix + rng.uniform(1, 3, 6)
    return tf.constant(f.reshape(1, 20, -1, 6).astype(np.float32))


@pytest.mark.parametrize("term", [terms.W2(), terms.Histogram(), terms.Gram()])
def test_a_style_term_is_zero_at_the_paintings_statistics_and_positive_elsewhere(term):
    import tensorflow as tf

    layer = "block1_conv1"
    f, other = _features(), _features(seed=1)
    if term.name == "hist":  # its directions are for block1's 64 channels
        f, other = (tf.tile(a, (1, 1, 1, 11))[..., :64] for a in (f, other))
    n = float(f.shape[1] * f.shape[2])
    target = term.targets([(term.summary(term.reference(f[0], layer), n), 1.0)], layer)
    same = term.loss(term.stats(f[0], None, layer), target, n)
    assert abs(float(same)) < 1e-5
    assert float(term.loss(term.stats(other[0], None, layer), target, n)) > 1e-3


@pytest.mark.parametrize("eps", [1e-6, terms.W2_EPS])
def test_w2_is_the_closed_form_and_stays_finite_for_rank_deficient_covariances(eps, monkeypatch):
    """Against numpy's W2 between Gaussians: to float32's rounding with a tiny epsilon, within
    the documented bias with the default one; with a covariance of rank 2 in 6 channels (ReLU
    features are often like that) the loss and its gradient stay finite."""
    import tensorflow as tf

    monkeypatch.setattr(terms, "W2_EPS", eps)

    def sqrtm(c):
        vals, vecs = np.linalg.eigh(c)
        return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T

    term, layer = terms.W2(), "block1_conv1"
    fs, fx = (_features(seed=s)[0].numpy().reshape(-1, 6).astype(np.float64) for s in (2, 3))
    fx[:, 2:] = fx[:, :2] @ np.ones((2, 4))  # rank 2 beyond the mean
    ms, mx = fs.mean(0), fx.mean(0)
    cs, cx = np.cov(fs.T, bias=True), np.cov(fx.T, bias=True)
    root = sqrtm(cs)
    w2 = np.sum((mx - ms) ** 2) + np.trace(cx + cs - 2 * sqrtm(root @ cx @ root))
    want = w2 / (np.trace(cs) + ms @ ms)

    n = float(len(fs))
    as_map = lambda a: tf.constant(a.reshape(20, -1, 6), tf.float32)  # noqa: E731
    target = term.targets([(term.summary(term.reference(as_map(fs), layer), n), 1.0)], layer)
    x = as_map(fx)
    with tf.GradientTape() as tape:
        tape.watch(x)
        got = term.loss(term.stats(x, None, layer), target, n)
    grad = tape.gradient(got, x).numpy()
    # The sums are float32, so a rank-deficient covariance's zero eigenvalues come out as
    # rounding noise of ~1e-7 of the norm, and their roots as ~3e-4: that is the floor with a
    # tiny epsilon (1e-4 held on one CPU, not on another); an error in the formula is far larger.
    assert abs(float(got) - want) < (1e-3 * want if eps < 1e-3 else 2 * eps)
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0


def _stats_distance(image, style_path, layers=tuple(LAYERS)):
    """Per layer: distance of the features' mean and covariance, and of sorted projections,
    between a picture and the painting (at 64 px)."""
    import tensorflow as tf

    from impasto.engine.model import extractor
    from impasto.images import fit_long_side, load_image, to_array

    fe = extractor(layers, "max", "float32")
    style = load_image(style_path).rgb
    s = fe(tf.constant(to_array(style, fit_long_side(style.size, 64))[None]))
    x = fe(tf.constant(to_array(image.convert("RGB"))[None]))
    out = []
    for k in layers:
        a, b = (f[k].numpy().reshape(-1, f[k].shape[-1]) for f in (x, s))
        mean = np.linalg.norm(a.mean(0) - b.mean(0)) / np.linalg.norm(b.mean(0))
        cov = np.linalg.norm(np.cov(a.T) - np.cov(b.T)) / np.linalg.norm(np.cov(b.T))
        d = terms.directions(k)
        qa, qb = (np.quantile(m @ d, np.linspace(0.05, 0.95, 19), axis=0) for m in (a, b))
        out.append([mean, cov, np.abs(qa - qb).mean() / np.abs(qb).mean()])
    return np.array(out)


@pytest.mark.parametrize("term", ["w2", "hist"])
def test_a_few_steps_of_a_new_term_move_the_photo_towards_the_paintings_statistics(term):
    """Only this term on, from the photo: the term falls, and the features' mean, covariance and
    quantiles come nearer to the painting's. Also: the progress events name only this term."""
    seen = []
    off = {t.weight_key: 0.0 for t in terms.TERMS}
    over = {**off, f"{term}_weight": 1.0, f"{term}_layers": LAYERS, "steps": 8}
    over |= {"precision": "float32", "optimizer": "adam", "learning_rate": 0.03, "ema_decay": 0}
    job = impasto.StyleJob(CAT, [STARRY], size=64, seed=0, overrides=over)
    result = impasto.stylize(job, on_progress=seen.append)
    assert all(set(e.losses) == {term, "total"} for e in seen)
    assert seen[-1].losses[term] < 0.7 * seen[0].losses[term]
    from PIL import Image

    photo = Image.open(CAT).convert("RGB").resize(result.image.size)
    before, after = _stats_distance(photo, STARRY), _stats_distance(result.image, STARRY)
    assert (after.mean(0) < before.mean(0)).all(), (before, after)


def test_terms_mix_in_one_recipe_and_progress_lists_them_in_order():
    seen = []
    over = {"steps": 2, "w2_weight": 1.0, "hist_weight": 1.0, "hist_layers": LAYERS}
    impasto.stylize(impasto.StyleJob(CAT, [STARRY], size=64, overrides=over), seen.append)
    assert list(seen[-1].losses) == ["content", "style", "w2", "hist", "tv", "total"]
    assert seen[-1].losses["total"] == pytest.approx(
        sum(v for k, v in seen[-1].losses.items() if k != "total"), rel=1e-6
    )


def test_a_blend_of_a_style_with_itself_is_that_style():
    import tensorflow as tf

    layer = "block1_conv1"
    f = tf.tile(_features(), (1, 1, 1, 11))[0, ..., :64]
    for term in (terms.Gram(), terms.W2(), terms.Histogram()):
        s = term.summary(term.reference(f, layer), 300.0)
        one = term.targets([(s, 1.0)], layer)
        two = term.targets([(s, 0.25), (s, 0.75)], layer)
        for a, b in zip(tf.nest.flatten(one), tf.nest.flatten(two), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_jobs_that_change_only_numbers_reuse_the_traced_graph():
    """Weights, layer weights, style pictures and sizes are tensors: one trace per layout."""
    from impasto.engine.objective import objective_for

    base = {"precision": "float32", "w2_weight": 1.0, "hist_weight": 1.0, "style_layers": LAYERS}
    recipe = apply_overrides(load_preset("classic"), base)
    objective = objective_for(terms.layout(recipe), recipe.pooling, "float32")
    rng = np.random.default_rng(0)
    counts = []
    for (h, w), over in (
        ((40, 56), {}),
        (
            (56, 48),
            {"w2_weight": 2.0, "hist_weight": 0.5, "style_layers": {**LAYERS, "block1_conv1": 3}},
        ),
    ):
        r = apply_overrides(recipe, over)
        assert terms.layout(r) == terms.layout(recipe)
        content, style = (rng.uniform(0, 1, s).astype(np.float32) for s in ((h, w, 3), (w, h, 3)))
        objective.at(content, [(style, 0.5), (content, 0.5)], terms.params(r))(content)
        counts.append(objective.compiled.experimental_get_tracing_count())
    assert counts[0] == counts[1]
