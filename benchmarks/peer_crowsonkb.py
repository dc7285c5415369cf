"""A peer, run side by side with impasto: Katherine Crowson's style-transfer-pytorch
(https://github.com/crowsonkb/style-transfer-pytorch, MIT), at its defaults, on the CPU.

Its source is not on PyPI and is never copied into this repository: each run extracts the pinned
commit from a local clone (IMPASTO_PEER_REPO, a git directory; by default
~/.cache/impasto-bench/style-transfer-pytorch.git, made with `git clone --bare URL`) into a
temporary folder and runs its own command line from there, with PyTorch (the `bench`
extra). It loads torchvision's VGG19 (ImageNet weights, normally downloaded); here those are
converted from the Keras VGG19 file impasto already has (the original Caffe weights): its
ImageNet normalisation of [0, 1] RGB is folded into the first convolution, which is exact
because it pads that convolution by replicating edge pixels. The classifier, which it never
runs, is zeros. Its defaults: Wasserstein-2 style loss on five layers, Adam, scales from 128 px
up to the size asked for by factors of sqrt(2), 1000 iterations on the first and 500 on each
other (about 40 minutes a picture at 384 px on 2 cores), so finished pictures are cached (with
their wall and CPU seconds) in ~/.cache/impasto-bench/peers/, keyed by commit, pair and size.

    python benchmarks/peer_crowsonkb.py CONTENT STYLE --size 384   # one picture (cached)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from report import RESULTS, SMOKE, timed  # noqa: E402

NAME = "crowsonkb/style-transfer-pytorch"
COMMIT = "e7e2c7134e3937be05ff9f5fcc0873fe5ceb6060"  # 2023-05-21 "Add L-BFGS optimizer", its newest
URL = "https://github.com/crowsonkb/style-transfer-pytorch"
# A local clone (a bare one will do), made once: runs never reach the network.
REPO = Path(
    os.environ.get("IMPASTO_PEER_REPO")
    or Path.home() / ".cache" / "impasto-bench" / "style-transfer-pytorch.git"
)
# The peer's own requirements (its setup.py), less those impasto already has.
MODULES = ("torch", "torchvision", "tifffile", "aiohttp", "tqdm")
# Pictures made at full length are kept for good; a smoke run's go with its folder.
CACHE = (RESULTS if SMOKE else Path.home() / ".cache" / "impasto-bench") / "peers"
# The file torchvision's VGG19_Weights.IMAGENET1K_V1 loads from $TORCH_HOME/hub/checkpoints.
TORCHVISION_VGG19 = "vgg19-dcbb9e9d.pth"
# torchvision's vgg19().features: the index of each convolution, in order.
CONV_INDEXES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def available() -> str | None:
    """None if the peer can run here, else what is missing (a sentence)."""
    import importlib.util

    missing = [m for m in MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -e '.[bench]')"
    found = subprocess.run(
        ["git", "--git-dir", str(REPO), "cat-file", "-e", f"{COMMIT}^{{commit}}"],
        capture_output=True,
    )
    if found.returncode != 0:
        return (
            f"no clone of {NAME} holding {COMMIT[:12]} at {REPO} "
            f"(git clone --bare {URL} {REPO}, or set IMPASTO_PEER_REPO to one)"
        )
    return None


def extract_source(folder: Path) -> Path:
    """The peer's source at the pinned commit, in folder (which goes on its PYTHONPATH)."""
    tar = subprocess.run(
        ["git", "--git-dir", str(REPO), "archive", "--format=tar", COMMIT],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(folder, filter="data")
    return folder


def torchvision_state_dict() -> dict:
    """torchvision's vgg19 state dict made from impasto's Keras (Caffe) VGG19 weights.

    Keras's network takes BGR in 0..255 less the ImageNet means (BGR_MEANS); the peer feeds
    torchvision's, (rgb - IMAGENET_MEAN) / IMAGENET_STD with rgb in [0, 1]. As caffe input =
    255 * (std * x + mean) - means, reordered to BGR, the first kernel takes the scale 255 * std
    and its bias the shift's response; the other convolutions are only transposed."""
    import h5py
    import torch

    from impasto.engine.vgg19 import BGR_MEANS, LAYERS
    from impasto.engine.weights import verified_path

    state = {}
    with h5py.File(verified_path(), "r") as f:
        for index, layer in zip(CONV_INDEXES, LAYERS, strict=True):
            kernel = np.asarray(f[layer][f"{layer}_W_1:0"], np.float64)  # (kh, kw, in, out)
            bias = np.asarray(f[layer][f"{layer}_b_1:0"], np.float64)
            if index == 0:
                kernel = kernel[:, :, ::-1, :]  # BGR inputs to RGB
                shift = 255 * np.array(IMAGENET_MEAN) - np.array(BGR_MEANS[::-1])
                bias = bias + np.einsum("hwco,c->o", kernel, shift)
                kernel = kernel * (255 * np.array(IMAGENET_STD))[None, None, :, None]
            weight = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), np.float32)
            state[f"features.{index}.weight"] = torch.from_numpy(weight)
            state[f"features.{index}.bias"] = torch.from_numpy(bias.astype(np.float32))
    # The classifier: zeros, stored as one broadcast value (a few bytes, not 500 MB).
    for index, (out, inp) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        state[f"classifier.{index}.weight"] = torch.zeros(()).expand(out, inp)
        state[f"classifier.{index}.bias"] = torch.zeros(()).expand(out)
    return state


def torch_home() -> Path:
    """A TORCH_HOME whose hub holds the converted weights (made once, then reused)."""
    import torch

    home = CACHE / "torch"
    path = home / "hub" / "checkpoints" / TORCHVISION_VGG19
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        torch.save(torchvision_state_dict(), partial)
        partial.replace(path)
    return home


def key(content: Path, style: Path, size: int, iterations: tuple[int, int] | None) -> str:
    forced = f"__{iterations[0]}+{iterations[1]}it" if iterations else ""
    return f"{content.stem}__{style.stem}__{size}px{forced}"


def paint(
    content: Path, style: Path, size: int, iterations: tuple[int, int] | None = None
) -> tuple[np.ndarray, dict]:
    """The peer's picture of content in style, long side size, as HxWx3 in [0, 1], and its run's
    facts (wall and CPU seconds of its whole command). iterations=(first scale, each other)
    overrides its defaults: only for checks, never for results."""
    folder = CACHE / COMMIT[:12]
    stem = folder / key(content, style, size, iterations)
    if not stem.with_suffix(".json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="impasto-peer-") as tmp:
            source = extract_source(Path(tmp) / "src")
            out = Path(tmp) / "out.png"
            cmd = [sys.executable, "-c", "from style_transfer.cli import main; main()"]
            # It runs in the temporary folder, so a relative path would name nothing there.
            cmd += [str(content.resolve()), str(style.resolve()), "-o", str(out)]
            cmd += ["--end-scale", str(size)]
            cmd += ["--devices", "cpu"]
            if iterations:
                cmd += ["--initial-iterations", str(iterations[0])]
                cmd += ["--iterations", str(iterations[1])]
            env = {**os.environ, "PYTHONPATH": str(source), "TORCH_HOME": str(torch_home())}
            load_before = os.getloadavg()[0]
            # Its progress bars go to a log beside the picture, not to this benchmark's output.
            with open(stem.with_suffix(".log"), "w") as log:
                times = timed(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
            Image.open(out).convert("RGB").save(stem.with_suffix(".png"))
        meta = {
            "peer": NAME,
            "commit": COMMIT,
            "content": content.name,
            "style": style.name,
            "size": size,
            "iterations": list(iterations) if iterations else "its defaults",
            "wall_seconds": round(times["wall"], 2),
            "cpu_seconds": round(times["cpu"], 2),
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "torch": _version("torch"),
            "machine": _machine(),
        }
        stem.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    meta = json.loads(stem.with_suffix(".json").read_text())
    image = np.asarray(Image.open(stem.with_suffix(".png")).convert("RGB"), np.float32) / 255
    return image, meta


def cached(content: Path, style: Path, size: int) -> bool:
    """Whether the peer's full-length picture of this pair at this size is already made."""
    return (CACHE / COMMIT[:12] / key(content, style, size, None)).with_suffix(".json").exists()


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module)


def _machine() -> str:
    from impasto.engine.machine import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("content", type=Path, nargs="?")
    parser.add_argument("style", type=Path, nargs="?")
    parser.add_argument("--size", type=int, default=384)
    args = parser.parse_args()
    iterations = None
    if not SMOKE and not (args.content and args.style):
        parser.error("name a photo and a painting")
    if SMOKE:  # a smoke run: the first pair, 64 px, two iterations
        from tutorial_baseline import DATA, PAIRS

        args.content, args.style = (DATA / name for name in PAIRS[0])
        args.size, iterations = 64, (2, 2)
    problem = available()
    if problem:
        sys.exit(f"{NAME} cannot run: {problem}")
    image, meta = paint(args.content, args.style, args.size, iterations)
    print(json.dumps({**meta, "pixels": list(image.shape[:2])}))


if __name__ == "__main__":
    main()
