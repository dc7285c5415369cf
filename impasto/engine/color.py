"""Colour preservation (Gatys, Bethge, Hertzmann and Shechtman 2016, "Preserving Color in Neural
Artistic Style Transfer"): either transfer on luminance only, or recolour the style to the
content's colour statistics before transfer."""

from __future__ import annotations

import numpy as np
from PIL import Image


def luminance(img: Image.Image) -> Image.Image:
    """The image's luma (ITU-R 601, as in YCbCr) as a 3-channel gray image."""
    return img.convert("YCbCr").getchannel("Y").convert("RGB")


def matched_luminance(style: Image.Image, content: Image.Image) -> Image.Image:
    """The style's luminance with the content's luminance mean and spread, as the paper does, so
    the content's brightness survives while the style's texture is learned."""
    s = np.asarray(style.convert("YCbCr").getchannel("Y"), dtype=np.float32)
    c = np.asarray(content.convert("YCbCr").getchannel("Y"), dtype=np.float32)
    matched = (s - s.mean()) * (c.std() / (s.std() + 1e-6)) + (c.mean() + 0.5)
    return Image.fromarray(np.clip(matched, 0, 255).astype(np.uint8), "L").convert("RGB")


def with_chroma_of(result: Image.Image, content: Image.Image) -> Image.Image:
    """The result's luma with the content's chroma (Cb, Cr), at the result's size."""
    y = result.convert("YCbCr").getchannel("Y")
    _, cb, cr = content.resize(result.size, Image.Resampling.LANCZOS).convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def matched_histogram(style: Image.Image, content: Image.Image) -> Image.Image:
    """The style recoloured so its RGB mean and covariance equal the content's (the paper's
    linear colour transfer, with symmetric matrix square roots). float32 pixels (the engine
    hands both at its working size, impasto.engine.loop._inputs); the 3x3 statistics in float64."""
    s = np.asarray(style.convert("RGB"), dtype=np.float32).reshape(-1, 3)
    mu_s, cov_s = _mean_cov(s)
    mu_c, cov_c = _mean_cov(np.asarray(content.convert("RGB"), dtype=np.float32).reshape(-1, 3))
    transform = _sqrtm(cov_c) @ np.linalg.inv(_sqrtm(cov_s))
    s -= mu_s.astype(np.float32)
    out = s @ transform.T.astype(np.float32)
    out += (mu_c + 0.5).astype(np.float32)
    np.clip(out, 0, 255, out=out)
    return Image.fromarray(out.astype(np.uint8).reshape(style.height, style.width, 3), "RGB")


def _mean_cov(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (plus a little for a flat picture) of Nx3 pixels in 0..255."""
    mean = pixels.mean(0, dtype=np.float64)
    centred = pixels - mean.astype(np.float32)
    cov = (centred.T @ centred).astype(np.float64) / max(len(pixels) - 1, 1)
    return mean, cov + 0.65 * np.eye(3)  # 1e-5 in units of 0..1, as before: 1e-5 * 255**2


def _sqrtm(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(m)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
