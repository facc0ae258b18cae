"""What every benchmark script shares: paths, the data root, the machine's name, timing of training steps."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"
if "UNPAIRED_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["UNPAIRED_DATA"] = str(SHARED_DATA)  # as the Makefile and the tests do


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_step_seconds(trainer: Any, steps: int, warmup: int) -> float:
    """Median wall time of ``trainer.train_step`` (data decoding included) over ``steps`` after ``warmup``."""
    times = []
    for t in range(warmup + steps):
        started = time.perf_counter()
        trainer.train_step(trainer.batches[t])
        if t >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)
