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
    assert lines[0] == "Latest command: `python bench/conv_peak.py`  " and lines[1].startswith("Date: ")
    assert common.provenance("conv_peak.py", ["--steps", "3"])["command"] == "python bench/conv_peak.py --steps 3"
    assert "torch threads, torch" in lines[2] and "native bf16" not in lines[2]
    assert "native bf16: False" in common.provenance_lines(common.provenance("x.py", [], native_bf16=False))[2]


def test_write_report_writes_the_record_and_the_report(tmp_path, capsys):
    common.write_report(tmp_path / "out", "demo", {"value": 1}, "# Demo\n\n| a |\n")
    assert (tmp_path / "out" / "demo.json").read_text() == '{\n  "value": 1\n}\n'
    assert (tmp_path / "out" / "demo.md").read_text() == "# Demo\n\n| a |\n"
    assert "# Demo" in capsys.readouterr().out


FAKE_TABLE = """# Official speeds

Some text with a | bar that is no table row.

| CPU kind (flags) | UNIT small64 b8 | MUNIT small64 b8 | CycleGAN 64 b8 | UNIT 256 b1 | measured |
|---|---|---|---|---|---|
| AMD EPYC, Zen 4: `avx512f` + `avx512_bf16` | 3.94 img/s | 3.72 img/s | 1.35 img/s | 0.063 img/s | 2026-11-22 |
| AMD EPYC, Zen 3: `avx2`, no `avx512f` | 2.68 img/s | not measured | 0.917 img/s | - | 2026-12-06 |
| Intel Xeon (AVX-512 listed, AMX hidden) | not measured | not measured | not measured | - | - |
| Some ARM: `sve` | not measured | not measured | not measured | - | - |

Text after the table.
"""


def fake_table(tmp_path: Path, text: str = FAKE_TABLE) -> Path:
    path = tmp_path / "reference-speeds.md"
    path.write_text(text)
    return path


def test_official_speeds_takes_the_row_whose_flags_all_hold(tmp_path):
    path = fake_table(tmp_path)
    row = common.official_speeds({"avx2", "avx512f", "avx512_bf16", "fma"}, path, vendor="AMD")
    assert row is not None and row["name"] == "AMD EPYC, Zen 4" and row["date"] == "2026-11-22"
    assert row["figures"] == {"UNIT small64 b8": 3.94, "MUNIT small64 b8": 3.72, "CycleGAN 64 b8": 1.35}


def test_official_speeds_honours_a_no_flag_rule_and_not_measured_figures(tmp_path):
    path = fake_table(tmp_path)
    row = common.official_speeds({"avx2", "fma"}, path, vendor="AMD")
    assert row is not None and row["name"] == "AMD EPYC, Zen 3" and row["date"] == "2026-12-06"
    assert row["figures"] == {"UNIT small64 b8": 2.68, "MUNIT small64 b8": None, "CycleGAN 64 b8": 0.917}
    munit = common.official_figure("MUNIT small64 b8", {"avx2"}, path, vendor="AMD")
    assert munit["images_per_second"] is None and munit["cpu_kind"] == "AMD EPYC, Zen 3"
    assert "no official figure for MUNIT small64 b8" in munit["no_figure"] and "no ratio" in munit["no_figure"]
    assert common.official_figure("UNIT small64 b8", {"avx2"}, path, vendor="AMD")["images_per_second"] == 2.68


def test_official_speeds_gives_no_figure_where_no_row_matches(tmp_path):
    path = fake_table(tmp_path)
    assert common.official_speeds({"sse2"}, path, vendor="AMD") is None
    # avx512f without avx512_bf16: neither the Zen 4 rule (needs both) nor the Zen 3 one (forbids avx512f)
    row, why = common.reference_lookup({"avx2", "avx512f"}, path, vendor="AMD")
    assert row is None and why.startswith("this CPU kind (") and "flags avx2 avx512f" in why
    assert why.endswith("has no official figure in reference-speeds.md: no ratio")
    # an Intel Xeon listing the Zen 4 flags is not that kind; the Xeon row names no flag, so it matches nothing
    assert common.official_speeds({"avx2", "avx512f", "avx512_bf16"}, path, vendor="Intel") is None
    figure = common.official_figure("UNIT small64 b8", {"avx2", "avx512f", "avx512_bf16"}, path, vendor="Intel")
    assert figure["images_per_second"] is None and "no official figure" in figure["no_figure"]
    assert common.official_speeds({"sve"}, path, vendor="") == {  # a row measured nothing: a row, no figures
        "name": "Some ARM", "kind": "Some ARM: `sve`", "date": None,
        "figures": dict.fromkeys(common.REFERENCE_CASES)}


def test_official_speeds_without_the_file_or_with_two_matching_rows(tmp_path, monkeypatch):
    row, why = common.reference_lookup({"avx2"}, tmp_path / "absent.md", vendor="AMD")
    assert row is None and "does not exist" in why and "no ratio" in why
    ambiguous = fake_table(tmp_path, FAKE_TABLE.replace("`avx2`, no `avx512f`", "`avx2`"))
    row, why = common.reference_lookup({"avx2", "avx512f", "avx512_bf16"}, ambiguous, vendor="AMD")
    assert row is None and "more than one row" in why and "ambiguous" in why
    monkeypatch.setenv("UNPAIRED_REFERENCE_SPEEDS", str(fake_table(tmp_path)))
    assert common.official_speeds({"avx2"}, vendor="AMD")["name"] == "AMD EPYC, Zen 3"


def test_cpu_flags_and_vendor_come_from_cpuinfo_text():
    info = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\n"
    assert common.cpu_flags(info) == {"fpu", "avx2", "avx512f"} and common.cpu_vendor(info) == "Intel"
    assert common.cpu_flags("") == set() and common.cpu_vendor("") == ""


def test_conv_gflops_is_a_positive_rate():
    assert common.conv_gflops(1, 4, 4, 8, torch.float32, channels_last=True, iterations=1, warmup=0) > 0


def test_a_splits_record_refuses_a_selection_that_shares_images_with_the_test():
    chose = common.data_split("mnist", "test", (0, 2000), "chose the config")
    assert common.splits_record([chose], [common.data_split("mnist", "test", (2000, 10000))], ["config"])
    assert common.splits_record([chose], [common.data_split("usps", "test")], ["config"])  # another data set
    assert common.splits_record([common.data_split("mnist", "train", None, "random 10%")],
                                [common.data_split("mnist", "test")], ["row"])  # another split
    for scored in (common.data_split("mnist", "test", (1999, 2500)), common.data_split("mnist", "test")):
        try:
            common.splits_record([chose], [scored], ["config"])
        except ValueError as err:
            assert "mnist test" in str(err)
        else:
            raise AssertionError(f"{scored} overlaps {chose}")
    lines = common.splits_lines({"selection": [chose], "test": [], "chooses": ["config"],
                                 "not_held_out": ["usps->mnist: rows 0-2006"]})
    assert lines[0].startswith("Selection split (chose: config): mnist test rows 0-1999 (chose the config)")
    assert lines[2] == "**Not held out**: usps->mnist: rows 0-2006."
