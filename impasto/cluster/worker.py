"""The engine on a cluster node: a Ray actor that loads TensorFlow and the engine once and paints
one job at a time, streaming progress, checkpoints and the picture back to its caller.

The worker never sees the caller's folders: a request carries the files' bytes (so a node on
another machine needs only impasto and the weights), and the caller, the only owner of its
folders, writes what comes back. Files are written on the worker under their own names, so the
settings a picture and a checkpoint carry are the same as a local run's and a checkpoint made
here resumes there, and back.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import ray

from impasto.job import CheckedJob, ProgressEvent, StyleJob, check_job
from impasto.presets import Recipe

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.5  # seconds between progress events sent back (previews and the last always)


@dataclass
class Request:
    """One job as plain data. Paths are the caller's, kept for messages and file names."""

    content: tuple[str, bytes]  # (path, bytes)
    styles: list[tuple[str, bytes, float]]  # (path, bytes, blend weight as the user gave it)
    recipe: Recipe  # the preset with the job's overrides applied
    size: int
    seed: int
    preview_every: int = 0
    checkpoint_every: int = 50
    checkpoints: bool = False  # send each checkpoint back
    resume: bytes | None = None  # a checkpoint of this job to continue from
    # Per style, in order: (name, a greyscale PNG of the checked mask) or None (whole picture)
    masks: list[tuple[str, bytes] | None] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, checked: CheckedJob, resume: bytes | None = None) -> Request:
        job = checked.job
        if isinstance(job.content, bytes):  # read once by the caller (the hot folder)
            content = (job.content_name or "content", job.content)
        elif isinstance(job.content, str | os.PathLike):
            content = (str(job.content), Path(job.content).read_bytes())
        else:
            raise TypeError("a job sent to a cluster names its content image by path or bytes")
        pairs = [s if isinstance(s, tuple | list) else (s, 1.0) for s in job.styles]
        return cls(
            content=content,
            styles=[(str(path), Path(path).read_bytes(), float(w)) for path, w in pairs],
            recipe=checked.recipe,
            size=checked.size,
            seed=job.seed,
            preview_every=job.preview_every,
            checkpoint_every=job.checkpoint_every,
            checkpoints=job.checkpoint is not None,
            resume=resume,
            masks=_mask_files(checked),
        )

    def materialise(self, folder: Path) -> tuple[StyleJob, dict[str, str]]:
        """The job with its files written under `folder`, and {local path: caller's path} for
        turning messages back into the caller's terms."""
        names = {}

        def put(sub: str, path: str, data: bytes) -> str:
            local = folder / sub / os.path.basename(path)
            local.parent.mkdir()
            local.write_bytes(data)
            names[str(local)] = path
            return str(local)

        content = put("content", *self.content)
        styles = [(put(f"style-{i}", p, d), w) for i, (p, d, w) in enumerate(self.styles)]
        masks = None
        if self.masks is not None:
            masks = [m and put(f"mask-{i}", *m) for i, m in enumerate(self.masks)]
        resume = None
        if self.resume is not None:
            resume = folder / "resume.npz"
            resume.write_bytes(self.resume)
        job = StyleJob(
            content=content,
            styles=styles,
            preset=self.recipe,
            size=self.size,
            seed=self.seed,
            preview_every=self.preview_every,
            checkpoint=str(folder / "checkpoint.npz") if self.checkpoints else None,
            checkpoint_every=self.checkpoint_every,
            resume=resume,
            masks=masks,
        )
        return job, names


def _mask_files(checked: CheckedJob) -> list[tuple[str, bytes] | None] | None:
    """The checked masks as files for the worker: whatever a door gave (a path, the bytes the
    hot folder read, an image), each is sent as the greyscale picture the caller checked, under
    its file name, so the worker's settings and messages name it as a run here does."""
    import io

    if checked.masks is None:
        return None
    files = []
    for mask in checked.masks:
        if mask is None:
            files.append(None)
            continue
        buf = io.BytesIO()
        mask.image.save(buf, format="PNG")  # lossless: the worker decodes the same pixels
        files.append((os.path.basename(mask.source) or "mask.png", buf.getvalue()))
    return files


@ray.remote(max_restarts=0, max_task_retries=0, max_concurrency=2)
class EngineWorker:
    """One engine host (impasto.host), warm across jobs. max_concurrency=2 lets cancel() arrive
    while run() paints; max_restarts=0 because the pool replaces a dead worker itself and
    resends its job."""

    def __init__(self, threads: int):
        self.problem = None
        self.cancels: dict[str, threading.Event] = {}
        try:
            # TensorFlow fixes its thread pools when its runtime starts: set them first.
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
            from impasto import load_engine
            from impasto.engine import weights
            from impasto.host import EngineHost

            weights.verified_path()
            self.engine = load_engine()
            self.host = EngineHost(self.engine)  # one engine thread, for every job
        except Exception as exc:  # noqa: BLE001 - reported by info(), one line for the user
            self.problem = _message(exc)

    def info(self) -> dict:
        """Where this worker runs, and what stops it from painting (None when ready)."""
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id(),
            "problem": self.problem,
        }

    def cancel(self, request_id: str) -> None:
        """Stop that job after its current step (it may not have started yet)."""
        self.cancels.setdefault(request_id, threading.Event()).set()

    def run(self, request: Request):
        """Yields ("progress", ProgressEvent), ("checkpoint", bytes), then ("result",
        StyleResult) or ("error", (class name, one-line message))."""
        cancel = self.cancels.setdefault(request.id, threading.Event())
        try:
            with tempfile.TemporaryDirectory(prefix="impasto-worker-") as tmp:
                yield from self._run(request, Path(tmp), cancel)
        finally:
            self.cancels.pop(request.id, None)

    def _run(self, request: Request, tmp: Path, cancel: threading.Event):
        if self.problem:
            yield "error", ("WeightsError", self.problem)
            return
        job, names = request.materialise(tmp)
        checkpoint = Path(job.checkpoint) if job.checkpoint else None
        sent, last = None, 0.0
        try:
            for item in self.host.run(check_job(job), request.id, cancel=cancel):
                if checkpoint is not None and checkpoint.is_file():
                    st = checkpoint.stat()  # written atomically: a changed stat is a new one
                    if (st.st_mtime_ns, st.st_size, st.st_ino) != sent:
                        sent = (st.st_mtime_ns, st.st_size, st.st_ino)
                        yield "checkpoint", checkpoint.read_bytes()
                if item is None:  # the host's heartbeat
                    continue
                if not isinstance(item, ProgressEvent):
                    yield "result", item
                    return
                now = time.monotonic()
                if (
                    item.preview is not None
                    or item.step == item.total
                    or now - last >= PROGRESS_EVERY
                ):
                    last = now
                    yield "progress", item
        except Exception as exc:  # noqa: BLE001 - sent back, the caller decides
            message = _message(exc)
            for local, theirs in names.items():
                message = message.replace(repr(local), repr(theirs))
            yield "error", (type(exc).__name__, message)


def _message(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
