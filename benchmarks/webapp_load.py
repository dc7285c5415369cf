"""Web-app memory under load: does `impasto serve` stay flat over many visitors?

Starts `impasto serve` on a free local port (as a user would, in its own process, Gradio's cache
in a fresh folder), then sends WAVES waves of CLIENTS jobs at once through gradio_client, one
Client per job (a new visitor each time, closed when its job is done, as a closed tab). Visitors'
photos differ in shape: the jobs cycle through SHAPES crops of examples/content.jpg, each with
its own aspect ratio, so that anything kept per image shape shows. After each wave, once the
server is idle again, it reads the server's resident memory (VmRSS), its thread count and what
Gradio's cache holds on disk. The goal: the last wave's RSS within 10 % of the second's (the
first includes loading and the first tracing).

    python benchmarks/webapp_load.py [--waves 10] [--clients 30] [--size 64] [--steps 5]
                                     [--shapes 60] [--runs 3]

Each run starts a fresh server; the verdict is the median over the runs. Prints a table per run
and writes them to benchmarks/results/webapp_load-<machine>.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from impasto.engine.machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, SMOKE, smoke  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "content.jpg"
STYLE = ROOT / "examples" / "style.png"
GOAL = 0.10  # last wave within this fraction of the second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, cache: Path, queue_size: int) -> subprocess.Popen:
    env = dict(os.environ, GRADIO_TEMP_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("IMPASTO_AUTH", None)
    command = [sys.executable, "-m", "impasto.cli", "serve", "--port", str(port)]
    # Every simulated visitor comes from 127.0.0.1: one address, which the server would hold to
    # --jobs-per-visitor (2 by default) as one visitor. Here each client is a visitor of its own.
    command += ["--queue-size", str(queue_size), "--max-size", "256"]
    command += ["--jobs-per-visitor", str(queue_size)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if lines.get(timeout=1).startswith("impasto: serving on"):
                return proc
        except queue.Empty:
            if proc.poll() is not None:
                break
    proc.kill()
    sys.exit(f"impasto serve did not start: {proc.stderr.read()}")


def status_of(pid: int) -> dict[str, int]:
    """VmRSS (kB) and Threads from /proc/PID/status."""
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(re.search(rf"^{k}:\s+(\d+)", text, re.M).group(1)) for k in ("VmRSS", "Threads")}


def folder_usage(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def make_photos(folder: Path, count: int) -> list[Path]:
    """count crops of the example photo, aspect ratios from 1:2.5 to 2.5:1."""
    photos = []
    with Image.open(CONTENT) as img:
        img = img.convert("RGB")
        w, h = img.size
        for n in range(count):
            aspect = 2.5 ** (2 * n / max(count - 1, 1) - 1)  # width / height
            cw, ch = (w, round(w / aspect)) if w / aspect <= h else (round(h * aspect), h)
            photos.append(folder / f"photo-{n:02d}.jpg")
            img.crop((0, 0, cw, ch)).save(photos[-1], quality=90)
    return photos


def one_job(url: str, photo: Path, size: int, steps: int) -> str:
    """One visitor: a new session, one job, then gone. 'done', 'queue full' or the error."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    try:
        status, *_ = client.predict(
            handle_file(str(photo)), handle_file(str(STYLE)), 1.0, None, 1.0, None, 1.0,
            "classic", size, steps, 1.0, "none", 0, api_name="/stylize",
        )  # fmt: skip
        return "done" if status.startswith("Done") else f"status {status!r}"
    except Exception as exc:  # the benchmark counts outcomes; it does not stop on one
        text = " ".join(str(exc).split())
        return "queue full" if "Queue is full" in text else f"{type(exc).__name__}: {text[:80]}"
    finally:
        client.close()


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"


HEADER = (
    "| wave | done | queue full | other | seconds | RSS MB | threads | cache files | cache MB |"
)


def run_waves(args, url: str, server: subprocess.Popen, photos: list[Path], cache: Path) -> list:
    """[(RSS kB, table row)] per wave."""
    rows = []
    with ThreadPoolExecutor(args.clients) as pool:
        for wave in range(1, args.waves + 1):
            t0 = time.perf_counter()
            first = (wave - 1) * args.clients
            outcomes = list(
                pool.map(
                    lambda n: one_job(url, photos[n % len(photos)], args.size, args.steps),
                    range(first, first + args.clients),
                )
            )
            seconds = time.perf_counter() - t0
            time.sleep(args.settle)
            st = status_of(server.pid)
            files, size = folder_usage(cache)
            others = [o for o in outcomes if o not in ("done", "queue full")]
            row = (
                f"| {wave} | {outcomes.count('done')} | {outcomes.count('queue full')} | "
                f"{len(others)} | {seconds:.1f} | {st['VmRSS'] / 1024:.0f} | "
                f"{st['Threads']} | {files} | {size / 2**20:.1f} |"
            )
            rows.append((st["VmRSS"], row))
            print(row, flush=True)
            for other in sorted(set(others)):
                print(f"    {others.count(other)} x {other}")
            if SMOKE and outcomes.count("done") < len(outcomes):
                raise SystemExit(f"smoke run: not every visitor's job was painted: {outcomes}")
    return rows


def one_run(args) -> dict:
    """A fresh server, WAVES waves; its RSS per wave and what its stderr held."""
    with tempfile.TemporaryDirectory(prefix="impasto-load-") as tmp:
        cache, photo_dir = Path(tmp) / "gradio", Path(tmp) / "photos"
        cache.mkdir()
        photo_dir.mkdir()
        photos = make_photos(photo_dir, args.shapes)
        port = free_port()
        server = start_server(port, cache, queue_size=args.clients + 2)
        try:
            time.sleep(args.settle)
            idle = status_of(server.pid)["VmRSS"]
            print(f"idle, engine loaded: {idle / 1024:.0f} MB\n{HEADER}", flush=True)
            rows = run_waves(args, f"http://127.0.0.1:{port}/", server, photos, cache)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                _, stderr = server.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                _, stderr = server.communicate()
    second, last = rows[min(1, len(rows) - 1)][0], rows[-1][0]
    run = {"idle": idle, "rows": rows, "change": (last - second) / second}
    run["summary"] = (
        f"last wave {last / 1024:.0f} MB vs second {second / 1024:.0f} MB: "
        f"{run['change']:+.1%}; tracebacks in the server's stderr: {stderr.count('Traceback')}"
    )
    print(run["summary"], flush=True)
    if "Traceback" in stderr:
        print(stderr[stderr.index("Traceback") :][-2000:])
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--waves", type=int, default=10)
    p.add_argument("--clients", type=int, default=30, help="jobs sent at once per wave")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--shapes", type=int, default=60, help="photos of different aspect ratios")
    p.add_argument("--runs", type=int, default=3, help="fresh servers, for the median")
    p.add_argument("--settle", type=float, default=3.0, help="seconds idle before reading RSS")
    default_name = f"{re.sub(r'[^A-Za-z0-9]+', '-', cpu_model()).strip('-')}-{os.cpu_count()}cores"
    p.add_argument("--name", default=default_name, help="results file: webapp_load-NAME.md")
    # A smoke run: two waves (the verdict compares the last with the second) of three visitors
    # (more than the default jobs per visitor), every job painted.
    args = smoke(p.parse_args(), waves=2, clients=3, steps=1, shapes=2, runs=1, settle=0.5)
    print(machine())
    runs = []
    for n in range(1, args.runs + 1):
        print(f"run {n} of {args.runs}")
        runs.append(one_run(args))
    median = statistics.median(run["change"] for run in runs)
    verdict = "within" if abs(median) <= GOAL else "NOT within"
    summary = (
        f"Median over {len(runs)} runs: last wave {median:+.1%} against the second, "
        f"{verdict} the {GOAL:.0%} goal."
    )
    print(summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"webapp_load-{args.name}.md"
    text = (
        f"# Web-app memory under load ({datetime.date.today()})\n\n"
        f"`python benchmarks/webapp_load.py --waves {args.waves} --clients {args.clients} "
        f"--size {args.size} --steps {args.steps} --shapes {args.shapes} --runs {args.runs}`"
        f"\n\nMachine: {machine()}. Each run: a fresh `impasto serve --queue-size "
        f"{args.clients + 2} --max-size 256 --jobs-per-visitor {args.clients + 2}`, preset "
        f"classic, {args.clients} gradio_client "
        f"visitors at once per wave (one new session each), their photos in {args.shapes} "
        f"shapes; RSS read {args.settle:g} s after each wave.\n\n{summary}\n"
    )
    for n, run in enumerate(runs, 1):
        text += (
            f"\n## Run {n}\n\nIdle, engine loaded: {run['idle'] / 1024:.0f} MB.\n\n"
            f"{HEADER}\n|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(row for _, row in run["rows"])
            + f"\n\n{run['summary'][:1].upper()}{run['summary'][1:]}.\n"
        )
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
