"""Precision `auto`: the faster of bfloat16 and float32 as measured on this machine, cached per
machine, float16 on a GPU; a forced precision is used as it is."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from impasto import StyleJob
from impasto.engine import machine, precision
from tests.conftest import CAT, STARRY

KEY = {"cpu": "Test CPU 3000", "cpus": 2, "tensorflow": "2.99.0", "onednn": "default"}


class Probe:
    """A measurement with chosen timings (seconds per probe pass) that counts its calls."""

    def __init__(self, float32: float, bfloat16: float):
        self.timings = {"float32": float32, "bfloat16": bfloat16}
        self.calls = 0

    def __call__(self) -> dict:
        self.calls += 1
        return {**self.timings, "size": 96, "passes": 3, "seconds": 0.2}


def choose(tmp_path, probe, key=KEY, device="CPU", **kw) -> precision.Choice:
    cache = kw.pop("cache", tmp_path / "cache" / "precision.json")
    return precision.auto(device=device, measure=probe, key=key, cache=cache, **kw)


def test_cpu_with_emulated_bfloat16_gets_float32(tmp_path):
    choice = choose(tmp_path, Probe(float32=0.049, bfloat16=0.48))
    assert choice.precision == "float32"
    assert str(choice) == "float32: bfloat16 measured 9.8x slower on this CPU"
    assert choice.source == "measured" and choice.probe["float32"] == 0.049


def test_cpu_with_native_bfloat16_gets_bfloat16(tmp_path):
    choice = choose(tmp_path, Probe(float32=0.045, bfloat16=0.025))
    assert str(choice) == "bfloat16: measured 1.8x faster than float32 on this CPU"


def test_a_tie_keeps_float32_and_its_precision(tmp_path):
    choice = choose(tmp_path, Probe(float32=0.030, bfloat16=0.028))
    assert choice.precision == "float32" and "only 1.07x faster" in choice.reason


def test_gpu_gets_float16_without_measuring(tmp_path):
    probe = Probe(0.01, 0.01)
    choice = choose(tmp_path, probe, device="GPU")
    assert choice.precision == "float16" and "GPU" in choice.reason
    assert probe.calls == 0


def test_the_answer_is_cached_and_reused(tmp_path):
    probe = Probe(float32=0.045, bfloat16=0.025)
    first = choose(tmp_path, probe)
    again = choose(tmp_path, probe)
    assert probe.calls == 1
    assert again.source == "cache" and str(again) == str(first)
    assert again.probe["measured_at"] == first.probe["measured_at"]
    # --measure in doctor: measured again on purpose, and the cache updated
    assert choose(tmp_path, probe, remeasure=True).source == "measured" and probe.calls == 2


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"",
        b"[1, 2, 3]",
        json.dumps({"format": "someone-else/2", "machines": {}}).encode(),
        json.dumps({"format": precision.FORMAT, "machines": "nope"}).encode(),
        # our format, but this machine's entry is damaged: a timing that is not a time
        json.dumps(
            {
                "format": precision.FORMAT,
                "machines": {json.dumps(KEY, sort_keys=True): {"float32": -1, "bfloat16": "x"}},
            }
        ).encode(),
    ],
    ids=["truncated", "binary", "empty", "a list", "foreign", "bad machines", "bad entry"],
)
def test_a_corrupt_or_foreign_cache_file_is_measured_over(tmp_path, content):
    cache = tmp_path / "precision.json"
    cache.write_bytes(content)
    probe = Probe(float32=0.049, bfloat16=0.48)
    choice = choose(tmp_path, probe, cache=cache)
    assert probe.calls == 1 and choice.precision == "float32"
    # ...and the file is ours again, so the next process reads it instead of measuring
    assert choose(tmp_path, probe, cache=cache).source == "cache" and probe.calls == 1


@pytest.mark.parametrize(
    "change", [{"cpu": "Other CPU"}, {"cpus": 16}, {"tensorflow": "3.0.0"}, {"onednn": "0"}]
)
def test_another_machine_measures_again_and_keeps_the_first_answer(tmp_path, change):
    here, there = Probe(float32=0.045, bfloat16=0.025), Probe(float32=0.049, bfloat16=0.48)
    assert choose(tmp_path, here).precision == "bfloat16"
    assert choose(tmp_path, there, key={**KEY, **change}).precision == "float32"
    assert there.calls == 1
    # a home folder shared by two machines keeps both answers
    assert choose(tmp_path, here).source == "cache" and here.calls == 1


def test_the_real_key_names_cpu_model_cpu_count_and_tensorflow_version(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    key = precision.machine_key()
    assert key == {
        "cpu": machine.cpu_model(),
        "cpus": machine.usable_cpus(),
        "tensorflow": tf.__version__,
        "onednn": "default",
    }
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # Eigen kernels: a different answer
    assert precision.machine_key() != key


def test_an_unwritable_cache_folder_only_means_measuring_each_time(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    probe = Probe(float32=0.045, bfloat16=0.025)
    cache = blocker / "impasto" / "precision.json"
    assert choose(tmp_path, probe, cache=cache).precision == "bfloat16"
    assert choose(tmp_path, probe, cache=cache).precision == "bfloat16"
    assert probe.calls == 2


def test_a_failed_measurement_falls_back_to_float32_and_is_not_cached(tmp_path):
    def broken() -> dict:
        raise RuntimeError("no kernel for bfloat16")

    choice = choose(tmp_path, broken)
    assert choice.precision == "float32" and "no kernel for bfloat16" in choice.reason
    assert not (tmp_path / "cache" / "precision.json").exists()


def test_a_forced_precision_is_used_as_it_is(monkeypatch):
    monkeypatch.setattr(precision, "auto", lambda **kw: pytest.fail("measured a forced value"))
    for value in ("float32", "bfloat16", "float16"):
        assert precision.resolve(value).precision == value


def test_auto_is_decided_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(precision, "_auto_choice", None)
    monkeypatch.setattr(
        precision,
        "auto",
        lambda: calls.append(1) or precision.Choice("float32", "test", "measured"),
    )
    assert precision.resolve("auto") is precision.resolve("auto")
    assert len(calls) == 1


def test_every_shipped_preset_says_auto():
    from impasto.presets import list_presets, load_preset

    shipped = [p for p in list_presets() if p.origin == "shipped"]
    assert shipped and all(load_preset(p.name).precision == "auto" for p in shipped)


# Real measurement, real engine: no injection below.


@pytest.mark.fresh_precision_cache
def test_auto_measures_this_machine_and_the_default_preset_paints(monkeypatch, weights_available):
    from impasto import load_engine

    engine = load_engine()
    monkeypatch.setattr(precision, "_auto_choice", None)  # measure in this test's cache folder
    choice = precision.auto()
    assert choice.source == "measured" and choice.precision in ("float32", "bfloat16")
    assert choice.probe["float32"] > 0 and choice.probe["bfloat16"] > 0
    # A guard against a probe that grew out of hand, not a speed goal: it takes about 0.4 s
    # here, so even a very busy machine stays far below this.
    assert choice.probe["seconds"] < 15
    assert precision.cache_file().is_file()
    assert precision.auto().source == "cache"

    job = StyleJob(CAT, [STARRY], size=64, overrides={"steps": 2})  # default preset: classic
    checked = engine.check_job(job)
    assert checked.recipe.precision == "auto"
    info = engine.describe(checked)
    assert (info["precision"], info["precision_reason"]) == (choice.precision, choice.reason)
    result = engine.stylize(checked)
    assert result.stats["precision"] == choice.precision
    assert result.image.size == (64, 43) and result.stats["steps"] == 2


@pytest.mark.fresh_precision_cache
def test_the_start_line_says_what_was_chosen_and_why(tmp_path, weights_available):
    run = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "stylize", CAT, STARRY, "-o", tmp_path / "o.png"]
        + ["--size", "64", "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    first = run.stderr.splitlines()[0]
    assert re.match(
        r"impasto: classic on the CPU \((bfloat16: measured [\d.]+x faster than float32|"
        r"float32: bfloat16 measured [\d.]+x slower|float32: bfloat16 measured only) ",
        first,
    ), first
