"""The committed benchmark reports that choose anything name the data that chose it and the data they are scored
on, and the two share no image (issue 37: choose on one split, report on another)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import common

BENCH = Path(__file__).resolve().parents[1] / "bench"

CHOOSING_REPORTS = ["adaptation", "adaptation_cogan", "tunit", "munit"]


@pytest.mark.parametrize("name", CHOOSING_REPORTS)
def test_a_report_names_its_selection_and_test_splits_and_they_do_not_overlap(name):
    record = json.loads((BENCH / "results" / f"{name}.json").read_text())
    assert "splits" in record, f"bench/results/{name}.json names no selection split: run bench/{name}.py again"
    splits = record["splits"]
    assert splits["selection"] and splits["chooses"], "a selection split names what it chose"
    assert splits["test"] or splits.get("not_held_out"), "a report scores something"
    assert common.split_overlaps(splits) == []
    assert "Selection split (chose: " in (BENCH / "results" / f"{name}.md").read_text()
