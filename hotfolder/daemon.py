"""The daemon: jobs in arrival order, one at a time per engine, and a clean stop on signals.

The intake thread (intake.py) watches the inbox and queues complete files in the journal; the
main thread hands the oldest queued job to an idle runner thread (runner.py), one per engine:
the engine in this process, or each worker of a Ray cluster (backend.py). SIGTERM and Ctrl-C set the
engine's cancel event, which stops the job after the current step and writes its checkpoint;
the job goes back to the queue and the next start resumes it. kill -9 leaves the job marked
running, and the next start's recovery queues it again from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from impasto.errors import ImpastoError, first_line
from impasto.hotfolder.backend import open_backend
from impasto.hotfolder.config import Config, ConfigError, check_route
from impasto.hotfolder.intake import Intake
from impasto.hotfolder.journal import Job, Journal
from impasto.hotfolder.layout import NOFOLLOW, Layout
from impasto.hotfolder.runner import Runner
from impasto.hotfolder.space import NO_SPACE, is_disk_full, wait_for_space
from impasto.paths import reason as os_reason

log = logging.getLogger(__name__)
HOTFOLDER_LOGGER = __name__.rpartition(".")[0]  # impasto.hotfolder: every module of the door

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOCAL_RAY = "local-ray"  # in the state folder: the path of the local Ray's folder, while it runs


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
    layout.ensure_state()
    fd = open_own(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
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
        fd = os.open(layout.lock, os.O_RDONLY | NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").split("\n")[0].strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def open_own(path: Path, flags: int, mode: int = 0o666) -> int:
    """Open one of the daemon's own files, never through a symbolic link: a link planted in
    its place (ROOT may be shared) would have the daemon write to the file it points at."""
    try:
        return os.open(path, flags | NOFOLLOW, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise ImpastoError(
                f"{path} is a symbolic link; the daemon does not write through one (remove it)"
            ) from None
        raise ImpastoError(f"cannot open {path}: {os_reason(exc)}") from None


class _LogFile(logging.handlers.RotatingFileHandler):
    """A rotating log file opened with open_own (rotation renames, which never follow links)."""

    def _open(self):
        def opener(path, flags):
            return open_own(Path(path), flags)

        return open(self.baseFilename, self.mode, encoding=self.encoding, opener=opener)


def set_note(layout: Layout, note: str | None) -> None:
    """A line under the pid in the lock file, for --status (e.g. "paused: no space left on
    the disk"). Rewriting the file's first bytes needs no new disk space, so this works when
    neither the journal nor the log can be written."""
    try:
        fd = os.open(layout.lock, os.O_WRONLY | NOFOLLOW)  # never through a planted link
    except OSError:
        return
    try:
        text = f"{os.getpid()}\n" + (f"{note}\n" if note else "")
        os.pwrite(fd, text.encode()[:1024], 0)
        os.ftruncate(fd, len(text.encode()[:1024]))
    except OSError:
        pass
    finally:
        os.close(fd)


def note(layout: Layout) -> str | None:
    """The running daemon's note (see set_note), or None."""
    try:
        lines = layout.lock.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return lines[1] if len(lines) > 1 and running_pid(layout) else None


@contextlib.contextmanager
def own_temp_files(layout: Layout) -> Iterator[None]:
    """This process's temporary files (TensorFlow's generated modules, ...) in the state folder's
    tmp/, emptied at every start, and the local Ray folder a killed daemon recorded removed: a
    process killed with -9 cannot remove its own, and in /tmp nobody could tell them from other
    processes' files still in use. The lock is held, so nothing else uses these."""
    from impasto.cluster.connect import remove_left_behind  # imports no Ray

    remove_left_behind(layout.state / LOCAL_RAY)
    folder = layout.state / "tmp"
    if folder.is_symlink():  # the state folder is private; never follow a link planted there
        folder.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    saved, tempfile.tempdir = tempfile.tempdir, str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(folder, ignore_errors=True)


def add_log_file(layout: Layout, name: str) -> logging.Handler:
    """ROOT/hotfolder.log: the hot folder's own events (INFO and up) and the engine's warnings,
    rotated so that weeks of running stay small."""
    path = layout.root / name
    handler = _LogFile(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    # One handler on "impasto": the hot folder's own loggers (impasto.hotfolder.*) are made to
    # pass INFO; the engine's pass what the CLI set (WARNING, or INFO with -v).
    logging.getLogger(HOTFOLDER_LOGGER).setLevel(logging.INFO)
    logging.getLogger("impasto").addHandler(handler)
    # ... and which cluster worker starts, paints what, dies and is replaced, always
    logging.getLogger("impasto.cluster").setLevel(logging.INFO)
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
                    with own_temp_files(self.layout):
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
        backend = open_backend(settings, self.engine, self.layout.state / LOCAL_RAY)
        journal = Journal(self.layout.journal)
        try:
            journal.clear_holds()
            Runner(self.layout, self.config, journal, None, self.cancel).recover()
            intake = Intake(
                self.layout,
                routes,
                settings.settle_seconds,
                settings.closed_settle_seconds,
                settings.rescan_seconds,
                settings.polling,
                on_queued=self.wake.set,
            )
            intake_stop = threading.Event()
            thread = threading.Thread(
                target=intake.run, args=(intake_stop,), name="intake", daemon=True
            )
            thread.start()
            slots = Slots(self, backend.engines, intake.nudge)
            try:
                self._loop(journal, slots, intake, thread)
            finally:
                self.cancel.set()  # jobs still under way (an error stopped the loop) checkpoint
                slots.close()
                intake_stop.set()
                thread.join(timeout=10)
        finally:
            journal.close()
            backend.close()
        log.info("stopped")
        return 0

    def _loop(self, journal: Journal, slots: Slots, intake: Intake, thread) -> None:
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
            if slots.idle():
                job = journal.next_queued(runnable, skip=slots.busy())
                if job is not None:
                    slots.start(job)
                    continue
            if (
                self.once
                and not slots.busy()
                and intake.idle()
                and journal.next_queued(runnable) is None
            ):
                if holds:
                    log.warning("routes on hold, files left in their inbox: %s", ", ".join(holds))
                break
            self.wake.wait(timeout=1.0)
            self.wake.clear()

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


class Slots:
    """One runner thread per engine (one for the local engine, one per cluster worker), each
    with its own journal connection; the main loop hands a job to an idle one."""

    def __init__(self, daemon: Daemon, engines: list, nudge):
        self.daemon = daemon
        self.lock = threading.Lock()  # the runners' bookkeeping, see Runner
        self.jobs: queue.Queue = queue.Queue()
        self._busy: set[int] = set()  # changed by one thread at a time: main adds, a runner drops
        self.threads = [
            threading.Thread(target=self._serve, args=(e, nudge), name=f"runner-{n}", daemon=True)
            for n, e in enumerate(engines, 1)
        ]
        for t in self.threads:
            t.start()

    def idle(self) -> bool:
        return len(self._busy) < len(self.threads)

    def busy(self) -> frozenset[int]:
        """The ids of the jobs being run."""
        return frozenset(self._busy)

    def start(self, job: Job) -> None:
        self._busy.add(job.id)
        self.jobs.put(job)

    def close(self) -> None:
        """Wait for the jobs under way (cancel, if set, stops them after their current step)."""
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join()

    def _serve(self, engine, nudge) -> None:
        d = self.daemon
        journal = Journal(d.layout.journal)
        runner = Runner(d.layout, d.config, journal, engine, d.cancel, nudge, self.lock)
        try:
            while (job := self.jobs.get()) is not None:
                try:
                    runner.run(job)
                except Exception as exc:  # noqa: BLE001
                    if is_disk_full(exc):
                        self._wait_for_space(runner, job, exc.__cause__ or exc)
                        continue
                    log.exception("unexpected error on %s; recovering shortly", job.label)
                    d.stop.wait(d.ERROR_PAUSE)
                    self._recover(runner, job)
                finally:
                    self._busy.discard(job.id)
                    d.wake.set()
        finally:
            journal.close()

    def _wait_for_space(self, runner: Runner, job: Job, cause: BaseException) -> None:
        """The disk is full: this runner (so the queue, with one engine) waits until space is
        freed, then brings its job back in line; the input stays in the inbox meanwhile."""
        d = self.daemon
        log.warning(
            "paused: %s (%s); %s waits in the inbox, and the queue resumes by itself once "
            "space is freed",
            NO_SPACE,
            first_line(cause),
            job.label,
        )
        set_note(d.layout, f"paused: {NO_SPACE} (since {time.strftime('%H:%M:%S')})")
        if wait_for_space((d.layout.root, d.layout.state), d.stop):
            log.info("resumed: space was freed")
        set_note(d.layout, None)
        self._recover(runner, job, crashed=False)

    def _recover(self, runner: Runner, job: Job, crashed: bool = True) -> None:
        """Bring the journal and the folders back in line after an unexpected error, the same
        way a restart would (the job's crash count goes up, unless `crashed` is False, so a file
        that keeps failing this way ends in failed/); the other runners' jobs are left alone."""
        try:
            with self.lock:
                runner.recover(busy=self.busy() - {job.id}, crashed=crashed)
        except Exception:  # noqa: BLE001
            log.exception("recovery failed too; trying again later")
