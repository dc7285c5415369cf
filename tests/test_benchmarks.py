"""Every benchmark runs: each script in its smoke run (IMPASTO_BENCH_SMOKE=DIR: tiny pictures, a
step or two, one pair, one run), writing into a temporary folder, so that `make bench` cannot
break unnoticed. The figures in benchmarks/results/ are never touched, and nothing here is a
measurement."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, skip_or_fail

RESULTS = ROOT / "benchmarks" / "results"

# script -> what its smoke run must have written (globs in the smoke folder)
WRITES = {
    "speed.py": ["*-*cores.md"],
    "tutorial_baseline.py": ["tutorial/*__64px__4steps.json", "tutorial/*__64px__4steps.png"],
    "quality.py": ["*-*cores.md", "quality-*.jpg", "quality.png"],
    "levers.py": ["*-*cores.md"],
    "memory.py": ["memory-*cores.md", "memory-*cores.json"],
    "hotfolder.py": ["hotfolder.json"],
    "startup.py": ["startup-*cores.md"],
    "webapp_load.py": ["webapp_load-*.md"],
    "cluster.py": ["cluster-*cores.md"],
    "regions.py": ["regions-*cores.md", "regions-*cores.jpg"],
    "soak.py": ["soak-*cores.md"],
    "tune.py": ["*-*cores.md"],
}


def test_every_benchmark_has_a_smoke_test():
    # report, judge and peer_crowsonkb are parts of benchmarks; test_tools checks the last two
    tools = {"report.py", "judge.py", "peer_crowsonkb.py", "test_tools.py"}
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")} - tools
    assert scripts == set(WRITES)


def snapshot() -> dict[str, float]:
    return {str(p.relative_to(RESULTS)): p.stat().st_mtime for p in RESULTS.rglob("*")}


@pytest.mark.slow
@pytest.mark.parametrize("script", list(WRITES))
def test_benchmark_smoke_run(script, tmp_path, weights_available):
    if script == "cluster.py":
        if importlib.util.find_spec("ray") is None:
            skip_or_fail("Ray is not installed (make installs impasto[cluster])")
        if shutil.which("taskset") is None:
            skip_or_fail("taskset (util-linux) is not installed")
    if script == "webapp_load.py" and importlib.util.find_spec("gradio_client") is None:
        skip_or_fail("gradio_client is not installed (the test extra)")
    out = tmp_path / "results"
    before = snapshot()
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script)],
        cwd=tmp_path,
        env={**os.environ, "IMPASTO_BENCH_SMOKE": str(out), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    for pattern in WRITES[script]:
        assert list(out.glob(pattern)), f"{script} wrote no {pattern} in {out}: {done.stdout}"
    assert snapshot() == before, "a smoke run changed benchmarks/results/"
