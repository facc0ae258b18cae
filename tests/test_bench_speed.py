"""bench/train_speed.py end to end in its --quick mode (its figures mean nothing; the report's shape does)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import train_speed


@pytest.mark.timeout(900)  # 3 configurations x 2-3 precisions x 3 steps at 64 px, batch 8, on one thread
def test_quick_train_speed_reports_every_method_with_flops_and_a_ratio_or_why_not(tmp_path):
    train_speed.main(["--quick", "--threads", "1", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "train_speed.json").read_text())
    report = (tmp_path / "train_speed.md").read_text()
    assert record["quick"] and "NOT measurements" in report and "memory_256px" not in record
    assert set(record["speed"]) == {"UNIT small64 b8", "MUNIT small64 b8", "CycleGAN 64 b8"}
    assert {c["method"] for s in record["speed"].values() for c in s["precisions"].values() if "method" in c} == {
        "unit", "munit", "cyclegan"}
    assert set(record["conv_peak"]["gflops"]) >= {"fp32", "fp32_cl"}
    for case, speed in record["speed"].items():
        timed = [c for c in speed["precisions"].values() if "skipped" not in c]
        assert {c["precision"] for c in timed} >= {"fp32", "fp32_cl"}
        for c in timed:
            assert c["flops_per_step"] > 0 and c["gflop_per_image"] > 0 and c["fraction_of_conv_peak"] > 0
            if speed["official"]["images_per_second"] is None:  # never another CPU kind's figure
                assert c["vs_official"] is None and "no official figure" in c["no_figure"]
                assert "no ratio" in c["no_figure"] and c["no_figure"] in report
            else:
                assert c["vs_official"] > 0
        target = record["targets"][case]
        assert (target["met"] is None) == (speed["official"]["images_per_second"] is None)
    if not record["machine"]["native_bf16"]:
        assert all("skipped" in s["precisions"]["bf16_cl"] for s in record["speed"].values())


def test_quick_never_writes_to_bench_results():
    with pytest.raises(SystemExit):
        train_speed.parse_args(["--quick", "--out", str(train_speed.ROOT / "bench" / "results")])
    args = train_speed.parse_args(["--quick"])
    assert args.out.is_dir() and args.out.resolve() != (train_speed.ROOT / "bench" / "results").resolve()
    assert (args.steps, args.warmup) == (1, 0)
    args.out.rmdir()


def fake_speed(official: dict) -> dict:
    """A train_speed record's speed section: every configuration at 2 images/s in fp32, 3 in fp32_cl."""
    def case(precision: str, ips: float) -> dict:
        figure = official["images_per_second"]
        return {"precision": precision, "method": "m", "median_step_s": 8 / ips, "images_per_second": ips,
                "gflop_per_image": 30.0, "effective_gflops": 60.0 * ips, "fraction_of_conv_peak": 0.5,
                "vs_official": None if figure is None else round(ips / figure, 2),
                **({"no_figure": official["no_figure"]} if figure is None else {})}

    return {name: {"official": official, "precisions": {"fp32": case("fp32", 2.0), "fp32_cl": case("fp32_cl", 3.0),
                                                        "bf16_cl": {"precision": "bf16_cl", "skipped": "no bf16"}}}
            for name in train_speed.TARGETS}


def fake_record(official: dict, row: dict) -> dict:
    speed = fake_speed(official)
    return {"command": "python bench/train_speed.py", "date": "2026-12-06", "quick": False, "total_seconds": 60,
            "machine": {"cpu": "AMD EPYC", "cores": 2, "threads": 2, "native_bf16": False, "torch": "2",
                        "cpu_kind": row.get("name")},
            "reference_speeds": row, "steps": 10, "warmup": 3, "speed": speed,
            "targets": train_speed.targets(speed), "conv_peak": {
                "shape": {"batch": 8, "in_channels": 256, "out_channels": 256, "side": 16}, "iterations": 20,
                "gflops": {"fp32": 300.0, "fp32_cl": 400.0}}}


def test_targets_take_the_best_fp32_precision_against_this_kinds_figure():
    record = fake_record({"images_per_second": 2.0, "cpu_kind": "Zen 3", "measured": "2026-12-06"},
                         {"row": "Zen 3: `avx2`", "measured": "2026-12-06", "name": "Zen 3"})
    unit = record["targets"]["UNIT small64 b8"]
    assert unit["best_fp32_precision"] == "fp32_cl" and unit["value"] == 1.5 and unit["met"] is True
    report = train_speed.render(record)
    assert "CPU kind: **Zen 3**" in report and "| UNIT small64 b8 | 3.0 (fp32_cl) | 1.5x | >= 1.5x | met |" in report
    assert "| CycleGAN 64 b8 | bf16_cl | skipped: no bf16 |" in report and "peak memory" not in report
    record["memory_256px"] = {"street256_b1_fp32": {"peak_rss_gb": 2.2, "median_step_s": 13.0}}
    record["peak_fraction_of_official_256px"] = {"street256_b1_fp32": 0.5}
    report = train_speed.render(record)
    assert "| street256_b1_fp32 | 1 | 13.0 | 2.2 |" in report and "street256_b1_fp32 **0.5x**" in report


def test_a_cpu_kind_without_a_figure_gets_the_plain_sentence_and_no_ratio():
    why = "this CPU kind (Intel Xeon, flags avx2 avx512f) has no official figure in reference-speeds.md: no ratio"
    record = fake_record({"images_per_second": None, "cpu_kind": None, "no_figure": why},
                         {"row": None, "no_figure": why})
    assert all(t["value"] is None and t["met"] is None for t in record["targets"].values())
    report = train_speed.render(record)
    assert f"CPU kind: {why}." in report and f"No ratio: {why}." in report
    assert "x | >= " not in report and "| met |" not in report and "NOT met" not in report
