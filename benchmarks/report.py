"""One Markdown file of results per machine, benchmarks/results/<cpu>-<n>cores.md, which every
benchmark updates section by section (its own section replaced, the others kept), so `make bench`
leaves one page that names the machine and holds everything measured on it."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu() -> tuple[str, list[str]]:
    """The CPU's model name and which of the flags that matter for speed it has."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", "unknown CPU", platform.processor()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, [f for f in FLAGS if f in flags]


def machine_line() -> str:
    import tensorflow as tf

    model, flags = cpu()
    shown = ", ".join(flags) or "none of " + ", ".join(FLAGS)
    return (
        f"{model}, {os.cpu_count()} cores, flags: {shown}"
        f"; TensorFlow {tf.__version__}, Python {platform.python_version()}"
    )


def results_file() -> Path:
    model, _ = cpu()
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return RESULTS / f"{slug}-{os.cpu_count()}cores.md"


def write_section(name: str, title: str, body: str) -> Path:
    """Replace this benchmark's section of the machine's results file (made if missing)."""
    path = results_file()
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else f"# Benchmark results: {cpu()[0]}\n\n"
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
