"""Hot-folder throughput: files per minute for a batch of small photos, and what the daemon costs
on top of calling the engine directly.

Both sides paint the same N photos (crops of the test suite's photo, saved as JPEG) with the
same route (preset, size, steps) and save PNGs; both run in a fresh process with TensorFlow
already imported before the clock starts, and each side's start-up is reported separately.
  direct: a loop of check_job + stylize + result.save in one process;
  daemon: `impasto watch ROOT` already watching, the N files copied into inbox/<route>/ at
          once, the clock stopped when the journal says every file is done. This includes the
          settle interval (once, since all files arrive together), the journal writes, the
          moves to processed/ and the intake's polling.

    python benchmarks/hotfolder.py [--count 100] [--size 128] [--steps 10] [--settle 2.0]

Results are printed and written to benchmarks/results/hotfolder.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, smoke  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The test suite's own images (tests/data/SOURCES.md), so the benchmark runs from any clone.
PHOTO = ROOT / "tests" / "data" / "chelsea_cat.png"
STYLE = ROOT / "tests" / "data" / "vangogh_starry_night_1889.jpg"

DIRECT = r"""
import json, sys, time
from pathlib import Path
from impasto import load_engine
t0 = time.perf_counter()
engine = load_engine()
import impasto
startup = time.perf_counter() - t0
src, out, style = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
size, steps = int(sys.argv[4]), int(sys.argv[5])
files = sorted(src.iterdir())
t0, c0 = time.perf_counter(), time.process_time()
for f in files:
    job = impasto.StyleJob(
        content=str(f), styles=[(style, 1.0)], size=size, overrides={"steps": steps}
    )
    result = engine.stylize(impasto.check_job(job))
    result.save(out / (f.stem + ".png"))
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"startup": startup, "seconds": seconds, "cpu": cpu, "files": len(files)}))
"""


def make_photos(folder: Path, count: int) -> None:
    """count small 4:3 JPEGs, as from one camera: different crops of the test photo, so no two
    are equal, all the same size (the engine traces its step once per image shape)."""
    with Image.open(PHOTO) as img:
        img = img.convert("RGB")
    w, h = img.size
    cw, ch = (w, w * 3 // 4) if w * 3 // 4 <= h else (h * 4 // 3, h)
    cw, ch = cw * 9 // 10, ch * 9 // 10
    for k in range(count):  # the (x, y) offsets repeat only after thousands of crops
        x, y = k * 7 % (w - cw + 1), k * 5 % (h - ch + 1)
        crop = img.crop((x, y, x + cw, y + ch)).resize((320, 240), Image.Resampling.LANCZOS)
        crop.save(folder / f"photo_{k:03d}.jpg", quality=90)


def run_direct(photos: Path, out: Path, size: int, steps: int) -> dict:
    cmd = [sys.executable, "-c", DIRECT, str(photos), str(out), str(STYLE), str(size), str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process (Linux /proc), all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def journal_states(root: Path) -> dict[str, int]:
    path = root / ".hotfolder" / "journal.sqlite"
    if not path.is_file():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def run_daemon(photos: Path, root: Path, size: int, steps: int, settle: float) -> dict:
    (root / "hotfolder.toml").write_text(
        f'[daemon]\nsettle_seconds = {settle}\n\n[routes.bench]\nstyles = ["{STYLE}"]\n'
        f"size = {size}\nsteps = {steps}\n"
    )
    log = root / "hotfolder.log"
    cmd = [sys.executable, "-m", "impasto.cli", "watch", str(root)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not (log.is_file() and "watching" in log.read_text()):
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited: {proc.stderr.read()}")
            time.sleep(0.05)
        startup = time.perf_counter() - t0
        files = sorted(photos.iterdir())
        inbox = root / "inbox" / "bench"
        t0, c0 = time.perf_counter(), cpu_seconds(proc.pid)
        for f in files:  # as a copy tool would: temporary name, then rename
            shutil.copyfile(f, inbox / (f.name + ".part"))
            os.rename(inbox / (f.name + ".part"), inbox / f.name)
        first = None
        while True:
            states = journal_states(root)
            if first is None and states.get("done"):
                first = time.perf_counter() - t0
            if states.get("done", 0) + states.get("failed", 0) >= len(files):
                break
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited: {proc.stderr.read()}")
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        c1 = cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return {
        "startup": startup,
        "seconds": seconds,
        "cpu": None if c0 is None or c1 is None else c1 - c0,
        "first_output": first,
        "files": len(files),
        "failed": states.get("failed", 0),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--settle", type=float, default=2.0, help="the daemon's settle_seconds")
    args = smoke(p.parse_args(), count=2, size=64, steps=1, settle=0.2)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="impasto-bench-") as tmp:
        tmp = Path(tmp)
        photos, out, root = tmp / "photos", tmp / "direct", tmp / "hot"
        for folder in (photos, out, root):
            folder.mkdir()
        make_photos(photos, args.count)
        print(f"{args.count} photos, {args.size} px, {args.steps} steps, settle {args.settle} s")
        direct = run_direct(photos, out, args.size, args.steps)
        print(f"direct: {direct['seconds']:.1f} s (start-up {direct['startup']:.1f} s)", flush=True)
        daemon = run_daemon(photos, root, args.size, args.steps, args.settle)
        print(f"daemon: {daemon['seconds']:.1f} s (start-up {daemon['startup']:.1f} s)", flush=True)
    n = args.count
    overhead = daemon["seconds"] - direct["seconds"]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "count": n,
        "size": args.size,
        "steps": args.steps,
        "settle_seconds": args.settle,
        "direct": direct,
        "daemon": daemon,
        "direct_files_per_minute": round(60 * n / direct["seconds"], 1),
        "daemon_files_per_minute": round(60 * n / daemon["seconds"], 1),
        "overhead_seconds_total": round(overhead, 2),
        "overhead_seconds_per_file": round(overhead / n, 3),
        "overhead_per_file_without_settle": round((overhead - args.settle) / n, 3),
        "overhead_percent": round(100 * overhead / direct["seconds"], 1),
        "load_average_at_end": os.getloadavg()[0],
    }
    if daemon["cpu"] is not None:
        cpu_overhead = daemon["cpu"] - direct["cpu"]
        report["cpu_overhead_seconds_per_file"] = round(cpu_overhead / n, 3)
        report["cpu_overhead_percent"] = round(100 * cpu_overhead / direct["cpu"], 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hotfolder.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nthroughput: daemon {report['daemon_files_per_minute']} files/min, "
        f"direct {report['direct_files_per_minute']} files/min\n"
        f"daemon overhead: {overhead:.1f} s in all ({report['overhead_percent']}%), "
        f"{1000 * overhead / n:.0f} ms per file, "
        f"{1000 * (overhead - args.settle) / n:.0f} ms per file without the one settle interval\n"
        f"first output after {daemon['first_output']:.1f} s (settle {args.settle} s included)"
    )
    if daemon["cpu"] is not None:
        print(
            f"CPU time: daemon {daemon['cpu']:.1f} s, direct {direct['cpu']:.1f} s: "
            f"{1000 * report['cpu_overhead_seconds_per_file']:.0f} ms per file "
            f"({report['cpu_overhead_percent']}%) (load average now {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
