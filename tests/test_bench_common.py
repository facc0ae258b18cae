"""bench/common.py: what every benchmark shares (the record's head, step timing)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import common
import torch


def test_provenance_names_the_command_date_and_machine():
    record = common.provenance("leaderboard.py", ["--parts", "maps"], native_bf16=True)
    assert record["command"] == "python bench/leaderboard.py --parts maps"
    assert record["date"].endswith("+00:00")
    assert record["machine"]["native_bf16"] is True
    assert {"cpu", "cores", "threads", "torch", "python"} <= set(record["machine"])


def test_median_seconds_times_only_the_calls_after_the_warmup():
    seen: list[int] = []
    seconds = common.median_seconds(seen.append, calls=3, warmup=2)
    assert seen == [0, 1, 2, 3, 4] and seconds >= 0


def test_pair_counts_is_a_table_of_pair_frequencies():
    rows, cols = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 1, 0, 2, 2, 0])
    assert common.pair_counts(rows, cols, (3, 3)).tolist() == [[0, 2, 0], [1, 0, 0], [1, 0, 2]]
    assert common.pair_counts(rows, cols, (4, 3)).shape == (4, 3)  # rows that never occur are zeros


def test_provenance_lines_render_the_record_with_and_without_native_bf16():
    record = common.provenance("conv_peak.py", [])
    lines = common.provenance_lines(record, "Latest command")
    assert lines[0] == "Latest command: `python bench/conv_peak.py `  " and lines[1].startswith("Date: ")
    assert "torch threads, torch" in lines[2] and "native bf16" not in lines[2]
    assert "native bf16: False" in common.provenance_lines(common.provenance("x.py", [], native_bf16=False))[2]


def test_write_report_writes_the_record_and_the_report(tmp_path, capsys):
    common.write_report(tmp_path / "out", "demo", {"value": 1}, "# Demo\n\n| a |\n")
    assert (tmp_path / "out" / "demo.json").read_text() == '{\n  "value": 1\n}\n'
    assert (tmp_path / "out" / "demo.md").read_text() == "# Demo\n\n| a |\n"
    assert "# Demo" in capsys.readouterr().out
