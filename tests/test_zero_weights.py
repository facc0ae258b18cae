"""A loss weight of 0 switches its term off for the run, in every group (discriminators too): the term is neither
summed nor logged, and the forward work that only it needs is skipped (issue 36, conventions the code keeps)."""

from __future__ import annotations

import dataclasses

import pytest
from test_every_method import data_folders, data_kind, tiny_config

from unpaired.methods import METHODS
from unpaired.training.trainer import Trainer

STEPS = 2
"""Two steps: TUNIT's tiny warm-up ends after one, so its joint phase (G and D) runs too."""

VARIANTS = {"unit": ["model.gan_type=wgan-gp"], "cyclegan": ["model.gan_type=wgan-gp"]}
"""Extra runs where a term is off by default: the WGAN-GP penalty ``gp`` only exists with ``gan_type: wgan-gp``."""

CASES = [(name, key, extra)
         for name in METHODS.names()
         for extra in [[], *([v] for v in VARIANTS.get(name, []))]
         for key in (f.name for f in dataclasses.fields(METHODS.get(name).Weights))]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return data_folders(tmp_path_factory.mktemp("data"))


def zero_run(folders, tmp_path, name: str, key: str, *extra: str) -> Trainer | None:
    """A tiny trainer of ``name`` with ``loss_weights.<key>=0``, or None where the method's own check refuses that
    zero, with an error that must name the term."""
    source = folders[data_kind(METHODS.get(name))]
    try:
        return Trainer(tiny_config(name, source, STEPS, *extra, f"loss_weights.{key}=0"), tmp_path / "run")
    except ValueError as error:
        assert key in str(error), f"{name}: refusing {key}=0 must name the term: {error}"
        return None


def count_calls(modules) -> list[int]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    for module in modules:
        module.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize(("name", "key", "extra"), CASES, ids=[f"{n}-{k}{'-' + '+'.join(e) if e else ''}"
                                                               for n, k, e in CASES])
def test_a_zero_weight_switches_its_term_off(folders, tmp_path, name, key, extra):
    trainer = zero_run(folders, tmp_path, name, key, *extra)
    if trainer is None:
        return
    for t in range(STEPS):
        logged = trainer.train_step(trainer.batches[t])
        assert logged, f"{name}: no group trained with {key}=0"
        off = [k for k in logged if k.startswith("loss/") and k.split("/")[2] == key]
        assert not off, f"{name}: {key}=0 still logs {off}"
        for group in trainer.method.groups:  # a group left without terms waits: no total either
            if not any(k.startswith(f"loss/{group}/") for k in logged):
                assert f"total/{group}" not in logged
    assert trainer.step == STEPS


@pytest.mark.parametrize("name", ["cyclegan", "unit", "munit", "template"])
def test_gan_zero_runs_no_discriminator(folders, tmp_path, name):
    """Their discriminators serve the ``gan`` terms only (UNIT's ``cls`` head is off without ``model.classes``):
    with ``gan`` 0 no discriminator runs in either group, and the discriminators wait."""
    trainer = zero_run(folders, tmp_path, name, "gan")
    calls = count_calls(trainer.method.nets["dis"].values())
    logged = trainer.train_step(trainer.batches[0])
    assert calls[0] == 0 and "total/dis" not in logged and "total/gen" in logged


@pytest.mark.parametrize("name", ["cyclegan", "unit"])
def test_gan_zero_keeps_the_penalty_alone(folders, tmp_path, name):
    """WGAN-GP with ``gan`` 0: D runs for the penalty only (the gradient-penalty's forward), and trains on it."""
    trainer = zero_run(folders, tmp_path, name, "gan", "model.gan_type=wgan-gp")
    logged = trainer.train_step(trainer.batches[0])
    assert "total/dis" in logged and all(k.split("/")[2] == "gp" for k in logged if k.startswith("loss/dis/"))


def test_tunit_discriminator_runs_on_what_its_active_terms_need(folders, tmp_path):
    """TUNIT's D: with ``gan`` 0 it judges the reals for R1 only (one call, and none for G); with ``r1`` 0 it runs
    as usual (reals, fakes, then G's adversarial term)."""
    counts = {}
    for key in ("gan", "r1"):
        trainer = zero_run(folders, tmp_path / key, "tunit", key)
        trainer.train_step(trainer.batches[0])  # E's warm-up: D waits
        calls = count_calls([trainer.method.nets["dis"]])
        logged = trainer.train_step(trainer.batches[1])
        counts[key] = calls[0]
        assert "total/dis" in logged
    assert counts == {"gan": 1, "r1": 3}  # r1 0: D on reals and on fakes, then G's gan; gan 0: the reals alone
