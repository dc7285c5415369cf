"""Cluster throughput: files per minute of the hot folder with 1 and 2 (or more) engine workers
on a local Ray cluster, against the single-process daemon.

Each worker has its own core: TensorFlow is limited to one thread per worker (--worker-threads
1), and the single-process daemon, for a fair comparison, runs pinned to one core (taskset -c 0,
which TensorFlow's thread pools follow). The goal: N workers give at least 0.8 N times one
worker's throughput.

Every run is a fresh `impasto watch ROOT` (the local Ray and its workers start before the
daemon says it is watching, so start-up is not timed); the clock runs from copying the photos
into the inbox to the journal saying every one is done. Modes are interleaved round by round,
so that load from other users of a shared machine falls on all of them alike, and medians are
reported, with each round's ratios.

    python benchmarks/cluster.py [--count 12] [--size 128] [--steps 30] [--rounds 3]
                                 [--max-workers 2]

Results are printed and written to benchmarks/results/cluster-<cpu>-<N>cores.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from impasto.engine.machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, smoke  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "tests" / "data" / "vangogh_starry_night_1889.jpg"


def _hotfolder_bench():
    """benchmarks/hotfolder.py, for its photos and journal reader (one definition of each)."""
    spec = importlib.util.spec_from_file_location(
        "bench_hotfolder", ROOT / "benchmarks/hotfolder.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _hotfolder_bench()


def run_once(photos: Path, tmp: Path, workers: int, size: int, steps: int) -> dict:
    """One daemon run: workers=0 is the single-process daemon on one core."""
    root = Path(tempfile.mkdtemp(prefix="hot-", dir=tmp))
    cluster = f'cluster = "local"\nworkers = {workers}\nworker_threads = 1\n' if workers else ""
    (root / "hotfolder.toml").write_text(
        f"[daemon]\nsettle_seconds = 1.0\n{cluster}\n[routes.bench]\n"
        f'styles = ["{STYLE}"]\nsize = {size}\nsteps = {steps}\n'
    )
    cmd = [sys.executable, "-m", "impasto.cli", "watch", str(root)]
    if not workers:
        cmd = ["taskset", "-c", "0", *cmd]
    log = root / "hotfolder.log"
    t0 = time.perf_counter()
    err = open(root / "stderr.txt", "w")  # a file: a pipe nobody reads would fill and block
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        while not (log.is_file() and "watching" in log.read_text()):
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited: {(root / 'stderr.txt').read_text()}")
            time.sleep(0.05)
        startup = time.perf_counter() - t0
        files = sorted(photos.iterdir())
        inbox = root / "inbox" / "bench"
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        for f in files:
            shutil.copyfile(f, inbox / (f.name + ".part"))
            os.rename(inbox / (f.name + ".part"), inbox / f.name)
        while True:
            states = bench.journal_states(root)
            if states.get("done", 0) + states.get("failed", 0) >= len(files):
                break
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited: {(root / 'stderr.txt').read_text()}")
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)
        err.close()
    if states.get("failed"):
        raise SystemExit(f"{states['failed']} files failed; see {log}")
    return {
        "seconds": seconds,
        "files_per_minute": 60 * len(files) / seconds,
        "startup": startup,
        "load_before": load,
    }


def label(workers: int) -> str:
    return "daemon, 1 core" if not workers else f"{workers} worker{'s' * (workers > 1)}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=12)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-workers", type=int, default=os.cpu_count() or 2)
    # A smoke run: the one-core daemon and one worker, two photos, one round.
    args = smoke(p.parse_args(), count=2, size=64, steps=1, rounds=1, max_workers=1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    modes = [0, *range(1, args.max_workers + 1)]
    runs: dict[int, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="impasto-bench-") as tmp:
        tmp = Path(tmp)
        photos = tmp / "photos"
        photos.mkdir()
        bench.make_photos(photos, args.count)
        print(f"{args.count} photos, {args.size} px, {args.steps} steps, {args.rounds} rounds")
        for r in range(1, args.rounds + 1):
            for m in modes:
                result = run_once(photos, tmp, m, args.size, args.steps)
                runs[m].append(result)
                print(
                    f"round {r}, {label(m)}: {result['files_per_minute']:.1f} files/min "
                    f"({result['seconds']:.1f} s, start-up {result['startup']:.1f} s, "
                    f"load {result['load_before']:.2f})",
                    flush=True,
                )
            write_report(args, modes, runs)  # after every round: a long run keeps what it has


def write_report(args, modes: list[int], runs: dict[int, list[dict]]) -> None:
    rounds = len(runs[1])
    median = {m: statistics.median(x["files_per_minute"] for x in runs[m]) for m in modes}
    one = median[1]
    lines = [
        f"# Cluster throughput ({time.strftime('%Y-%m-%d')})",
        "",
        f"`python benchmarks/cluster.py --count {args.count} --size {args.size} "
        f"--steps {args.steps} --rounds {args.rounds} --max-workers {args.max_workers}`"
        + (f" ({rounds} of {args.rounds} rounds done)" if rounds < args.rounds else ""),
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        'Workers on a local Ray cluster (`cluster = "local"`), one TensorFlow thread each; the '
        "single-process daemon pinned to one core (`taskset -c 0`). Modes interleaved round by "
        "round; start-up not timed; load average (1 min) when each run began.",
        "",
        "| mode | median files/min | runs (files/min) | vs 1 worker | goal |",
        "|---|---|---|---|---|",
    ]
    for m in modes:
        each = ", ".join(f"{x['files_per_minute']:.1f}" for x in runs[m])
        goal = f">= {0.8 * m:.1f}" if m > 1 else ""
        lines.append(f"| {label(m)} | {median[m]:.1f} | {each} | {median[m] / one:.2f} | {goal} |")
    lines += ["", "Ratios within each round (the fairest comparison on a shared machine):", ""]
    for r in range(rounds):
        parts = [f"{label(m)} {runs[m][r]['files_per_minute'] / runs[1][r]['files_per_minute']:.2f}"
                 for m in modes if m != 1]  # fmt: skip
        loads = ", ".join(f"{label(m)} {runs[m][r]['load_before']:.2f}" for m in modes)
        lines.append(f"- round {r + 1}: vs 1 worker: {', '.join(parts)} (load: {loads})")
    text = "\n".join(lines) + "\n"
    print("\n" + text, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    cpu = "-".join(cpu_model().split()[:2])
    (RESULTS / f"cluster-{cpu}-{os.cpu_count()}cores.md").write_text(text)


if __name__ == "__main__":
    main()
