"""How the CLI shows a running job: a bar on stderr for people, JSON lines on stdout for programs
(the editor plug-ins read these), or nothing.

JSON lines, one object each, with an "event" key:
  {"event": "start", "device": "CPU", "precision": ..., "precision_reason": ...,
   "scales": [[w, h, steps], ...], "total": N, "max_memory": "8G",
   "tiles": [null or tile side in px, per scale], "estimate_seconds": N or null}
  {"event": "progress", "step", "total", "scale", "scales", "size": [w, h], "losses": {...},
   "elapsed", "eta"}
  {"event": "done", "output": path, "cancelled": bool, "stats": {...}}
  {"event": "error", "message": one line}
"""

from __future__ import annotations

import json
import sys
import time

from impasto.errors import ImpastoError


class NoProgress:
    def start(self, info: dict) -> None:
        pass

    def progress(self, event) -> None:
        pass

    def done(self, result, path) -> None:
        pass

    def error(self, exc: BaseException) -> None:
        pass


class JsonProgress(NoProgress):
    def _emit(self, obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def start(self, info: dict) -> None:
        self._emit({"event": "start", **info})

    def progress(self, event) -> None:
        self._emit(
            {
                "event": "progress",
                "step": event.step,
                "total": event.total,
                "scale": event.scale,
                "scales": event.scales,
                "size": list(event.size),
                "losses": {k: round(v, 6) for k, v in event.losses.items()},
                "elapsed": round(event.elapsed, 3),
                "eta": round(event.eta, 3),
            }
        )

    def done(self, result, path) -> None:
        self._emit(
            {
                "event": "done",
                "output": str(path),
                "cancelled": result.cancelled,
                "stats": result.stats,
            }
        )

    def error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, ImpastoError) else f"{type(exc).__name__}: {exc}"
        self._emit({"event": "error", "message": message})


class BarProgress(NoProgress):
    """One line, redrawn in place: scale, step, bar, loss, time left."""

    WIDTH = 24

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._last = 0.0

    def start(self, info: dict) -> None:
        tiles = info.get("tiles") or [None] * len(info["scales"])
        sizes = " > ".join(
            f"{w}x{h}" + (f" (in tiles of {t} px)" if t else "")
            for (w, h, _), t in zip(info["scales"], tiles, strict=True)
        )
        precision = info["precision"]
        if info.get("precision_reason"):
            precision += f": {info['precision_reason']}"
        line = (
            f"impasto: {info['preset']} on the {info['device']} ({precision}), "
            f"{info['total']} steps over {sizes}"
        )
        if any(tiles):
            line += f"; tiled to stay within {info['max_memory']} of memory"
        if info.get("estimate_seconds") is not None:
            line += f"; {_estimate(info['estimate_seconds'])}"
        print(line, file=self.stream)

    def progress(self, event) -> None:
        now = time.monotonic()
        if event.step != event.total and now - self._last < 0.2:
            return  # redraw at most five times a second
        self._last = now
        filled = round(self.WIDTH * event.step / event.total)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        w, h = event.size
        line = (
            f"\rscale {event.scale}/{event.scales} {w}x{h} [{bar}] {event.step}/{event.total} "
            f"loss {event.losses['total']:.3f}  "
            f"{_clock(event.elapsed)} elapsed, {_clock(event.eta)} left "
        )
        self.stream.write(line)
        self.stream.flush()

    def done(self, result, path) -> None:
        state = "stopped early; best so far" if result.cancelled else "done"
        print(f"\nimpasto: {state} in {_clock(result.stats['seconds'])}: {path}", file=self.stream)


def _estimate(seconds: float) -> str:
    """'about 3 min on this machine', and at print sizes, how long that really is."""
    text = f"about {_duration(seconds)} on this machine"
    if seconds >= 4 * 3600:
        text += " (an overnight job: use --checkpoint FILE so it can be resumed)"
    elif seconds >= 3600:
        text += " (hours: use --checkpoint FILE so it can be resumed)"
    return text


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes} min" if minutes else f"{round(seconds)} s"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
