"""`impasto doctor`: one screen for a bug report, --json for programs, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from impasto.commands.doctor import render
from impasto.engine import machine, weights


def doctor(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "impasto.cli", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.fresh_precision_cache
def test_the_screen_names_cpu_precision_and_weights(weights_available):
    run = doctor()
    assert run.returncode == 0, run.stderr
    lines = {line[:12].strip(): line[12:] for line in run.stdout.splitlines() if line[:12].strip()}
    assert lines["cpu"] == machine.cpu_model()
    for name, have in machine.flags_that_matter().items():  # this CPU's, from /proc/cpuinfo
        assert f"{name} {'yes' if have else 'no'}" in lines["cpu flags"].split(", ")
    assert lines["precision"].startswith(("auto = float32: ", "auto = bfloat16: "))
    assert "ms per probe pass" in run.stdout and "measured just now" in run.stdout
    assert lines["weights"] == f"{os.environ['IMPASTO_WEIGHTS']} (md5 verified)"
    assert lines["problems"] == "none"
    assert run.stderr == ""  # no TensorFlow chatter on the screen to paste


@pytest.mark.fresh_precision_cache
def test_json_has_every_topic_and_the_second_run_uses_the_cached_choice(weights_available):
    first = doctor("--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["cpu"]["model"] == machine.cpu_model()
    assert set(report["cpu"]["flags"]) == {"AVX2", "AVX-512F", "AVX512_BF16", "AMX"}
    assert report["threads"]["usable_cpus"] == machine.usable_cpus()
    assert report["device"] == "CPU" and report["python"] == ".".join(
        map(str, sys.version_info[:3])
    )
    p = report["precision"]
    assert p["auto"] in ("float32", "bfloat16") and p["source"] == "measured"
    assert p["probe"]["float32"] > 0 and p["probe"]["bfloat16"] > 0
    assert report["weights"]["md5_ok"] is True
    assert report["weights"]["path"] == os.environ["IMPASTO_WEIGHTS"]
    assert report["memory"]["available_bytes"] > 0
    assert report["problems"] == []

    again = json.loads(doctor("--json").stdout)["precision"]
    assert again["source"] == "cache" and again["auto"] == p["auto"]
    assert again["probe"] == p["probe"]


def test_weights_with_the_wrong_md5_are_flagged_and_exit_1(tmp_path):
    bad = tmp_path / weights.FILENAME
    bad.write_bytes(b"not the VGG19 weights")
    run = doctor(env={**os.environ, "IMPASTO_WEIGHTS": str(bad)})
    assert run.returncode == 1, run.stderr
    weights_line = next(line for line in run.stdout.splitlines() if line.startswith("weights"))
    assert "NOT USABLE" in weights_line and str(bad) in weights_line
    assert f"is not the expected {weights.MD5}" in weights_line
    problems = next(line for line in run.stdout.splitlines() if line.startswith("problems"))
    assert "point IMPASTO_WEIGHTS at a good copy" in problems

    report = json.loads(doctor("--json", env={**os.environ, "IMPASTO_WEIGHTS": str(bad)}).stdout)
    assert report["weights"]["md5_ok"] is False and report["problems"]


def test_the_screen_reads_well_on_a_gpu_machine_without_proc():
    # What another machine would report: no probe (GPU), unknown flags and memory.
    report = {
        "impasto": "0.1.0",
        "python": "3.12.1",
        "python_executable": "/usr/bin/python3",
        "os": "Darwin-23",
        "tensorflow": "2.16.1",
        "keras": "3.3",
        "numpy": "1.26",
        "pillow": "10.3",
        "device": "GPU",
        "gpus": ["/physical_device:GPU:0"],
        "cpu": {"model": "arm", "flags": {"AVX2": None, "AVX-512F": None}},
        "threads": {
            "cpu_count": 8,
            "usable_cpus": 8,
            "tensorflow_intra_op": 4,
            "tensorflow_inter_op": 0,
            "environment": {"OMP_NUM_THREADS": "4"},
        },
        "onednn": "0",
        "precision": {
            "auto": "float16",
            "reason": "the GPU computes float16 natively",
            "source": "gpu",
            "probe": None,
            "cache": "/c/precision.json",
        },
        "weights": {"md5_ok": False, "path": None, "problem": "/w: not found"},
        "memory": {"available_bytes": None, "total_bytes": None},
        "problems": ["VGG19 weights not usable"],
    }
    text = render(report)
    assert "device      GPU (/physical_device:GPU:0)" in text
    assert "cpu flags   AVX2 unknown, AVX-512F unknown" in text
    assert "TensorFlow intra-op 4, inter-op default; OMP_NUM_THREADS=4" in text
    assert "oneDNN      TF_ENABLE_ONEDNN_OPTS=0" in text
    assert "precision   auto = float16: the GPU computes float16 natively" in text
    assert "probe pass" not in text
    assert "memory      unknown" in text
