"""How a running job is shown and kept: a bar on stderr for people, JSON lines on stdout for
programs (impasto.protocol, which the editor plug-ins read), or nothing; and the evolution
snapshots every N steps that the CLI and the hot folder save.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from impasto import protocol
from impasto.errors import ImpastoError
from impasto.images import save_image
from impasto.protocol import clock


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
    def _emit(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def start(self, info: dict) -> None:
        self._emit(protocol.line("start", **info))

    def progress(self, event) -> None:
        self._emit(protocol.progress_line(event))

    def done(self, result, path) -> None:
        self._emit(
            protocol.line("done", output=str(path), cancelled=result.cancelled, stats=result.stats)
        )

    def error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, ImpastoError) else f"{type(exc).__name__}: {exc}"
        self._emit(protocol.line("error", message=message))


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
            f"{clock(event.elapsed)} elapsed, {clock(event.eta)} left "
        )
        self.stream.write(line)
        self.stream.flush()

    def done(self, result, path) -> None:
        state = "stopped early; best so far" if result.cancelled else "done"
        print(f"\nimpasto: {state} in {clock(result.stats['seconds'])}: {path}", file=self.stream)


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


class Snapshots:
    """The evolution of a job: its preview every `every` steps, saved as folder/step_00020.png
    (the classic scripts' "evolution" folder). every = 0 saves nothing."""

    def __init__(self, folder: str | os.PathLike, every: int):
        self.folder = Path(folder)
        self.every = every

    def path(self, step: int) -> Path:
        return self.folder / f"step_{step:05d}.png"

    def paths(self, total: int) -> list[Path]:
        """Every file a job of `total` steps will write, to be checked before it starts."""
        if not self.every:
            return []
        return [self.path(step) for step in range(self.every, total + 1, self.every)]

    def save(self, event) -> Path | None:
        """Save the event's preview if this step is one to keep; the folder is made when the
        first snapshot is due. Returns the file written, or None."""
        if not self.every or event.preview is None or event.step % self.every:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        return save_image(event.preview, self.path(event.step))
