"""--quick of the benchmarks that have no test file of their own: each runs end to end on tiny stand-ins for
MNIST and USPS, writes its report to a temporary folder and says its figures are no measurements."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_data import tiny_mnist, tiny_usps_h5

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.fixture
def tiny_digits(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    tiny_mnist(root, n_train=40, n_test=12)
    tiny_usps_h5(root, n=30)
    monkeypatch.setenv("UNPAIRED_DATA", str(root))
    return root


def test_quick_tunit_benchmark_writes_its_report(tmp_path, tiny_digits):
    import tunit

    out = tmp_path / "out"
    tunit.main(["--quick", "--threads", "1", "--out", str(out), "--set", "model.dim=8"])
    record = json.loads((out / "tunit.json").read_text())
    assert record["quick"]
    assert 0 <= record["clustering"]["accuracy"] <= 1 and 0 <= record["clustering"]["pool_accuracy"] <= 1
    assert record["clustering"]["images"] == 12 + 30 + 12  # every test digit of each source: mnist, usps, inverted
    assert [p["data"] for p in record["splits"]["test"]] == ["mnist", "usps", "mnist_inverted"]
    assert "NOT measurements" in (out / "tunit.md").read_text()


def test_quick_adaptation_benchmark_writes_its_report(tmp_path, tiny_digits):
    import adaptation

    out = tmp_path / "out"
    tiny = ["model.dim=8", "model.dis_dim=8", "model.n_res=2", "model.dis_layers=2", "model.dis_scales=1"]
    adaptation.main(["--quick", "--threads", "1", "--out", str(out), *[a for o in tiny for a in ("--set", o)]])
    record = json.loads((out / "adaptation.json").read_text())
    assert record["quick"] and record["seeds"] == [0] and set(record["table"]) == {"mnist->usps", "usps->mnist"}
    text = (out / "adaptation.md").read_text()
    assert "NOT measurements" in text and "| UNIT paper | target | met |" in text
    assert record["table"]["mnist->usps"]["paper"] == 0.9597 and record["table"]["mnist->usps"]["target"] == 0.965


def test_quick_cogan_adaptation_gives_head_accuracy_against_wall_time(tmp_path, tiny_digits):
    import adaptation

    out = tmp_path / "out"
    tiny = ["model.dim=8", "model.dis_dim=8", "model.dis_dim2=8", "model.dis_features=16"]
    adaptation.main(["--quick", "--method", "cogan", "--tasks", "mnist->usps", "--threads", "1", "--out", str(out),
                     *[a for o in tiny for a in ("--set", o)]])
    record = json.loads((out / "adaptation_cogan.json").read_text())  # its own report: UNIT's table is kept
    assert not (out / "adaptation.json").exists()
    row = record["table"]["mnist->usps"]
    assert record["quick"] and set(row["accuracy"]) == {"source_only", "discriminator_head", "target_supervised"}
    (curve,) = row["curves"]  # one seed: the head scored at every checkpoint of the 3-step translator
    assert [p["step"] for p in curve] == [3] and all(0 <= p["target_test_accuracy"] <= 1 for p in curve)
    assert curve[0]["seconds"] > 0 and row["reference_points"][0]["accuracy"] == 0.760
    text = (out / "adaptation_cogan.md").read_text()
    assert "discriminator head accuracy against training time" in text and "official CoGAN code" in text
    assert "| target | met" not in text and row["paper"] is None and row["target"] is None  # UNIT's figures are not
    # CoGAN's: its paper's figures are reference points under its curve


def test_quick_precision_quality_benchmark_writes_its_report(tmp_path, tiny_digits):
    import precision_quality

    out = tmp_path / "out"
    tiny = ["model.dim=8", "model.dis_dim=8", "model.n_res=2", "model.dis_layers=2", "model.dis_scales=1",
            "train.batch_size=8"]
    precision_quality.main(["--quick", "--threads", "1", "--out", str(out), *[a for o in tiny for a in ("--set", o)]])
    record = json.loads((out / "precision_quality.json").read_text())
    assert record["quick"] and {run["steps"] for run in record["runs"].values()} == {2}
    assert "NOT measurements" in (out / "precision_quality.md").read_text()
    assert (out / "precision_quality_fp32.png").is_file()


def test_quick_tunit_warmup_sweep_writes_its_report(tmp_path, tiny_digits):
    import tunit_warmup

    out = tmp_path / "out"
    tunit_warmup.main(["--quick", "--out", str(out), "--variant", "base=model.dim=8"])
    record = json.loads((out / "tunit_warmup.json").read_text())
    assert record["quick"] and [r["seed"] for r in record["variants"]["base"]["runs"]] == [0]
    assert "NOT measurements" in (out / "tunit_warmup.md").read_text()


def test_quick_leaderboard_writes_its_report(tmp_path, tiny_digits):
    import leaderboard
    from test_paired import make_pairs

    make_pairs(tiny_digits / "maps" / "train", count=10, size=32)
    out = tmp_path / "out"
    leaderboard.main(["--quick", "--threads", "1", "--out", str(out)])
    record = json.loads((out / "leaderboard.json").read_text())
    assert all(record[part]["measured"]["quick"] for part in leaderboard.PARTS)
    assert "the numbers mean nothing" in (out / "leaderboard.md").read_text()


def test_transgaga_verdict_needs_a_clear_iou_gap_and_the_class_kept():
    import transgaga

    def row(iou: float, class_kept: float, spread: float = 0.0) -> dict:
        return {"iou": {"mean": iou, "std": spread, "min": iou - spread, "max": iou + spread},
                "class_kept": {"mean": class_kept}}

    # cyclegan: a clear IoU gap, but TransGaGa loses the digit (a blob where warped digits lie); munit: gap too small
    table = {"transgaga": row(0.5, 0.3), "cyclegan": row(0.3, 0.4), "unit": row(0.3, 0.3),
             "munit": row(0.45, 0.1, 0.03)}
    found = transgaga.verdict(table)
    assert found["iou_clearly_above"] == {"cyclegan": True, "unit": True, "munit": False}
    assert found["class_kept_at_least"] == {"cyclegan": False, "unit": True, "munit": True}
    assert found["clearly_above"] == {"cyclegan": False, "unit": True, "munit": False} and not found["all"]


def test_quick_transgaga_benchmark_writes_its_report_and_reuses_its_runs(tmp_path, tiny_digits, monkeypatch):
    import transgaga

    out = tmp_path / "out"
    transgaga.main(["--quick", "--threads", "1", "--out", str(out)])
    record = json.loads((out / "transgaga.json").read_text())
    assert record["quick"] and record["seeds"] == [0]
    assert set(record["table"]) == {"transgaga", "cyclegan", "unit", "munit"}
    assert all(0 <= row["iou"]["mean"] <= 1 for row in record["table"].values())
    assert "flip_equivariance" in record["table"]["transgaga"] and "flip_equivariance" not in record["table"]["unit"]
    assert record["references"]["truth"]["iou"] == 1.0 and record["references"]["truth"]["l1"] == 0.0
    assert set(record["verdict"]["clearly_above"]) == {"cyclegan", "unit", "munit"}
    assert "skipped" in record["faces_smoke"]  # no AFHQ/CelebA-HQ samples in the tiny data root
    assert "NOT measurements" in (out / "transgaga.md").read_text() and (out / "transgaga_digits.png").is_file()
    assert record["complete"] and (out / "transgaga_runs" / "transgaga_seed0.png").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("a recorded run was trained again")

    monkeypatch.setattr(transgaga, "train", refuse)  # a later sitting reuses every run recorded with its settings
    transgaga.main(["--quick", "--threads", "1", "--out", str(out)])
    assert json.loads((out / "transgaga.json").read_text())["table"] == record["table"]
    transgaga.main(["--quick", "--threads", "1", "--out", str(out), "--seeds", "0,1", "--records-only"])
    partial = json.loads((out / "transgaga.json").read_text())  # seed 1 not run yet: reported as partial
    assert not partial["complete"] and [len(rows) for rows in partial["runs"].values()] == [1, 1, 1, 1]
    assert "**Partial**: 4 of 8 runs recorded so far." in (out / "transgaga.md").read_text()
