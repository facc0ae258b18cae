"""Which device and which precision a run uses: CUDA or the CPU, bf16 or fp32, and the CPU facts behind it.

Knows nothing of methods or training; the trainer, inference and the protocols decide devices here.
"""

from __future__ import annotations

import functools
import platform
import time
from pathlib import Path

import torch
from torch import nn


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """'auto' -> CUDA when available (the process's own GPU under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name} but CUDA is not available on this machine")
    return device


BF16_MIN_SPEEDUP = 1.2
"""``precision=auto`` takes bf16 on a CPU only where it measured at least this much faster than fp32: CPUs that
list AVX-512 BF16 differ in how fast they run it (bench/results/train_speed.md gives the kind it was measured
on), and a precision that loses speed only costs accuracy."""


@functools.cache
def cpu_bf16_speedup(threads: int) -> float:
    """fp32 time / bf16-autocast time of a 3x3 convolution forward and backward (batch 16, 64 channels,
    32x32, channels_last, the memory format bf16 runs use) on this CPU with ``threads`` threads, best of 3.
    It draws no number from the caller's random stream."""
    with torch.random.fork_rng(devices=[]):
        conv = nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
        x = torch.randn(16, 64, 32, 32).to(memory_format=torch.channels_last).requires_grad_()

    def best_seconds(bf16: bool) -> float:
        times = []
        for _ in range(4):  # the first is a warm-up (oneDNN picks and caches its kernels)
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = conv(x)
            out.float().sum().backward()
            times.append(time.perf_counter() - started)
        return min(times[1:])

    return best_seconds(False) / best_seconds(True)


def cpu_info() -> str:
    """The text of /proc/cpuinfo (model name, feature flags), or '' where there is no such file."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_field(name: str, info: str | None = None) -> str:
    """The value of the first ``name : value`` line of ``info`` (default: this machine's /proc/cpuinfo), e.g.
    'model name', 'flags', 'vendor_id'; '' where there is none."""
    for line in (cpu_info() if info is None else info).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (e.g. 'AMD EPYC'), else what ``platform`` knows."""
    return cpu_field("model name") or platform.processor() or "unknown"


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 pays: CUDA with bf16, or a CPU with AVX-512 BF16 / AMX on which bf16 autocast measured
    at least ``BF16_MIN_SPEEDUP`` times as fast as fp32 (``cpu_bf16_speedup``, ~0.2 s, once per process)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    flags = cpu_info()
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        return False
    return cpu_bf16_speedup(torch.get_num_threads()) >= BF16_MIN_SPEEDUP


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the hardware runs it natively and faster (``fast_bf16``), else 'fp32'."""
    if name == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return name
