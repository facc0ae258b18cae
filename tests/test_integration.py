"""Integration on the real digit sets under UNPAIRED_DATA (skipped, naming the missing files, without them)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import need_data
from PIL import Image

from unpaired.config import build_config
from unpaired.data import open_domains
from unpaired.training.checkpoint import load_checkpoint
from unpaired.training.logging import read_metrics
from unpaired.training.trainer import Trainer

pytestmark = pytest.mark.data

DIGIT_FILES = ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz",
               "mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz", "usps/usps.h5")


@pytest.fixture(scope="module")
def digits_root():
    return need_data(*DIGIT_FILES)


@pytest.mark.parametrize(("split", "counts"), [("train", (60000, 7291)), ("test", (10000, 2007))])
def test_mnist_usps_domains(digits_root, split, counts):
    pair = open_domains("mnist:usps", split, image_size=32, channels=None, root=digits_root)
    assert (len(pair.a), len(pair.b)) == counts
    assert pair.a.channels == pair.b.channels == 1
    for source in (pair.a, pair.b):
        first = source[0]
        assert first.shape == (1, 32, 32) and first.dtype == torch.uint8
        assert first.max() > 200 and first.min() < 30  # a light digit on a dark background, not a blank
        assert source.labels is not None and len(source.labels) == len(source)
        assert set(source.labels[:500].tolist()) == set(range(10))
    assert f"({counts[0]} images)" in pair.description and f"({counts[1]} images)" in pair.description


def test_unit_digits_trains_on_mnist_usps(digits_root, tmp_path):
    cfg = build_config(None, ["unit_digits"], ["data.source=mnist:usps", "train.batch_size=8", "train.max_steps=3",
                                               "train.log_every=1", "train.progress=false",
                                               "train.tensorboard=false"])
    trainer = Trainer(cfg, tmp_path / "run")
    result = trainer.fit()
    assert result.step == 3 and result.stopped_by == "max_steps"
    assert trainer.channels == {"a": 1, "b": 1}
    assert result.grid == tmp_path / "run" / "samples" / "step_00000003.png"
    with Image.open(result.grid) as grid:
        # 6 rows (x_a, x_ab, x_aba, x_b, x_ba, x_bab) of num_samples=12 digits enlarged from 32 to 64 px
        assert grid.size == (56 + 12 * (64 + 2) + 2, 6 * (64 + 2) + 2)
    state = load_checkpoint(result.checkpoint, method="unit")
    assert state["step"] == 3 and state["config"]["data"]["source"] == "mnist:usps"
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["total/gen"]) and math.isfinite(r["total/dis"]) for r in records)
