"""Typed run configuration (unpaired.config): merge order, loud errors, shipped configs, round trips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from unpaired.config import (
    PACKAGED_CONFIGS,
    ConfigError,
    build_config,
    config_from_dict,
    find_config_file,
    to_dict,
    to_object,
    weights_dict,
)
from unpaired.methods import METHODS
from unpaired.methods.unit import UNITConfig, UNITWeights
from unpaired.training.trainer import config_for_resume


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_method_dataclasses():
    cfg = build_config("unit")
    assert cfg.method == "unit"
    assert to_object(cfg, "model") == UNITConfig()
    assert weights_dict(cfg) == {k: float(v) for k, v in vars(UNITWeights()).items()}
    assert cfg.optim.lr == 1e-4 and cfg.train.batch_size == 1 and cfg.data.image_size == 256


def test_merge_order_defaults_then_yaml_then_set(tmp_path):
    first = write_yaml(tmp_path / "first.yaml", "method: unit\nmodel:\n  dim: 16\n  n_res: 3\ntrain:\n  seed: 5\n")
    second = write_yaml(tmp_path / "second.yaml", "model:\n  n_res: 2\noptim:\n  lr: 0.5\n")
    cfg = build_config(None, [first, second], ["model.dim=8", "train.batch_size=7"])
    assert cfg.model.dim == 8  # --set beats the yaml
    assert cfg.model.n_res == 2  # the later yaml beats the earlier one
    assert cfg.train.seed == 5  # yaml beats the default
    assert cfg.optim.lr == 0.5
    assert cfg.train.batch_size == 7  # --set beats the default
    assert cfg.model.n_down == UNITConfig().n_down  # untouched keys keep the dataclass default
    assert cfg.loss_weights.recon_x == UNITWeights().recon_x
    # later --set beats an earlier one
    assert build_config("unit", [first], ["model.dim=8", "model.dim=12"]).model.dim == 12


def test_set_values_are_typed():
    cfg = build_config("unit", [], ["train.max_minutes=1.5", "data.flip=false", "data.channels=1",
                                    "model.gan_type=hinge"])
    assert cfg.train.max_minutes == 1.5 and cfg.data.flip is False and cfg.data.channels == 1
    assert cfg.model.gan_type == "hinge"
    assert isinstance(build_config("unit", [], ["optim.lr=1"]).optim.lr, float)


@pytest.mark.parametrize(("override", "key"), [("model.dimm=3", "model.dimm"), ("nokey=1", "nokey"),
                                               ("loss_weights.gann=1", "loss_weights.gann"),
                                               ("train.steps=4", "train.steps")])
def test_unknown_key_names_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"--set \(key '{key}'\).*not in"):
        build_config("unit", [], [override])


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", "method: unit\ntrain:\n  batchsize: 4\n")
    with pytest.raises(ConfigError) as info:
        build_config(None, [path])
    assert str(path) in str(info.value) and "train.batchsize" in str(info.value)


@pytest.mark.parametrize(("override", "key"), [("model.dim=abc", "model.dim"), ("data.flip=maybe", "data.flip"),
                                               ("train.batch_size=1.5", "train.batch_size"),
                                               ("optim.lr=fast", "optim.lr")])
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"--set \(key '{key}'\)"):
        build_config("unit", [], [override])


def test_wrong_type_in_yaml(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", "method: unit\nmodel:\n  n_res: many\n")
    with pytest.raises(ConfigError, match=r"model\.n_res"):
        build_config(None, [path])


def test_malformed_set_and_yaml(tmp_path):
    with pytest.raises(ConfigError, match="--set"):
        build_config("unit", [], ["model.dim"])
    broken = write_yaml(tmp_path / "broken.yaml", "method: unit\nmodel: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"{broken}: not valid YAML"):
        build_config(None, [broken])
    listing = write_yaml(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        build_config("unit", [listing])


def test_config_for_another_method(tmp_path):
    path = write_yaml(tmp_path / "munit.yaml", "method: munit\nmodel:\n  dim: 8\n")
    with pytest.raises(ConfigError, match=rf"{path}: config is for method 'munit', but --method is 'unit'"):
        build_config("unit", [path])
    with pytest.raises(ConfigError, match="config is for method 'unit', but --method is 'cyclegan'"):
        build_config("cyclegan", ["unit_digits"])
    with pytest.raises(ConfigError, match="--set: config is for method 'other'"):
        build_config("unit", [], ["method=other"])


def test_unknown_or_missing_method():
    valid = ", ".join(METHODS.names())  # every registered method, in order
    assert "unit" in METHODS.names()
    with pytest.raises(ConfigError, match=re.escape(f"unknown method 'pix2pixhd'; valid: {valid}")):
        build_config("pix2pixhd")
    with pytest.raises(ConfigError, match="no method given"):
        build_config(None, [], ["train.seed=1"])


@pytest.mark.parametrize("name", ["unit_digits", "unit_street256"])
def test_shipped_configs_load(name):
    assert find_config_file(name) == PACKAGED_CONFIGS / f"{name}.yaml"
    assert find_config_file(f"{name}.yaml") == PACKAGED_CONFIGS / f"{name}.yaml"
    cfg = build_config(None, [name])
    assert cfg.method == "unit"
    assert build_config("unit", [name]) == cfg
    raw = OmegaConf.load(PACKAGED_CONFIGS / f"{name}.yaml")
    for section in ("model", "loss_weights", "optim", "data", "train"):  # every value in the file is applied
        for key, value in raw.get(section, {}).items():
            assert cfg[section][key] == value, f"{section}.{key}"


def test_shipped_config_values():
    digits = build_config(None, ["unit_digits"])
    assert digits.data.image_size == 32 and digits.data.flip is False and digits.model.gan_type == "lsgan"
    street = build_config(None, ["unit_street256"])
    assert street.data.image_size == 256 and street.model.dis_scales == 3 and street.optim.step_size == 100_000


def test_unknown_config_file_lists_shipped():
    shipped = sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))
    assert {"unit_digits", "unit_street256"} <= set(shipped)
    with pytest.raises(ConfigError, match=re.escape(f"unit_digitz: no such config file (shipped configs: "
                                                    f"{', '.join(shipped)})")):
        find_config_file("unit_digitz")


@pytest.mark.parametrize(("override", "message"), [
    ("train.precision=fp8", "train.precision='fp8' is not one of fp32, bf16"),
    ("optim.lr_policy=cosine", "optim.lr_policy='cosine' is not one of constant, step, linear"),
    ("data.on_bad_image=ignore", "data.on_bad_image='ignore' is not one of fail, skip"),
])
def test_invalid_choice(override, message):
    with pytest.raises(ConfigError, match=message):
        build_config("unit", [], [override])


@pytest.mark.parametrize("override", ["loss_weights.gan=-1", "loss_weights.cyc_kl=-0.01"])
def test_negative_loss_weight(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key} must be >= 0"):
        build_config("unit", [], [override])


@pytest.mark.parametrize("override", ["train.batch_size=0", "data.image_size=-4", "train.checkpoint_every=0"])
def test_non_positive_sizes(override):
    with pytest.raises(ConfigError, match=rf"{override.split('=')[0]} must be positive"):
        build_config("unit", [], [override])


def test_bad_channels():
    with pytest.raises(ConfigError, match=r"data\.channels must be 1, 3 or null, got 2"):
        build_config("unit", [], ["data.channels=2"])


def test_linear_decay_starts_at_a_fraction_of_max_steps_that_follows_max_steps():
    from unpaired.training.trainer import lr_multiplier

    for steps in (8, 400):
        cfg = build_config("unit", [], ["optim.lr_policy=linear", "optim.decay_fraction=0.5",
                                         f"train.max_steps={steps}"])
        schedule = lr_multiplier(cfg)
        assert [schedule(s) for s in (0, steps // 2)] == [1.0, 1.0]
        assert schedule(steps // 2 + steps // 4) == pytest.approx(0.5) and schedule(steps) == 0.0
    # in steps, as before: the same schedule at 400 steps
    by_step = lr_multiplier(build_config("unit", [], ["optim.lr_policy=linear", "optim.decay_start=200",
                                                      "train.max_steps=400"]))
    assert [by_step(s) for s in (0, 200, 300, 400)] == [schedule(s) for s in (0, 200, 300, 400)]


@pytest.mark.parametrize(("overrides", "message"), [
    (["optim.decay_fraction=1.0"], r"optim\.decay_fraction must lie in \[0, 1\), got 1\.0"),
    (["optim.decay_fraction=0.5", "optim.decay_start=100"], r"both set the start of the decay"),
])
def test_bad_decay_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config("unit", [], overrides)


def test_zero_weight_is_allowed():
    assert build_config("unit", [], ["loss_weights.cyc_x=0"]).loss_weights.cyc_x == 0


def test_config_from_dict_round_trip():
    cfg = build_config(None, ["unit_digits"], ["model.dim=8", "train.ema_decay=0.5", "data.source=mnist:usps"])
    data = to_dict(cfg)
    assert isinstance(data, dict) and isinstance(data["model"], dict)
    again = config_from_dict(data)
    assert again == cfg
    assert to_dict(again) == data
    assert to_object(again, "model") == to_object(cfg, "model")
    # and it still type-checks what it reads
    assert OmegaConf.is_missing(again, "method") is False
    with pytest.raises(ConfigError, match=r"model\.dim"):
        config_from_dict({**data, "model": {**data["model"], "dim": "wide"}})
    with pytest.raises(ConfigError, match="no 'method' key"):
        config_from_dict({"model": {}})
    with pytest.raises(ConfigError, match="unknown method 'gone'"):
        config_from_dict({**data, "method": "gone"})


# -------------------- overrides when resuming a run


def _stored_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    cfg = build_config(None, ["unit_digits"], ["data.source=mnist:usps"])
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    return run


def test_resume_overrides_apply(tmp_path):
    cfg = config_for_resume(_stored_run(tmp_path), ["train.max_steps=9000"])
    assert cfg.train.max_steps == 9000 and cfg.model.dim == 32 and cfg.data.source == "mnist:usps"


@pytest.mark.parametrize(("override", "message"), [
    ("train.precision=fp8", "train.precision='fp8' is not one of fp32, bf16"),
    ("loss_weights.gan=-1", "loss_weights.gan must be >= 0"),
    ("train.batch_size=0", "train.batch_size must be positive"),
    ("train.max_stepz=10", "train.max_stepz"),
    ("train.max_steps=many", "train.max_steps"),
])
def test_resume_overrides_are_checked_like_new_ones(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        config_for_resume(_stored_run(tmp_path), [override])
