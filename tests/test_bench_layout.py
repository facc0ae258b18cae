"""bench/ is a thin layer over the package: no script imports another (only bench/common.py is shared), and the
cheap --quick runs that have no test of their own elsewhere."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_bench_script_imports_another():
    scripts = {p.stem for p in BENCH.glob("*.py")}
    assert "common" in scripts
    for path in sorted(BENCH.glob("*.py")):
        others = imported_modules(path) & (scripts - {"common", path.stem})
        assert not others, f"{path.name} imports the bench scripts {sorted(others)}: share code through common.py"


def test_shared_constants_and_helpers_are_defined_once():
    defined: dict[str, list[str]] = {}
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            names = [node.name] if isinstance(node, ast.FunctionDef) else targets
            for name in names:
                defined.setdefault(name, []).append(path.name)
    for name in ("QUIET", "FAST", "FP32", "autocast", "met_text", "_yes", "cached_judge", "make_folder"):
        assert defined.get(name, ["common.py"]) == ["common.py"], f"{name} defined in {defined[name]}"


def test_quick_conv_peak_writes_a_report_outside_bench_results(tmp_path):
    import conv_peak

    conv_peak.main(["--quick", "--threads", "1", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "conv_peak.json").read_text())
    assert record["quick"] and record["iterations"] == 1
    assert all(v > 0 for row in record["gflops"].values() for v in row.values())
    with pytest.raises(SystemExit):
        conv_peak.main(["--quick", "--out", str(BENCH / "results")])


def test_quick_metrics_benchmark_writes_its_report(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the ONNX column needs unpaired[onnx] (the dev extra installs it)")
    import metrics

    monkeypatch.setenv("UNPAIRED_HOME", str(tmp_path / "home"))  # no weights file: random weights, said so
    metrics.main(["--quick", "--threads", "1", "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert record["quick"] and record["fid_kid"]["weights"].startswith("random weights")
    assert record["fid_kid"]["features_seconds_per_1000"] > 0
    cases = record["latency"]["cyclegan"]["ms"]
    assert set(cases) == {"1 thread(s)", "2 thread(s)"}
    assert all(v > 0 for row in cases.values() for v in row.values())
    assert "NOT measurements" in (tmp_path / "out" / "metrics.md").read_text()
    assert not record["horse2zebra"]["measured"]  # no run and no weights: nothing scored, and the report says why
    assert "no horse2zebra run given (--run)" in (tmp_path / "out" / "metrics.md").read_text()


def test_quick_metrics_benchmark_scores_a_horse2zebra_run(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the ONNX column needs unpaired[onnx] (the dev extra installs it)")
    import metrics
    from conftest import make_image_folders
    from fidelity_reference import random_inception
    from test_every_method import tiny_config

    from unpaired.training.trainer import Trainer

    monkeypatch.setenv("UNPAIRED_HOME", str(tmp_path / "home"))
    data = make_image_folders(tmp_path / "h2z", {"trainA": 4, "trainB": 4, "testA": 3, "testB": 4})
    Trainer(tiny_config("cyclegan", data, 1, "train.checkpoint_every=1000"), tmp_path / "run").fit()
    weights = random_inception(tmp_path / "inception.pth")
    metrics.main(["--quick", "--threads", "1", "--out", str(tmp_path / "out"), "--run", str(tmp_path / "run"),
                  "--horse2zebra", str(data), "--inception-weights", str(weights)])
    h = json.loads((tmp_path / "out" / "metrics.json").read_text())["horse2zebra"]
    score = h["runs"][str(tmp_path / "run")]
    assert h["measured"] and (score["n_fake"], score["n_real"]) == (3, 4)
    assert score["settings"]["kid_subset_size"] == 3  # lowered to the smaller test set
    assert f"| {tmp_path / 'run'} | {score['scores']['fid']:.1f} |" in (tmp_path / "out" / "metrics.md").read_text()
