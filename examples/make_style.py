"""Paints examples/style.png: the demo's style image, made by the project so its licence is ours.

Thousands of short, thick brush strokes follow a swirling flow field in a night-sky palette, so
the picture has what style transfer picks up: strong stroke texture, curling shapes, a palette.
Deterministic (fixed seed): running it again gives the same file.

    python examples/make_style.py
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 640, 480
PALETTE = [
    (22, 40, 92),
    (38, 74, 150),
    (70, 120, 190),
    (230, 200, 90),
    (245, 230, 150),
    (20, 60, 70),
    (110, 160, 200),
    (200, 120, 40),
]


def flow(x: float, y: float) -> float:
    """Angle of the stroke direction at (x, y): a few interfering swirls."""
    return (
        math.sin(x / 70.0) * 2.0
        + math.cos(y / 55.0) * 1.5
        + math.atan2(y - H * 0.35, x - W * 0.65) * 1.2
    )


def main() -> None:
    rng = np.random.default_rng(1889)
    img = Image.new("RGB", (W, H), PALETTE[0])
    draw = ImageDraw.Draw(img)
    for layer, (count, width, length) in enumerate([(1800, 14, 26), (3500, 8, 18), (4000, 4, 12)]):
        for _ in range(count):
            x, y = rng.uniform(0, W), rng.uniform(0, H)
            # Warm colours gather in a "moon" and a band; cool blues elsewhere.
            warm = math.hypot(x - W * 0.65, y - H * 0.35) < 90 or abs(y - H * 0.75) < 25
            choices = [3, 4, 7] if warm else [0, 1, 2, 5, 6]
            base = np.array(PALETTE[rng.choice(choices)], float)
            colour = tuple(int(c) for c in np.clip(base + rng.normal(0, 18, 3), 0, 255))
            points = [(x, y)]
            for _ in range(4):
                a = flow(x, y)
                x, y = x + math.cos(a) * length / 4, y + math.sin(a) * length / 4
                points.append((x, y))
            draw.line(points, fill=colour, width=width - layer, joint="curve")
    img = img.filter(ImageFilter.SMOOTH)
    out = Path(__file__).with_name("style.png")
    img.save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
