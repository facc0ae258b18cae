"""Host-memory behaviour of long CPU training runs.

glibc's malloc serves large blocks with mmap and returns them to the OS on free, but its threshold
for doing so is *dynamic*: after the first large free it rises to that block's size, and from then on
the per-step activations (tens to hundreds of MB, freed after every backward) come from the heap, which
fragments and never shrinks. Measured on UNIT at 256x256 (bench/train_speed.py), the process then holds
about 1.5 GB more than it uses, and peak RSS grows from step to step. A fixed threshold keeps large
blocks on mmap, so memory goes back to the OS after each step; the price is a page fault for every
fresh page of every step's activations, which costs little at 256x256 and a lot at 64x64 (see
bench/results/train_speed.md). Hence ``train.low_memory``, off by default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
DEFAULT_THRESHOLD = 1 << 20


def fix_malloc_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold (which also disables its dynamic adjustment). True if applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
