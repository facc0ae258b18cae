"""pix2pix: its U-Net's skips carry the input, it trains on aligned pairs drawn together and refuses unpaired data,
and it trains, resumes and translates through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folders
from PIL import Image
from test_cli import assert_error, run_cli
from test_paired import make_pairs

from unpaired.config import build_config
from unpaired.data import DataError
from unpaired.methods.pix2pix import Pix2Pix
from unpaired.nn.generators import UNetGenerator
from unpaired.training.batches import StepBatches
from unpaired.training.trainer import Trainer

TINY = ["model.dim=8", "model.dis_dim=8", "model.dis_layers=2", "data.image_size=16", "train.batch_size=2",
        "train.progress=false", "train.tensorboard=false", "train.num_samples=2", "train.log_every=1"]


def space_to_depth_unet(channels: int, levels: int) -> UNetGenerator:
    """An untrained U-Net whose weights are all zero but two: the outermost down conv copies each 2x2 block of the
    input into 4 channels per input channel (space to depth), and the output conv reads those channels back from the
    outermost *skip* (depth to space). Every path through the bottleneck is zero, so the output is exactly
    tanh(leaky_relu(x)) if and only if the skip joins the mirrored features at the right place and size."""
    net = UNetGenerator(channels, channels, dim=4 * channels, n_down=levels, norm="none", skips=True)
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    down, up = net.down[0][0].weight, net.out[0].weight  # [4c, c, 4, 4] and [2 * 4c, c, 4, 4]
    for c in range(channels):
        for a in range(2):
            for b in range(2):
                k = 4 * c + 2 * a + b
                down.data[k, c, 1 + a, 1 + b] = 1.0  # down(i, j) = x(2i + a, 2j + b)
                up.data[4 * channels + k, c, 1 + a, 1 + b] = 1.0  # skip channels follow the up path's
    return net


@pytest.mark.parametrize(("size", "levels"), [(16, 4), (32, 3), (32, 5)])
def test_unet_skips_carry_the_input_at_the_right_shapes(size, levels):
    net = space_to_depth_unet(3, levels).eval()
    x = torch.rand(2, 3, size, size) * 0.9  # leaky_relu is the identity on positive inputs
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    torch.testing.assert_close(torch.atanh(y), x, atol=1e-5, rtol=1e-5)
    no_skips = UNetGenerator(3, 3, dim=12, n_down=levels, norm="none", skips=False)
    assert no_skips.out[0].in_channels == 12  # without skips the output conv never sees the outermost features


def test_unet_down_to_one_pixel_by_default():
    method = Pix2Pix(Pix2Pix.Config(dim=4, dis_dim=4, dis_layers=2), {"gan": 1.0, "l1": 100.0}, {"a": 3, "b": 1}, 32)
    assert method.size_multiple == 32 and len(method.nets["gen"]["a2b"].down) == 5  # 32 -> 1x1: log2(32) levels
    assert method.nets["dis"]["b"][0][0].in_channels == 3 + 1  # D judges (x, y): input and output concatenated
    y = method.translate(torch.rand(2, 3, 32, 32) * 2 - 1, "a2b")
    assert y.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="one-sided"):
        method.translate(torch.zeros(1, 1, 32, 32), "b2a")


def test_pairs_are_drawn_aligned_with_one_crop_and_flip(tmp_path):
    folder = make_pairs(tmp_path / "pairs", count=8, size=24, offset=30)  # B = A + 30 in every pixel
    cfg = build_config("pix2pix", [], [*TINY, f"data.source=pairs:{folder}@0.75", "data.load_size=24"])
    trainer = Trainer(cfg, tmp_path / "run")
    sources = trainer.domains.sources()
    assert len(sources["a"]) == len(sources["b"]) == 6  # both halves of every train file, not disjoint files
    assert isinstance(trainer.batches, StepBatches) and trainer.batches.aligned
    for step in range(4):  # random 16 px crops of 24 px halves, random flips: the same for both halves
        batch = trainer.batches[step]
        difference = (batch["b"] - batch["a"]) * 127.5
        torch.testing.assert_close(difference, torch.full_like(difference, 30.0), atol=1.01, rtol=0)


@pytest.mark.parametrize("data", ["two_folders", "digits"])
def test_unpaired_data_is_refused_in_one_clear_error(tmp_path, data):
    source = str(make_image_folders(tmp_path / "unpaired")) if data == "two_folders" else "mnist:usps"
    cfg = build_config("pix2pix", [], [*TINY, f"data.source={source}"])
    with pytest.raises(DataError, match=r"unpaired data, but this method trains on aligned pairs.*pairs:DIR"):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_l1_term_pulls_the_output_to_the_paired_target():
    """With the adversarial term off, a few steps of the generator's objective fit a paired mapping."""
    torch.manual_seed(0)
    method = Pix2Pix(Pix2Pix.Config(dim=8, num_downs=2, dis_dim=8, dis_layers=2, dropout=0.0),
                     {"gan": 0.0, "l1": 100.0}, {"a": 3, "b": 3}, 16)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    batch = {"a": x, "b": -x}  # the map to learn: invert every pixel
    assert method.loss_terms("dis", method.forward_step(batch)) == {}  # gan off: D does not run
    optimizer = torch.optim.Adam(method.nets["gen"].parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = method.loss_terms("gen", method.forward_step(batch))["l1/b"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def cli_train_resume_translate(run: Path, data: str, sets: list[str], inputs: Path, *first: str) -> None:
    """``unpaired train`` (``first`` + --data, --out, ``sets``) for 2 steps, then resumed to 3, then ``unpaired
    translate`` of ``inputs`` with the run into ``inputs``_a2b/: each exits 0 and writes its files."""
    for command in ([*first, "--data", data, "--out", run, *sets, "--set", "train.max_steps=2"],
                    ["--resume", run, "--set", "train.max_steps=3"]):
        code, _, err = run_cli("train", *command)
        assert code == 0, err
    assert {p.name for p in (run / "checkpoints").glob("step_*.pt")} >= {"step_00000002.pt", "step_00000003.pt"}
    assert any((run / "samples").glob("*.png"))
    output = inputs.with_name(inputs.name + "_a2b")
    code, _, err = run_cli("translate", "--checkpoint", run, "--input", inputs, "--output", output)
    assert code == 0, err
    assert sorted(p.name for p in output.iterdir()) == sorted(p.name for p in inputs.iterdir())


def random_images(folder: Path, count: int, size: int = 16) -> Path:
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    return folder


def test_pix2pix_trains_resumes_and_translates_through_the_cli(tmp_path):
    folder = make_pairs(tmp_path / "pairs", count=6, size=16)
    sets = [a for o in [*TINY, "model.num_downs=2"] for a in ("--set", o)]
    cli_train_resume_translate(tmp_path / "run", f"pairs:{folder}@0.67", sets, random_images(tmp_path / "aerial", 2),
                               "--method", "pix2pix")
    refused = run_cli("train", "--method", "pix2pix", "--data", "mnist:usps", "--out", tmp_path / "bad", *sets)
    assert_error(refused, "mnist:usps", "aligned pairs")
