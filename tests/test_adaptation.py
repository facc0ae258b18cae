"""UNIT's domain-adaptation protocol on tiny stand-ins: the pieces, the report, and that no target label
reaches training (shuffled target labels give the same training trace)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import assert_identical
from test_cli import run_cli
from test_data import tiny_mnist, tiny_usps_h5
from torch import nn

from unpaired.cli import DEFAULT_VARIANTS_CLI, VARIANTS_CLI
from unpaired.config import ConfigError
from unpaired.data import DataError, open_domains, open_labelled
from unpaired.metrics.adaptation import (
    DEFAULT_VARIANTS,
    VARIANTS,
    AdaptationSettings,
    class_balance_loss,
    ensemble_accuracy,
    random_affine,
    recalibrate_batch_norm,
    run_adaptation,
    selected_row,
    train_digit_classifier,
)
from unpaired.training.batches import StepBatches

TRANSLATOR = ["model.dim=8", "model.dis_dim=8", "model.n_res=2", "model.dis_layers=2", "model.dis_scales=1",
              "train.batch_size=4", "train.tensorboard=false", "train.progress=false", "train.checkpoint_every=2"]


def quick_settings(**changes) -> AdaptationSettings:
    base = dict(image_size=16, translator_steps=3, translator_minutes=None, classifier_steps=100, batch_size=8,
                fid_steps=5, overrides=TRANSLATOR, precision="fp32")
    return AdaptationSettings(**{**base, **changes})


def digit_root(root, shuffle_target_labels: bool = False):
    tiny_mnist(root, n_train=40, n_test=12)
    _, target = tiny_usps_h5(root, n=30)
    if shuffle_target_labels:  # rewrite usps.h5 with the train labels permuted (the images untouched)
        import h5py

        with h5py.File(root / "usps" / "usps.h5", "r+") as f:
            f["train"]["target"][...] = np.random.default_rng(5).permutation(target)
    return root


# -- pieces ---------------------------------------------------------------------------------------------------------

def test_cli_names_the_same_variants_as_the_protocol():
    assert VARIANTS_CLI == VARIANTS and DEFAULT_VARIANTS_CLI == DEFAULT_VARIANTS


def test_random_affine_without_change_is_the_identity():
    x = torch.rand(3, 1, 12, 12) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    same = random_affine(x, gen, degrees=0, scale=(1, 1), shift=0, noise=0)
    assert torch.allclose(same, x, atol=1e-5)


def test_random_affine_shift_moves_the_image_and_fills_background():
    x = -torch.ones(1, 1, 8, 8)
    x[..., 3:5, 3:5] = 1
    gen = torch.Generator().manual_seed(0)
    moved = random_affine(x, gen, degrees=0, scale=(1, 1), shift=0.5, noise=0)
    assert not torch.allclose(moved, x) and moved.min() >= -1 - 1e-6 and moved.max() <= 1 + 1e-6
    assert math.isclose(float(moved.sum()), float(x.sum()), abs_tol=8.0)  # the square moved, mostly kept


def test_recalibrated_batch_norm_holds_the_statistics_of_the_given_images():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    images = (torch.rand(49, 1, 4, 4) * 255).to(torch.uint8)
    recalibrate_batch_norm(model, images, batch_size=7)
    with torch.no_grad():
        features = model[0](images.float() / 127.5 - 1)
    assert torch.allclose(model[1].running_mean, features.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(model[1].running_var, features.var((0, 2, 3)), rtol=0.05)  # batch variances, unbiased
    assert not model.training and model[1].momentum == 0.1


def test_classifier_learns_a_separable_task_and_mean_teacher_is_deterministic():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    images[labels == 1, :, :, :8] = 255  # class 1 is bright on the left
    images[labels == 0, :, :, 8:] = 255
    images = (images.int() + torch.randint(0, 30, images.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
    settings = quick_settings(classifier_steps=60)
    run = train_digit_classifier(images, labels, settings, seed=1)
    with torch.no_grad():
        accuracy = (run.model(images.float() / 127.5 - 1).argmax(1) == labels).float().mean()
    assert accuracy > 0.9 and len(run.trace) == 1 and not run.model.training
    unlabelled = images.flip(3)  # a "target domain"
    first = train_digit_classifier(images, labels, settings, seed=1, unlabelled=unlabelled)
    again = train_digit_classifier(images, labels, settings, seed=1, unlabelled=unlabelled)
    assert first.trace == again.trace and first.trace != run.trace
    assert_identical(first.model.state_dict(), again.model.state_dict())


def test_class_balance_loss_is_the_summed_bce_against_uniform_and_smallest_when_balanced():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    mean = p.mean(0)
    expected = -sum(math.log(m) / 3 + (2 / 3) * math.log(1 - m) for m in mean.tolist())
    assert float(class_balance_loss(p)) == pytest.approx(expected, rel=1e-6)
    balanced = torch.full((4, 3), 1 / 3)
    collapsed = torch.tensor([[0.98, 0.01, 0.01]] * 4)
    assert float(class_balance_loss(balanced)) < float(class_balance_loss(p)) < float(class_balance_loss(collapsed))


class FixedLogits(nn.Module):
    """Logits looked up by the image's first pixel (an index): a classifier whose every answer is hand-set."""

    def __init__(self, logits: list[list[float]]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0, 0, 0].long()]


def test_ensemble_averages_probabilities_each_member_reading_its_own_view():
    a = FixedLogits([[2.0, 0.0], [0.0, 0.2]])  # right on image 0 (p 0.88), narrowly wrong on image 1 (p 0.55)
    b = FixedLogits([[0.0, 1.0], [3.0, 0.0], [0.0, 9.0]])  # wrong on 0 (p 0.73), right on 1 (p 0.95); 2: class 1
    images = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    labels = torch.tensor([0, 0])
    assert ensemble_accuracy([a], [images], labels) == 0.5 and ensemble_accuracy([b], [images], labels) == 0.5
    # mean probabilities: image 0 -> (0.88 + 0.27) / 2 for class 0, image 1 -> (0.45 + 0.95) / 2: both right
    assert ensemble_accuracy([a, b], [images, images], labels) == 1.0
    # b reads its own view of the same digits (as translations for a classifier trained on them): image 1 -> 2
    assert ensemble_accuracy([a, b], [images, torch.tensor([0.0, 2.0]).view(2, 1, 1, 1)], labels) == 0.5


def test_settings_refuse_unknown_variants_and_bad_fractions():
    with pytest.raises(ConfigError, match="unknown adaptation variant"):
        AdaptationSettings(variants=["source_only", "magic"]).check()
    with pytest.raises(ConfigError, match="validation_fraction"):
        AdaptationSettings(validation_fraction=1.0).check()
    with pytest.raises(ConfigError, match="add self_ensembling to the variants"):
        AdaptationSettings(variants=["translated_self_ensembling", "ensemble"]).check()
    with pytest.raises(ConfigError, match="add self_ensembling to the variants"):
        AdaptationSettings(variants=["source_only", "ensemble_without_translation"]).check()


# -- the user's own labelled digits -----------------------------------------------------------------------------

def test_h5_digits_in_other_layouts_and_class_folders(tmp_path):
    import h5py
    from PIL import Image

    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as f:
        for split, n in (("train", 6), ("test", 3)):
            f.create_group(split)
            f[split]["data"] = np.full((n, 20, 20), 200, np.uint8)  # N x H x W, integers 0-255
            f[split]["target"] = np.arange(n) % 3
    source = open_labelled(str(path), tmp_path, "train", 16)
    assert source.images.shape == (6, 1, 16, 16) and source.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert int(source.images.max()) == 200

    folder = tmp_path / "digits"
    for split in ("train", "test"):
        for label in ("3", "7"):
            (folder / split / label).mkdir(parents=True)
            for i in range(2):
                Image.new("L", (10, 10), 40 * i).save(folder / split / label / f"{i}.png")
    digits = open_labelled(str(folder), tmp_path, "test", 12, channels=1)
    assert digits.images.shape == (4, 1, 12, 12) and digits.labels.tolist() == [3, 3, 7, 7]
    # both are domains of --data, next to a named set
    tiny_mnist(tmp_path, n_train=8, n_test=4)
    pair = open_domains(f"mnist:{folder}", "train", image_size=12, channels=1, root=tmp_path)
    assert len(pair.a) == 8 and len(pair.b) == 4 and pair.b.labels is not None


def test_bad_h5_digit_file_is_named(tmp_path):
    import h5py

    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_group("train")
        f["train"]["data"] = np.zeros((4, 10), np.float32)  # 10 is not a square
        f["train"]["target"] = np.zeros(4)
    with pytest.raises(DataError, match=r"bad\.h5"):
        open_labelled(str(path), tmp_path, "train", 16)
    with pytest.raises(DataError, match="no group 'test'"):
        open_labelled(str(path), tmp_path, "test", 16)


# -- the protocol end to end ------------------------------------------------------------------------------------

def test_protocol_writes_its_report_and_no_target_label_reaches_training(tmp_path, monkeypatch):
    import unpaired.metrics.adaptation as protocol

    drawn_from = []  # the translator's batches: the validation digits must not be among them
    monkeypatch.setattr(protocol, "StepBatches", lambda sources, *a, **k: drawn_from.append(
        {d: (len(s), s.labels is not None) for d, s in sources.items()}) or StepBatches(sources, *a, **k))
    settings = quick_settings(variants=list(VARIANTS))
    honest = run_adaptation(settings, tmp_path / "a", root=digit_root(tmp_path / "data"), progress=False)
    shuffled = run_adaptation(quick_settings(variants=list(VARIANTS)), tmp_path / "b",
                              root=digit_root(tmp_path / "data_shuffled", shuffle_target_labels=True), progress=False)
    for report in (honest, shuffled):
        assert set(report["rows"]) == set(VARIANTS)
        assert all(0 <= acc <= 1 for acc in report["accuracy"].values())
        assert report["data"]["source_fit"] == 36 and report["data"]["source_validation"] == 4
        assert report["digit_fid"]["translated_vs_target_test"] >= 0
    # everything trained without target labels is identical; only the upper-limit row may differ
    for variant in VARIANTS:
        if variant != "target_supervised":
            assert honest["rows"][variant]["trace"] == shuffled["rows"][variant]["trace"], variant
    assert honest["rows"]["target_supervised"]["trace"] != shuffled["rows"]["target_supervised"]["trace"]
    # 36 labelled source digits (40 less the 4 of validation), 30 unlabelled target digits
    assert drawn_from == [{"a": (36, True), "b": (30, False)}] * 2
    # the ensembles are scored like every row; the control also scores its own second classifier alone
    for row in ("ensemble", "ensemble_without_translation"):
        assert 0 <= honest["rows"][row]["source_validation_accuracy"] <= 1
    assert 0 <= honest["rows"]["ensemble_without_translation"]["member_target_test_accuracy"] <= 1
    from unpaired.training.checkpoint import load_checkpoint

    nets = load_checkpoint(tmp_path / "a" / "translator")["nets"]
    assert_identical(nets, load_checkpoint(tmp_path / "b" / "translator")["nets"], "translator")
    # the default translator (unit_adaptation) trained against the run's own source-only classifier, frozen
    from unpaired.nn.classifiers import load_digit_network

    assert honest["translator_config"] == "unit_adaptation" and honest["semantic_consistency"]
    judge = load_digit_network(tmp_path / "a" / "source_classifier.pt").state_dict()
    assert_identical({k.removeprefix("semantic_classifier."): v for k, v in nets.items()
                      if k.startswith("semantic_classifier.")}, judge, "semantic classifier")
    stored = json.loads((tmp_path / "a" / "report.json").read_text())
    assert stored["settings"]["source"] == "mnist" and stored["task"] == "mnist->usps"
    assert "translated_self_ensembling |" in (tmp_path / "a" / "report.md").read_text()
    assert (tmp_path / "a" / "examples.png").is_file()


def test_the_rule_picks_the_best_source_validation_row_and_never_the_target_supervised_one():
    assert selected_row({"source_only": 0.99, "ensemble": 0.98, "target_supervised": 1.0}) == "source_only"
    assert selected_row({"ensemble": 0.97, "self_ensembling": 0.97}) == "self_ensembling"  # ties: VARIANTS order
    with pytest.raises(ValueError, match="no row the rule can pick"):
        selected_row({"target_supervised": 0.9})


def test_cli_runs_the_protocol_and_reuses_a_finished_translator(tmp_path, monkeypatch):
    monkeypatch.setenv("UNPAIRED_DATA", str(digit_root(tmp_path / "data")))
    out = tmp_path / "adapt"
    args = ["eval", "adaptation", "--out", out, "--size", "16", "--translator-minutes", "0", "--translator-steps", "2",
            "--classifier-steps", "4", "--fid-steps", "0", "--variants", "source_only,translated",
            "--precision", "fp32", *[a for o in TRANSLATOR for a in ("--set", o)]]
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert "source_only" in stdout and "| UNIT paper | 0.9597 |" in stdout
    report = json.loads((out / "report.json").read_text())
    validation = {v: r["source_validation_accuracy"] for v, r in report["rows"].items()}
    assert report["selected"]["row"] == selected_row(validation)
    assert f"| **{report['selected']['row']}** (selected) |" in stdout
    # every stage says that it starts, and its size; the long ones show a bar with a total
    for shown in ("adaptation mnist->usps: 36 labelled source digits (+4 for validation), 30 unlabelled target "
                  "digits, 30 target test digits", "classifier source_only: 100%", "| 4/4 [",
                  f"translator: training unit for up to 2 steps in {out / 'translator'}",
                  "translate source train: 100%", "translate source test: 100%",
                  "classifiers: 1 to train, 4 steps each (translated)", "classifier translated (1/1): 100%"):
        assert shown in err, shown
    checkpoint = (out / "translator" / "translator_done.json").read_text()
    code, _, err = run_cli(*args)  # again: the finished translator is reused, not trained further
    assert code == 0, err
    assert (out / "translator" / "translator_done.json").read_text() == checkpoint
    assert f"translator: reusing the finished unit in {out / 'translator'}" in err
    assert f"classifier source_only: reusing {out / 'source_classifier.pt'}" in err


def test_cli_names_a_bad_domain_and_a_bad_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("UNPAIRED_DATA", str(digit_root(tmp_path / "data")))
    code, _, err = run_cli("eval", "adaptation", "--target", "nowhere", "--out", tmp_path / "x")
    assert code == 1 and "nowhere" in err
    code, _, err = run_cli("eval", "adaptation", "--variants", "source_only,guess", "--out", tmp_path / "y")
    assert code == 1 and "guess" in err


# -- UNIT's own classifier head (the paper's way) -----------------------------------------------------------------

def test_shared_discriminator_layers_are_one_set_of_weights():
    from unpaired.config import build_config, to_object, weights_dict
    from unpaired.methods import build_method

    cfg = build_config("unit", ["unit_digits"], ["model.dis_shared_layers=2", "model.classes=10"])
    method = build_method("unit", to_object(cfg, "model"), weights_dict(cfg), {"a": 1, "b": 3}, 32)
    dis = method.nets["dis"]
    for mine, theirs in zip(dis["a"].scales, dis["b"].scales, strict=True):
        assert mine[0] is not theirs[0]  # the first layer sees each domain's own channels
        assert all(mine[i] is theirs[i] for i in range(1, len(mine)))
    logits = method.classify(torch.zeros(2, 3, 32, 32), "b")
    assert logits.shape == (2, 10)
    with pytest.raises(ValueError, match="dis_shared_layers"):
        cfg = build_config("unit", ["unit_digits"], ["model.dis_shared_layers=3"])
        build_method("unit", to_object(cfg, "model"), weights_dict(cfg), {"a": 1, "b": 1}, 32)


def test_unit_classifier_head_learns_from_domain_a_labels_only(tmp_path, monkeypatch):
    from conftest import TINY

    from unpaired.config import build_config
    from unpaired.training.trainer import Trainer

    monkeypatch.setenv("UNPAIRED_DATA", str(digit_root(tmp_path / "data")))
    cfg = build_config("unit", ["unit_digits"], [*TINY, "data.source=mnist:usps", "model.classes=10",
                                                 "model.dis_shared_layers=1", "train.max_steps=1"])
    trainer = Trainer(cfg, tmp_path / "run")
    batch = trainer.batches[0]
    assert "a_labels" in batch and "b_labels" not in batch  # the target's labels never enter a batch
    first = trainer.train_step(batch)
    for _ in range(15):
        last = trainer.train_step(batch)
    assert float(last["loss/dis/cls/a"]) < float(first["loss/dis/cls/a"])


def test_unit_classifier_head_on_unlabelled_domain_is_a_clear_error(tmp_path):
    from conftest import TINY, make_image_folders

    from unpaired.config import build_config
    from unpaired.training.trainer import Trainer

    data = make_image_folders(tmp_path / "shapes")
    cfg = build_config("unit", ["unit_digits"], [*TINY, f"data.source={data}", "model.classes=10"])
    with pytest.raises(ConfigError, match="labels of domain a"):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_folder_of_other_settings_is_refused_not_reused(tmp_path, monkeypatch):
    root = digit_root(tmp_path / "data")
    settings = quick_settings(variants=["source_only"], fid_steps=0, classifier_steps=4)
    run_adaptation(settings, tmp_path / "run", root=root, progress=False)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    from unpaired.training.trainer import RunFolderError

    with pytest.raises(RunFolderError, match=r"other settings \(classifier_steps, seed\)"):
        run_adaptation(quick_settings(variants=["source_only"], fid_steps=0, classifier_steps=5, seed=1),
                       tmp_path / "run", root=root, progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before  # nothing touched
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match=r"holds no settings\.json"):
        run_adaptation(settings, tmp_path / "other", root=root, progress=False)
    monkeypatch.setenv("UNPAIRED_DATA", str(root))  # the CLI says it in one line, with a non-zero exit
    code, _, err = run_cli("eval", "adaptation", "--out", tmp_path / "run", "--seed", "3", "--size", "16")
    assert code != 0 and "other settings" in err and "Traceback" not in err
