"""bench/munit.py's bookkeeping (training and evaluation themselves are exercised by `--quick`, not here)."""

from __future__ import annotations

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
