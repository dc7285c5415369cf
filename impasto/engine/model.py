"""The VGG19 feature extractor, built once per process from the verified Keras weights file.

The network is written as plain TensorFlow ops over the sixteen convolutions rather than as a
Keras Model: that lets us stop after the deepest layer a recipe uses, swap max for average
pooling (Gatys et al. found average pooling gives smoother results), and run the convolutions in
bfloat16/float16 while handing float32 features to the losses.
"""

from __future__ import annotations

import functools
import logging

import h5py
import numpy as np
import tensorflow as tf

from impasto.engine.vgg19 import BGR_MEANS, BLOCKS, LAYERS
from impasto.engine.weights import verified_path

log = logging.getLogger(__name__)


@functools.cache
def device() -> str:
    """ "GPU" when TensorFlow sees one (it then places the work there by itself), else "CPU"."""
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def conv_dtype(precision: str) -> tf.DType:
    """The dtype the convolutions run in. float16 is a GPU format: on a CPU it is emulated and
    slow, so a CPU run asked for float16 uses bfloat16, which has the same memory savings."""
    if precision == "float16" and device() == "CPU":
        log.warning("float16 is for GPUs; using bfloat16 on the CPU")
        return tf.bfloat16
    return {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}[precision]


@functools.cache
def _numpy_weights() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    path = verified_path()
    log.info("loading VGG19 weights from %s", path)
    with h5py.File(path, "r") as f:
        return {
            layer: (np.asarray(f[layer][f"{layer}_W_1:0"]), np.asarray(f[layer][f"{layer}_b_1:0"]))
            for layer in LAYERS
        }


@functools.cache
def _tf_weights(dtype: tf.DType) -> dict[str, tuple[tf.Variable, tf.Variable]]:
    # Variables, not constants: a tf.function captures them by reference instead of copying
    # 80 MB into every traced graph.
    return {
        layer: (
            tf.Variable(tf.cast(w, dtype), trainable=False, name=f"{layer}_W"),
            tf.Variable(tf.cast(b, dtype), trainable=False, name=f"{layer}_b"),
        )
        for layer, (w, b) in _numpy_weights().items()
    }


class FeatureExtractor:
    """Maps a batch of RGB images in [0, 1] to float32 ReLU features of the requested layers."""

    def __init__(self, layers: tuple[str, ...], pooling: str, precision: str):
        self.layers = tuple(sorted(set(layers), key=LAYERS.index))
        self.pooling = pooling
        self.dtype = conv_dtype(precision)
        self.weights = _tf_weights(self.dtype)
        self._last = max(LAYERS.index(name) for name in self.layers)

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        # Keras's VGG19 preprocessing: 0..255, RGB to BGR, minus the ImageNet channel means.
        x = images[..., ::-1] * 255.0 - tf.constant(BGR_MEANS, tf.float32)
        x = tf.cast(x, self.dtype)
        out: dict[str, tf.Tensor] = {}
        index = 0
        for block, convs in enumerate(BLOCKS, 1):
            if block > 1:
                pool = tf.nn.avg_pool2d if self.pooling == "avg" else tf.nn.max_pool2d
                x = pool(x, ksize=2, strides=2, padding="VALID")
            for conv in range(1, convs + 1):
                name = f"block{block}_conv{conv}"
                w, b = self.weights[name]
                x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), b))
                if name in self.layers:
                    out[name] = tf.cast(x, tf.float32)
                if index == self._last:
                    return out  # nothing deeper is needed: stop here
                index += 1
        return out


@functools.cache
def extractor(layers: tuple[str, ...], pooling: str, precision: str) -> FeatureExtractor:
    """One extractor per (layers, pooling, precision) per process."""
    return FeatureExtractor(layers, pooling, precision)
