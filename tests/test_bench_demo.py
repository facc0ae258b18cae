"""bench/demo.py --quick: runs `unpaired demo` in a fresh process on tiny stand-ins for MNIST and USPS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from test_data import tiny_mnist, tiny_usps_h5

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import demo as bench_demo


def test_quick_demo_benchmark_writes_its_report(tmp_path, monkeypatch):
    root = tmp_path / "data"
    tiny_mnist(root, n_train=40, n_test=12)
    tiny_usps_h5(root, n=30)
    monkeypatch.setenv("UNPAIRED_DATA", str(root))
    out = tmp_path / "out"
    bench_demo.main(["--quick", "--out", str(out), "--set", "model.dim=8", "--set", "model.dis_dim=8"])
    record = json.loads((out / "demo.json").read_text())
    assert record["quick"] and record["scores"]["steps"] == 3
    assert set(record["margins"]) == {"mnist_to_usps", "usps_to_mnist"}
    assert "NOT measurements" in (out / "demo.md").read_text() and (out / "demo_grid.png").is_file()
