"""torchrun data parallelism on CPU (Gloo): N processes with batch B == one process with batch N*B."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import TINY, make_image_folders

from unpaired.data import FolderSource
from unpaired.training.batches import StepBatches
from unpaired.training.checkpoint import load_checkpoint

# no sampling noise, so both runs compute the same maths and differ only in float summation order
SETTINGS = [*TINY, "model.latent_noise=0", "train.max_steps=3", "train.checkpoint_every=3", "train.log_every=1"]


def sets(*overrides: str) -> list[str]:
    return [a for s in overrides for a in ("--set", s)]


def test_process_slices_make_up_the_global_batch(tmp_path):
    data = make_image_folders(tmp_path / "d", counts={"trainA": 7, "trainB": 5, "testA": 1, "testB": 1})
    sources = {"a": FolderSource(data / "trainA", 3, 16), "b": FolderSource(data / "trainB", 3, 16)}
    whole = StepBatches(sources, 4, 16, seed=3, flip=True)
    parts = [StepBatches(sources, 2, 16, seed=3, flip=True, rank=r, world_size=2) for r in range(2)]
    for step in (0, 1, 5):
        for d in "ab":
            assert torch.equal(whole[step][d], torch.cat([p[step][d] for p in parts]))


@pytest.mark.timeout(600)
def test_two_processes_match_one_with_the_double_batch(tmp_path):
    data = make_image_folders(tmp_path / "data")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    base = ["-m", "unpaired.cli", "train", "--config", "unit_digits", "--data", str(data)]
    single = subprocess.run([sys.executable, *base, "--out", str(tmp_path / "one"),
                             *sets(*SETTINGS, "train.batch_size=4")], capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr
    pair = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *base, "--out", str(tmp_path / "two"), *sets(*SETTINGS, "train.batch_size=2")],
                          capture_output=True, text=True, env=env, timeout=500)
    assert pair.returncode == 0, pair.stderr[-3000:]
    one, two = load_checkpoint(tmp_path / "one")["nets"], load_checkpoint(tmp_path / "two")["nets"]
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-4, msg=key)
    assert len(list((tmp_path / "two" / "checkpoints").glob("step_*.pt"))) == 1  # written once, by process 0
