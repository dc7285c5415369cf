"""`impasto batch INPUT ... --style ART -o FOLDER`: many photos, one recipe, here or on a cluster.

Every file is checked before any painting (a bad one is reported, not fatal), outputs that
already exist are skipped (so running the same command again finishes an interrupted batch),
each output is written atomically when its painting is complete, and the end is a summary with
every failure's reason. With --masks-beside each photo's masks are found beside it by the hot
folder's naming rule (impasto.sidecars: cat.mask.png, cat.mask2.png). With --cluster the
files are painted by a pool of engine workers on a Ray cluster, one file per worker at a time;
without it, one at a time by the engine here.

Exit codes: 0 every file painted (or already there), 2 the batch could not start or some files
failed (each is listed), 130 Ctrl-C, 143 SIGTERM (the files under way are not written).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from impasto.commands.stylize import _stop_on_signals, add_recipe_arguments, build_job
from impasto.errors import ImpastoError, InputError, first_line
from impasto.images import OUTPUT_FORMATS
from impasto.job import StyleJob, check_job
from impasto.numbers import whole_number_arg
from impasto.outputs import SaveError, check_not_input, make_output_folder, save_or_recover
from impasto.paths import reason
from impasto.protocol import clock
from impasto.sidecars import mask_of, masks_by_style, photo_stem

HELP = "paint many photos with one recipe, here or on a Ray cluster"  # in `impasto --help`

log = logging.getLogger(__name__)

FORMATS = sorted({ext.lstrip(".") for ext in OUTPUT_FORMATS})
CHECKPOINT_EVERY = 25  # on a cluster: steps a worker's death can cost


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, or folders of photos")
    p.add_argument(
        "-s",
        "--style",
        action="append",
        required=True,
        metavar="IMAGE",
        help="artwork to paint like (repeat for a blend, with --style-blend)",
    )
    p.add_argument("-o", "--output-dir", required=True, metavar="FOLDER", help="where outputs go")
    p.add_argument("--format", choices=FORMATS, default="png", help="output format (default png)")
    p.add_argument(
        "--masks-beside",
        action="store_true",
        help="paint each style only where the photo's own mask says: photo.mask.png beside "
        "photo.jpg for the first style, photo.mask2.png for the second, ... (mask files are "
        "not painted as photos)",
    )
    add_recipe_arguments(p)
    p.add_argument(
        "--progress",
        choices=("bar", "none"),
        default="bar",
        help="a progress bar over the batch on stderr, or nothing (the summary is always shown)",
    )
    cluster = p.add_argument_group("on a Ray cluster (pip install 'impasto[cluster]')")
    cluster.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="paint on the Ray cluster at ADDRESS (HOST:PORT, auto, or local to start one here)",
    )
    cluster.add_argument(
        "--workers", type=whole_number_arg, default=0, help="engine workers (default: one per CPU)"
    )
    cluster.add_argument(
        "--worker-threads",
        type=whole_number_arg,
        default=1,
        help="TensorFlow threads per worker (default 1)",
    )


@dataclasses.dataclass
class Item:
    source: Path
    output: Path
    job: StyleJob | None = None


def plan(
    inputs: list[str], outdir: Path, ext: str, masks_beside: bool = False
) -> tuple[list[Item], list[tuple[str, str]]]:
    """One Item per photo (a folder gives the image files in it, by extension, hidden ones
    left out, and with masks_beside the masks too), and (name, reason) for each input that
    cannot get an output name. Outputs are
    named after their photo, `cat.jpg` -> `cat.png`; photos that differ only in extension keep
    it apart, `cat_jpg.png`, so a re-run finds the same names."""
    sources: list[Path] = []
    failed: list[tuple[str, str]] = []
    image_exts = {e for e, f in Image.registered_extensions().items() if f in Image.OPEN}
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            try:
                found = [
                    p
                    for p in path.iterdir()
                    if not p.name.startswith(".")
                    and p.suffix.lower() in image_exts
                    and not (masks_beside and mask_of(p.name))
                    and p.is_file()
                ]
            except OSError as exc:
                failed.append((text, f"folder cannot be listed ({reason(exc)})"))
                continue
            sources += sorted(found)
        elif not (masks_beside and mask_of(path.name)):  # `photos/*`: the masks go with them
            sources.append(path)
    by_stem: dict[str, set[str]] = {}
    for src in sources:
        by_stem.setdefault(src.stem, set()).add(src.name)
    items, taken = [], {}
    for src in dict.fromkeys(sources):  # the same path named twice is painted once
        name = src.stem + ext
        if len(by_stem[src.stem]) > 1:
            name = f"{src.stem}_{src.suffix.lstrip('.')}{ext}"
        if name in taken:
            failed.append((str(src), f"its output {name!r} is already {str(taken[name])!r}'s"))
            continue
        taken[name] = src
        items.append(Item(src, outdir / name))
    return items, failed


def run(args: argparse.Namespace) -> int:
    if args.workers < 0 or args.worker_threads < 1:
        raise InputError("--workers must be 0 or more, and --worker-threads 1 or more")
    if args.cluster:
        from impasto.cluster.connect import require_ray

        require_ray()  # one line now, before the photos are checked
    template = build_job(
        argparse.Namespace(
            **vars(args),
            content=None,
            styles=args.style,
            save_every=0,
            checkpoint=None,
            checkpoint_every=1,
            resume=None,
        )
    )
    # The job's own settings (preset, overrides, size, styles) are checked once, on a stand-in
    # photo, so that a mistake there stops the batch at once instead of failing every file.
    check_job(dataclasses.replace(template, content=Image.new("RGB", (64, 64))))
    outdir = make_output_folder(Path(args.output_dir), "output")
    styles = [("style image", s) for s, _ in template.styles]
    items, failed = plan(args.inputs, outdir, "." + args.format, args.masks_beside)
    report = Report(len(items) + len(failed), failed)
    todo = []
    for item in items:  # every photo is checked before anything is painted
        try:
            masks = masks_beside(item.source, len(styles)) if args.masks_beside else None
            job = dataclasses.replace(template, content=str(item.source), masks=masks)
            read = [("content image", item.source), *styles]
            read += [(f"mask {i}", m) for i, m in enumerate(masks or [], 1) if m]
            check_not_input(item.output, read)
            if item.output.exists():
                report.skipped += 1
                continue
            check_job(job)
        except ImpastoError as exc:
            report.failed.append((str(item.source), _words(exc, item.source)))
            continue
        item.job = job
        todo.append(item)
    for name, why in report.failed:
        print(f"impasto: skipping {name}: {why}", file=sys.stderr)
    if todo:
        report.stopped_by = _paint(args, todo, report)
    print(report.summary(outdir), file=sys.stderr)
    if report.stopped_by is not None:
        return 130 if report.stopped_by == 2 else 143  # SIGINT is 2
    return 2 if report.failed else 0


def masks_beside(photo: Path, styles: int) -> list[str | None] | None:
    """The photo's masks found beside it, one per style in order (None: the whole picture),
    or None when it has none; InputError when they do not fit the styles."""
    try:
        names = [
            n
            for n in os.listdir(photo.parent)
            if (m := mask_of(n)) and m[0] == photo_stem(photo.name) and not n.startswith(".")
        ]
    except OSError as exc:
        raise InputError(f"cannot look for its masks ({reason(exc)})") from None
    if not names:
        return None
    order = masks_by_style(names, styles)
    return [None if n is None else str(photo.parent / n) for n in order]


def _paint(args: argparse.Namespace, todo: list[Item], report: Report) -> int | None:
    """Paint the checked items, one runner thread per engine; returns the signal that stopped
    the batch, or None."""
    if args.cluster:
        from impasto.cluster.pool import Pool

        print(f"impasto: starting the workers on {args.cluster} ...", file=sys.stderr)
        backend = Pool(args.cluster, args.workers, args.worker_threads)
        engines = backend.engines
    else:
        from impasto import load_engine

        backend, engines = None, [load_engine()]
    cancel = threading.Event()
    stopped_by = _stop_on_signals(cancel)
    work: queue.Queue = queue.Queue()
    for item in todo:
        work.put(item)
    bar = Bar(len(todo), enabled=args.progress == "bar")
    try:
        with tempfile.TemporaryDirectory(prefix="impasto-batch-") as tmp:
            threads = [
                threading.Thread(
                    target=_serve,
                    args=(engine, work, cancel, bar, report, Path(tmp) if backend else None),
                    name=f"runner-{n}",
                    daemon=True,
                )
                for n, engine in enumerate(engines, 1)
            ]
            for t in threads:
                t.start()
            for t in threads:  # joined in slices, so that Ctrl-C is handled at once
                while t.is_alive():
                    t.join(0.2)
    finally:
        bar.close()
        if backend is not None:
            backend.close()
    return stopped_by.get("signal")


def _serve(engine, work: queue.Queue, cancel, bar: Bar, report: Report, tmp: Path | None) -> None:
    while not cancel.is_set():
        try:
            item = work.get_nowait()
        except queue.Empty:
            return
        job = item.job
        if tmp is not None:  # a worker that dies resumes from here
            job = dataclasses.replace(
                job,
                checkpoint=str(tmp / f"{id(item)}.npz"),
                checkpoint_every=CHECKPOINT_EVERY,
            )
        try:
            checked = check_job(job)
            result = engine.stylize(
                checked,
                on_progress=lambda e, i=item: bar.running(i, e.step / e.total),
                cancel=cancel,
            )
            if result.cancelled:  # not written: the next run paints it whole
                bar.stopped(item)
                continue
            save_or_recover(result.save, item.output)
        except SaveError as exc:
            report.fail(item.source, str(exc))
        except ImpastoError as exc:
            report.fail(item.source, _words(exc, item.source))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            log.exception("the engine failed on %s", item.source)
            report.fail(item.source, f"the engine failed: {first_line(exc)}")
        else:
            report.succeed()
        bar.finished(item, failed=len(report.failed))


class Report:
    """What happened to every input, for the summary."""

    def __init__(self, inputs: int, failed: list[tuple[str, str]]):
        self.inputs, self.failed = inputs, failed
        self.painted = self.skipped = 0
        self.stopped_by: int | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def succeed(self) -> None:
        with self._lock:
            self.painted += 1

    def fail(self, source: Path, why: str) -> None:
        with self._lock:
            self.failed.append((str(source), why))

    def summary(self, outdir: Path) -> str:
        seconds = time.monotonic() - self.started
        rate = f", {60 * self.painted / seconds:.1f} files/min" if self.painted else ""
        parts = [f"{self.painted} painted", f"{self.skipped} already there"]
        parts.append(f"{len(self.failed)} failed")
        left = self.inputs - self.painted - self.skipped - len(self.failed)
        if left:
            parts.append(f"{left} not painted (stopped; run the same command to finish)")
        lines = [f"impasto: {', '.join(parts)} in {clock(seconds)}{rate}: {outdir}"]
        lines += [f"  {name}: {why}" for name, why in self.failed]
        return "\n".join(lines)


class Bar:
    """One line for the whole batch: files done, failures, time spent and time left (from the
    share of the work done, counting the files under way by their steps)."""

    WIDTH = 24

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.done = self.failed = 0
        self.under_way: dict[int, float] = {}
        self.started = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def running(self, item: Item, share: float) -> None:
        with self._lock:
            self.under_way[id(item)] = share
            self._draw()

    def finished(self, item: Item, failed: int) -> None:
        with self._lock:
            self.under_way.pop(id(item), None)
            self.done += 1
            self.failed = failed
            self._draw(force=True)

    def stopped(self, item: Item) -> None:
        with self._lock:
            self.under_way.pop(id(item), None)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        share = (self.done + sum(self.under_way.values())) / self.total
        elapsed = now - self.started
        left = f", {clock(elapsed * (1 - share) / share)} left" if share > 0 else ""
        filled = round(self.WIDTH * share)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        failed = f", {self.failed} failed" if self.failed else ""
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} files{failed}  {clock(elapsed)} elapsed{left} "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()


def _words(exc: Exception, src: Path) -> str:
    """The error's line, naming the file as the user named it."""
    return first_line(exc).replace(repr(str(src)), repr(src.name))
