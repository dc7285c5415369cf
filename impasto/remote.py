"""A job of `impasto stylize` painted by the local engine server (impasto.server), when one runs.

The client reads the input files itself and sends their bytes; it gets the progress events and
the picture back and the caller writes it, so nothing here needs TensorFlow. Whenever the
server cannot paint the job (none runs, it is not private, it failed, it went away mid-job),
Unavailable tells the caller to paint it alone, as if there were no server.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from impasto import __version__, errors, server
from impasto.job import CheckedJob, ProgressEvent, StyleResult

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """The server cannot paint this job; str() says why for the user, "" when there is nothing
    to say (no server runs, or the job needs what only a run alone does)."""


def stylize(
    checked: CheckedJob,
    on_start: Callable[[dict], None],
    on_progress: Callable[[ProgressEvent], None],
    cancel: threading.Event,
    autostart: bool = False,
    idle_minutes: float = 10.0,
) -> StyleResult | None:
    """The job's result as the server painted it (cancelled=True once `cancel` is set), or None
    when it was cancelled before it got the engine. Raises Unavailable, or the ImpastoError the
    server found in the job (a bad image, a preset)."""
    job = checked.job
    if os.name != "posix" or job.checkpoint or job.resume:
        # Unix sockets; and checkpoints are files the engine writes: a run alone writes them.
        raise Unavailable("")
    try:
        sock = server.connect()
        if sock is None and autostart:
            log.info("starting the engine server ([engine] autostart)")
            server.spawn(idle_minutes, log.isEnabledFor(logging.INFO), cancel)
            sock = server.connect()
    except errors.ImpastoError as exc:  # not private, or it would not start
        raise Unavailable(f"not using the engine server: {exc}") from None
    except OSError as exc:
        raise Unavailable(f"cannot reach the engine server ({exc.strerror or exc})") from None
    if sock is None:
        raise Unavailable("")
    with sock, sock.makefile("rb") as reader:
        try:  # the images as the server gets them: read here, by the user who named them
            paths = [job.content, *(path for path, _ in _styles(job)), *_masks(job)]
            blobs = [Path(path).read_bytes() for path in paths]
        except OSError:
            raise Unavailable("") from None  # gone since it was checked: a run alone says why
        try:
            return _run(sock, reader, checked, blobs, on_start, on_progress, cancel)
        except (OSError, server.ProtocolError) as exc:
            raise Unavailable(f"the engine server went away during the job ({exc})") from None


def _styles(job) -> list[tuple]:
    """(path, blend weight as the user gave it) per style image."""
    return [s if isinstance(s, tuple | list) else (s, 1.0) for s in job.styles]


def _masks(job) -> list:
    """The paths of the styles' masks, in order, those that cover the whole picture left out."""
    return [path for path in job.masks or [] if path is not None]


def _run(sock, reader, checked, blobs, on_start, on_progress, cancel) -> StyleResult | None:
    job = checked.job
    request = {
        "op": "run",
        "version": __version__,
        # Jobs are taken in turn per client: the program that ran this command (an editor, a
        # shell script's loop) is one client, whatever number of commands it runs at once.
        "client": f"pid {os.getppid()}",
        "content": str(job.content),
        "styles": [[str(path), float(weight)] for path, weight in _styles(job)],
        "recipe": checked.recipe.to_dict(),
        "size": checked.size,
        "seed": job.seed,
        "preview_every": job.preview_every,
        # One per style given a mask entry (null: the whole picture); their blobs follow the
        # styles'. A server that does not know masks finds more blobs than images and hangs
        # up, so this job is then painted alone, never without its masks.
        "masks": [None if path is None else str(path) for path in job.masks or []],
    }
    server.send(sock, request, blobs)
    finished = threading.Event()
    threading.Thread(
        target=_forward_cancel, args=(sock, cancel, finished), name="cancel", daemon=True
    ).start()
    try:
        while True:
            got = server.receive(reader)
            if got is None:
                raise ConnectionResetError("it closed the connection")
            message, blobs = got
            kind = message.pop("event", None)
            if kind == "start":
                sock.settimeout(None)  # checked and queued: it may wait its turn for long
                on_start(message)
            elif kind == "progress":
                preview = _image(blobs[0]) if blobs else None
                on_progress(_progress(message, preview))
            elif kind == "result":
                if not blobs:
                    return None  # cancelled before it started
                return StyleResult(
                    image=_image(blobs[0]),
                    stats=message["stats"],
                    settings=message["settings"],
                    cancelled=bool(message["cancelled"]),
                )
            elif kind == "error":
                raise _error(message.get("kind", ""), str(message.get("message", "")))
    finally:
        finished.set()


def _forward_cancel(sock, cancel: threading.Event, finished: threading.Event) -> None:
    """Ctrl-C sets `cancel` in the main thread, which is reading: say it from here."""
    while not finished.is_set():
        if cancel.wait(0.2):
            try:
                server.send(sock, {"op": "cancel"})
            except OSError:
                pass
            return


def _progress(message: dict, preview: Image.Image | None) -> ProgressEvent:
    return ProgressEvent(
        step=message["step"],
        total=message["total"],
        scale=message["scale"],
        scales=message["scales"],
        size=tuple(message["size"]),
        losses=message["losses"],
        elapsed=message["elapsed"],
        eta=message["eta"],
        preview=preview,
    )


def _image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data), formats=("PNG",)) as img:
        img.load()
        return img.copy()


def _error(kind: str, message: str) -> Exception:
    """The server's error: the same ImpastoError a run alone would raise (a bad file, a
    preset), or Unavailable for anything else (another version, an engine failure)."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.ImpastoError):
        return cls(message)
    return Unavailable(f"the engine server could not paint it ({message})")
