"""bench/munit.py's bookkeeping (training and evaluation themselves are exercised by `--quick`, not here)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import munit


def test_confusion_summary_gives_per_class_shares_and_the_worst_confusions():
    counts = torch.tensor([[8.0, 2.0, 0.0],    # label 0: 8 right, 2 judged 1
                           [0.0, 5.0, 5.0],    # label 1: half judged 2
                           [0.0, 0.0, 0.0]])   # label 2: no images (no division by zero)
    per_class, top = munit.confusion_summary(counts, top=2)
    assert per_class == [0.8, 0.5, 0.0]
    assert top == [{"label": 1, "judged": 2, "share_of_label": 0.5},
                   {"label": 0, "judged": 1, "share_of_label": 0.2}]


def test_evaluate_again_refuses_a_run_its_report_does_not_describe(tmp_path, monkeypatch):
    out = tmp_path / "results"
    run = tmp_path / "run" / "digits"
    monkeypatch.setattr(sys, "argv", ["munit.py", "--out", str(out), "--evaluate", str(run)])
    with pytest.raises(SystemExit):  # no report yet
        munit.parse_args()
    out.mkdir()
    (out / "munit.json").write_text(json.dumps({"training": {"run_dir": str(tmp_path / "other")}}))
    with pytest.raises(SystemExit):  # the report describes another run
        munit.parse_args()
    (out / "munit.json").write_text(json.dumps({"training": {"run_dir": str(run)}}))
    assert munit.parse_args().evaluate == run


def test_resume_needs_a_munit_run_folder_and_excludes_evaluate(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["munit.py", "--out", str(tmp_path), "--resume", str(tmp_path / "nothing")])
    with pytest.raises(SystemExit):  # no config.yaml: not a run folder
        munit.parse_args()
    monkeypatch.setattr(sys, "argv", ["munit.py", "--out", str(tmp_path), "--resume", str(tmp_path)])
    (tmp_path / "config.yaml").write_text("method: tunit\n")
    with pytest.raises(SystemExit):  # another method's run
        munit.parse_args()
    (tmp_path / "config.yaml").write_text("method: munit\n")
    assert munit.parse_args().resume == tmp_path
    (tmp_path / "munit.json").write_text(json.dumps({"training": {"run_dir": str(tmp_path)}}))
    monkeypatch.setattr(sys, "argv", ["munit.py", "--out", str(tmp_path), "--resume", str(tmp_path),
                                      "--evaluate", str(tmp_path)])
    with pytest.raises(SystemExit):
        munit.parse_args()


def stopped_digits_run(tmp_path: Path, *overrides: str) -> Path:
    """A munit_digits run on tiny image folders, stopped after 2 steps: what ``--resume`` continues."""
    from conftest import make_image_folders

    from unpaired.config import build_config
    from unpaired.training.trainer import Trainer

    data = make_image_folders(tmp_path / "data", size=(32, 32))
    run = tmp_path / "work" / "digits"
    cfg = build_config("munit", ["munit_digits"], [f"data.source={data}", "train.batch_size=2",
                                                   "train.max_steps=2", *munit.QUIET, *overrides])
    Trainer(cfg, run).fit()
    return run


def test_resume_continues_a_stopped_digits_run_in_place(tmp_path):
    run = stopped_digits_run(tmp_path)
    args = argparse.Namespace(resume=run, steps=3, minutes=0.0, overrides=["train.precision=fp32"])
    results: dict = {}
    checkpoint = munit.train_digits(args, False, tmp_path / "unused", results)
    trained = results["training"]
    assert (trained["resumed_from_step"], trained["steps"], trained["precision"]) == (2, 3, "fp32")
    assert trained["run_dir"] == str(run) and checkpoint.parent.parent == run
    assert not (tmp_path / "unused").exists()  # the resumed run stays in its own folder


def test_minutes_default_caps_a_new_run_and_leaves_a_resumed_run_its_own_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["munit.py", "--out", str(tmp_path)])
    assert munit.parse_args().minutes == 120.0
    (tmp_path / "config.yaml").write_text("method: munit\n")
    monkeypatch.setattr(sys, "argv", ["munit.py", "--out", str(tmp_path), "--resume", str(tmp_path)])
    assert munit.parse_args().minutes is None  # not 120: that cap would stop a run started with --minutes 0

    run = stopped_digits_run(tmp_path, "train.max_minutes=30")
    results: dict = {}
    args = argparse.Namespace(resume=run, steps=3, minutes=None, overrides=[])
    munit.train_digits(args, False, tmp_path / "unused", results)
    assert (results["training"]["steps"], results["training"]["max_minutes"]) == (3, 30)
    args = argparse.Namespace(resume=run, steps=4, minutes=0.0, overrides=[])  # 0: no cap
    munit.train_digits(args, False, tmp_path / "unused", results)
    assert (results["training"]["steps"], results["training"]["max_minutes"]) == (4, None)


def test_the_official_munit_figure_names_its_cpu_kind_or_says_why_there_is_none():
    assert munit.official_munit_text({"official_munit_ref64": {"images_per_second": 3.72, "cpu_kind": "Zen 4"},
                                      "official_munit_ref64_images_per_second": 3.72}) == "3.72 images/s (Zen 4)"
    why = "this CPU kind (x) has no official figure in reference-speeds.md: no ratio"
    assert munit.official_munit_text({"official_munit_ref64": {"images_per_second": None, "no_figure": why},
                                      "official_munit_ref64_images_per_second": None}) == why
    assert munit.official_munit_text({"official_munit_ref64_images_per_second": 3.7}) == "3.7 images/s"  # older
    ratio = {"speed": {"munit_ref64_vs_official": {"fp32": None, "bf16_cl": None}}}
    assert munit.targets({**ratio, "evaluation": {"directions": {"mnist->usps": {
        "kept_min": 0.9, "diversity_pixel_l1": {"ratio_to_real_same_class": 0.2}}}}})[
        "speed_vs_official_munit_ref64"]["met"] is None


def test_quick_munit_benchmark_writes_its_report(tmp_path, monkeypatch):
    from test_data import tiny_mnist, tiny_usps_h5

    root = tmp_path / "data"
    tiny_mnist(root, n_train=40, n_test=20)  # 2 test digits a class: the diversity measure compares pairs
    tiny_usps_h5(root, n=30)
    monkeypatch.setenv("UNPAIRED_DATA", str(root))
    out = tmp_path / "out"
    munit.main(["--quick", "--threads", "1", "--out", str(out), "--set", "model.dim=8", "--set", "model.dis_dim=8"])
    record = json.loads((out / "munit.json").read_text())
    assert record["quick"] and record["training"]["steps"] == 3
    assert set(record["evaluation"]["directions"]) == {"mnist->usps", "usps->mnist"}
    assert "NOT measurements" in (out / "munit.md").read_text() and (out / "munit_styles.png").is_file()
    # 20 test digits a domain: none left after the 2,000 that chose the config, so both are marked
    splits = record["splits"]
    assert splits["test"] == [] and len(splits["not_held_out"]) == 2
    assert "**Not held out**" in (out / "munit.md").read_text()


def test_directions_are_scored_on_the_test_rows_that_did_not_choose_the_config():
    assert munit.scored_rows(10000, 2000, None) == (2000, 10000, True)  # MNIST: rows 2000-9999
    assert munit.scored_rows(10000, 2000, 500) == (2000, 2500, True)
    assert munit.scored_rows(2007, 2000, None) == (0, 2007, False)  # USPS: 7 left, scored on all and marked
    assert munit.scored_rows(2007, 2000, 1000) == (0, 1000, False)


def test_kept_intervals_bracket_the_shares_and_narrow_with_more_inputs():
    gen = torch.Generator().manual_seed(0)
    few, many = (torch.rand(n, 8, generator=gen) < 0.9 for n in (100, 10000))
    for correct in (few, many):
        bounds = munit.kept_intervals(correct, seed=0, resamples=200)
        shares = correct.float().mean(0)
        assert bounds["mean"][0] <= float(shares.mean()) <= bounds["mean"][1]
        assert bounds["min"][0] <= float(shares.min()) <= bounds["min"][1] + 0.01  # the min is biased low
    wide = munit.kept_intervals(few, 0, 200)["mean"]
    narrow = munit.kept_intervals(many, 0, 200)["mean"]
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 3
