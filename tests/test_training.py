"""The shared trainer (unpaired.training): exact resume, determinism, batches, checkpoints, logs, failures."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, assert_identical, make_image_folders, tiny_config
from omegaconf import OmegaConf
from PIL import Image

import unpaired.devices as devices
import unpaired.training.trainer as trainer_module
from unpaired.data import DataError, FolderSource, TensorSource
from unpaired.methods.unit import UNIT
from unpaired.training.batches import StepBatches, dither_if_flat, fixed_batch, iterate_steps
from unpaired.training.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    write_run_checkpoint,
)
from unpaired.training.logging import read_metrics
from unpaired.training.trainer import NonFiniteLossError, RunFolderError, Trainer, steps_by_deadline

# non-square training images: with flips on, every step draws a crop offset and a flip from its own seed
TRAIN_SIZE = (20, 16)
RUN = ["train.log_every=1", "data.flip=true", "optim.lr_policy=step", "optim.step_size=3", "optim.gamma=0.5"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_image_folders(tmp_path / "data", size=TRAIN_SIZE)


def fit(data: Path, run: Path, *overrides: str, resume: bool = False) -> Trainer:
    trainer = Trainer(tiny_config(data, *RUN, *overrides), run, resume=resume)
    trainer.fit()
    return trainer


def losses(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("speed/")} for r in read_metrics(run)]


# -------------------- exact resume and determinism


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_equals_uninterrupted_run(data, tmp_path, ema):
    ema_set = f"train.ema_decay={ema}"
    straight = fit(data, tmp_path / "straight", ema_set, "train.max_steps=4")
    fit(data, tmp_path / "split", ema_set, "train.max_steps=2")
    assert latest_checkpoint(tmp_path / "split").name == "step_00000002.pt"
    resumed = fit(data, tmp_path / "split", ema_set, "train.max_steps=4", resume=True)
    assert resumed.step == straight.step == 4

    for key, value in straight.method.state_dict().items():
        assert torch.equal(value, resumed.method.state_dict()[key]), key
    for group in straight.optimizers:
        assert_identical(straight.optimizers[group].state_dict(), resumed.optimizers[group].state_dict(),
                         f"optimizer {group}")
        assert_identical(straight.schedulers[group].state_dict(), resumed.schedulers[group].state_dict())
    if ema:
        assert straight.ema is not None and resumed.ema is not None
        assert_identical(straight.ema.state_dict(), resumed.ema.state_dict(), "ema")
        # and the EMA really differs from the live weights (it is being averaged)
        live = straight.method.nets["gen"].state_dict()
        assert any(not torch.equal(v, live[k]) for k, v in straight.ema.state_dict().items())
    assert_identical(straight.state_dict(), resumed.state_dict())  # everything, RNG included
    # the saved files agree too, and the logs hold one identical line per step
    a = load_checkpoint(tmp_path / "straight")
    b = load_checkpoint(tmp_path / "split")
    a.pop("path"), b.pop("path")
    assert_identical(a, b, "checkpoint")
    assert losses(tmp_path / "straight") == losses(tmp_path / "split")
    assert [r["step"] for r in losses(tmp_path / "split")] == [1, 2, 3, 4]


def test_resume_with_ema_switched_on_starts_from_the_weights(data, tmp_path):
    fit(data, tmp_path / "run", "train.max_steps=2")
    trainer = Trainer(tiny_config(data, *RUN, "train.max_steps=3", "train.ema_decay=0.5"), tmp_path / "run",
                      resume=True)
    assert_identical(trainer.ema.state_dict(), trainer.method.nets["gen"].state_dict())


def test_resume_with_other_architecture_is_refused(data, tmp_path):
    fit(data, tmp_path / "run", "train.max_steps=1")
    with pytest.raises(CheckpointError, match=r"step_00000001\.pt: does not fit this configuration"):
        Trainer(tiny_config(data, *RUN, "model.dim=4"), tmp_path / "run", resume=True)


def test_resume_without_checkpoint(data, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(tiny_config(data), tmp_path / "empty", resume=True)


def test_same_seed_same_parameters(data, tmp_path):
    a = fit(data, tmp_path / "a", "train.max_steps=3")
    b = fit(data, tmp_path / "b", "train.max_steps=3")
    assert_identical(a.method.state_dict(), b.method.state_dict())
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    c = fit(data, tmp_path / "c", "train.max_steps=3", "train.seed=1")
    assert any(not torch.equal(v, c.method.state_dict()[k]) for k, v in a.method.state_dict().items())


# -------------------- deterministic batches


@pytest.fixture
def sources(tmp_path) -> dict[str, FolderSource]:
    root = make_image_folders(tmp_path / "b", {"trainA": 5, "trainB": 3}, size=(24, 20))
    return {"a": FolderSource(root / "trainA", load_size=20), "b": FolderSource(root / "trainB", load_size=20)}


def test_batch_of_a_step_does_not_depend_on_history(sources):
    first = StepBatches(sources, 2, 16, seed=7, flip=True)[9]
    walked = StepBatches(sources, 2, 16, seed=7, flip=True)
    for t in (0, 4, 12, 3):
        walked[t]
    again = walked[9]
    assert set(first) == {"a", "b"} and first["a"].shape == (2, 3, 16, 16)
    for d in first:
        assert torch.equal(first[d], again[d])
    assert first["a"].min() >= -1 and first["a"].max() <= 1


def test_batches_differ_between_steps_and_seeds(sources):
    batches = StepBatches(sources, 2, 16, seed=7, flip=True)
    assert not torch.equal(batches[0]["a"], batches[1]["a"])
    assert not torch.equal(batches[0]["a"], StepBatches(sources, 2, 16, seed=8, flip=True)[0]["a"])


def test_batches_walk_each_domain_epoch_by_epoch(sources):
    batches = StepBatches(sources, 2, 16, seed=0, flip=False)
    a = [i for t in range(5) for i in batches.indices(0, t)]  # 10 draws from 5 images: 2 epochs
    assert sorted(a[:5]) == sorted(a[5:]) == [0, 1, 2, 3, 4]
    b = [i for t in range(3) for i in batches.indices(1, t)]  # 6 draws from 3 images
    assert sorted(b[:3]) == sorted(b[3:]) == [0, 1, 2]


def test_only_flat_images_are_dithered_by_at_most_one_grey_level():
    gen = torch.Generator().manual_seed(0)
    varied = torch.linspace(-1, 1, 3 * 8 * 8).reshape(3, 8, 8)
    state = gen.get_state()
    assert dither_if_flat(varied, gen) is varied and torch.equal(gen.get_state(), state)  # no draw either
    for level in (-1.0, 0.2, 1.0):
        flat = torch.full((3, 8, 8), level)
        dithered = dither_if_flat(flat, gen)
        assert (dithered - flat).abs().max() <= 1 / 127.5 and dithered.min() >= -1 and dithered.max() <= 1
        assert (dithered.amax(dim=(1, 2)) > dithered.amin(dim=(1, 2))).all()  # no channel flat any more
    one_flat_channel = varied.clone()
    one_flat_channel[0] = 0.5
    assert dither_if_flat(one_flat_channel, gen) is one_flat_channel  # the image as a whole is not flat


def test_workers_give_the_same_batches(sources):
    batches = StepBatches(sources, 2, 16, seed=3, flip=True)
    inline = list(iterate_steps(batches, 2, 7, num_workers=0))
    background = list(iterate_steps(StepBatches(sources, 2, 16, seed=3, flip=True), 2, 7, num_workers=2))
    assert len(inline) == len(background) == 5
    for x, y in zip(inline, background, strict=True):
        for d in x:
            assert torch.equal(x[d], y[d])


def test_empty_domain_is_refused(sources):
    empty = TensorSource(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), name="nothing")
    with pytest.raises(ValueError, match=r"no images in domain b \(nothing\)"):
        StepBatches({"a": sources["a"], "b": empty}, 1, 16, 0, False)


def test_fixed_batch_is_centre_crops(sources):
    batch = fixed_batch(sources, 4, 16)
    assert batch["a"].shape == (4, 3, 16, 16) and batch["b"].shape == (3, 3, 16, 16)
    centre = sources["a"][0][:, 2:18, 4:20]  # 20 x 24 image, 16 px centre crop
    assert torch.equal(batch["a"][0], centre.float() / 127.5 - 1)


# -------------------- checkpoints


def small_state(value: float = 1.0) -> dict:
    return {"method": "unit", "step": 1, "nets": {"w": torch.full((3, 3), value)}, "config": {"method": "unit"}}


def sized_state(value: float, kib: int) -> dict:
    """``small_state`` with ``kib`` KiB of weights."""
    return small_state(value) | {"nets": {"w": torch.full((kib * 256,), value)}}


def test_checkpoint_write_on_a_full_disk_keeps_the_last_one(tmpfs):
    folder = tmpfs("size=1m") / "checkpoints"  # a real disk with room for one 300 KiB checkpoint, not 300 + 800
    first = write_run_checkpoint(folder, 1, sized_state(1.0, 300), keep=3)
    with pytest.raises(CheckpointError) as info:
        write_run_checkpoint(folder, 2, sized_state(2.0, 800), keep=3)
    assert str(info.value) == (f"{folder}: no space left on device while writing step_00000002.pt; "
                               "the last checkpoint step_00000001.pt is intact")
    # overwriting an existing checkpoint in place fails the same way and leaves it whole
    with pytest.raises(CheckpointError, match=f"{first}: could not write checkpoint \\(no space left on device\\)"):
        save_checkpoint(first, sized_state(3.0, 800))
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step_00000001.pt"]  # no temp files
    assert latest_checkpoint(folder) == first
    state = load_checkpoint(folder)
    assert state["path"] == str(first) and torch.equal(state["nets"]["w"], torch.full((300 * 256,), 1.0))


@pytest.mark.parametrize(("options", "problem"), [("size=256k", "no space left on device"),
                                                   ("ro,size=256k", "read-only file system")])
def test_first_checkpoint_that_cannot_be_written_leaves_nothing(tmpfs, options, problem):
    disk = tmpfs(options)
    folder = disk / "checkpoints"
    with pytest.raises(CheckpointError) as info:
        write_run_checkpoint(folder, 1, sized_state(1.0, 300), keep=3)
    assert str(info.value) == f"{folder}: {problem} while writing step_00000001.pt; there is no earlier checkpoint"
    assert [p for p in disk.rglob("*") if not p.is_dir()] == []


def test_checkpoint_rotation_and_latest(tmp_path):
    folder = tmp_path / "checkpoints"
    for step in range(1, 6):
        write_run_checkpoint(folder, step, small_state(step), keep=2)
    assert sorted(p.name for p in folder.glob("step_*.pt")) == ["step_00000004.pt", "step_00000005.pt"]
    assert (folder / "latest").read_text() == "step_00000005.pt"
    assert latest_checkpoint(tmp_path) == folder / "step_00000005.pt"  # the run folder works too
    (folder / "latest").unlink()
    assert latest_checkpoint(folder) == folder / "step_00000005.pt"


def test_load_rejects_other_method(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, small_state() | {"method": "cyclegan"})
    with pytest.raises(CheckpointError, match=rf"{path}: checkpoint is from method 'cyclegan', not 'unit'"):
        load_checkpoint(path, method="unit")
    assert load_checkpoint(path)["method"] == "cyclegan"  # no method asked: read as is


def test_load_rejects_newer_format(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, small_state() | {"format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match=rf"{path}: checkpoint format {FORMAT_VERSION + 1} is newer"):
        load_checkpoint(path)


def test_load_rejects_non_checkpoint_files(tmp_path):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match=rf"{noise}: not a readable unpaired checkpoint"):
        load_checkpoint(noise)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match=rf"{other}: not an unpaired checkpoint"):
        load_checkpoint(other)
    truncated = tmp_path / "half.pt"
    save_checkpoint(truncated, small_state())
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=rf"{truncated}: not a readable"):
        load_checkpoint(truncated)


def test_load_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "method": "unit", "payload": Path("x")}, path)  # needs unpickling a class
    with pytest.raises(CheckpointError, match=rf"{path}: not a readable unpaired checkpoint"):
        load_checkpoint(path)


def test_load_missing_file_and_empty_folder(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=rf"{missing}: checkpoint file does not exist"):
        load_checkpoint(missing)
    with pytest.raises(CheckpointError, match=rf"{tmp_path}: no checkpoint in this folder"):
        load_checkpoint(tmp_path)


def test_trainer_checkpoint_is_plain_data(data, tmp_path):
    trainer = fit(data, tmp_path / "run", "train.max_steps=2", "train.ema_decay=0.5")
    path = latest_checkpoint(tmp_path / "run")
    state = torch.load(path, weights_only=True)
    assert state["format_version"] == FORMAT_VERSION and state["method"] == "unit" and state["step"] == 2
    assert set(state) >= {"config", "channels", "nets", "ema", "optimizers", "schedulers", "rng"}
    assert state["channels"] == {"a": 3, "b": 3}
    assert state["config"] == OmegaConf.to_container(trainer.cfg)
    assert set(state["optimizers"]) == {"dis", "gen"}
    assert_identical(state["nets"], trainer.method.state_dict())


# -------------------- failures


def test_nan_loss_names_step_and_term(data, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(data, *RUN, "train.max_steps=5"), tmp_path / "run")
    original = trainer.method.loss_terms

    def poisoned(group, step):
        terms = original(group, step)
        if group == "gen" and trainer.step == 2:  # the third step
            terms["recon_x/b"] = terms["recon_x/b"] * float("nan")
        return terms

    monkeypatch.setattr(trainer.method, "loss_terms", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"step 3: loss term 'gen/recon_x/b' is nan"):
        trainer.fit()
    assert isinstance(NonFiniteLossError("x"), FloatingPointError)


def test_infinite_loss_is_caught_too(data, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(data, *RUN), tmp_path / "run")
    original = trainer.method.loss_terms
    monkeypatch.setattr(trainer.method, "loss_terms",
                        lambda group, step: original(group, step) | ({"gan/a": torch.tensor(float("inf"))}
                                                                     if group == "dis" else {}))
    with pytest.raises(NonFiniteLossError, match=r"step 1: loss term 'dis/gan/a' is inf"):
        trainer.train_step(trainer.batches[0])


def test_existing_run_folder_needs_resume(data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match=rf"{run}: folder exists and is not empty; pass --resume"):
        Trainer(tiny_config(data), run)
    assert isinstance(RunFolderError("x"), FileExistsError)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # untouched
    empty = tmp_path / "empty"
    empty.mkdir()
    Trainer(tiny_config(data), empty)  # an empty folder is fine


def test_failed_start_leaves_no_run_folder(data, tmp_path):
    """Bad data or a bad model option found while setting up must not leave a half-made run folder, which
    would make the corrected command fail with 'folder exists'."""
    run = tmp_path / "run"
    good = make_image_folders(tmp_path / "good")
    shutil.rmtree(data / "trainB")
    with pytest.raises(DataError, match="trainB"):
        Trainer(tiny_config(data), run)
    with pytest.raises(ValueError, match=r"model\.shared_blocks"):
        Trainer(tiny_config(good, "model.shared_blocks=3"), run)
    assert not run.exists()
    Trainer(tiny_config(good), run)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


# -------------------- what a run writes


def test_run_folder_contents(data, tmp_path):
    run = tmp_path / "run"
    trainer = fit(data, run, "train.max_steps=4", "train.sample_every=2", "train.tensorboard=true",
                  "train.checkpoint_every=2", "train.log_every=2")
    assert OmegaConf.load(run / "config.yaml") == trainer.cfg

    records = read_metrics(run)
    assert [r["step"] for r in records] == [2, 4]
    terms = {f"loss/dis/gan/{d}" for d in "ab"} | {
        f"loss/gen/{t}/{d}" for t in ("gan", "recon_x", "kl", "cyc_x", "cyc_kl") for d in "ab"}
    for record in records:
        assert terms <= set(record), terms - set(record)
        assert {"total/dis", "total/gen", "lr/dis", "lr/gen", "speed/images_per_second"} <= set(record)
        assert all(isinstance(v, float) and np.isfinite(v) for k, v in record.items() if k != "step")
    # totals are the weighted sums of the raw terms (log_every=2 averages two steps of each)
    w = trainer.cfg.loss_weights
    gen = sum(records[0][f"loss/gen/{t}/{d}"] * w[t] for t in ("gan", "recon_x", "kl", "cyc_x", "cyc_kl")
              for d in "ab")
    assert records[0]["total/gen"] == pytest.approx(gen, rel=1e-5)
    assert records[1]["lr/gen"] == pytest.approx(trainer.cfg.optim.lr * 0.5)  # step schedule: halved at 3

    grids = sorted((run / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step_00000000.png", "step_00000002.png", "step_00000004.png"]
    with Image.open(grids[-1]) as grid:
        assert grid.mode == "RGB"
        rows = len(UNIT.visual_names)
        assert grid.height == rows * (64 + 2) + 2  # 16 px cells enlarged to 64, 2 px padding
        assert grid.width == 56 + 3 * (64 + 2) + 2  # label column + num_samples=3 columns
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*.pt")) == ["step_00000002.pt",
                                                                               "step_00000004.pt"]
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_bf16_and_channels_last_train(data, tmp_path):
    plain = fit(data, tmp_path / "plain", "train.max_steps=2")
    last = fit(data, tmp_path / "last", "train.max_steps=2", "train.channels_last=true")
    # same maths in another memory layout: the first step's losses agree to rounding; Adam's first steps
    # move each weight by about +-lr whatever the gradient's size, so a rounding-level gradient can flip one
    # element's step: weights agree within two steps of 2 * lr
    first_plain, first_last = losses(tmp_path / "plain")[0], losses(tmp_path / "last")[0]
    assert first_plain.keys() == first_last.keys()
    for key, value in first_plain.items():
        assert first_last[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    for key, value in plain.method.state_dict().items():
        torch.testing.assert_close(last.method.state_dict()[key], value, rtol=0, atol=2 * 2 * plain.cfg.optim.lr)
    bf16 = fit(data, tmp_path / "bf16", "train.max_steps=2", "train.precision=bf16", "train.channels_last=true")
    records = read_metrics(tmp_path / "bf16")
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(v) for r in records for v in r.values())
    assert all(v.dtype == torch.float32 for v in bf16.method.state_dict().values() if v.is_floating_point())
    drift = max((bf16.method.state_dict()[k] - v).abs().max().item() for k, v in plain.method.state_dict().items())
    assert 0 < drift < 0.01  # bf16 rounding moves the weights a little, not a lot


@pytest.mark.parametrize(("cpuinfo", "speedup", "expected"), [
    ("flags : avx512f avx512_bf16", 2.0, "bf16"),  # e.g. AMD EPYC (Zen 4): bf16 convolutions ~2x
    ("flags : avx512f avx512_bf16", 0.6, "fp32"),  # e.g. a Xeon whose VM hides AMX: bf16 at 0.6x
    ("flags : avx512f amx_bf16", 3.0, "bf16"),
    ("flags : avx2 avx512f", 5.0, "fp32"),  # no native bf16: not even measured
])
def test_auto_precision_takes_bf16_only_where_it_measured_faster(monkeypatch, cpuinfo, speedup, expected):
    measured = []
    monkeypatch.setattr(devices, "cpu_info", lambda: cpuinfo)
    monkeypatch.setattr(devices, "cpu_bf16_speedup", lambda threads: measured.append(threads) or speedup)
    assert devices.resolve_precision("auto", torch.device("cpu")) == expected
    assert bool(measured) == ("bf16" in cpuinfo)
    assert devices.resolve_precision("fp32", torch.device("cpu")) == "fp32"


def test_cpu_bf16_speedup_is_a_measurement_that_leaves_the_random_stream_alone():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    devices.cpu_bf16_speedup.cache_clear()
    speedup = devices.cpu_bf16_speedup(torch.get_num_threads())
    assert torch.equal(torch.rand(4), expected)
    assert 0.05 < speedup < 20  # a ratio of two timings of the same convolution


def test_resumed_auto_run_keeps_the_precision_it_started_with(data, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "resolve_precision", lambda name, device: "bf16")
    first = fit(data, tmp_path / "run", "train.max_steps=1", "train.precision=auto")
    assert first.precision == "bf16" and load_checkpoint(tmp_path / "run")["precision"] == "bf16"
    monkeypatch.setattr(trainer_module, "resolve_precision", lambda name, device: "fp32")  # measured otherwise now
    resumed = fit(data, tmp_path / "run", "train.max_steps=2", "train.precision=auto", resume=True)
    assert resumed.precision == "bf16"
    assert Trainer(tiny_config(data, *RUN, "train.precision=auto"), tmp_path / "new").precision == "fp32"


def test_every_process_takes_the_precision_of_process_0(data, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "resolve_precision", lambda name, device: "fp32")  # this process measured
    monkeypatch.setattr(trainer_module, "gather_objects", lambda obj, world: ["bf16", obj])  # process 0 said bf16
    assert Trainer(tiny_config(data, *RUN, "train.precision=auto"), tmp_path / "run").precision == "bf16"


def test_max_minutes_stops_with_a_checkpoint(data, tmp_path):
    trainer = Trainer(tiny_config(data, *RUN, "train.max_minutes=0.000001", "train.max_steps=1000"), tmp_path / "r")
    result = trainer.fit()
    assert result.stopped_by == "max_minutes" and result.step == 1
    assert result.checkpoint == tmp_path / "r" / "checkpoints" / "step_00000001.pt"
    assert result.grid is not None and result.grid.name == "step_00000001.png"


def test_a_time_budget_sets_the_progress_bar_to_the_steps_it_allows(monkeypatch):
    """10 steps in the first 5 s (2 steps/s) with 20 s left: the run ends at step 50, not at max_steps."""
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: 105.0)
    assert steps_by_deadline(10, 0, started=100.0, deadline=125.0, max_steps=5000) == 50
    assert steps_by_deadline(10, 0, started=100.0, deadline=125.0, max_steps=30) == 30  # max_steps first
    assert steps_by_deadline(10, 0, started=100.0, deadline=104.0, max_steps=5000) == 10  # past the deadline
    assert steps_by_deadline(0, 0, started=100.0, deadline=125.0, max_steps=5000) == 5000  # nothing measured yet


def test_interrupt_keeps_progress_and_resume_is_exact(data, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) between steps: the steps done so far are saved, and resuming matches a run
    that was never stopped."""
    straight = fit(data, tmp_path / "straight", "train.max_steps=4")
    trainer = Trainer(tiny_config(data, *RUN, "train.max_steps=4"), tmp_path / "split")
    original = trainer.train_step

    def stop_before_third(batch):
        if trainer.step == 2:
            raise KeyboardInterrupt
        return original(batch)

    monkeypatch.setattr(trainer, "train_step", stop_before_third)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert latest_checkpoint(tmp_path / "split").name == "step_00000002.pt"
    resumed = fit(data, tmp_path / "split", "train.max_steps=4", resume=True)
    assert_identical(straight.state_dict(), resumed.state_dict())


def test_stop_inside_a_step_saves_no_half_updated_state(data, tmp_path, monkeypatch):
    """A stop after the 'dis' update but before the 'gen' one must not save the half-updated networks as a
    checkpoint: the last whole step's checkpoint stands and resuming from it is exact."""
    straight = fit(data, tmp_path / "straight", "train.max_steps=5", "train.checkpoint_every=2")
    trainer = Trainer(tiny_config(data, *RUN, "train.max_steps=5", "train.checkpoint_every=2"), tmp_path / "split")
    original = trainer.method.loss_terms

    def stop_in_gen_update(group, step):
        if group == "gen" and trainer.step == 3:  # inside the fourth step
            raise KeyboardInterrupt
        return original(group, step)

    monkeypatch.setattr(trainer.method, "loss_terms", stop_in_gen_update)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert latest_checkpoint(tmp_path / "split").name == "step_00000002.pt"  # not a "step 3" with step 4's dis
    resumed = fit(data, tmp_path / "split", "train.max_steps=5", "train.checkpoint_every=2", resume=True)
    assert_identical(straight.state_dict(), resumed.state_dict())


# -------------------- a killed process


def test_kill_9_then_resume(tmp_path):
    data = make_image_folders(tmp_path / "data", size=TRAIN_SIZE)
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "unpaired.cli", "train"]
    sets = [a for s in [*TINY, "train.checkpoint_every=1", "train.keep_checkpoints=3", "train.log_every=1",
                        "train.max_steps=100000"] for a in ("--set", s)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([*cli, "--config", "unit_digits", "--data", str(data), "--out", str(run), *sets],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while len(list((run / "checkpoints").glob("step_*.pt"))) < 2:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no two checkpoints after 120 s"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    killed_at = load_checkpoint(run)["step"]
    target = killed_at + 3
    done = subprocess.run([*cli, "--resume", str(run), "--set", f"train.max_steps={target}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    state = load_checkpoint(run, method="unit")
    assert state["step"] == target
    for path in (run / "checkpoints").glob("step_*.pt"):  # nothing corrupted
        assert load_checkpoint(path)["step"] <= target
    assert [r["step"] for r in read_metrics(run)] == list(range(1, target + 1))  # the killed tail was dropped


def test_sigterm_finishes_the_step_saves_and_exits_130(tmp_path):
    """SIGTERM (as sent by schedulers and `kill`) lets the current step finish, saves it, exits 130; resume is
    clean, and no step is lost or repeated in the log."""
    data = make_image_folders(tmp_path / "data", size=TRAIN_SIZE)
    run = tmp_path / "run"
    sets = [a for s in [*TINY, "train.checkpoint_every=100000", "train.log_every=1", "train.max_steps=100000"]
            for a in ("--set", s)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "unpaired.cli", "train"]
    process = subprocess.Popen([*cli, "--config", "unit_digits", "--data", str(data), "--out", str(run), *sets],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while len(read_metrics(run)) < 3:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no training progress after 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode()
    saved = load_checkpoint(run, method="unit")["step"]
    assert saved >= 3  # the steps done before the signal were kept (checkpoint_every alone would save none)
    done = subprocess.run([*cli, "--resume", str(run), "--set", f"train.max_steps={saved + 2}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [r["step"] for r in read_metrics(run)] == list(range(1, saved + 3))
