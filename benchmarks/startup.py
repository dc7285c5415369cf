"""Start-up: what `impasto stylize` costs as a whole command, run alone (cold) and through a warm
engine server (`impasto engine start`), against the painting itself.

For each preset and size it times, as a user (or an editor plug-in) runs it:
- cold: the whole command with no server, from exec to exit;
- warm: the whole command with a running server that has already painted one picture of that
  preset and size (its TensorFlow, weights and traced step are warm);
- painting: the engine's own seconds for the job (the `done` line's stats.seconds);
and, for one cold process, where its seconds go, stage by stage (interpreter and imports,
checking the job, TensorFlow's import, the weights, the first step with its targets and
tracing, the other steps, saving). Medians over RUNS runs, cold and warm runs interleaved.

    python benchmarks/startup.py [--runs 5] [--sizes 384 512] [--presets quick-draft classic]
    python benchmarks/startup.py --quick     # a quick look: 128 px, 2 runs, 5 steps, no file

Writes benchmarks/results/startup-<cpu>-<N>cores.md (not in --quick mode; a smoke run,
IMPASTO_BENCH_SMOKE=DIR, writes it into DIR). Run it on a quiet
machine: other load shows up in every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from impasto.engine.machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, SMOKE, smoke  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "content.jpg"
STYLE = ROOT / "examples" / "style.png"

# One cold process, timed stage by stage from inside (the interpreter's own start-up is the
# whole command's time less the sum of these).
STAGES = r"""
import json, sys, time
content, style, preset, size, steps, out = sys.argv[1:7]
stages, t = {}, time.perf_counter()
def mark(name):
    global t
    now = time.perf_counter()
    stages[name] = now - t
    t = now
import impasto.commands.stylize
from impasto.job import StyleJob, check_job
mark("imports without TensorFlow")
overrides = {"steps": int(steps)} if int(steps) else {}
checked = check_job(StyleJob(content, [style], preset=preset, size=int(size), overrides=overrides))
mark("check the job (decode the images)")
import impasto
impasto.import_tensorflow()
mark("import TensorFlow")
engine = impasto.load_engine()
mark("import the engine")
from impasto.engine import model
model._numpy_weights()
mark("weights: md5 check and read")
engine.describe(checked)
mark("precision, memory plan (the start line)")
steps_at = []
result = engine.stylize(checked, on_progress=lambda e: steps_at.append(time.perf_counter()))
stages["first step (targets, tracing, the step)"] = steps_at[0] - t
stages["the other steps"] = time.perf_counter() - steps_at[0]
t = time.perf_counter()
result.save(out)
mark("save")
print(json.dumps(stages), flush=True)
import os
os._exit(0)  # as the command does: TensorFlow's teardown is skipped
"""


def command(out: Path, preset: str, size: int, steps: int) -> list[str]:
    cmd = [sys.executable, "-m", "impasto.cli", "stylize", str(CONTENT), str(STYLE)]
    cmd += ["-o", str(out), "--preset", preset, "--size", str(size), "--progress", "json"]
    return cmd + (["--steps", str(steps)] if steps else [])


def timed(cmd: list[str], env: dict) -> tuple[float, dict]:
    """Wall seconds of a whole command, and its `done` event."""
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{run.stderr}")
    done = json.loads(run.stdout.splitlines()[-1])
    return wall, done


def engine(action: str, env: dict) -> None:
    """`impasto engine start` (never idling out during the benchmark) or `stop`."""
    cmd = [sys.executable, "-m", "impasto.cli", "engine", action]
    cmd += ["--idle", "0"] if action == "start" else []
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    p.add_argument("--presets", nargs="+", default=["quick-draft", "classic"])
    p.add_argument("--steps", type=int, default=0, help="steps per job (default: the preset's)")
    p.add_argument("--quick", action="store_true", help="smoke test: 128 px, 2 runs, 5 steps")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.steps, args.presets = [128], 5, ["quick-draft"]
        args.runs = min(args.runs, 2)
    smoke(args, sizes=[64], steps=1, presets=["quick-draft"], runs=1)
    machine = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(machine, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="impasto-startup-"))
    cold_env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp / "none")}  # no server there
    (tmp / "none").mkdir(mode=0o700)
    (tmp / "run").mkdir(mode=0o700)
    warm_env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp / "run")}
    # the user's own settings (autostart) must not change what is measured
    cold_env["XDG_CONFIG_HOME"] = warm_env["XDG_CONFIG_HOME"] = str(tmp / "config")
    engine("start", warm_env)
    rows, stage_rows = [], []
    try:
        for preset in args.presets:
            for size in args.sizes:
                rows.append(measure(args, tmp, preset, size, cold_env, warm_env))
                stage_rows.append(stages(args, tmp, preset, size, cold_env))
    finally:
        engine("stop", warm_env)
    text = report(args, machine, rows, stage_rows)
    print("\n" + text)
    if SMOKE or not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        cpu = "-".join(cpu_model().split()[:2])
        out = RESULTS / f"startup-{cpu}-{os.cpu_count()}cores.md"
        out.write_text(text)
        print(f"written to {out}")


def measure(args, tmp: Path, preset: str, size: int, cold_env: dict, warm_env: dict) -> dict:
    out = tmp / "out.png"
    timed(command(out, preset, size, args.steps), warm_env)  # the server's first of this kind
    cold, warm, painting_cold, painting_warm = [], [], [], []
    for n in range(args.runs):
        for env, walls, paintings in (
            (cold_env, cold, painting_cold),
            (warm_env, warm, painting_warm),
        ):
            wall, done = timed(command(out, preset, size, args.steps), env)
            walls.append(wall)
            paintings.append(done["stats"]["seconds"])
        print(
            f"{preset} {size} px run {n + 1}: cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s, "
            f"painting {painting_cold[-1]:.1f} / {painting_warm[-1]:.1f} s",
            flush=True,
        )
    med = statistics.median
    return {
        "preset": preset,
        "size": size,
        "cold": med(cold),
        "warm": med(warm),
        "painting_cold": med(painting_cold),
        "painting_warm": med(painting_warm),
    }


def stages(args, tmp: Path, preset: str, size: int, env: dict) -> dict:
    """Median seconds per stage of a cold process, over the runs."""
    runs = []
    for _ in range(args.runs):
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-c", STAGES, str(CONTENT), str(STYLE), preset, str(size),
             str(args.steps), str(tmp / "stages.png")],
            capture_output=True, text=True, env=env, timeout=3600, check=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        measured = json.loads(run.stdout.splitlines()[-1])
        runs.append({"interpreter start-up and exit": wall - sum(measured.values()), **measured})
    return {name: statistics.median(r[name] for r in runs) for name in runs[0]}


def report(args, machine: str, rows: list[dict], stage_rows: list[dict]) -> str:
    flags = f"--runs {args.runs} --sizes {' '.join(map(str, args.sizes))} "
    flags += f"--presets {' '.join(args.presets)}" + (
        f" --steps {args.steps}" if args.steps else ""
    )
    lines = [
        f"# Start-up of `impasto stylize` ({time.strftime('%Y-%m-%d')})",
        "",
        f"`python benchmarks/startup.py {flags}`",
        "",
        f"Machine: {machine}; load average when it ended: {os.getloadavg()[0]:.2f}. Medians of "
        f"{args.runs} runs, cold and warm interleaved. Cold: the whole command, no server. Warm: "
        "the whole command through `impasto engine start`'s server, after it painted one "
        "picture of that preset and size. Painting: the engine's own seconds for the job.",
        "",
        "| preset | size | cold command | warm command | painting (cold) | painting (warm) "
        "| cold overhead | warm overhead |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['size']} | {r['cold']:.1f} s | {r['warm']:.1f} s "
            f"| {r['painting_cold']:.1f} s | {r['painting_warm']:.1f} s "
            f"| {r['cold'] - r['painting_cold']:.1f} s | {r['warm'] - r['painting_warm']:.1f} s |"
        )
    lines += ["", "Where a cold command's seconds go (median per stage):", ""]
    names = list(stage_rows[0])
    head = [f"{r['preset']} {r['size']}" for r in rows]
    lines += ["| stage | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{s[name]:.2f} s" for s in stage_rows) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
