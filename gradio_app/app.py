"""The web app: a gr.Blocks page around the engine, for people who would rather click than type.

One EngineRunner per app (so one engine per process) and one Gradio queue: the Run event has a
single concurrency id with limit 1 and the queue is bounded, so a shared demo link cannot pile up
work without end, and waiting visitors see their place in line. A job streams its picture every
few steps from a generator; Cancel sets the job's threading.Event and the engine hands back the
best picture so far, which is then offered like any finished result.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

import impasto
from impasto.gradio_app import quiet_refusals
from impasto.gradio_app.cli import JOBS_PER_VISITOR
from impasto.gradio_app.form import (
    FormJob,
    Limits,
    job_from_form,
    public_message,
    region_mask,
    upload_path,
)
from impasto.gradio_app.guard import UPLOAD_QUOTA, Guard
from impasto.gradio_app.presets_view import (
    PresetView,
    default_preset,
    describe_markdown,
    preset_views,
    recipe_or_none,
)
from impasto.gradio_app.runner import EngineRunner
from impasto.images import save_image
from impasto.limits import WEB_MAX_SIZE, WEB_MAX_STEPS, WEB_MIN_SIZE, WEB_STYLE_STRENGTH
from impasto.protocol import clock

log = logging.getLogger(__name__)

PLOT_POINTS = 200  # the loss plot keeps at most this many steps per term
KEEP_RESULTS = 24 * 3600  # seconds a finished PNG stays downloadable
ENGINE_QUEUE = "impasto-engine"  # the one concurrency id every job waits under
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAX_UPLOAD = "50mb"  # larger uploads are refused by Gradio before they reach the engine
# Gradio adds a job to its queue a moment after the Run check passes: a check this recent
# counts as a job until its job is queued, so that simultaneous submissions cannot all slip
# past the limit.
JUST_CHECKED = 5.0
# Gradio keeps a copy of the page's settings for every visitor session it has seen (10,000 by
# default, about 70 kB each: 0.7 GB when full). The most recent ones are plenty for a page with
# no per-visitor state; a visitor whose session was dropped loses only a refreshed preset list.
SESSIONS_KEPT = 100
REGIONS_HELP = (
    "Paint over the photo where a style goes (any brush colour: only where you paint counts; "
    "the eraser takes strokes back). A style left unpainted goes everywhere; where no painted "
    "style reaches, the photo stays as it is."
)
SAMPLE_CAPTION = "<small>Sample: this preset on a cat photo and *The Starry Night*</small>"
PLOT_CAPTION = (
    "The picture is painted small first, then larger: each size has its own line, falling from "
    "100 % as the painting settles."
)
# The picture fills its box at any size (a 64 px preview was shown at its own, tiny size).
CSS = "#impasto-result img { width: 100%; height: 100%; object-fit: contain; }"
COLOR_CHOICES = [
    ("the painting's colours", "none"),
    ("the photo's colours (luminance)", "luminance"),
    ("the photo's palette (histogram)", "histogram"),
]


class LossHistory:
    """The total loss over the steps, one line per size the engine paints at, each as a
    percentage of where that size began, thinned for the plot. The raw loss jumps at every
    change of size (more pixels, larger sums), which reads as an error; per size, every line
    falls from 100."""

    def __init__(self, sizes: list | None = None) -> None:
        """sizes: the job's (w, h, steps) per scale (describe()'s "scales"), where known."""
        self.rows: list[tuple[int, str, float]] = []
        self.start: dict[int, float] = {}  # scale -> its first total loss
        labels = [_size_label(w, h, len(sizes)) for w, h, _ in sizes or []]
        # The page's plot fixes its colours from its first data: every size is named in it
        # from the start (with no value, so nothing is drawn), or later sizes are not drawn.
        self.placeholders = [(1, label, float("nan")) for label in labels]

    def add(self, event: impasto.ProgressEvent) -> None:
        total = float(event.losses["total"])
        start = self.start.setdefault(event.scale, total)
        percent = 100 * total / start if start else 0.0
        self.rows.append((event.step, _size_label(*event.size, event.scales), percent))

    def frame(self) -> pd.DataFrame:
        seen = {label for _, label, _ in self.rows}
        rows = [r for r in self.placeholders if r[1] not in seen] + self.rows
        df = pd.DataFrame(rows, columns=["step", "size", "loss"])
        steps = df["step"].unique()
        if len(steps) > PLOT_POINTS:
            stride = -(-len(steps) // PLOT_POINTS)
            df = df[df["step"].isin(set(steps[::stride]) | {steps[-1]})]
        return df


def _size_label(w: int, h: int, scales: int) -> str:
    return f"{w}×{h}" if scales > 1 else "loss"


def _progress_line(event: impasto.ProgressEvent) -> str:
    """The engine's time left starts from its estimate for the job (the first steps, which
    trace the graph, would say hours), then follows its measured rate."""
    w, h = event.size
    sizes = f"size {event.scale} of {event.scales} ({w}×{h}) · " if event.scales > 1 else ""
    return f"{sizes}step {event.step} of {event.total} · about {clock(event.eta)} left"


class ServerFolder:
    """This server's private folder: Gradio's uploads and cached outputs in uploads/ (made its
    GRADIO_TEMP_DIR), finished PNGs in results/, one sub-folder per job (two visitors may paint
    files with the same name), each removed after KEEP_RESULTS, all when the app closes. Not
    Gradio's default /tmp/gradio, which is shared by every user of the machine: anyone could read
    the visitors' photos there, or make the folder first and own what the app writes."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="impasto-web-"))  # mode 0700, ours alone
        self.uploads = self.root / "uploads"
        self.results = self.root / "results"
        self.uploads.mkdir()
        self.results.mkdir()

    def new_job_folder(self) -> Path:
        cutoff = time.time() - KEEP_RESULTS
        for old in self.results.iterdir():
            try:
                if old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:
                pass
        folder = self.results / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _output_name(content: str, preset: str, seed: int) -> str:
    """photo-classic-seed0.png: built from sanitised pieces, whatever the upload was called."""
    return f"{_safe(Path(content).stem) or 'picture'}-{_safe(preset)}-seed{seed}.png"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:60]


def _message(exc: impasto.ImpastoError, paths: list[str], what: str) -> str:
    """The one line a visitor sees, and the one line the server's log keeps."""
    message = public_message(str(exc), paths)
    log.warning("%s: %s", what, message)
    return message


def _error(exc: impasto.ImpastoError, paths: list[str], what: str) -> gr.Error:
    return gr.Error(_message(exc, paths, what), print_exception=False)


def _visitor(request) -> str:
    """Who is asking, as far as the server can tell: the client's address (uvicorn puts a local
    reverse proxy's X-Forwarded-For there). Not Gradio's session hash, which a caller chooses
    freely and so could change for every job."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or ""


def _bug(exc: Exception) -> gr.Error:
    """A bug, not the visitor's doing: the details go to the log only."""
    log.exception("job failed")
    return gr.Error(
        f"The engine failed ({type(exc).__name__}); the server's log has the details.",
        print_exception=False,
    )


def _finished_message(outcome: impasto.StyleResult) -> str:
    w, h = outcome.image.size
    stats = outcome.stats
    if outcome.cancelled:
        return (
            f"Stopped at step {stats['steps']} of {stats['total_steps']}: "
            f"the best picture so far ({w}×{h})."
        )
    return (
        f"Done: {w}×{h} in {clock(stats['seconds'])} "
        f"({stats['steps']} steps on the {stats['device']})."
    )


@dataclass
class Page:
    """The page's components that handlers read or write."""

    content: gr.Image
    styles: list[tuple[gr.Image, gr.Slider]]  # up to three (style image, blend weight) pairs
    regions: list[gr.ImageEditor]  # where each style goes, painted over the photo
    masks: list[gr.Image]  # the same as image files, for the API (not shown)
    preset: gr.Dropdown
    sample: gr.Column  # the preset's sample picture and its caption
    tile: gr.Image
    preset_md: gr.Markdown
    size: gr.Slider
    steps: gr.Slider
    strength: gr.Slider
    color: gr.Radio
    seed: gr.Number
    run: gr.Button
    cancel: gr.Button
    status: gr.Markdown
    result: gr.Image
    download: gr.DownloadButton
    plot: gr.LinePlot

    def form_inputs(self) -> list:
        """The form's values, in the order of WebApp.run_job's parameters, which name
        /stylize's parameters in the API (the masks or painted regions follow)."""
        return [
            self.content,
            *(c for pair in self.styles for c in pair),
            self.preset,
            self.size,
            self.steps,
            self.strength,
            self.color,
            self.seed,
        ]


class WebApp:
    """The page's handlers, and what they share: the engine, this server's limits, the folder of
    finished pictures and the preset list. One per built page."""

    def __init__(
        self,
        runner: EngineRunner,
        limits: Limits,
        jobs_per_visitor: int = JOBS_PER_VISITOR,
        upload_quota: int = UPLOAD_QUOTA,
    ):
        self.runner = runner
        self.limits = limits
        self.jobs_per_visitor = jobs_per_visitor
        self.upload_quota = upload_quota
        self.folder = ServerFolder()
        self.uploads = self.folder.uploads  # where Gradio puts what visitors upload
        self.views = {v.name: v for v in preset_views()}
        self.page: Page | None = None  # set once the page is laid out
        self.demo: gr.Blocks | None = None  # set once built: its queue holds the jobs
        self.saved_temp_dir: str | None = None  # GRADIO_TEMP_DIR before this page, for close()
        self._checked_lock = threading.Lock()
        self._just_checked: dict[str, list[float]] = {}  # visitor -> when a Run check passed

    def view_for(self, name: object) -> PresetView | None:
        if not isinstance(name, str):  # the page sends a name; anything else is no preset
            return None
        if name not in self.views:  # a preset added to the library since the page was built
            self.views.update({v.name: v for v in preset_views()})
        return self.views.get(name)

    def preset_changed(self, name: str):
        """The preset's description and sample, and its size, steps and colours in the form."""
        view, recipe = self.view_for(name), recipe_or_none(name)
        tile_path = str(view.tile) if view and view.tile else None
        shown = [
            describe_markdown(view, recipe),
            gr.update(visible=tile_path is not None),
            tile_path,
        ]
        if recipe is None:
            return [*shown, gr.skip(), gr.skip(), gr.skip()]
        size_value = min(max(recipe.size, WEB_MIN_SIZE), self.limits.max_size)
        steps_value = min(recipe.total_steps, self.limits.max_steps)
        return [*shown, size_value, steps_value, recipe.preserve_color]

    def refresh_presets(self, current: str | None):
        fresh = preset_views()
        self.views = {v.name: v for v in fresh}
        value = (
            current if isinstance(current, str) and current in self.views else default_preset(fresh)
        )
        return gr.update(choices=[(v.name, v.name) for v in fresh], value=value)

    def form(self, values: tuple, painted: bool = False) -> FormJob:
        """The job the form's values describe, in run_job's order, then one mask per style
        (image files from the API, or with painted, the page's region editors): see
        gradio_app.form; raises ImpastoError."""
        photo, s1, w1, s2, w2, s3, w3, preset, size, steps, strength, colours, seed = values[:13]
        masks = list(values[13:])
        if painted:
            masks = [region_mask(m, n, self.uploads) for n, m in enumerate(masks, start=1)]
        return job_from_form(
            photo,
            [(s1, w1), (s2, w2), (s3, w3)],
            preset,
            size,
            steps,
            strength,
            colours,
            seed,
            self.limits,
            upload_folder=self.uploads,
            masks=masks,
        )

    def check_page(self, request: gr.Request, *values):
        """Run's validator for the page: check_run's, with the painted regions."""
        return self._check(values, request, painted=True)

    def check_run(self, request: gr.Request, *values):
        """/stylize's validator (and the page's, see check_page): Gradio calls it with
        run_job's values before the job joins the engine's queue, outside the engine's one
        slot, so a bad upload (an EPS named .jpg, a damaged file, a mask of another shape) or a
        visitor over their limit is refused at once, even while another visitor's job paints.
        The refusal is shown at the photo (the first input); the message names the field."""
        return self._check(values, request)

    def _check(self, values: tuple, request, painted: bool = False) -> list:
        paths: list[str] = []
        verdict = [gr.validate(True, "") for _ in values]
        try:
            form = self.form(values, painted)
            paths = form.paths
            impasto.check_job(form.job)
            self._count_visitor_job(_visitor(request))
        except impasto.ImpastoError as exc:
            verdict[0] = gr.validate(False, _message(exc, paths, "refused a job"))
        except Exception as exc:  # noqa: BLE001 - a bug: the details go to the log only
            verdict[0] = gr.validate(False, _bug(exc).message)
        return verdict

    def _count_visitor_job(self, visitor: str) -> None:
        """An InputError when the visitor already has jobs_per_visitor jobs waiting or painting;
        else the job is counted (see JUST_CHECKED)."""
        now = time.monotonic()
        with self._checked_lock:
            recent = [t for t in self._just_checked.get(visitor, []) if now - t < JUST_CHECKED]
            queued = [
                event.enqueue_time  # Gradio's own list: jobs leave it however they end
                for event in list(self.demo._queue.event_ids_to_events.values())
                if _visitor(event.request) == visitor
            ]
            # Jobs queued since the oldest recent check came from recent checks: those checks
            # are now counted by Gradio, and dropped from ours.
            recent = recent[sum(1 for t in queued if recent and t >= recent[0]) :]
            count = len(queued) + len(recent)
            if count >= self.jobs_per_visitor:
                raise impasto.InputError(
                    f"you already have {count} job{'s' if count > 1 else ''} waiting or painting, "
                    "this server's limit per visitor; run again when one has finished"
                )
            self._just_checked[visitor] = [*recent, now]

    def run_job(
        self,
        photo,
        style_1,
        # Gradio always passes every value (an API caller's defaults are the form's own); None
        # here lets the API show style_2 and style_3 as optional.
        weight_1=None,
        style_2=None,
        weight_2=None,
        style_3=None,
        weight_3=None,
        preset=None,
        size=None,
        steps=None,
        style_strength=None,
        colours=None,
        seed=None,
        mask_1=None,
        mask_2=None,
        mask_3=None,
        request: gr.Request = None,
        progress=gr.Progress(),  # noqa: B008  (Gradio's way of asking for a progress bar)
    ):
        """Paint the photo in the style of one to three paintings, blended by weight. Streams
        the picture every few steps; the last update carries the PNG with its settings.

        Parameters:
            photo: the photo to paint (the content image)
            style_1: the painting whose style is applied
            weight_1: blend weight of style_1, 0 to 1 (weights are relative)
            style_2: an optional second painting to blend in
            weight_2: blend weight of style_2
            style_3: an optional third painting
            weight_3: blend weight of style_3
            preset: the name of a preset of this server (e.g. classic, quick-draft)
            size: output size, the long side in px (this server's limit applies)
            steps: the number of steps (more: more painted, slower)
            style_strength: times the preset's style weight, 0.25 to 4
            colours: none (the painting's), luminance (the photo's) or histogram (its palette)
            seed: the random seed, a whole number
            mask_1: where style_1 goes: a greyscale image of the photo's shape (white: this
                style, grey: a soft edge; transparent pixels cover nothing); none: everywhere
            mask_2: where style_2 goes
            mask_3: where style_3 goes
        """
        values = (photo, style_1, weight_1, style_2, weight_2, style_3, weight_3)
        values += (preset, size, steps, style_strength, colours, seed, mask_1, mask_2, mask_3)
        yield from self._paint(values, request, progress)

    def run_page(
        self,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008
        *values,
    ):
        """Run on the page: run_job's values with the painted regions in place of the masks."""
        yield from self._paint(values, request, progress, painted=True)

    def _paint(self, values: tuple, request, progress, painted: bool = False):
        page = self.page
        paths: list[str] = []
        try:
            # Checked again (check_run refused what is wrong before it queued): the engine
            # needs the checked job, and the uploads are the same files, quick to check again.
            form = self.form(values, painted)
            paths = form.paths
            checked = impasto.check_job(form.job)
            plan = self.runner.describe(checked)
        except impasto.ImpastoError as exc:
            raise _error(exc, paths, "refused a job") from None
        except Exception as exc:
            raise _bug(exc) from None
        notes = "".join(f"\n\nNote: {note}." for note in form.notes)
        yield {
            page.status: "Starting…" + notes,
            page.result: None,
            page.download: gr.update(value=None, visible=False),
            page.plot: None,
            page.cancel: gr.update(interactive=True),
        }
        history = LossHistory(plan.get("scales"))
        session = request.session_hash if request is not None else ""
        outcome = None
        try:
            folder = self.folder.new_job_folder()
            preview = folder / "preview.webp"
            for item in self.runner.run(checked, session):
                if item is None:
                    yield gr.skip()  # nothing new; lets Gradio close us if the page went away
                    continue
                if not isinstance(item, impasto.ProgressEvent):
                    outcome = item
                    break
                history.add(item)
                progress((item.step, item.total), desc=_progress_line(item))
                if item.preview is not None:
                    # Written here, atomically, and handed over as a file: Gradio would rewrite
                    # its cached copy of a PIL image in place, under the feet of whoever is
                    # downloading the same picture from another job.
                    save_image(item.preview, preview)
                    yield {page.status: "", page.result: str(preview), page.plot: history.frame()}
            if outcome is None:
                yield {page.status: "Cancelled before it started.", page.cancel: _IDLE}
                return
            name = _output_name(paths[0], values[7], form.job.seed)  # the preset's name
            path = outcome.save(folder / name)
            preview.unlink(missing_ok=True)
        except impasto.ImpastoError as exc:
            raise _error(exc, paths, "job failed") from None
        except Exception as exc:
            raise _bug(exc) from None
        yield {
            page.status: _finished_message(outcome) + notes,
            page.result: str(path),
            page.download: gr.update(value=str(path), visible=True),
            page.plot: history.frame(),
            page.cancel: _IDLE,
        }

    def styles_changed(self, *styles):
        """The blend weights of the styles given, shown only with two styles or more: with one
        there is nothing to blend."""
        blending = sum(1 for style in styles if style) >= 2
        return [gr.update(visible=blending and bool(style)) for style in styles]

    def photo_changed(self, photo):
        """The region editors show the photo to paint on, their strokes cleared: a region
        painted over another photo would not fit this one."""
        try:
            path = upload_path(photo, "photo", self.uploads)
        except impasto.ImpastoError:
            path = None
        value = {"background": path, "layers": [], "composite": path} if path else None
        return [value for _ in self.page.regions]

    def cancel_job(self, request: gr.Request):
        """Stop this page's running job after its current step; it keeps the best picture."""
        asked = self.runner.cancel(request.session_hash if request is not None else "")
        # Said in the status, not in a pop-up, so that API callers get the answer too.
        return "Stopping after this step…" if asked else "Nothing of yours is running."


_IDLE = gr.update(interactive=False)  # Cancel while nothing of the page's runs


def _idle():
    return _IDLE


# Each built page's handlers (with its private folder, which close() removes, and its limits,
# which launch() hands to the Guard): kept here rather than as attributes added to gr.Blocks.
_APPS: weakref.WeakKeyDictionary[gr.Blocks, WebApp] = weakref.WeakKeyDictionary()


def results_folder(demo: gr.Blocks) -> Path:
    """Where a built page keeps its finished pictures for download."""
    return _APPS[demo].folder.results


def server_folder(demo: gr.Blocks) -> Path:
    """A built page's private folder (uploads/ and results/)."""
    return _APPS[demo].folder.root


def build_app(
    runner: EngineRunner | None = None,
    *,
    max_size: int = WEB_MAX_SIZE,
    max_steps: int = WEB_MAX_STEPS,
    queue_size: int = 16,
    examples_dir: Path | None = EXAMPLES,
    max_memory: int | None = None,
    jobs_per_visitor: int = JOBS_PER_VISITOR,
    upload_quota: int = UPLOAD_QUOTA,
) -> gr.Blocks:
    """The impasto page. max_size and max_steps bound what one visitor can ask of this machine;
    queue_size bounds how many jobs may wait (more are refused with "queue is full"), and
    jobs_per_visitor how many of them one visitor may have; upload_quota is the bytes one
    visitor may upload per hour (see guard.py); max_memory is the memory budget of every job
    (None: the machine's free memory).

    Gradio reads its upload folder from GRADIO_TEMP_DIR, for the whole process: the page's
    private folder is set there until close(), so one process serves one page at a time."""
    limits = Limits(max_size=max_size, max_steps=max_steps, max_memory=max_memory)
    app = WebApp(runner or EngineRunner(), limits, jobs_per_visitor, upload_quota)
    app.saved_temp_dir = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(app.folder.uploads)
    with gr.Blocks(
        title="impasto", analytics_enabled=False, delete_cache=(3600, KEEP_RESULTS)
    ) as demo:
        page = app.page = _layout(app, examples_dir)
        page.preset.change(
            app.preset_changed,
            inputs=page.preset,
            outputs=[page.preset_md, page.sample, page.tile, page.size, page.steps, page.color],
            queue=False,
            api_visibility="private",
        )
        demo.load(
            app.refresh_presets,
            inputs=page.preset,
            outputs=page.preset,
            queue=False,
            api_visibility="private",
        )
        style_images = [image for image, _ in page.styles]
        for image in style_images:
            image.change(
                app.styles_changed,
                inputs=style_images,
                outputs=[weight for _, weight in page.styles],
                preprocess=False,  # only whether each is there
                queue=False,
                api_visibility="private",
            )
        page.content.change(
            app.photo_changed,
            inputs=page.content,
            outputs=page.regions,
            preprocess=False,  # its path is checked (see form.upload_path)
            queue=False,
            api_visibility="private",
        )
        job = {
            # Cancel is a button: Gradio leaves it out of the API's answer.
            "outputs": [page.status, page.result, page.download, page.plot, page.cancel],
            "preprocess": False,  # see impasto.gradio_app.form: the engine judges the uploads
            "concurrency_id": ENGINE_QUEUE,
            "concurrency_limit": 1,
            "show_progress": "full",
            "show_progress_on": [page.status],
        }
        # The page paints regions in editors; the API takes masks as images: two events with
        # the same checks, the same queue and the same painting.
        page.run.click(
            app.run_page,
            validator=app.check_page,
            inputs=[*page.form_inputs(), *page.regions],
            api_visibility="private",
            **job,
        ).then(_idle, outputs=page.cancel, queue=False, api_visibility="private")  # if it failed
        gr.Button(visible=False).click(  # never shown: the API's door
            app.run_job,
            validator=app.check_run,
            inputs=[*page.form_inputs(), *page.masks],
            api_name="stylize",
            **job,
        )
        page.cancel.click(
            app.cancel_job,
            outputs=page.status,
            api_name="cancel",
            queue=False,
            show_progress="hidden",
        )
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    app.demo = demo
    _APPS[demo] = app
    return demo


def _layout(app: WebApp, examples_dir: Path | None) -> Page:
    """The page's components, inside the open gr.Blocks. Inputs are made in the order of
    /stylize's API values (Gradio orders a set of inputs by creation): the colours radio is
    made before the seed box and shown below it."""
    max_size, max_steps = app.limits.max_size, app.limits.max_steps
    first = default_preset(list(app.views.values()))
    first_view, first_recipe = app.views.get(first), recipe_or_none(first)
    first_tile = str(first_view.tile) if first_view and first_view.tile else None
    gr.Markdown(
        "# impasto\nPaint a photo in the style of an artwork: upload a photo and one or "
        "more paintings, pick a preset, press **Run**."
    )
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                content = _upload("Photo (content)", "impasto-content", 220)
                with gr.Column():
                    styles = [(_upload("Style", "impasto-style-1", 160), _weight(1))]
            with gr.Accordion("Blend more styles", open=False), gr.Row():
                for n in (2, 3):
                    with gr.Column():
                        styles.append(
                            (_upload(f"Style {n}", f"impasto-style-{n}", 140), _weight(n))
                        )
            with gr.Accordion(
                "Where each style goes (optional)", open=False, elem_id="impasto-regions"
            ):
                gr.Markdown(REGIONS_HELP)
                regions = []
                with gr.Tabs():
                    for n in (1, 2, 3):
                        with gr.Tab(f"Style {n}", elem_id=f"impasto-region-tab-{n}"):
                            regions.append(_region(n))
            masks = [gr.Image(type="filepath", label=f"Mask {n}", visible=False) for n in (1, 2, 3)]
            with gr.Row(equal_height=True):
                preset = gr.Dropdown(
                    choices=[(name, name) for name in app.views],
                    value=first,
                    label="Preset",
                    elem_id="impasto-preset",
                    scale=3,
                )
                # A sample, not an input: small, captioned, no box or label around it.
                with gr.Column(scale=1, min_width=120, visible=first_tile is not None) as sample:
                    tile = gr.Image(
                        value=first_tile,
                        interactive=False,
                        show_label=False,
                        container=False,
                        height=80,
                        buttons=[],
                        elem_id="impasto-preset-sample",
                    )
                    gr.Markdown(SAMPLE_CAPTION, elem_id="impasto-sample-caption")
            preset_md = gr.Markdown(
                describe_markdown(first_view, first_recipe), elem_id="impasto-preset-info"
            )
            with gr.Row():
                size = gr.Slider(
                    WEB_MIN_SIZE,
                    max_size,
                    value=min(first_recipe.size, max_size) if first_recipe else 512,
                    step=16,
                    label="Output size (long side, px)",
                    elem_id="impasto-size",
                )
                steps = gr.Slider(
                    1,
                    max_steps,
                    value=min(first_recipe.total_steps, max_steps) if first_recipe else 100,
                    step=1,
                    label="Steps",
                    info="more: more painted, slower",
                    elem_id="impasto-steps",
                )
            with gr.Row():
                strength = gr.Slider(
                    *WEB_STYLE_STRENGTH,
                    value=1.0,
                    step=0.05,
                    label="Style strength",
                    info="times the preset's style weight",
                    elem_id="impasto-strength",
                )
                color = gr.Radio(
                    COLOR_CHOICES,
                    value=first_recipe.preserve_color if first_recipe else "none",
                    label="Colours",
                    elem_id="impasto-color",
                    render=False,  # shown below this row
                )
                seed = gr.Number(
                    value=0, precision=0, minimum=0, label="Seed", elem_id="impasto-seed"
                )
            color.render()
            if examples_dir is not None:
                _add_examples(examples_dir, content, styles[0][0])
        with gr.Column(scale=1):
            with gr.Row(equal_height=True):
                run = gr.Button("Run", variant="primary", elem_id="impasto-run", scale=1)
                cancel = gr.Button(
                    "Cancel",
                    variant="stop",
                    interactive=False,  # enabled while a job of this page runs
                    elem_id="impasto-cancel",
                    scale=1,
                )
            status = gr.Markdown(
                "Ready.", label="Status", elem_id="impasto-status", min_height=72, padding=True
            )
            result = gr.Image(
                label="Picture",
                interactive=False,
                format="webp",  # previews only; the finished picture is the PNG file itself
                height=400,
                elem_id="impasto-result",
                buttons=["download", "fullscreen"],
            )
            download = gr.DownloadButton(
                "Download PNG (settings embedded)",
                visible=False,
                variant="primary",
                elem_id="impasto-download",
            )
            plot = gr.LinePlot(
                x="step",
                y="loss",
                color="size",
                y_title="loss, % of its start",
                label="How the painting settles",  # no height: a set height cuts off the legend
                caption=PLOT_CAPTION,
                elem_id="impasto-plot",
            )
    return Page(
        content=content,
        styles=styles,
        regions=regions,
        masks=masks,
        preset=preset,
        sample=sample,
        tile=tile,
        preset_md=preset_md,
        size=size,
        steps=steps,
        strength=strength,
        color=color,
        seed=seed,
        run=run,
        cancel=cancel,
        status=status,
        result=result,
        download=download,
        plot=plot,
    )


def _upload(label: str, elem_id: str, height: int) -> gr.Image:
    return gr.Image(
        label=label,
        type="filepath",
        sources=["upload", "clipboard"],
        height=height,
        elem_id=elem_id,
    )


def _region(n: int) -> gr.ImageEditor:
    """A brush over the photo (set by WebApp.photo_changed): what it paints is style n's."""
    return gr.ImageEditor(
        label=f"Style {n} goes here",
        type="filepath",
        sources=[],  # painted over the photo, never uploaded
        layers=False,
        transforms=[],
        brush=gr.Brush(colors=["#ff3d9a"], color_mode="fixed", default_size=24),
        eraser=gr.Eraser(default_size=24),
        height=320,
        elem_id=f"impasto-region-{n}",
    )


def _weight(n: int) -> gr.Slider:
    # Shown with two styles or more (see WebApp.styles_changed).
    return gr.Slider(
        0,
        1,
        value=1.0,
        step=0.05,
        label="Blend weight",
        visible=False,
        elem_id=f"impasto-weight-{n}",
    )


def _add_examples(folder: Path, content, style) -> None:
    """Clickable examples from examples/ (a content photo and a style image), where present."""
    pairs = [(folder / "content.jpg", folder / "style.png")]
    rows = [[str(c), str(s)] for c, s in pairs if c.is_file() and s.is_file()]
    if not rows:
        log.info("no example images in %s", folder)
        return
    gr.Examples(rows, inputs=[content, style], label="Try an example")


def launch(demo: gr.Blocks, **options):
    """Start serving in the background with the app's defaults: the upload limit, no Gradio
    banner, no share link (impasto.gradio_app.sharing asks for one afterwards, see there), and
    Gradio's refusals of malformed requests in one log line each (see quiet_refusals), and the
    Guard in front of Gradio's routes (login throttle, routes Gradio leaves open, upload quota)."""
    from starlette.middleware import Middleware

    quiet_refusals.install()
    guard = Middleware(Guard, upload_quota=_APPS[demo].upload_quota)
    settings = {
        "app_kwargs": {"middleware": [guard]},
        "max_file_size": MAX_UPLOAD,
        "quiet": True,
        "prevent_thread_lock": True,
        "share": False,
        "show_error": False,
        "state_session_capacity": SESSIONS_KEPT,
        "css": CSS,
    }
    settings.update(options)
    return demo.launch(**settings)


def close(demo: gr.Blocks) -> None:
    """Stop serving and remove the app's private folder (uploads and finished pictures)."""
    demo.close()  # nothing to stop when it never started serving
    app = _APPS[demo]
    app.folder.remove()
    if os.environ.get("GRADIO_TEMP_DIR") == str(app.folder.uploads):
        if app.saved_temp_dir is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = app.saved_temp_dir
