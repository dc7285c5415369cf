"""A pool of engine workers on a Ray cluster, seen by the caller as engines.

Each RemoteEngine owns one worker actor and has the engine's own contract (describe(checked),
stylize(checked, on_progress, cancel)), so the hot folder's runner and `impasto batch` use it
exactly as they use the local engine: one runner thread per RemoteEngine. When a worker dies
(its process killed, its node lost), the RemoteEngine starts a new one and sends the job again,
from the job's last checkpoint when there is one; a job whose workers keep dying fails with that
reason instead of taking down worker after worker.

The actors are not detached: they belong to this process and die with it, so a daemon killed
with -9 leaves no workers painting for nobody.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from impasto.atomic import atomic_write
from impasto.cluster.connect import ClusterError, Connection
from impasto.errors import ImpastoError
from impasto.job import CheckedJob, StyleResult

log = logging.getLogger(__name__)

START_TIMEOUT = 600.0  # seconds for a worker to start (TensorFlow's import, on a busy node)


class WorkerError(ImpastoError):
    """The workers painting a job kept dying."""


class Pool:
    """`workers` engine actors (0: one per `threads` CPUs of the cluster, or one per GPU), each
    with TensorFlow limited to `threads` threads. Use as a context manager, or call close()."""

    def __init__(
        self,
        address: str,
        workers: int = 0,
        threads: int = 1,
        max_deaths: int = 3,
        record: Path | None = None,
    ):
        self.connection = Connection(address, record)  # record: see connect.remove_left_behind
        try:
            from impasto.cluster.worker import EngineWorker

            self.worker_class = EngineWorker
            self.threads, self.max_deaths = threads, max_deaths
            self.options = self._options(workers)
            self.engines = [RemoteEngine(self, n + 1) for n in range(self.options.pop("count"))]
            self._start_all()
        except BaseException:
            self.close()
            raise

    def _options(self, workers: int) -> dict:
        """How many workers, and what each asks Ray for."""
        resources = self.connection.resources()
        cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        if gpus:
            return {"count": workers or gpus, "num_gpus": 1, "num_cpus": self.threads}
        count = workers or max(1, cpus // self.threads)
        if count * self.threads > cpus:
            raise ClusterError(
                f"{count} worker(s) of {self.threads} CPU(s) each need {count * self.threads} "
                f"CPUs, and the cluster has {cpus}; use fewer workers or add machines"
            )
        return {"count": count, "num_cpus": self.threads}

    def _start_all(self) -> None:
        pending = [(engine, engine.start()) for engine in self.engines]  # all start at once
        for engine, ready in pending:
            engine.wait(ready)

    def close(self) -> None:
        """Stop the workers and leave the cluster (a local one stops with it)."""
        self.connection.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RemoteEngine:
    """One worker actor behind the engine's contract."""

    def __init__(self, pool: Pool, number: int):
        self.pool, self.number = pool, number
        self.ray = pool.connection.ray
        self.actor = None
        self.where = ""

    def __str__(self) -> str:
        return f"worker {self.number}{self.where}"

    def start(self):
        """Start the actor; returns what wait() waits on."""
        self.where = ""  # known once it is ready
        self.actor = self.pool.worker_class.options(**self.pool.options).remote(self.pool.threads)
        return self.actor.info.remote()

    def wait(self, ready, replacing: bool = False) -> None:
        """Wait for the worker to be ready. When `replacing` a dead one, its own death while
        starting is raised as such (RayActorError), for stylize to count."""
        try:
            info = self.ray.get(ready, timeout=START_TIMEOUT)
        except self.ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"worker {self.number} did not start within {START_TIMEOUT:.0f} s "
                "(is the cluster busy with other work?)"
            ) from None
        except self.ray.exceptions.RayActorError as exc:
            if replacing:
                raise
            raise ClusterError(
                f"worker {self.number} could not start: {_first_line(exc)}"
            ) from None
        if info["problem"]:
            raise ClusterError(f"worker {self.number} on {info['host']}: {info['problem']}")
        self.where = f" (pid {info['pid']} on {info['host']}, node {info['node'][:8]})"
        log.info("%s is ready", self)

    def describe(self, checked: CheckedJob) -> dict:
        return {"total": checked.recipe.total_steps}

    def stylize(self, checked: CheckedJob, on_progress=None, cancel=None) -> StyleResult:
        """The engine's stylize, on this worker; see impasto.engine.loop.stylize."""
        from impasto.cluster.worker import Request

        name = Path(checked.content.source).name
        deaths = 0
        while True:
            resume = _resume_from(checked, after_death=deaths > 0)
            request = Request.of(checked, resume)
            log.info("%s paints %s%s", self, name, " (resuming)" if resume else "")
            try:
                return self._run(request, checked, on_progress, cancel)
            except self.ray.exceptions.RayActorError as exc:
                deaths += 1
                log.warning("%s died while painting %s: %s", self, name, _first_line(exc))
                deaths = self._replace(deaths)  # ready for this job, or for the next one
                if deaths >= self.pool.max_deaths:
                    raise WorkerError(
                        f"the cluster worker painting it died {deaths} times (killed, out of "
                        "memory, or its machine was lost), so it was not tried again"
                    ) from None
                log.warning("%s takes over %s", self, name)

    def _replace(self, deaths: int) -> int:
        """Start a worker in place of the dead one; returns the job's worker deaths so far. A
        replacement that dies as it starts is one more death (a worker killed again before it
        was ready is no reason to fail the picture on the spot), and another one starts; after
        max_deaths of them the next start's error stands."""
        while True:
            try:
                self.wait(self.start(), replacing=deaths < self.pool.max_deaths)
                return deaths
            except self.ray.exceptions.RayActorError as exc:
                deaths += 1
                log.warning("%s died as it started: %s", self, _first_line(exc))

    def _run(self, request, checked: CheckedJob, on_progress, cancel) -> StyleResult:
        finished = threading.Event()
        if cancel is not None:
            threading.Thread(
                target=self._forward_cancel,
                args=(cancel, finished, request.id),
                name=f"cancel-{self.number}",
                daemon=True,
            ).start()
        try:
            for ref in self.actor.run.remote(request):
                kind, payload = self.ray.get(ref)
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(payload)
                elif kind == "checkpoint":
                    with atomic_write(checked.job.checkpoint) as fh:
                        fh.write(payload)
                elif kind == "result":
                    return payload
                elif kind == "error":
                    raise _rebuild(*payload)
        finally:
            finished.set()
        raise RuntimeError(f"{self} stopped without a result")

    def _forward_cancel(self, cancel, finished: threading.Event, request_id: str) -> None:
        while not finished.is_set():
            if cancel.wait(0.2):
                self.actor.cancel.remote(request_id)
                return


def _resume_from(checked: CheckedJob, after_death: bool) -> bytes | None:
    """The checkpoint to start from: the job's own resume file, and after a worker died the
    newest checkpoint that worker sent, if it sent one."""
    paths = (checked.job.checkpoint, checked.job.resume) if after_death else (checked.job.resume,)
    for path in paths:
        if path is not None and Path(path).is_file():
            return Path(path).read_bytes()
    return None


def _rebuild(kind: str, message: str) -> Exception:
    """The worker's error as the same ImpastoError class (so a caller tells a bad file from a
    bad preset as it does locally), anything else as a RuntimeError."""
    from impasto import errors

    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, ImpastoError):
        return cls(message)
    return RuntimeError(message)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
