"""`impasto stylize CONTENT STYLE [STYLE ...] -o OUT`: the command-line door to the engine."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from impasto import remote
from impasto.config import engine_settings
from impasto.engine.memory import parse_size
from impasto.errors import InputError
from impasto.job import ProgressEvent, StyleJob, check_job
from impasto.limits import DEFAULT_PRESET
from impasto.numbers import finite_number_arg, whole_number_arg
from impasto.outputs import (
    check_not_input,
    check_output_path,
    check_writable,
    make_output_folder,
    save_or_recover,
)
from impasto.presets import CHOICES
from impasto.progress import BarProgress, JsonProgress, NoProgress, Snapshots

HELP = "paint a photo in the style of one or more artworks"  # one line in `impasto --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", help="the photo to paint")
    p.add_argument(
        "styles", nargs="+", metavar="style", help="one or more artworks to paint it like"
    )
    p.add_argument("-o", "--output", required=True, help="result file: .png .jpg .webp or .tif")
    p.add_argument(
        "--mask",
        action="append",
        metavar="FILE",
        help="where a style goes: one --mask per style, in the order of the styles; a "
        "greyscale picture of the photo's shape (white: this style, black: the photo stays); "
        "'none': that style over the whole picture",
    )
    add_recipe_arguments(p)
    p.add_argument(
        "--save-every",
        type=whole_number_arg,
        default=0,
        metavar="N",
        help="save an image every N steps",
    )
    p.add_argument(
        "--evolution-dir", help="folder for --save-every images (default: OUT_evolution)"
    )
    p.add_argument("--checkpoint", metavar="FILE", help="keep resumable state in FILE (.npz)")
    p.add_argument(
        "--checkpoint-every",
        type=whole_number_arg,
        default=50,
        metavar="N",
        help="steps between checkpoints",
    )
    p.add_argument("--resume", metavar="FILE", help="continue from a checkpoint of the same job")
    p.add_argument(
        "--progress",
        choices=("bar", "json", "none"),
        default="bar",
        help="progress display: a bar on stderr, JSON lines on stdout (for programs), or nothing",
    )


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """The options that choose and adjust the recipe (shared with `impasto batch`)."""
    p.add_argument("--preset", default=DEFAULT_PRESET, help="named recipe or path to a .toml file")
    p.add_argument(
        "--size",
        type=whole_number_arg,
        help="long side of the output in px (default: the preset's)",
    )
    p.add_argument(
        "--steps", type=whole_number_arg, help="total optimisation steps, shared across the scales"
    )
    p.add_argument(
        "--style-weight", type=finite_number_arg, help="how strongly to follow the style"
    )
    p.add_argument(
        "--style-strength",
        type=finite_number_arg,
        metavar="F",
        help="style weight relative to the preset's (1 = as the preset, 2 = twice as strong)",
    )
    p.add_argument(
        "--content-weight", type=finite_number_arg, help="how strongly to keep the photo's layout"
    )
    p.add_argument(
        "--tv-weight", type=finite_number_arg, help="smoothness: higher removes fine noise"
    )
    p.add_argument("--style-blend", help="blend weights, one per style image, e.g. 0.7,0.3")
    p.add_argument(
        "--style-scale", type=finite_number_arg, help="style image size relative to the output"
    )
    p.add_argument(
        "--preserve-color", choices=CHOICES["preserve_color"], help="keep the photo's colours"
    )
    p.add_argument("--init", choices=CHOICES["init"], help="start from the photo or from noise")
    p.add_argument(
        "--seed", type=whole_number_arg, default=0, help="random seed; same seed, same picture"
    )
    p.add_argument(
        "--precision",
        choices=CHOICES["precision"],
        help="convolution precision (default: the preset's, auto: the faster on this machine)",
    )
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory the run may use, e.g. 8G or 512M (default: 80%% of the free memory); "
        "above it steps are computed in tiles, with the same result",
    )


def build_job(args: argparse.Namespace) -> StyleJob:
    """The StyleJob the arguments describe; one definition of each option's meaning."""
    blend = [1.0] * len(args.styles)
    if args.style_blend:
        try:
            blend = [finite_number_arg(w) for w in args.style_blend.split(",")]
        except argparse.ArgumentTypeError:
            raise InputError(
                f"--style-blend: {args.style_blend!r} is not a list of finite numbers"
            ) from None
        if len(blend) != len(args.styles):
            raise InputError(
                f"--style-blend has {len(blend)} weight(s) for {len(args.styles)} style image(s)"
            )
    overrides = {
        "steps": args.steps,
        "style_weight": args.style_weight,
        "style_strength": args.style_strength,
        "content_weight": args.content_weight,
        "tv_weight": args.tv_weight,
        "style_scale": args.style_scale,
        "preserve_color": args.preserve_color,
        "init": args.init,
        "precision": args.precision,
        "max_memory": None
        if args.max_memory is None
        else parse_size(args.max_memory, "--max-memory"),
    }
    for flag in ("save_every", "checkpoint_every"):
        if getattr(args, flag) < 0 or (flag == "checkpoint_every" and args.checkpoint_every == 0):
            raise InputError(f"--{flag.replace('_', '-')} must be a positive number of steps")
    return StyleJob(
        content=args.content,
        styles=list(zip(args.styles, blend, strict=True)),
        masks=masks(args),
        preset=args.preset,
        size=args.size,
        seed=args.seed,
        overrides={k: v for k, v in overrides.items() if v is not None},
        preview_every=args.save_every,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )


# `--mask none`: that style covers the whole picture (a file named "none": `--mask ./none`).
NO_MASK = "none"


def masks(args: argparse.Namespace) -> list | None:
    """The --mask paths, one per style in order (None: the whole picture); check_job refuses
    more masks than styles."""
    given = getattr(args, "mask", None)  # `impasto batch` builds its jobs here too
    if not given:
        return None
    return [None if m.lower() == NO_MASK else m for m in given]


def inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(role, path) of every file the job reads: no output may land on one."""
    files = [("content image", args.content), *(("style image", s) for s in args.styles)]
    return files + [(f"mask {i}", m) for i, m in enumerate(masks(args) or [], 1) if m]


def run(args: argparse.Namespace) -> int:
    reporter = {"bar": BarProgress, "json": JsonProgress, "none": NoProgress}[args.progress]()
    try:
        return _run(args, reporter)
    except Exception as exc:
        reporter.error(exc)
        raise


def _run(args: argparse.Namespace, reporter) -> int:
    job = build_job(args)
    read = inputs(args)
    check_output_path(args.output, read)
    if args.checkpoint:
        check_not_input(args.checkpoint, read, "checkpoint")
        check_writable(args.checkpoint, "checkpoint")
    checked = check_job(job)  # every input error surfaces here, before TensorFlow loads
    snapshots = Snapshots(
        args.evolution_dir or Path(args.output).with_suffix("").as_posix() + "_evolution",
        args.save_every,
    )
    if args.save_every:
        for path in snapshots.paths(checked.recipe.total_steps):
            check_not_input(path, read, "evolution image")
        make_output_folder(snapshots.folder, "evolution")

    cancel = threading.Event()
    stopped_by = _stop_on_signals(cancel)

    def on_progress(event: ProgressEvent) -> None:
        reporter.progress(event)
        snapshots.save(event)

    try:
        result = _on_server(checked, reporter, on_progress, cancel)
    except remote.Unavailable as exc:
        result = None
        if not cancel.is_set():
            if str(exc):
                print(f"impasto: {exc}; painting here instead", file=sys.stderr)
            result = _alone(checked, reporter, on_progress, cancel)
    code = 0
    if cancel.is_set():
        code = 130 if stopped_by.get("signal") == signal.SIGINT else 143
    if result is None:  # stopped before an engine started on it
        print("impasto: stopped before painting; nothing written", file=sys.stderr)
        return code
    path = save_or_recover(result.save, args.output)
    reporter.done(result, path)
    return code if result.cancelled else 0


def _alone(checked, reporter, on_progress, cancel):
    """The job painted in this process, as when there is no engine server."""
    from impasto import load_engine

    engine = load_engine()  # TensorFlow starts here
    reporter.start(engine.describe(checked))
    return engine.stylize(checked, on_progress=on_progress, cancel=cancel)


def _on_server(checked, reporter, on_progress, cancel):
    """The job painted by the local engine server (`impasto engine start`), or
    remote.Unavailable: none runs (and [engine] autostart is off), or it failed."""
    settings = engine_settings()
    return remote.stylize(
        checked,
        reporter.start,
        on_progress,
        cancel,
        autostart=settings.autostart,
        idle_minutes=settings.idle_minutes,
    )


def _stop_on_signals(cancel: threading.Event) -> dict:
    """Ctrl-C and SIGTERM finish the current step and keep the best image so far; a second
    Ctrl-C stops at once."""
    stopped_by: dict = {}

    def handler(signum, frame):
        if cancel.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stopped_by["signal"] = signum
        cancel.set()
        print("\nimpasto: stopping after this step (Ctrl-C again to quit at once)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stopped_by
