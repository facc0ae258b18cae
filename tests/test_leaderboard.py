"""bench/leaderboard.py's bookkeeping (the training runs themselves are exercised by `--quick`, not here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import leaderboard


def test_quick_mode_never_writes_to_bench_results(tmp_path):
    args = leaderboard.parse_args(["--quick"])
    assert args.out != leaderboard.RESULTS and args.out.is_dir()
    assert args.digit_steps < 10 and args.maps_steps < 10 and args.seeds == [0]
    args.out.rmdir()
    with pytest.raises(SystemExit):
        leaderboard.parse_args(["--quick", "--out", str(leaderboard.RESULTS)])
    full = leaderboard.parse_args(["--seeds", "0,1", "--both-precisions", "none", "--parts", "maps"])
    assert full.out == leaderboard.RESULTS and full.seeds == [0, 1] and full.both_precisions == []
    assert full.parts == ["maps"]
    with pytest.raises(SystemExit):
        leaderboard.parse_args(["--both-precisions", "pix2pix"])


def test_every_run_gets_the_same_budget_and_schedule():
    overrides = leaderboard.run_overrides(1000, seed=3)
    expected = {"train.max_steps=1000", "train.seed=3", "train.sample_every=1000"}
    assert expected <= set(overrides)


def test_summaries_and_the_gcgan_cyclegan_ordering():
    summary = leaderboard.summarise([{"steps": 4, "rmse": 2.0}], ["steps", "rmse", "digit_fid"])
    assert summary == {"steps": 4, "rmse": 2.0} and isinstance(summary["steps"], int)
    assert leaderboard.summarise([{"x": 1.0}, {"x": 2.0}], ["x"]) == {"x": 1.5, "x_std": 0.5}

    def run(rmse: list[float], acc: list[float]) -> dict:
        return {"per_image": {f"{i}.jpg": {"rmse": r, "acc_5": a, "acc_10": a, "acc_20": a}
                              for i, (r, a) in enumerate(zip(rmse, acc, strict=True))}}

    gcgan, cyclegan = run([1.0, 2.0, 3.0], [0.5, 0.6, 0.7]), run([3.0, 4.1, 5.0], [0.5, 0.6, 0.7])
    order = leaderboard.ordering([gcgan], [cyclegan])
    assert order["rmse"]["gcgan_minus_cyclegan"] == pytest.approx(-2.0333, abs=1e-4)
    assert order["rmse"]["verdict"] == "GcGAN better" and order["rmse"]["images"] == 3
    assert order["acc_5"]["verdict"] == "no clear difference" and order["acc_5"]["gcgan_at_least_as_good"]
    worse = leaderboard.ordering([cyclegan], [gcgan])
    assert worse["rmse"]["verdict"] == "GcGAN worse" and not worse["rmse"]["gcgan_at_least_as_good"]


def test_parts_not_rerun_are_kept_with_what_measured_them(tmp_path):
    import json

    earlier = {"command": "python bench/leaderboard.py --parts speed", "date": "2026-11-23", "quick": False,
               "machine": {"cpu": "x"}, "seconds": {"speed": 12.0, "maps": 3.0},
               "speed": {"best_speedup": 3.8}, "maps": {"runs": {}}}
    path = tmp_path / "leaderboard.json"
    path.write_text(json.dumps(earlier))
    kept = leaderboard.kept_parts(path, rerun=["maps", "digits"])
    assert set(kept) == {"speed", "seconds"} and kept["seconds"] == {"speed": 12.0}
    assert kept["speed"]["measured"]["command"] == earlier["command"]
    assert kept["speed"]["measured"]["seconds"] == 12.0 and kept["speed"]["best_speedup"] == 3.8
    assert leaderboard.kept_parts(tmp_path / "absent.json", rerun=[]) == {}
    assert leaderboard.parse_args(["--fresh"]).fresh


def test_maps_baseline_scores_the_mean_colour_of_the_train_maps(tmp_path):
    import numpy as np
    from PIL import Image

    for i in range(5):  # A half: noise; B half: one flat colour per image (train: 10, 20, 30, 40; test: 90)
        b = 10 * (i + 1) if i < 4 else 90
        pair = np.concatenate([np.random.default_rng(i).integers(0, 256, (8, 8, 3)), np.full((8, 8, 3), b)], 1)
        Image.fromarray(pair.astype(np.uint8)).save(tmp_path / f"{i + 1}.png")
    args = leaderboard.parse_args(["--maps-data", str(tmp_path), "--maps-size", "8", "--maps-fraction", "0.8"])
    base = leaderboard.maps_baseline_part(args, tmp_path)
    assert base["train_images"] == 4 and base["eval_images"] == 1 and base["colour"] == [25.0, 25.0, 25.0]
    # |25 - 90| in each channel of every pixel; the RMSE of the GcGAN script takes the RGB distance per pixel
    assert base["rmse"] == pytest.approx(65 * 3**0.5, abs=1e-3) and base["acc_5"] == 0.0


def test_speed_part_divides_by_this_cpu_kinds_figure_or_says_why_not():
    def record(official: dict, ratio: float | None) -> dict:
        case = {"median_step_s": 2.0, "images_per_second": 4.0, "vs_official": ratio, "gflop_per_image": 116.7,
                "effective_gflops": 466.8}
        return {"command": "python bench/leaderboard.py --parts speed", "date": "2026-12-06",
                "machine": {"cpu": "AMD EPYC", "cores": 2, "threads": 2, "torch": "2"},
                "speed": {"config": "cyclegan_256 + ...", "cases": {"fp32": case}, "target_speedup": 1.5,
                          "official_images_per_second": official["images_per_second"], "official": official,
                          "best_speedup": ratio}}

    measured = leaderboard.render(record({"images_per_second": 0.917, "cpu_kind": "AMD EPYC, Zen 3"}, 4.36))
    assert "vs official 0.917 images/s (AMD EPYC, Zen 3)" in measured and "| 4.36x |" in measured
    why = "this CPU kind (Intel Xeon, flags avx2 avx512f) has no official figure in reference-speeds.md: no ratio"
    unknown = leaderboard.render(record({"images_per_second": None, "cpu_kind": None, "no_figure": why}, None))
    assert "| no ratio |" in unknown and f"No ratio: {why}." in unknown and "Best:" not in unknown
    older = record({"images_per_second": 1.35}, 2.0)  # a part measured before the figures came per CPU kind
    del older["speed"]["official"]
    assert "vs official 1.35 images/s |" in leaderboard.render(older)
