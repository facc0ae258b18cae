"""Test settings: real data sets come from UNPAIRED_DATA, defaulting to ../shared/data beside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# The test models are tiny: one thread is as fast as two, and it keeps the suite's speed steady when other
# work shares the cores (two OpenMP threads competing with another process stall for seconds per step).
# Set before torch is imported so that `unpaired` subprocesses started by the tests inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if "UNPAIRED_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["UNPAIRED_DATA"] = str(SHARED_DATA)

torch.set_num_threads(1)


def need_data(*relative: str) -> Path:
    """The data root, or skip the test with the exact files that are missing."""
    from unpaired.data import data_root

    root = data_root()
    missing = [r for r in relative if not (root / r).exists()]
    if missing:
        pytest.skip(f"real data not found: {', '.join(str(root / m) for m in missing)} "
                    "(set UNPAIRED_DATA to the folder holding them)")
    return root


@pytest.fixture
def tmpfs(tmp_path: Path):
    """``tmpfs("size=3m")`` -> a folder with a fresh tmpfs of these mount options mounted on it (e.g. "ro,size=1m"
    for a read-only file system, "size=64k" for a small disk that fills up), unmounted at teardown. Skips the test
    where mounting is not possible (not root, no privileges)."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                              text=True) if shutil.which("mount") else None
        if done is None or done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() if done else 'no mount command'}); "
                        "this test needs root")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)  # busy: detach it now, freed when released


def remount(where: Path, options: str) -> None:
    """Change the options of a tmpfs mounted by the ``tmpfs`` fixture (e.g. a larger size: space freed)."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


# -------------------- tiny runs shared by the method, training and CLI tests

TINY = [
    "model.dim=8", "model.n_res=2", "model.dis_dim=8", "model.dis_layers=2", "model.dis_scales=2",
    "data.image_size=16", "train.batch_size=2", "train.num_samples=3", "train.progress=false",
    "train.tensorboard=false", "train.precision=fp32", "train.channels_last=false",
]
"""--set overrides on top of the shipped unit_digits config: a UNIT small enough for a step in milliseconds, in
fp32 whatever the config picks for the machine, so exactness tests compare like with like."""


def shape_image(rng, size: tuple[int, int], domain: str):
    """A PIL image with some structure (so reconstruction can be learnt): domain A dark squares on light
    gray, domain B bright discs on a dark colour."""
    import numpy as np
    from PIL import Image

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.integers(h // 4, 3 * h // 4 + 1), rng.integers(w // 4, 3 * w // 4 + 1)
    r = rng.integers(max(2, min(w, h) // 6), max(3, min(w, h) // 3) + 1)
    if domain == "A":
        image = np.full((h, w, 3), 200, np.uint8)
        image[(abs(yy - cy) <= r) & (abs(xx - cx) <= r)] = rng.integers(0, 80, 3, dtype=np.uint8)
    else:
        image = np.empty((h, w, 3), np.uint8)
        image[:] = rng.integers(0, 60, 3, dtype=np.uint8)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.integers(180, 256, 3, dtype=np.uint8)
    return Image.fromarray(image)


def make_image_folders(root: Path, counts: dict[str, int] | None = None, size: tuple[int, int] = (16, 16),
                       seed: int = 0) -> Path:
    """``root`` with trainA/ trainB/ testA/ testB/ of PNG shape images (``counts`` per folder)."""
    import numpy as np

    counts = counts or {"trainA": 6, "trainB": 6, "testA": 3, "testB": 3}
    rng = np.random.default_rng(seed)
    for folder, n in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape_image(rng, size, folder[-1]).save(root / folder / f"{folder[-1].lower()}{i}.png")
    return root


def tiny_config(source: Path | str, *overrides: str):
    """The unit_digits config shrunk by ``TINY``, on ``source``, plus ``overrides``."""
    from unpaired.config import build_config

    return build_config("unit", ["unit_digits"], [*TINY, f"data.source={source}", *overrides])


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_image_folders(tmp_path / "data")


def assert_identical(a, b, where: str = "state") -> None:
    """Exact equality of nested dicts/lists of tensors and plain values (NaNs at the same places are equal: a
    statistic not estimated is NaN in both)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                     and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
