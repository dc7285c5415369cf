"""One engine per process, shared by every browser tab: jobs run one at a time in one engine
thread that lives as long as the runner.

Gradio already queues the Run event under one concurrency id, but Gradio forgets a job as soon as
its generator is dropped (a closed tab), while the engine may still be finishing its step. The
single engine thread here is what actually guarantees that two jobs never share the engine (and
its memory); Gradio's queue is what shows waiting users their place in line. One long-lived
thread rather than one per job also keeps memory flat: every new thread that runs TensorFlow
gets its own malloc arena and per-thread state, which a server would otherwise gather job by job.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from impasto import ProgressEvent, StyleResult

log = logging.getLogger(__name__)

Stylize = Callable[..., StyleResult]
HEARTBEAT = 1.0  # seconds: yield None this often while a step runs, so the caller stays closable


def _return_free_memory() -> None:
    """Give the heap a finished job freed back to the system. glibc keeps freed memory for
    reuse, and jobs of different image sizes leave it in pieces a next job cannot always use, so
    a server's resident memory would creep up job after job. Elsewhere, nothing to do."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL(None)  # the C library this process already uses
    except (OSError, TypeError):  # TypeError: Windows wants a name
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


@dataclass
class _Finished:
    result: StyleResult | None = None
    error: BaseException | None = None


class EngineRunner:
    """Runs checked jobs one at a time and streams their progress events to the caller.

    stylize: the engine entry point; None means impasto's, imported with impasto.load_engine()
    (which hides TensorFlow's start-up chatter) on first use. Tests pass a wrapper to observe
    the jobs.
    """

    def __init__(self, stylize: Stylize | None = None):
        self._stylize = stylize
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._registry_lock = threading.Lock()
        self._cancels: dict[str, set[threading.Event]] = {}

    def load(self) -> Stylize:
        """Import the engine now (a few seconds the first time), so the first job does not wait."""
        if self._stylize is None:
            from impasto import load_engine

            self._stylize = load_engine().stylize
        return self._stylize

    def run(self, checked, session: str = "") -> Iterator[ProgressEvent | StyleResult | None]:
        """Yield the job's ProgressEvents, then its StyleResult (cancelled=True after cancel());
        None now and then while nothing happens (a heartbeat), so that a caller that is itself a
        generator can be closed promptly. Nothing after the events if the job was cancelled
        before it got the engine.

        Engine errors are re-raised here, in the caller's thread. If the caller stops iterating
        (Gradio closes the generator of a page that went away), the job is cancelled and the
        engine is free again after the current step.
        """
        stylize = self.load()
        cancel = threading.Event()
        events: queue.Queue = queue.Queue()
        self._register(session, cancel)
        self._start_worker()
        self._jobs.put((stylize, checked, cancel, events))
        finished = False
        try:
            while True:
                try:
                    item = events.get(timeout=HEARTBEAT)
                except queue.Empty:
                    yield None
                    continue
                if isinstance(item, _Finished):
                    finished = True
                    if item.error is not None:
                        raise item.error
                    if item.result is not None:
                        yield item.result
                    return
                yield item
        finally:
            if not finished:
                log.info("job abandoned by its page; cancelling it")
                cancel.set()
            self._unregister(session, cancel)

    def _start_worker(self) -> None:
        with self._registry_lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="impasto-engine", daemon=True
                )
                self._worker.start()

    def _work(self) -> None:
        """The engine thread: one job after another, for as long as the process lives."""
        while True:
            stylize, checked, cancel, events = self._jobs.get()
            if cancel.is_set():  # given up while waiting for the engine
                events.put(_Finished())
                continue
            try:
                events.put(
                    _Finished(result=stylize(checked, on_progress=events.put, cancel=cancel))
                )
            except BaseException as exc:  # handed to the caller's thread, raised there
                events.put(_Finished(error=exc))
            del stylize, checked, cancel, events  # nothing of a job outlives it here
            _return_free_memory()

    def cancel(self, session: str = "") -> int:
        """Ask the session's running jobs to stop after their current step; how many were asked."""
        with self._registry_lock:
            events = list(self._cancels.get(session, ()))
        for event in events:
            event.set()
        return len(events)

    def _register(self, session: str, cancel: threading.Event) -> None:
        with self._registry_lock:
            self._cancels.setdefault(session, set()).add(cancel)

    def _unregister(self, session: str, cancel: threading.Event) -> None:
        with self._registry_lock:
            mine = self._cancels.get(session)
            if mine is not None:
                mine.discard(cancel)
                if not mine:
                    del self._cancels[session]
