"""The loss terms, each a small function over float32 tensors.

Departures from Gatys et al., and why:
- Content and style errors are relative: squared error divided by the target's squared norm.
  The paper's constants (1/(4 N^2 M^2) and so on) make the right weights depend on the layer and
  on the image size; relative errors make every layer count alike and the same weights give the
  same look at 256 px and at 2048 px.
- The Gram matrix is divided by the number of positions, so it is a mean over the image and does
  not grow with its size.
All of it stays in float32, whatever dtype the convolutions ran in: float16 Gram matrices
overflow at high resolutions and turn into NaN.
"""

from __future__ import annotations

import tensorflow as tf


def gram(features: tf.Tensor) -> tf.Tensor:
    """Channel co-occurrence of a [1, H, W, C] feature map, averaged over positions: [C, C]."""
    f = tf.cast(features, tf.float32)
    c = tf.shape(f)[-1]
    flat = tf.reshape(f, (-1, c))
    n = tf.cast(tf.shape(flat)[0], tf.float32)
    return tf.matmul(flat, flat, transpose_a=True) / n


def relative_error(x: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """||x - target||^2 / ||target||^2 (the epsilon only guards an all-zero target)."""
    return tf.reduce_sum(tf.square(x - target)) / (tf.reduce_sum(tf.square(target)) + 1e-8)


def content_loss(features: dict, targets: dict, layer_weights: dict) -> tf.Tensor:
    return tf.add_n(
        [w * relative_error(features[name], targets[name]) for name, w in layer_weights.items()]
    )


def style_loss(features: dict, target_grams: dict, layer_weights: dict) -> tf.Tensor:
    return tf.add_n(
        [
            w * relative_error(gram(features[name]), target_grams[name])
            for name, w in layer_weights.items()
        ]
    )


def tv_loss(image: tf.Tensor) -> tf.Tensor:
    """Mean squared difference between neighbouring pixels of an [H, W, 3] image in [0, 1]."""
    dy = image[1:, :, :] - image[:-1, :, :]
    dx = image[:, 1:, :] - image[:, :-1, :]
    return tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx))
