"""What this machine is, as far as speed goes: CPU model and flags, usable CPUs, free memory.

Read from /proc on Linux (no TensorFlow, no subprocess), with the platform module as the fallback
elsewhere. Used by the precision choice (its cache key) and by `impasto doctor`.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

# The CPU flags that decide how fast the convolutions run, as /proc/cpuinfo names them: AVX2 is
# the float32 baseline; bfloat16 is native only with AVX512_BF16 or AMX, emulated (slow) without.
FLAGS_THAT_MATTER = {
    "AVX2": ("avx2",),
    "AVX-512F": ("avx512f",),
    "AVX512_BF16": ("avx512_bf16",),
    "AMX": ("amx_bf16", "amx_tile"),
}


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: they are all alike
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's marketing name, e.g. "AMD EPYC 9R45 64-Core Processor"."""
    info = _cpuinfo()
    for key in ("model name", "Model Name", "Hardware", "cpu model"):  # x86, some ARM, MIPS
        if info.get(key):
            return " ".join(info[key].split())
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (x86 "flags", ARM "Features"), or None when they are unknown."""
    info = _cpuinfo()
    line = info.get("flags") or info.get("Features")
    return set(line.split()) if line else None


def flags_that_matter() -> dict[str, bool | None]:
    """{"AVX2": True, "AVX-512F": False, ...}; None for each when the flags are unknown."""
    flags = cpu_flags()
    return {
        name: None if flags is None else any(f in flags for f in names)
        for name, names in FLAGS_THAT_MATTER.items()
    }


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def memory() -> dict[str, int | None]:
    """{"available": bytes, "total": bytes}; None for what cannot be found out."""
    found: dict[str, int | None] = {"available": None, "total": None}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            name = {"MemAvailable": "available", "MemTotal": "total"}.get(key)
            if name:
                found[name] = int(value.split()[0]) * 1024  # the file counts in kB
    except (OSError, ValueError, IndexError):
        pass
    for name, pages in (("available", "SC_AVPHYS_PAGES"), ("total", "SC_PHYS_PAGES")):
        if found[name] is None:
            try:
                found[name] = os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
            except (AttributeError, ValueError, OSError):
                pass
    return found
