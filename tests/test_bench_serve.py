"""bench/serve.py --quick: the real `unpaired serve` in a subprocess under 1, 4 and 16 clients, end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve benchmark needs the serve extra: pip install 'unpaired[serve]'")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_quick_serve_benchmark_writes_its_report(tmp_path):
    import serve

    out = tmp_path / "out"
    serve.main(["--quick", "--out", str(out)])
    record = json.loads((out / "serve.json").read_text())
    assert record["quick"] and [level["clients"] for level in record["levels"]] == [1, 4, 16]
    for level in record["levels"]:
        assert level["requests"] == 8 and 0 < level["p50_ms"] <= level["p95_ms"] and level["requests_per_second"] > 0
    assert record["memory"]["uploads"] == 20 and record["memory"]["rss_mib_after"] > 0
    assert "NOT measurements" in (out / "serve.md").read_text()
