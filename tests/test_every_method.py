"""Every registered method, found through ``METHODS`` (a new method is covered by adding its file): a tiny run
trains, writes its sample grid, saves, resumes exactly, loads with ``unpaired.load`` and translates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import TINY, assert_identical, make_image_folders
from omegaconf import OmegaConf
from test_paired import make_pairs

import unpaired
from unpaired.methods import METHODS
from unpaired.training.checkpoint import latest_checkpoint, load_checkpoint
from unpaired.training.trainer import Trainer

CONFIGS = Path(unpaired.__file__).parent / "configs"

SHRINK = {
    "dim": 8, "n_res": 2, "dis_dim": 8, "dis_layers": 2, "dis_scales": 2, "mlp_dim": 16, "style_dim": 8,
    "k": 3, "queue_size": 16, "guide_dim": 4, "guide_stages": 3, "content_size": 8, "warmup_steps": 1,
    "num_downs": 2,
}
"""model option -> tiny value, applied to each method whose ``Config`` has the option: networks of width 8 on
16 px images, a few pseudo domains and a short queue, and a warm-up over by step 2 (so both phases train)."""

RUN = [opt for opt in TINY if not opt.startswith("model.")] + [
    "train.ema_decay=0.5", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=1000",
    "optim.lr_policy=constant"]
"""Training options of every run: conftest's tiny training settings (16 px, batch 2, fp32), with an EMA copy of
the generators, a log line per step and the sample grid at step 2; a constant learning rate, as a decay is
scheduled over ``train.max_steps``, which differs between the 2-step run resumed and the 3-step one."""


def shipped_config(method: str) -> list[str]:
    """The method's shipped digits config (each method's smallest runnable one, a ``*_digits.yaml`` naming it as
    its ``method``: tunit_digits is tunit_peer's), or none: its defaults."""
    return [p.stem for p in sorted(CONFIGS.glob("*_digits.yaml")) if OmegaConf.load(p).method == method][:1]


def tiny_config(method: str, source: Path | str, steps: int, *overrides: str):
    """The tiny run of ``method`` (its shipped digits config shrunk), then ``overrides``."""
    from unpaired.config import build_config

    fields = {f.name for f in dataclasses.fields(METHODS.get(method).Config)}
    shrink = [f"model.{name}={value}" for name, value in SHRINK.items() if name in fields]
    return build_config(method, shipped_config(method),
                        [*shrink, *RUN, f"data.source={source}", f"train.max_steps={steps}", *overrides])


def data_folders(root: Path) -> dict[str, str]:
    """``--data`` by the kind a method declares (``data_kind``): trainA/ trainB/ (two domains), one folder of mixed
    images, or aligned A|B pairs (the first 6 of 8 for training), written under ``root``."""
    return {"two": str(make_image_folders(root / "two")),
            "one": str(make_image_folders(root / "one", {"mixed": 8}) / "mixed"),
            "pairs": f"pairs:{make_pairs(root / 'pairs', count=8)}@0.75"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    return data_folders(tmp_path_factory.mktemp("data"))


def data_kind(method: type) -> str:
    """Which data of ``folders`` a method learns from, by what it declares."""
    return "pairs" if method.paired_data else "one" if method.single_domain else "two"


def test_every_module_of_the_package_registers_a_method():
    modules = {p.stem for p in Path(unpaired.methods.__file__).parent.glob("*.py")} - {"__init__", "base"}
    registered = {METHODS.get(name).__module__.rsplit(".", 1)[-1] for name in METHODS.names()}
    assert modules - {"one_to_one"} <= registered and "template" in METHODS.names()  # one_to_one: a shared base


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_resumes_exactly_loads_and_translates(folders, tmp_path, name):
    source = folders[data_kind(METHODS.get(name))]

    def fit(folder: str, steps: int, resume: bool = False) -> Trainer:
        trainer = Trainer(tiny_config(name, source, steps), tmp_path / folder, resume=resume)
        assert trainer.fit().step == steps
        return trainer

    straight = fit("straight", 3)
    fit("split", 2)
    assert latest_checkpoint(tmp_path / "split").name == "step_00000002.pt"
    assert load_checkpoint(tmp_path / "split")["method"] == name
    assert any((tmp_path / "split").rglob("*.png")), "no sample grid written at step 2"
    resumed = fit("split", 3, resume=True)
    assert resumed.step == 3 and latest_checkpoint(tmp_path / "split").name == "step_00000003.pt"
    assert_identical(straight.state_dict(), resumed.state_dict())  # weights, EMA, optimisers, schedule, RNG

    translator = unpaired.load(tmp_path / "split", device="cpu")
    method = translator.method
    assert type(method) is METHODS.get(name) and translator.step == 3 and translator.uses_ema
    assert method.directions and set(method.directions) <= {"a2b", "b2a"}
    trained = unpaired.load(tmp_path / "split", device="cpu", use_ema=False)
    assert_identical(trained.method.state_dict(), resumed.method.state_dict(), "loaded")  # buffers came along
    resumed.method.eval()
    for direction in ("a2b", "b2a"):
        source_domain = direction[0]
        x = torch.rand(2, method.channels[source_domain], 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
        # one collection has no target domain of its own: the target is given by an example image
        options = {"reference": x[:1]} if method.single_domain else {}
        if direction not in method.directions:  # one-sided: refused
            with pytest.raises(ValueError, match=direction if method.single_domain else "one-sided"):
                translator.translate(x, direction, **options)
            continue
        y = translator.translate(x, direction, **options)
        assert y.shape == (2, method.channels[direction[-1]], 16, 16), direction
        assert torch.isfinite(y).all() and y.abs().max() <= 1, direction
        with torch.no_grad():  # the trained weights translate as in the trainer (styles drawn from one seed)
            torch.manual_seed(1)
            expected = resumed.method.translate(x, direction, **options)
            torch.manual_seed(1)
            assert torch.equal(trained.translate(x, direction, **options), expected), direction
