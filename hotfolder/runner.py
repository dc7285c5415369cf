"""Running one queued job: check the input, paint it, write the output, move the input away.

The order is what makes the daemon lose nothing: the output name is reserved in the journal,
the picture is written atomically under that name, and only then is the input moved (without
ever replacing a file) to processed/. A failure moves the input to failed/ and writes
<name>.error.txt with the engine's one-line reason. The photo's masks (impasto.sidecars) are
read like the photo and move with it, named after where it went (cat-2.jpg, cat-2.mask.png).
Every step can be redone after a crash (see recover()).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from impasto.engine import checkpoint as checkpoints
from impasto.errors import ImpastoError, InputError, PresetError, WeightsError, first_line
from impasto.hotfolder.config import Config, Route
from impasto.hotfolder.intake import Unreadable, inspect, read_input, takeable
from impasto.hotfolder.journal import Identity, Job, Journal, MaskFile
from impasto.hotfolder.layout import (
    FolderSwapped,
    Layout,
    fsync_dir,
    make_dirs,
    move_no_replace,
    printable,
    remove_partial_writes,
    unique_name,
    write_text_atomic,
)
from impasto.hotfolder.space import NO_SPACE, DiskFull, is_disk_full
from impasto.images import load_image
from impasto.job import CheckedJob, StyleJob, check_job
from impasto.outputs import SaveError, save_or_recover
from impasto.paths import reason
from impasto.progress import Snapshots
from impasto.sidecars import mask_of, masks_by_style, photo_stem

log = logging.getLogger(__name__)

PROGRESS_EVERY = 1.0  # seconds between progress rows in the journal (for --status)
ERROR_SUFFIX = ".error.txt"


class Runner:
    """Runs jobs one at a time through one engine; `engine` is impasto.engine.loop, a cluster
    worker (impasto.cluster.pool.RemoteEngine) or a stand-in with stylize() and describe() in
    tests. Several runners (one per cluster worker, each in its own thread with its own journal
    connection) share `lock`: everything but the painting holds it, so two runners never pick
    the same name in outbox/, processed/ or failed/."""

    def __init__(
        self,
        layout: Layout,
        config: Config,
        journal: Journal,
        engine,
        cancel: threading.Event,
        nudge: Callable[[], None] = lambda: None,
        lock: threading.Lock | None = None,
    ):
        self.layout, self.config, self.journal, self.engine = layout, config, journal, engine
        self.cancel, self.nudge = cancel, nudge
        self.lock = lock or threading.Lock()
        self.max_bytes = int(config.daemon.max_file_mb * 1e6)

    def _inbox_path(self, job: Job, name: str | None = None) -> Path:
        return self.layout.folder("inbox", job.route) / (name or job.name)

    # --- one job ------------------------------------------------------------------------------
    def run(self, job: Job) -> str:
        """Run a queued job; returns "done", "failed", "stopped" (cancel was set: the job is
        queued again and will resume), "held" (its route is broken: the job stays queued), or
        "changed" (the file changed since it was queued: the intake will queue it again)."""
        with self.lock:
            return self._run(job)

    @contextlib.contextmanager
    def _unlocked(self):
        """Let other runners do their bookkeeping while this one paints."""
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    def _run(self, job: Job) -> str:
        route, src = self.config.routes[job.route], self._inbox_path(job)
        # Every error before the painting starts ends the job here: the job is still "queued",
        # so an error left to the daemon's recovery would have it taken again, forever.
        try:
            checked = self._check(job, route, src)
            if isinstance(checked, str):
                return checked
            resume_step = self._resume_step(job, checked)
            total = self.engine.describe(checked)["total"]
        except sqlite3.Error:
            raise  # the journal's trouble (e.g. disk full), not the file's: see Slots._serve
        except ImpastoError as exc:
            if is_route_problem(exc):
                return self._hold(job, str(exc))
            if inspect(src, self.layout.root, self.max_bytes).identity != job.identity:
                return self._changed(job, "is still being written")
            return self._fail(job, first_line(exc))
        except Exception as exc:  # noqa: BLE001 - a fuzzed file can break a decoder any way
            log.exception("unexpected error on %s", job.label)
            return self._fail(job, f"unexpected error: {one_line(exc)}")
        output = job.output or unique_name(
            self.layout.folder("outbox", job.route),
            Path(job.name).stem + route.output_suffix(job.name),
            taken=self.journal.reserved(job.route, "output").__contains__,
        )
        self.journal.start(job.id, output, total)
        log.info(
            "painting %s -> outbox/%s (%d steps%s)",
            job.label,
            printable(f"{job.route}/{output}"),
            total,
            f", resuming from step {resume_step}" if resume_step is not None else "",
        )
        try:
            with self._unlocked():
                result = self.engine.stylize(
                    checked, on_progress=self._progress(job, route, output), cancel=self.cancel
                )
        except (WeightsError, PresetError) as exc:
            return self._hold(job, str(exc))
        except ImpastoError as exc:
            return self._fail(job, first_line(exc))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the queue
            if is_disk_full(exc):  # e.g. a journal write in on_progress: not this file's fault
                raise DiskFull(NO_SPACE) from exc
            log.exception("the engine failed on %s", job.label)
            return self._fail(job, f"the engine failed: {one_line(exc)}")
        if result.cancelled:
            self.journal.progress(job.id, result.stats.get("steps", 0), total, None)
            self.journal.requeue(job.id)
            log.info(
                "stopped %s at step %d; it resumes from there next time",
                job.label,
                result.stats.get("steps", 0),
            )
            return "stopped"
        outbox = self.layout.folder("outbox", job.route)
        with contextlib.suppress(OSError):  # if it fails, so does the save, which keeps the picture
            make_dirs(outbox)
        try:
            try:
                result.save(outbox / output)
            except Exception as exc:  # noqa: BLE001
                if is_disk_full(exc):  # the queue pauses; no recovery copy in /tmp
                    raise DiskFull(NO_SPACE) from exc
                save_or_recover(result.save, outbox / output)
        except SaveError as exc:
            kept = f"; the painting is saved in {str(exc.recovered)!r}" if exc.recovered else ""
            return self._fail(job, f"could not write the output {output!r}: {exc.why}{kept}")
        fsync_dir(outbox)  # the output's name is on disk before the input moves
        stats = result.stats
        log.info(
            "painted %s in %.1f s (%d steps)",
            job.label,
            stats.get("seconds", 0),
            stats.get("steps", 0),
        )
        return self._finish(self.journal.get(job.id))

    def _check(self, job: Job, route: Route, src: Path) -> CheckedJob | str:
        """The job with its input read and checked, or how it ended ("failed", "changed")."""
        verdict = inspect(src, self.layout.root, self.max_bytes)
        if verdict.kind == "gone":
            return self._fail(job, "the file disappeared before it could be read")
        if verdict.identity != job.identity:
            return self._changed(job, "changed since it was queued")
        if verdict.kind == "refuse":
            return self._fail(job, verdict.reason)
        if verdict.kind == "skip":
            return self._changed(job, "is now a folder")
        if job.crashes >= self.config.daemon.max_crashes:
            return self._fail(
                job,
                f"the daemon stopped {job.crashes} times while painting this file (crash, kill "
                "or power cut), so it was not tried again",
            )
        if self._new_masks(job):  # dropped after the photo was queued: queued again with them
            return self._changed(job, "got a mask since it was queued")
        try:
            data = read_input(self.layout, job.route, job.name, job.identity, self.max_bytes)
            masks = self._read_masks(job, route)
        except Unreadable as exc:
            return self._changed(job, exc.reason) if exc.changed else self._fail(job, exc.reason)
        # The engine (or a cluster worker) gets these bytes, never the path: the file is read once.
        return check_job(
            StyleJob(
                content=data,
                content_name=job.name,
                masks=masks,
                styles=list(route.styles),
                preset=route.preset,
                size=route.size,
                seed=route.seed,
                overrides=dict(route.overrides),
                max_memory=self.config.daemon.max_memory,  # the route's own wins (memory.budget)
                preview_every=route.save_every,
                checkpoint=str(self.layout.checkpoint(job.id)),
                checkpoint_every=self.config.daemon.checkpoint_every,
            )
        )

    def _new_masks(self, job: Job) -> bool:
        """True when a mask for this photo lies in the inbox that the job did not queue with
        (and no other job claims), one the intake will take (else it would never be queued)."""
        folder = self.layout.folder("inbox", job.route)
        try:
            names = os.listdir(folder)
        except OSError:
            return False  # reading the photo says why
        known = {m.name for m in job.masks} | self.journal.claimed_masks(job.route)
        stem = photo_stem(job.name)
        return any(
            n not in known
            and (mask_of(n) or ("", 0))[0] == stem
            and takeable(n)
            and not os.path.isdir(folder / n)
            for n in names
        )

    def _read_masks(self, job: Job, route: Route) -> list | None:
        """The job's masks in the order of the styles, each read once like the photo (Unreadable
        as the photo's, naming the mask) and decoded under its own name."""
        if not job.masks:
            return None
        order = masks_by_style([m.name for m in job.masks], len(route.styles))
        files = {m.name: m for m in job.masks}
        masks = []
        for index, name in enumerate(order):
            if name is None:
                masks.append(None)
                continue
            mask = files[name]
            verdict = inspect(self._inbox_path(job, name), self.layout.root, self.max_bytes)
            if verdict.identity != mask.identity:
                raise Unreadable(f"its mask {name!r} changed since it was queued", changed=True)
            try:
                if verdict.kind != "file":
                    raise Unreadable(verdict.reason or "not a file")
                data = read_input(self.layout, job.route, name, mask.identity, self.max_bytes)
            except Unreadable as exc:
                raise Unreadable(f"mask {name!r}: {exc.reason}", exc.changed) from None
            masks.append(load_image(data, f"mask {index + 1}", name=name))
        return masks

    def _progress(self, job: Job, route: Route, output: str):
        last = [0.0]
        snapshots = Snapshots(
            self.layout.folder("evolution", job.route) / Path(output).stem, route.save_every
        )

        def on_progress(event) -> None:
            now = time.monotonic()
            if event.step == event.total or now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                self.journal.progress(job.id, event.step, event.total, event.eta)
            try:
                snapshots.save(event)
            except OSError as exc:
                log.warning("could not save a snapshot of %s: %s", job.label, exc.strerror)

        return on_progress

    def _resume_step(self, job: Job, checked: CheckedJob) -> int | None:
        """The step the job's checkpoint reached, if it belongs to this very job (then the job
        resumes from it); a checkpoint made under another config (edited after a crash) is
        dropped and the job starts over."""
        ckpt = self.layout.checkpoint(job.id)
        if not ckpt.is_file():
            return None
        try:
            step = checkpoints.load(ckpt, checked.settings()).step
        except InputError as exc:
            log.warning("%s: dropping its checkpoint and starting over (%s)", job.label, exc)
            ckpt.unlink(missing_ok=True)
            return None
        checked.job.resume = str(ckpt)
        return step

    def _changed(self, job: Job, why: str) -> str:
        log.info("%s %s; it will be taken once it stops changing", job.label, why)
        self.journal.forget(job.id)
        self.layout.checkpoint(job.id).unlink(missing_ok=True)
        self.nudge()
        return "changed"

    def _hold(self, job: Job, reason: str) -> str:
        log.error("route %s is on hold: %s (its files wait in the inbox)", job.route, reason)
        self.journal.requeue(job.id)
        self.journal.set_hold(job.route, reason)
        return "held"

    # --- the end of a job: move the input out of the inbox --------------------------------------
    def _finish(self, job: Job) -> str:
        """Output is on disk: move the input to processed/ and mark the job done."""
        folder = self.layout.folder("processed", job.route)
        reserved = self.journal.reserved(job.route, "moved_to")
        dest = job.moved_to or unique_name(folder, job.name, taken=reserved.__contains__)
        masks = self._mask_dests(job, folder, dest, reserved.__contains__)
        self.journal.finishing(job.id, dest, masks)
        note, left = self._move_input(self.journal.get(job.id), "processed", dest)
        self.journal.finished(job.id, "done", note, left)
        self.layout.checkpoint(job.id).unlink(missing_ok=True)
        log.info("done %s -> outbox/%s", job.label, printable(f"{job.route}/{job.output}"))
        return "done"

    def _fail(self, job: Job, why: str) -> str:
        why = printable(" ".join(str(why).split())) or "unknown error"
        folder = self.layout.folder("failed", job.route)
        reserved = self.journal.reserved(job.route, "moved_to")
        dest = job.moved_to or unique_name(
            folder,
            job.name,
            taken=lambda n: n in reserved or os.path.lexists(folder / (n + ERROR_SUFFIX)),
        )
        masks = self._mask_dests(job, folder, dest, reserved.__contains__)
        self.journal.failing(job.id, dest, why, masks)
        return self._complete_failure(self.journal.get(job.id))

    @staticmethod
    def _mask_dests(job: Job, folder: Path, dest: str, taken) -> tuple[MaskFile, ...]:
        """The job's masks with their names in `folder` reserved: named after the photo's
        `dest` (cat-2.jpg: cat-2.mask.png), so they still go with it there."""
        chosen: set[str] = set()
        masks = []
        for mask in job.masks:
            if mask.moved_to is None:
                name = photo_stem(dest) + mask.name[len(mask_of(mask.name)[0]) :]
                name = unique_name(folder, name, taken=lambda n: taken(n) or n in chosen)
                mask = MaskFile(mask.name, mask.identity, name)
            chosen.add(mask.moved_to)
            masks.append(mask)
        return tuple(masks)

    def _complete_failure(self, job: Job) -> str:
        note, left = self._move_input(job, "failed", job.moved_to)
        folder = self.layout.folder("failed", job.route)
        try:
            write_text_atomic(folder / (job.moved_to + ERROR_SUFFIX), job.reason + "\n")
        except OSError as exc:
            if is_disk_full(exc):  # left "failing": completed once space is freed
                raise DiskFull(NO_SPACE) from exc
            log.error("could not write %s%s: %s", job.moved_to, ERROR_SUFFIX, exc.strerror)
        self.journal.finished(job.id, "failed", note, left)
        self.layout.checkpoint(job.id).unlink(missing_ok=True)
        log.warning("failed %s: %s", job.label, job.reason)
        return "failed"

    def _move_input(self, job: Job, kind: str, dest: str) -> tuple[str | None, bool]:
        """Move the job's input, then its masks, to <kind>/<route>/ (the names reserved in the
        journal). Returns (note, left_in_inbox: the photo could not be moved).

        Files are moved out of the inbox folder the daemon started with, never through a link
        swapped in since: that would move (and so delete) a file outside the hot folder."""
        try:
            inbox = self.layout.open_inbox(job.route)
        except FileNotFoundError:
            return self._gone(self.layout.folder(kind, job.route) / dest)
        except (OSError, FolderSwapped) as exc:
            why = reason(exc) if isinstance(exc, OSError) else str(exc)
            log.error("%s stays where it is: %s", job.label, why)
            return f"not moved: {why}", True
        try:
            note, left = self._move_from(inbox, job, kind, job.name, job.identity, dest)
            masks = list(job.masks)
            for i, mask in enumerate(masks):
                mask_note, _ = self._move_from(
                    inbox, job, kind, mask.name, mask.identity, mask.moved_to, masks, i
                )
                note = note or mask_note
            return note, left
        finally:
            os.close(inbox)

    @staticmethod
    def _gone(target: Path) -> tuple[str | None, bool]:
        return (None if os.path.lexists(target) else "the input had left the inbox"), False

    def _move_from(
        self,
        inbox: int,
        job: Job,
        kind: str,
        name: str,
        identity: Identity,
        dest: str,
        masks: list[MaskFile] | None = None,
        index: int = 0,
    ) -> tuple[str | None, bool]:
        """Move inbox file `name` (the photo, or masks[index]) to <kind>/<route>/<dest>; a name
        taken meanwhile is replaced by a free one, recorded in the journal first."""
        folder = self.layout.folder(kind, job.route)
        target = folder / dest
        shown = job.label if masks is None else printable(f"{job.route}/{name}")
        try:
            st = os.stat(name, dir_fd=inbox, follow_symlinks=False)
        except FileNotFoundError:
            fsync_dir(folder)  # a crash may have come after the move, before its syncs
            with contextlib.suppress(OSError):
                os.fsync(inbox)
            return self._gone(target)
        if Identity.of(st) != identity:
            self.nudge()
            if masks is None:
                why = "the input was replaced while being painted; the new file stays queued"
            else:
                why = f"its mask {name!r} was replaced meanwhile; the new file stays in the inbox"
            return why, False
        for _ in range(100):
            try:
                make_dirs(folder)
                move_no_replace(name, target, src_dir_fd=inbox)
                fsync_dir(folder)
                with contextlib.suppress(OSError):
                    os.fsync(inbox)
                return None, False
            except FileExistsError:
                if os.path.samestat(st, os.lstat(target)):
                    os.unlink(name, dir_fd=inbox)  # a crash came between link and unlink
                    fsync_dir(folder)  # on disk before the journal says done: else a power
                    os.fsync(inbox)  # cut brings the input back, and it is painted again
                    return None, False
                dest = unique_name(folder, dest)
                target = folder / dest
                if masks is None:
                    self.journal.set_moved_to(job.id, dest)
                else:
                    masks[index] = MaskFile(name, identity, dest)
                    self.journal.set_masks(job.id, tuple(masks))
            except OSError as exc:
                if is_disk_full(exc):  # left "finishing" or "failing": moved once space is freed
                    raise DiskFull(NO_SPACE) from exc
                log.error(
                    "could not move %s to %s/: %s; it stays in the inbox and is not taken again",
                    shown,
                    kind,
                    exc.strerror,
                )
                return f"could not be moved to {kind}/ ({exc.strerror})", True
        return f"could not be moved to {kind}/", True

    # --- after a crash ------------------------------------------------------------------------
    def recover(self, busy: frozenset[int] = frozenset(), crashed: bool = True) -> None:
        """Bring every job the last run left half-way to a consistent state (see journal.py).
        Jobs in `busy` are being painted by other runners right now, and are left alone.
        crashed=False: the job stopped for a full disk, which is not counted as a crash."""
        for job in self.journal.in_state("running"):
            if job.id in busy:
                continue
            output = self.layout.folder("outbox", job.route) / (job.output or "")
            if job.output and output.is_file():
                log.info("%s was painted before the daemon stopped; finishing it", job.label)
                fsync_dir(output.parent)  # it may have stopped before the output's name was synced
                self._finish(job)
            else:
                self.journal.requeue(job.id, crashed=crashed)
                log.warning(
                    "%s was interrupted near step %d of %d (%s); it is queued again",
                    job.label,
                    job.step,
                    job.total,
                    "crash or kill" if crashed else "full disk",
                )
        for job in self.journal.in_state("finishing"):
            self._finish(job)
        for job in self.journal.in_state("failing"):
            self._complete_failure(job)
        self._remove_partial_writes(busy)

    def _remove_partial_writes(self, busy: frozenset[int]) -> None:
        removed = 0
        for route in self.config.routes:
            outputs = self.journal.all_outputs(route)
            moved = self.journal.all_moved(route)
            removed += remove_partial_writes(self.layout.folder("outbox", route), outputs)
            removed += remove_partial_writes(
                self.layout.folder("failed", route), {m + ERROR_SUFFIX for m in moved} | moved
            )
            removed += remove_partial_writes(self.layout.folder("processed", route), moved)
        keep = {f"job-{job.id}.npz" for job in self.journal.in_state("queued")}
        painting = {f"job-{job_id}.npz" for job_id in busy}  # and their writes under way
        folder = self.layout.checkpoints
        for entry in os.scandir(folder) if folder.is_dir() else ():
            target = entry.name[1:-4].rsplit(".", 1)[0]  # ".job-5.npz.k3j2.tmp" -> "job-5.npz"
            if entry.name in keep | painting or target in painting:
                continue
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)  # partial writes and checkpoints of finished jobs
                removed += 1
        if removed:
            log.info("removed %d partial file(s) left by the last run", removed)


def one_line(exc: BaseException) -> str:
    """An unexpected exception in one line: its type (with its module, unless built in) and the
    first line of its message; the log has the whole traceback."""
    kind = type(exc).__qualname__
    if type(exc).__module__ != "builtins":
        kind = f"{type(exc).__module__}.{kind}"
    lines = str(exc).strip().splitlines()
    return f"{kind}: {lines[0]}" if lines else kind


def is_route_problem(exc: ImpastoError) -> bool:
    """True when an error is about the route (preset, overrides, style images, weights) rather
    than the dropped file. The engine names the image's role at the start of its message."""
    return isinstance(exc, PresetError | WeightsError) or str(exc).startswith("style image")
