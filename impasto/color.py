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
    s = np.asarray(style.convert("YCbCr").getchannel("Y"), dtype=np.float64)
    c = np.asarray(content.convert("YCbCr").getchannel("Y"), dtype=np.float64)
    matched = (s - s.mean()) / (s.std() + 1e-6) * c.std() + c.mean()
    return Image.fromarray(np.clip(matched + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")


def with_chroma_of(result: Image.Image, content: Image.Image) -> Image.Image:
    """The result's luma with the content's chroma (Cb, Cr), at the result's size."""
    y = result.convert("YCbCr").getchannel("Y")
    _, cb, cr = content.resize(result.size, Image.Resampling.LANCZOS).convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def matched_histogram(style: Image.Image, content: Image.Image) -> Image.Image:
    """The style recoloured so its RGB mean and covariance equal the content's (the paper's
    linear colour transfer, with symmetric matrix square roots)."""
    s = np.asarray(style.convert("RGB"), dtype=np.float64).reshape(-1, 3) / 255.0
    c = np.asarray(content.convert("RGB"), dtype=np.float64).reshape(-1, 3) / 255.0
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = np.cov(s, rowvar=False) + 1e-5 * np.eye(3)
    cov_c = np.cov(c, rowvar=False) + 1e-5 * np.eye(3)
    transform = _sqrtm(cov_c) @ np.linalg.inv(_sqrtm(cov_s))
    out = (s - mu_s) @ transform.T + mu_c
    arr = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(style.height, style.width, 3)
    return Image.fromarray(arr, "RGB")


def _sqrtm(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(m)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
