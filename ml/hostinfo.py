"""What a timing depends on: the CPU's model and feature flags, the core count and the inference threads.

Every speed figure in a model card or a benchmark records :func:`timing_host` beside it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ml.runtime import default_threads

#: bf16 matrix units: AMX on x86, the bf16 extension on Arm. avx512_bf16 alone only converts and dots in vectors.
FAST_BF16_FLAGS = frozenset({"amx_bf16", "bf16"})
VECTOR_BF16_FLAGS = frozenset({"avx512_bf16"})
#: The flags that decide training and inference speed here, recorded with every timing.
SPEED_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")


def read_cpuinfo() -> str | None:
    """The text of /proc/cpuinfo, or None on a platform without it."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def cpu_flags(cpuinfo: str | None) -> set[str]:
    """The CPU feature flags in /proc/cpuinfo text (x86 `flags`, Arm `Features`)."""
    return {
        flag
        for line in (cpuinfo or "").splitlines()
        if line.split(":")[0].strip() in ("flags", "Features")
        for flag in line.split(":", 1)[-1].split()
    }


def cpu_model(cpuinfo: str | None) -> str:
    """'AMD EPYC (family 26)': the first CPU's model name and family, which the flags alone do not tell apart."""
    fields: dict[str, str] = {}
    for line in (cpuinfo or "").splitlines():
        if not line.strip():
            break  # the first CPU's block ends at its blank line
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or "unknown CPU"  # Arm kernels print no model name
    return f"{name} (family {fields['cpu family']})" if "cpu family" in fields else name


def bf16_warning(precision: str, cpuinfo: str | None) -> str | None:
    """A warning when mixed_bfloat16 will not be faster than float32 on this CPU (no bf16 matrix unit)."""
    if precision != "mixed_bfloat16" or not cpuinfo:
        return None  # float32, or a platform without /proc/cpuinfo (we cannot tell)
    flags = cpu_flags(cpuinfo)
    if flags & FAST_BF16_FLAGS:
        return None
    if flags & VECTOR_BF16_FLAGS and "AuthenticAMD" in cpuinfo:
        return None  # AMD's avx512_bf16 is fast: a 2-core EPYC (Zen 5) trained FeedNet at 375 vs 303 images/s
    if flags & VECTOR_BF16_FLAGS:
        return (
            "warning: --precision mixed_bfloat16 on an Intel CPU with avx512_bf16 but no AMX (no amx_bf16 flag): slower "
            "than float32 (measured: ~120 vs ~180 images/s for the 2-head FeedNet w32 at batch 128 on a 2-core "
            "Xeon without AMX; AMX machines ran it 1.3-2.5x faster than float32). Use --precision float32 here."
        )
    return (
        "warning: --precision mixed_bfloat16 on a CPU without bfloat16 instructions (no avx512_bf16, amx_bf16 "
        "or bf16 flag): TensorFlow emulates it, ~10x slower than float32 (measured: 14.7 vs 1.6 s per batch "
        "of 128 on an AVX2-only AMD EPYC). Use --precision float32 here."
    )


def timing_host() -> dict:
    """What the speed figures depend on: cores, inference threads, load, and the CPU's matrix/vector flags."""
    cpuinfo = read_cpuinfo()
    flags = cpu_flags(cpuinfo)
    return {
        "cpu_model": cpu_model(cpuinfo),
        "cpu_count": os.cpu_count(),
        "threads": default_threads(),
        "loadavg_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        "cpu_flags": [f for f in SPEED_FLAGS if f in flags],
    }


@dataclass(frozen=True)
class CpuSnapshot:
    """Wall clock, CPU seconds the whole machine has used, and CPU seconds this process has used."""

    wall: float
    machine_busy: float
    own: float


def machine_busy_seconds(stat: str | None = None) -> float | None:
    """CPU seconds all processes have used since boot (/proc/stat's `cpu` line without idle and iowait)."""
    if stat is None:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return None
    fields = stat.split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu" or len(fields) < 6:
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot() -> CpuSnapshot | None:
    """What :func:`others_cpu_share` compares, or None where /proc/stat cannot be read."""
    busy = machine_busy_seconds()
    if busy is None:
        return None
    return CpuSnapshot(wall=time.monotonic(), machine_busy=busy, own=time.process_time())


def others_cpu_share(before: CpuSnapshot | None, after: CpuSnapshot | None) -> float | None:
    """CPUs' worth of time other processes used between two snapshots (0.0 on an otherwise idle machine).

    A benchmark's own threads do not count, so a timing that keeps every core busy is not mistaken for a busy
    machine, and a job that shares the cores is seen however short the benchmark is (load averages lag by minutes).
    """
    if before is None or after is None or after.wall <= before.wall:
        return None
    others = (after.machine_busy - before.machine_busy) - (after.own - before.own)
    return max(0.0, others / (after.wall - before.wall))
