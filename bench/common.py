"""What every benchmark script shares: paths, the data root, the machine's name, timing of training steps."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"
if "UNPAIRED_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["UNPAIRED_DATA"] = str(SHARED_DATA)  # as the Makefile and the tests do


def cpu_name() -> str:
    from unpaired.training.trainer import cpu_info

    for line in cpu_info().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def provenance(script: str, argv: list[str] | None = None, **machine: Any) -> dict[str, Any]:
    """What every benchmark record starts with: the exact command, the UTC date and the machine (``machine``
    adds keys, e.g. ``native_bf16``). ``argv`` defaults to the command line of this process."""
    import torch

    return {"command": f"python bench/{script} " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(), **machine,
                        "torch": torch.__version__, "python": platform.python_version()}}


def median_seconds(call: Callable[[int], Any], calls: int, warmup: int) -> float:
    """Median wall time of ``call(i)`` over ``calls`` calls after ``warmup`` untimed ones (``i`` counts all)."""
    times = []
    for i in range(warmup + calls):
        started = time.perf_counter()
        call(i)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def median_step_seconds(trainer: Any, steps: int, warmup: int) -> float:
    """Median wall time of ``trainer.train_step`` (data decoding included) over ``steps`` after ``warmup``."""
    return median_seconds(lambda t: trainer.train_step(trainer.batches[t]), steps, warmup)


def add_output_options(parser: argparse.ArgumentParser, name: str) -> None:
    """--set, --out, --work and --quick, as the method benchmarks (munit, tunit) share them."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for the digits run (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--work", type=Path, default=None,
                        help=f"run folders, cached judges and feature network (default runs/bench_{name})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budgets to check the script end to end; writes to a temporary folder")


def resolve_output_folders(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str) -> None:
    """Fill in --out and --work; --quick figures are no measurements, so they never land in bench/results."""
    if args.quick:
        if args.out is not None and args.out.resolve() == RESULTS.resolve():
            parser.error("--quick figures are not measurements: give --out another folder than bench/results")
        args.out = args.out or Path(tempfile.mkdtemp(prefix=f"{name}_quick_"))
        args.work = args.work or args.out / "work"
    args.out = args.out or RESULTS
    args.work = args.work or ROOT / "runs" / f"bench_{name}"


def pair_counts(rows: Any, cols: Any, shape: tuple[int, int]) -> Any:
    """How often each (rows[i], cols[i]) pair occurs: a ``shape`` table of counts (a confusion or contingency
    table), from two 1-D integer tensors."""
    import torch

    return torch.bincount(rows * shape[1] + cols, minlength=shape[0] * shape[1]).view(shape)


def write_report(out: Path, name: str, record: dict[str, Any], markdown: str) -> None:
    """OUT/NAME.json (the record) and OUT/NAME.md (its report), creating OUT; the report is also printed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
    print(markdown)


def provenance_lines(r: dict[str, Any], command_label: str = "Command") -> list[str]:
    """A ``provenance`` record as Markdown lines (each ending in a line break): command, date, machine."""
    m = r["machine"]
    bf16 = f", native bf16: {m['native_bf16']}" if "native_bf16" in m else ""
    return [f"{command_label}: `{r['command']}`  ", f"Date: {r['date']}  ",
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} torch threads{bf16}, torch {m['torch']}  "]


def report_header(title: str, r: dict[str, Any]) -> list[str]:
    """The Markdown head of a method benchmark's report: title, the --quick warning, command, date, machine."""
    lines = [f"# {title}", ""]
    if r["quick"]:
        lines += ["> **`--quick` run: tiny budgets that only check the script end to end. These figures are NOT "
                  "measurements.**", ""]
    return [*lines, *provenance_lines(r), f"Whole benchmark: {r['total_seconds'] / 60:.1f} min", ""]
