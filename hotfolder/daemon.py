"""The daemon: one engine, one job at a time in arrival order, and a clean stop on signals.

Two threads: the intake (intake.py) watches the inbox and queues complete files in the journal;
the main thread takes the oldest queued job and runs it (runner.py). SIGTERM and Ctrl-C set the
engine's cancel event, which stops the job after the current step and writes its checkpoint;
the job goes back to the queue and the next start resumes it. kill -9 leaves the job marked
running, and the next start's recovery queues it again from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import signal
import threading
import time
from collections.abc import Iterator

from impasto.errors import ImpastoError
from impasto.hotfolder.config import Config, ConfigError, check_route
from impasto.hotfolder.intake import Intake
from impasto.hotfolder.journal import Journal
from impasto.hotfolder.layout import Layout
from impasto.hotfolder.runner import Runner

log = logging.getLogger(__name__)
HOTFOLDER_LOGGER = __name__.rpartition(".")[0]  # impasto.hotfolder: every module of the door

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class AlreadyRunning(ImpastoError):
    """Another daemon holds ROOT's lock."""


@contextlib.contextmanager
def exclusive(layout: Layout) -> Iterator[None]:
    """Hold ROOT/.hotfolder/daemon.lock for the daemon's lifetime: two daemons on one folder
    would take the same files. The kernel drops the lock when the process dies, even by kill -9."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one daemon per folder is then up to you
        yield
        return
    layout.state.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AlreadyRunning(
                f"another impasto watch is already running on {layout.root} (pid {pid})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def running_pid(layout: Layout) -> int | None:
    """The pid of the daemon holding ROOT's lock, or None when none runs."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(layout.lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def add_log_file(layout: Layout, name: str) -> logging.Handler:
    """ROOT/hotfolder.log: the hot folder's own events (INFO and up) and the engine's warnings,
    rotated so that weeks of running stay small."""
    path = layout.root / name
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    # One handler on "impasto": the hot folder's own loggers (impasto.hotfolder.*) are made to
    # pass INFO; the engine's pass what the CLI set (WARNING, or INFO with -v).
    logging.getLogger(HOTFOLDER_LOGGER).setLevel(logging.INFO)
    logging.getLogger("impasto").addHandler(handler)
    return handler


class Daemon:
    ERROR_PAUSE = 5.0  # seconds to wait after an unexpected error before recovering

    def __init__(self, config: Config, once: bool = False, engine=None):
        self.config = config
        self.layout = Layout(config.root, config.daemon.state_dir)
        self.once = once
        self.engine = engine
        self.stop = threading.Event()
        self.cancel = threading.Event()
        self.wake = threading.Event()
        self.stopped_by: int | None = None

    def _on_signal(self, signum, frame) -> None:
        if self.stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: quit now; the next start recovers
        self.stopped_by = signum
        log.info("%s: stopping after the current step", signal.Signals(signum).name)
        self.stop.set()
        self.cancel.set()
        self.wake.set()

    def run(self) -> int:
        """Run until stopped (or, with once, until the inbox is empty); returns the exit code."""
        routes = list(self.config.routes)
        self.layout.ensure(routes)
        # From here on a SIGTERM (even during TensorFlow's start-up) means "stop cleanly".
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.signal(s, self._on_signal) for s in signals}
        try:
            with exclusive(self.layout):
                handler = add_log_file(self.layout, self.config.daemon.log_file)
                try:
                    return self._run(routes)
                finally:
                    logging.getLogger("impasto").removeHandler(handler)
                    handler.close()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _run(self, routes: list[str]) -> int:
        settings = self.config.daemon
        log.info(
            "starting on %s (pid %d), routes: %s", self.layout.root, os.getpid(), ", ".join(routes)
        )
        if self.engine is None:
            from impasto import load_engine, weights

            weights.verified_path()  # missing weights: one clear line now, not failed files
            self.engine = load_engine()
        journal = Journal(self.layout.journal)
        try:
            journal.clear_holds()
            runner = Runner(self.layout, self.config, journal, self.engine, self.cancel)
            runner.recover()
            intake = Intake(
                self.layout,
                routes,
                settings.settle_seconds,
                settings.closed_settle_seconds,
                settings.rescan_seconds,
                settings.polling,
                on_queued=self.wake.set,
            )
            runner.nudge = intake.nudge
            intake_stop = threading.Event()
            thread = threading.Thread(
                target=intake.run, args=(intake_stop,), name="intake", daemon=True
            )
            thread.start()
            try:
                self._loop(journal, runner, intake, thread)
            finally:
                intake_stop.set()
                thread.join(timeout=10)
        finally:
            journal.close()
        log.info("stopped")
        return 0

    def _loop(self, journal: Journal, runner: Runner, intake: Intake, thread) -> None:
        retry_holds_at = time.monotonic() + self.config.daemon.rescan_seconds
        while not self.stop.is_set():
            if not thread.is_alive():
                raise RuntimeError("the intake thread stopped; see the log")
            holds = journal.holds()
            if holds and time.monotonic() >= retry_holds_at:
                self._retry_holds(journal, holds)
                retry_holds_at = time.monotonic() + self.config.daemon.rescan_seconds
                continue
            runnable = [r for r in self.config.routes if r not in holds]
            job = journal.next_queued(runnable)
            if job is not None:
                try:
                    runner.run(job)
                except Exception:  # noqa: BLE001 - e.g. the journal's disk is full
                    log.exception("unexpected error on %s; recovering shortly", job.label)
                    self.stop.wait(self.ERROR_PAUSE)
                    self._recover(runner)
                continue
            if self.once and intake.idle() and journal.next_queued(runnable) is None:
                if holds:
                    log.warning("routes on hold, files left in their inbox: %s", ", ".join(holds))
                break
            self.wake.wait(timeout=1.0)
            self.wake.clear()

    @staticmethod
    def _recover(runner: Runner) -> None:
        """Bring the journal and the folders back in line after an unexpected error, the same
        way a restart would (the job's crash count goes up, so a file that keeps failing this
        way ends in failed/)."""
        try:
            runner.recover()
        except Exception:  # noqa: BLE001
            log.exception("recovery failed too; trying again later")

    def _retry_holds(self, journal: Journal, holds: dict) -> None:
        for route, reason in holds.items():
            try:
                check_route(
                    self.config.routes[route], f"route {route}", self.config.daemon.max_memory
                )
            except ConfigError as exc:
                log.info("route %s still on hold: %s", route, exc)
                continue
            log.info("route %s works again (was: %s)", route, reason)
            journal.set_hold(route, None)
