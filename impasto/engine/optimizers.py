"""The two optimisers that move the picture: L-BFGS (most presets) and Adam.

Both only call `evaluate(x) -> (losses, gradient)` (see objective.py) and keep the picture
in [0, 1]. `benchmarks/quality.py` measured L-BFGS reaching lower content and style errors than
Adam at equal time, as the classic Lua tool found; Adam stays for recipes tuned around it.

Each optimiser hands its state to checkpoints as the arrays image, m, v, ema (see
impasto.engine.checkpoint) and is carried up to the next, larger scale by `grown(size)`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Adam's own constants (Kingma and Ba): they set how the optimiser averages gradients, not the
# look of the picture, which the preset's learning rate and weights decide.
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8
# L-BFGS: how many past steps shape its curvature estimate (the Lua neural-style used 100 on a
# GPU; 10 costs 20 picture-sized arrays and gives nearly all of the gain), the Armijo constant,
# and how often a step is halved before it gives up on the direction.
HISTORY, ARMIJO, HALVINGS = 10, 1e-4, 5


def resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an HxWxC float array to size=(w, h); values stay in their range."""
    w, h = size
    return tf.image.resize(arr, (h, w), method="bilinear").numpy()


class Adam:
    """Adam on the image; the output is an exponential moving average of the iterates, which
    removes the high-frequency noise Adam leaves in the last iterate."""

    def __init__(self, x, learning_rate, ema_decay, m=None, v=None, ema=None):
        self.x, self.learning_rate, self.ema_decay = x, learning_rate, ema_decay
        self.m = np.zeros_like(x) if m is None else m
        self.v = np.zeros_like(x) if v is None else v
        self.ema = x if ema is None else ema

    def step(self, evaluate, t: int) -> dict:
        """One step; t is the step number over the whole job (for the bias correction)."""
        losses, g = evaluate(self.x)
        self.m = BETA1 * self.m + (1 - BETA1) * g
        self.v = BETA2 * self.v + (1 - BETA2) * np.square(g)
        m_hat = self.m / (1 - BETA1**t)
        v_hat = self.v / (1 - BETA2**t)
        step = self.learning_rate * m_hat / (np.sqrt(v_hat) + EPSILON)
        self.x = np.clip(self.x - step, 0.0, 1.0).astype(np.float32)
        self.ema = (self.ema_decay * self.ema + (1 - self.ema_decay) * self.x).astype(np.float32)
        return losses

    def output(self) -> np.ndarray:
        return self.ema

    def state(self) -> dict:
        return {"image": self.x, "m": self.m, "v": self.v, "ema": self.ema}

    def grown(self, size):
        """Carry the picture and the moment estimates up to the next scale (so its first steps
        are not spent re-estimating them); the average restarts from the picture."""
        x, m, v = (resize(a, size) for a in (self.ema, self.m, self.v))
        return Adam(x, self.learning_rate, self.ema_decay, m, v)


class LBFGS:
    """Limited-memory BFGS with a backtracking (Armijo) line search, projected onto [0, 1].

    Most steps cost one evaluation: the trial point's gradient is the next step's. The first step
    of a scale has no curvature yet: it moves the most-changing pixel by `first_step`.
    """

    def __init__(self, x, first_step: float):
        self.x, self.first_step = x.astype(np.float32), first_step
        self.losses: dict | None = None
        self.g: np.ndarray | None = None
        self.pairs: list[tuple[np.ndarray, np.ndarray, float]] = []  # (s, y, 1 / s.y)

    def step(self, evaluate, t: int = 0) -> dict:
        if self.g is None:
            self.losses, self.g = evaluate(self.x)
        d = self._direction()
        slope = float(np.vdot(self.g, d))
        if slope >= 0:  # not a descent direction: forget the curvature and go downhill
            self.pairs.clear()
            d = self._direction()
            slope = float(np.vdot(self.g, d))
        length = 1.0
        for _ in range(HALVINGS):
            x_new = np.clip(self.x + length * d, 0.0, 1.0)
            losses, g_new = evaluate(x_new)
            moved = float(np.vdot(self.g, x_new - self.x))
            if losses["total"] <= self.losses["total"] + ARMIJO * min(moved, 0.0):
                break
            length /= 2
        else:  # no decrease along d: start afresh from here next time
            self.pairs.clear()
            return self.losses
        s, y = (x_new - self.x).ravel(), (g_new - self.g).ravel()
        sy = float(np.dot(s, y))
        if sy > 1e-10 * float(np.dot(y, y)):  # keep only pairs with positive curvature
            self.pairs = [*self.pairs[-(HISTORY - 1) :], (s, y, 1.0 / sy)]
        self.x, self.g, self.losses = x_new.astype(np.float32), g_new, losses
        return losses

    def _direction(self) -> np.ndarray:
        """-H g by the two-loop recursion (Nocedal and Wright, algorithm 7.4)."""
        q = self.g.ravel().copy()
        if not self.pairs:
            return (-self.first_step / (np.abs(q).max() + 1e-12) * q).reshape(self.x.shape)
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * float(np.dot(s, q))
            q -= a * y
            alphas.append(a)
        s, y, _ = self.pairs[-1]
        q *= float(np.dot(s, y)) / float(np.dot(y, y))
        for (s, y, rho), a in zip(self.pairs, reversed(alphas), strict=True):
            q += s * (a - rho * float(np.dot(y, q)))
        return (-q).reshape(self.x.shape)

    def output(self) -> np.ndarray:
        return self.x

    def state(self) -> dict:
        # The curvature pairs are not kept: 20 picture-sized arrays would make checkpoints huge.
        # A resumed run rebuilds them within a few steps.
        empty = np.zeros((0,), np.float32)
        return {"image": self.x, "m": empty, "v": empty, "ema": self.x}

    def grown(self, size):
        return LBFGS(resize(self.x, size), self.first_step)


def start(recipe, x: np.ndarray, saved: dict | None = None):
    """The recipe's optimiser at picture x, or as saved in a checkpoint's arrays."""
    if recipe.optimizer == "lbfgs":
        return LBFGS(x if saved is None else saved["image"], recipe.learning_rate)
    if saved is None:
        return Adam(x, recipe.learning_rate, recipe.ema_decay)
    return Adam(
        saved["image"],
        recipe.learning_rate,
        recipe.ema_decay,
        *(saved[k] for k in ("m", "v", "ema")),
    )
