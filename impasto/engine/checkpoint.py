"""Resumable state as a plain .npz (arrays and a JSON string; never pickle, so a checkpoint from
elsewhere cannot run code when it is loaded)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impasto.atomic import atomic_write
from impasto.errors import InputError

ARRAYS = ("image", "m", "v", "ema")


@dataclass
class Checkpoint:
    """Where a job stood after `step` steps: in scale `scale` (0-based), `scale_step` steps in."""

    settings: dict
    scale: int
    scale_step: int
    step: int
    image: np.ndarray
    m: np.ndarray
    v: np.ndarray
    ema: np.ndarray


def save(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    path = Path(path)
    with atomic_write(path) as fh:
        np.savez(
            fh,
            settings=np.array(json.dumps(ckpt.settings, sort_keys=True)),
            position=np.array([ckpt.scale, ckpt.scale_step, ckpt.step], dtype=np.int64),
            **{name: getattr(ckpt, name) for name in ARRAYS},
        )


def load(path: str | os.PathLike, settings: dict) -> Checkpoint:
    """Load a checkpoint and make sure it belongs to a job with these settings."""
    name = f"checkpoint {str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as data:
            saved = json.loads(str(data["settings"]))
            scale, scale_step, step = (int(v) for v in data["position"])
            arrays = {key: np.asarray(data[key], dtype=np.float32) for key in ARRAYS}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{name}: not an impasto checkpoint ({exc})") from None
    if _comparable(saved) != _comparable(settings):
        diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        raise InputError(f"{name}: made for a different job (differs in {', '.join(diff)})")
    return Checkpoint(saved, scale, scale_step, step, **arrays)


def _comparable(settings: dict) -> dict:
    # The version may change between the run that saved and the one that resumes, and so may the
    # memory budget: tiled and untiled steps are the same steps.
    out = {k: v for k, v in settings.items() if k != "impasto"}
    if isinstance(out.get("recipe"), dict):
        out["recipe"] = {k: v for k, v in out["recipe"].items() if k != "max_memory"}
    return out
