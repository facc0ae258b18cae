"""Test settings: real data sets come from UNPAIRED_DATA, defaulting to ../shared/data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if "UNPAIRED_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["UNPAIRED_DATA"] = str(SHARED_DATA)

torch.set_num_threads(min(2, os.cpu_count() or 1))


def need_data(*relative: str) -> Path:
    """The data root, or skip the test with the exact files that are missing."""
    from unpaired.data import data_root

    root = data_root()
    missing = [r for r in relative if not (root / r).exists()]
    if missing:
        pytest.skip(f"real data not found: {', '.join(str(root / m) for m in missing)} "
                    "(set UNPAIRED_DATA to the folder holding them)")
    return root
