"""One warm engine per process for every door: jobs queued fairly, painted one at a time on one
long-lived engine thread, each with its own cancel, its progress streamed to its caller.

The web app, the hot folder's local slot, a Ray worker and the local engine server
(impasto.server) all paint through an EngineHost. Why one engine thread rather than a thread per
job: two jobs must never share the engine (and its memory), and every new thread that runs
TensorFlow gets its own malloc arena and per-thread state, which a long-lived process would
otherwise gather job by job.

Fairness: every job names its client (a browser session, the program that ran `impasto
stylize`, ...) and the engine takes the waiting clients in turn, one job each, so one client's
burst of ten jobs does not make everyone else wait for all ten. (Start-time fair queueing with
one unit per job: a job's turn is one after its client's previous one, and never before the
turn of the job being painted, so a client that comes back after a pause does not get to go
first for the jobs it did not send.)
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from impasto.job import ProgressEvent, StyleResult

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


class _Cancel:
    """A job's stop flag: its own (set by Ticket.cancel, EngineHost.cancel or an abandoning
    caller), or the caller's event if it gave one (the hot folder's daemon-wide stop). The
    engine only asks is_set(); setting the job's own flag never touches the caller's event."""

    def __init__(self, also: threading.Event | None = None):
        self.own = threading.Event()
        self.also = also

    def set(self) -> None:
        self.own.set()

    def is_set(self) -> bool:
        return self.own.is_set() or (self.also is not None and self.also.is_set())


class Ticket:
    """One job given to the host: its events, and its cancel."""

    def __init__(self, host: EngineHost, checked, client: str, cancel: _Cancel, keep: bool):
        self.host, self.checked, self.client = host, checked, client
        self._cancel = cancel
        self.keep = keep  # run it even if cancelled while waiting (the engine's own contract)
        self.queue: queue.Queue = queue.Queue()

    def cancel(self) -> None:
        """Stop after the current step (a waiting job is dropped)."""
        self._cancel.set()

    def events(self) -> Iterator[ProgressEvent | StyleResult | None]:
        """The job's ProgressEvents, then its StyleResult (cancelled=True after a cancel); None
        now and then while nothing happens (a heartbeat), so that a caller that is itself a
        generator can be closed promptly. Nothing after the events if the job was dropped
        before it got the engine.

        Engine errors are re-raised here, in the caller's thread. If the caller stops iterating
        (Gradio closes the generator of a page that went away), the job is cancelled and the
        engine is free again after the current step.
        """
        finished = False
        try:
            while True:
                try:
                    item = self.queue.get(timeout=HEARTBEAT)
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
                log.info("job abandoned by its caller; cancelling it")
                self.cancel()
            self.host._unregister(self)


class EngineHost:
    """Runs checked jobs one at a time on one engine thread and streams their events.

    engine: impasto.engine.loop (or a stand-in with stylize() and describe()), or a bare stylize
    callable (tests); None means impasto's, imported with impasto.load_engine() (which hides
    TensorFlow's start-up chatter) on first use.
    """

    def __init__(self, engine=None):
        self._engine = engine
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._waiting: list[tuple] = []  # a heap of (turn, arrival, ticket, stylize)
        self._last_turn: dict[str, int] = {}  # client -> the turn of its latest job
        self._turn = 0  # the turn of the job being painted (or the last one)
        self._arrivals = itertools.count()
        self._tickets: dict[str, set[Ticket]] = {}  # client -> its jobs not yet finished
        self._worker: threading.Thread | None = None
        self.running: Ticket | None = None
        self.done = 0  # jobs finished (painted, cancelled or failed)
        self.idle_since = time.monotonic()  # None while a job waits or runs

    def load(self) -> Stylize:
        """Import the engine now (a few seconds the first time), so the first job does not wait;
        returns its stylize function."""
        if self._engine is None:
            from impasto import load_engine

            self._engine = load_engine()
        return getattr(self._engine, "stylize", self._engine)

    # -- the engine's contract, painted on the host's thread --------------------------------

    def describe(self, checked) -> dict:
        """The engine's describe(checked); {} from a bare stylize callable, which has none."""
        self.load()
        describe = getattr(self._engine, "describe", None)
        return describe(checked) if describe is not None else {}

    def stylize(self, checked, on_progress=None, cancel=None, client: str = "") -> StyleResult:
        """impasto.engine.loop.stylize, on the engine thread: on_progress is called in the caller's
        thread; a `cancel` set before the job starts still gets the engine's cancelled result."""
        ticket = self.submit(checked, client, cancel, keep=True)
        for item in ticket.events():
            if isinstance(item, StyleResult):
                return item
            if item is not None and on_progress is not None:
                on_progress(item)
        raise RuntimeError("the engine stopped without a result")  # not reached: keep=True

    # -- jobs -------------------------------------------------------------------------------

    def run(self, checked, client: str = "", cancel=None) -> Iterator:
        """submit(...).events(): what a streaming caller (the web app) iterates."""
        return self.submit(checked, client, cancel).events()

    def submit(self, checked, client: str = "", cancel=None, keep: bool = False) -> Ticket:
        """Queue a job behind the other clients' and return its Ticket. `cancel`: an event of
        the caller's that also stops the job."""
        ticket = Ticket(self, checked, client, _Cancel(cancel), keep)
        stylize = self.load()
        with self._ready:
            self._tickets.setdefault(client, set()).add(ticket)
            turn = max(self._turn, self._last_turn.get(client, -1) + 1)
            self._last_turn[client] = turn
            heapq.heappush(self._waiting, (turn, next(self._arrivals), ticket, stylize))
            self.idle_since = None
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="impasto-engine", daemon=True
                )
                self._worker.start()
            self._ready.notify()
        return ticket

    def cancel(self, client: str = "") -> int:
        """Ask the client's jobs to stop after their current step; how many were asked."""
        with self._lock:
            tickets = list(self._tickets.get(client, ()))
        for ticket in tickets:
            ticket.cancel()
        return len(tickets)

    def status(self) -> dict:
        with self._lock:
            return {
                "running": self.running is not None,
                "waiting": len(self._waiting),
                "done": self.done,
            }

    def _next(self) -> tuple[Ticket, Stylize]:
        """The waiting job with the earliest turn (the earliest sent, among equal turns)."""
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            self._turn, _, ticket, stylize = heapq.heappop(self._waiting)
            # Forget the clients with nothing waiting or painting: they start afresh.
            self._last_turn = {c: t for c, t in self._last_turn.items() if t >= self._turn}
            self.running = ticket
            return ticket, stylize

    def _work(self) -> None:
        """The engine thread: one job after another, for as long as the process lives."""
        while True:
            ticket, stylize = self._next()
            events = ticket.queue
            if ticket._cancel.own.is_set() and not ticket.keep:  # given up while waiting
                events.put(_Finished())
            else:
                try:
                    result = stylize(ticket.checked, on_progress=events.put, cancel=ticket._cancel)
                    events.put(_Finished(result=result))
                except BaseException as exc:  # handed to the caller's thread, raised there
                    events.put(_Finished(error=exc))
            with self._lock:
                self.running = None
                self.done += 1
                if not self._waiting:
                    self.idle_since = time.monotonic()
            del ticket, stylize, events  # nothing of a job outlives it here
            _return_free_memory()

    def _unregister(self, ticket: Ticket) -> None:
        with self._lock:
            mine = self._tickets.get(ticket.client)
            if mine is not None:
                mine.discard(ticket)
                if not mine:
                    del self._tickets[ticket.client]
