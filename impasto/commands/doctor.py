"""`impasto doctor [--json] [--measure]`: this machine as impasto sees it, on one screen to paste
into a bug report: versions, device, CPU and its flags, threads, the precision choice with its
measured times, the weights and their md5, free memory. Works offline.

Exit code 0 when impasto can paint here, 1 when something must be fixed first (the VGG19 weights
missing or damaged); the whole report is printed either way, and `problems` lists what to fix.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

# Environment variables that change how many threads TensorFlow and its kernels use.
THREAD_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")

HELP = "this machine as impasto sees it, for a bug report"  # one line in `impasto --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, for programs")
    p.add_argument(
        "--measure",
        action="store_true",
        help="measure bfloat16 against float32 again instead of using the cached answer",
    )


def run(args: argparse.Namespace) -> int:
    report = collect(remeasure=args.measure)
    print(json.dumps(report, indent=1) if args.json else render(report))
    return 1 if report["problems"] else 0


def collect(remeasure: bool = False) -> dict:
    """Everything the report shows, as plain data (the --json output)."""
    from impasto import __version__, load_engine

    load_engine()  # TensorFlow, quietly, with any thread settings the engine makes
    import keras
    import numpy
    import PIL
    import tensorflow as tf

    from impasto.engine import machine, precision, weights
    from impasto.engine.model import device

    choice = precision.auto(remeasure=remeasure)
    st = weights.status()
    from_env = bool(os.environ.get("IMPASTO_WEIGHTS"))
    problems = []
    if st.path is None:
        fix = "point IMPASTO_WEIGHTS at a good copy" if from_env else weights.INSTALL_HINT
        problems.append(f"VGG19 weights not usable ({st.problem}): {fix}")
    memory = machine.memory()
    return {
        "impasto": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "os": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "device": device(),
        "gpus": [gpu.name for gpu in tf.config.list_physical_devices("GPU")],
        "cpu": {"model": machine.cpu_model(), "flags": machine.flags_that_matter()},
        "threads": {
            "cpu_count": os.cpu_count(),
            "usable_cpus": machine.usable_cpus(),
            # 0 means TensorFlow's own default (about one thread per usable CPU)
            "tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "environment": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        },
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "precision": {
            "auto": choice.precision,
            "reason": choice.reason,
            "source": choice.source,
            "probe": choice.probe,
            "cache": str(precision.cache_file()),
        },
        "weights": {
            "path": str(st.path) if st.path else None,
            "md5_ok": st.path is not None,
            "expected_md5": weights.MD5,
            "problem": st.problem,
            "from_IMPASTO_WEIGHTS": from_env,
        },
        "memory": {"available_bytes": memory["available"], "total_bytes": memory["total"]},
        "problems": problems,
    }


def render(r: dict) -> str:
    """The report for people: one line per topic, label in a column."""
    threads = r["threads"]
    tf_threads = ", ".join(
        f"{kind} {n if n else 'default'}"
        for kind, n in (
            ("intra-op", threads["tensorflow_intra_op"]),
            ("inter-op", threads["tensorflow_inter_op"]),
        )
    )
    env = "".join(f"; {k}={v}" for k, v in threads["environment"].items())
    flags = r["cpu"]["flags"]
    lines = [
        ("impasto", f"{r['impasto']} (impasto doctor: paste this into a bug report)"),
        ("python", f"{r['python']} ({r['python_executable']})"),
        ("system", r["os"]),
        (
            "tensorflow",
            f"{r['tensorflow']} (keras {r['keras']}, numpy {r['numpy']}, pillow {r['pillow']})",
        ),
        (
            "device",
            f"GPU ({', '.join(r['gpus'])})"
            if r["gpus"]
            else f"{r['device']} (no GPU visible to TensorFlow)",
        ),
        ("cpu", r["cpu"]["model"]),
        (
            "cpu flags",
            ", ".join(
                f"{name} {'unknown' if have is None else 'yes' if have else 'no'}"
                for name, have in flags.items()
            ),
        ),
        (
            "threads",
            f"{threads['usable_cpus']} usable CPUs of {threads['cpu_count']}; "
            f"TensorFlow {tf_threads}{env}",
        ),
        (
            "oneDNN",
            "TF_ENABLE_ONEDNN_OPTS not set (TensorFlow's default)"
            if r["onednn"] is None
            else f"TF_ENABLE_ONEDNN_OPTS={r['onednn']}",
        ),
        *_precision_lines(r["precision"]),
        ("weights", _weights_line(r["weights"])),
        ("memory", _memory_line(r["memory"])),
        ("problems", "; ".join(r["problems"]) or "none"),
    ]
    return "\n".join(f"{label:<12}{text}" for label, text in lines)


def _precision_lines(p: dict) -> list[tuple[str, str]]:
    lines = [("precision", f"auto = {p['auto']}: {p['reason']}")]
    probe = p["probe"]
    if probe:
        lines.append(
            (
                "",
                f"float32 {probe['float32'] * 1000:.1f} ms, bfloat16 "
                f"{probe['bfloat16'] * 1000:.1f} ms per probe pass ({probe.get('size', '?')} px, "
                f"median of {probe.get('passes', '?')})",
            )
        )
        when = "just now" if p["source"] == "measured" else probe.get("measured_at", "earlier")
        took = f" in {probe['seconds']:.2f} s" if "seconds" in probe else ""
        lines.append(("", f"measured {when}{took}; cached in {p['cache']}"))
    return lines


def _weights_line(w: dict) -> str:
    if w["md5_ok"]:
        return f"{w['path']} (md5 verified)"
    return f"NOT USABLE: {w['problem']}"


def _memory_line(m: dict) -> str:
    gb = lambda n: f"{n / 2**30:.1f} GB"  # noqa: E731
    if m["available_bytes"] is None:
        return "unknown"
    total = f" of {gb(m['total_bytes'])}" if m["total_bytes"] else ""
    return f"{gb(m['available_bytes'])} available{total}"
