"""One Markdown file of results per machine, benchmarks/results/<cpu>-<n>cores.md, which every
benchmark updates section by section (its own section replaced, the others kept), so `make bench`
leaves one page that names the machine and holds everything measured on it.

Smoke runs: with IMPASTO_BENCH_SMOKE=DIR every benchmark runs its smallest version (tiny
pictures, a step or two, one pair, one run) and writes what it writes into DIR instead of
benchmarks/results/, so tests/test_benchmarks.py can run each one without touching the figures.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
import time
from pathlib import Path

from impasto.engine import machine

SMOKE_DIR = os.environ.get("IMPASTO_BENCH_SMOKE") or None
SMOKE = SMOKE_DIR is not None
RESULTS = Path(SMOKE_DIR) if SMOKE else Path(__file__).resolve().parent / "results"


def smoke(args, **tiny):
    """args with the smoke run's tiny settings in place of the command line's (in a smoke run)."""
    if SMOKE:
        for name, value in tiny.items():
            setattr(args, name, value)
    return args


def timed(cmd: list[str], **kwargs) -> dict:
    """Run a command to its end (it must succeed): its wall and CPU seconds (its own and its
    children's, user and system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def machine_line() -> str:
    import tensorflow as tf

    flags = machine.flags_that_matter()  # the ones `impasto doctor` shows
    shown = ", ".join(name for name, present in flags.items() if present) or "none of these"
    return (
        f"{machine.cpu_model()}, {os.cpu_count()} cores, flags: {shown}"
        f"; TensorFlow {tf.__version__}, Python {platform.python_version()}"
    )


def results_file() -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", machine.cpu_model().lower()).strip("-")
    return RESULTS / f"{slug}-{os.cpu_count()}cores.md"


def write_section(name: str, title: str, body: str, path: Path | None = None) -> Path:
    """Replace this benchmark's section of the machine's results file, or of `path` (made if
    missing)."""
    path = path or results_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else f"# Benchmark results: {machine.cpu_model()}\n\n"
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"{begin}\n## {title}\n\nMeasured {stamp} on {machine_line()}.\n\n{body.strip()}\n{end}"
    )
    if begin in text:
        text = re.sub(
            re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    return path
