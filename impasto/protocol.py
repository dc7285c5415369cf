"""The progress protocol between `impasto stylize --progress json` and the programs that run it
(the editor plug-ins): one JSON object per stdout line, its writing and its reading, and how a
time is shown to people.

    {"event": "start", "device", "precision", "precision_reason", "optimizer", "preset",
     "scales": [[w, h, steps], ...], "total", "max_memory": "8G",
     "tiles": [null or the tiles' side in px, per scale], "estimate_seconds": N or null}
    {"event": "progress", "step", "total", "scale", "scales", "size": [w, h], "losses": {...},
     "elapsed", "eta"}
    {"event": "done", "output": path, "cancelled": bool, "stats": {...}}
    {"event": "error", "message": one line}

Standard library only, and Python 3.8 or newer: `impasto plugin install` copies this file beside
the plug-ins' client (as impasto_protocol.py), to run inside Krita's and GIMP's own Pythons.
The writer and the reader are one file, so they cannot drift apart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

# -- writing (the engine's side) ---------------------------------------------------------------


def line(event: str, **fields) -> str:
    """One protocol line, newline included."""
    return json.dumps({"event": event, **fields}) + "\n"


def progress_line(event) -> str:
    """The line for an impasto.ProgressEvent (its preview image is not sent)."""
    return line(
        "progress",
        step=event.step,
        total=event.total,
        scale=event.scale,
        scales=event.scales,
        size=list(event.size),
        losses={k: round(v, 6) for k, v in event.losses.items()},
        elapsed=round(event.elapsed, 3),
        eta=round(event.eta, 3),
    )


# -- reading (the plug-ins' side) --------------------------------------------------------------


@dataclass
class Start:
    total: int
    scales: list  # [[w, h, steps], ...]
    preset: str = ""
    device: str = ""
    precision: str = ""


@dataclass
class Progress:
    step: int
    total: int
    scale: int
    scales: int
    size: tuple
    losses: dict
    elapsed: float
    eta: float

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0

    def label(self) -> str:
        """One line for a progress dialog: where the engine is and how long it has left."""
        w, h = self.size
        return (
            f"Scale {self.scale}/{self.scales} ({w}\u00d7{h}), step {self.step}/{self.total}, "
            f"{clock(self.eta)} left"
        )


@dataclass
class Done:
    output: str
    cancelled: bool
    stats: dict


@dataclass
class Failed:
    message: str


def parse_line(text: str):
    """The event one stdout line carries, or None for anything else (a stray warning a library
    printed, a blank line): a reader must not fail because the engine's stdout got chatty."""
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    kind = obj.get("event")
    try:
        if kind == "start":
            return Start(
                total=int(obj["total"]),
                scales=list(obj.get("scales", [])),
                preset=str(obj.get("preset", "")),
                device=str(obj.get("device", "")),
                precision=str(obj.get("precision", "")),
            )
        if kind == "progress":
            return Progress(
                step=int(obj["step"]),
                total=int(obj["total"]),
                scale=int(obj["scale"]),
                scales=int(obj["scales"]),
                size=tuple(obj["size"]),
                losses=dict(obj.get("losses", {})),
                elapsed=float(obj.get("elapsed", 0.0)),
                eta=float(obj.get("eta", 0.0)),
            )
        if kind == "done":
            return Done(
                output=str(obj["output"]),
                cancelled=bool(obj.get("cancelled", False)),
                stats=dict(obj.get("stats", {})),
            )
        if kind == "error":
            return Failed(message=one_line(str(obj.get("message", "unknown error"))))
    except (KeyError, TypeError, ValueError):
        log.warning("ignoring a malformed %s line from the engine: %s", kind, text[:200])
    return None


# -- shown to people ---------------------------------------------------------------------------


def one_line(text: str) -> str:
    """text with every run of white space (newlines included) made one space."""
    return " ".join(text.split())


def clock(seconds: float) -> str:
    """Seconds as m:ss, as every door shows elapsed and remaining time."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"
