"""What every benchmark script shares: paths, the data root, the machine's name and kind, timing of training steps,
the official code's speed figures for this CPU kind, FLOP counts and the CPU's convolution throughput.

Benchmark scripts import this module, never each other."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unpaired.devices import cpu_field, cpu_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"
REFERENCE_SPEEDS = ROOT.parent / "shared" / "reference-speeds.md"

CONFIGS_256 = {"cyclegan": "cyclegan_256", "unit": "unit_street256", "munit": "munit_edges2handbags"}
"""Each method's shipped 256 px configuration (the latency and serving benchmarks)."""
QUICK_MODEL = {"dim": 8, "n_res": 1, "dis_dim": 8, "dis_layers": 2, "dis_scales": 1, "mlp_dim": 16, "style_dim": 4}
"""--quick runs of those configurations: these model options shrunk, where the method has them."""
QUIET = ["train.progress=false", "train.tensorboard=false"]
"""Overrides every benchmark's training runs take: no progress bar, no TensorBoard files."""
FAST = ["train.precision=bf16", "train.channels_last=true"]
"""bf16 autocast + channels_last, named explicitly."""
FP32 = ["train.precision=fp32", "train.channels_last=false"]
"""fp32, named explicitly: a config may pick bf16 by itself."""
"""The official implementations' training speeds, one row per CPU kind (``UNPAIRED_REFERENCE_SPEEDS`` names
another file)."""
REFERENCE_CASES = ("UNIT small64 b8", "MUNIT small64 b8", "CycleGAN 64 b8")
"""The columns of reference-speeds.md that ``official_speeds`` returns."""
REFERENCE_CONFIGS = {  # case: (method, config files, overrides), as reference-speeds.md describes them
    "UNIT small64 b8": ("unit", [], ["model.dim=32", "model.n_res=2", "model.dis_dim=32", "model.dis_layers=4",
                                     "model.dis_scales=3", "model.gan_type=lsgan", "data.image_size=64",
                                     "train.batch_size=8"]),
    # MUNIT's own discriminator default is dim 64: the reference configuration's 32 is set explicitly
    "MUNIT small64 b8": ("munit", [], ["model.dim=32", "model.n_res=2", "model.dis_dim=32", "model.dis_layers=4",
                                       "model.dis_scales=3", "model.gan_type=lsgan", "data.image_size=64",
                                       "train.batch_size=8"]),
    "CycleGAN 64 b8": ("cyclegan", ["cyclegan_256"], ["data.image_size=64", "data.load_size=64",
                                                      "train.batch_size=8", "model.n_res=9"]),
}
RESIDUAL_BLOCK_SHAPE = (8, 256, 256, 16)
"""(batch, in channels, out channels, side) of a 3x3 convolution in a residual block of the CycleGAN reference
configuration (64 px, ngf 64, batch 8): the shape at which ``conv_gflops`` gives the CPU's convolution peak."""
KIND_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
"""/proc/cpuinfo flags that tell CPU kinds apart, named when a CPU kind has no official figure."""
if "UNPAIRED_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["UNPAIRED_DATA"] = str(SHARED_DATA)  # as the Makefile and the tests do


def cpu_flags(info: str | None = None) -> set[str]:
    """The feature flags of the first CPU in ``info`` (default: this machine's /proc/cpuinfo)."""
    return set(cpu_field("flags", info).split())


def _flag_rule(cell: str) -> tuple[set[str], set[str]] | None:
    """(flags required, flags forbidden) of a CPU-kind cell: "`a` + `b`" needs both, "`a`, no `b`" needs a and
    not b. None when the cell names no flag in backticks (such a row can match no CPU)."""
    required, forbidden = set(), set()
    for negated, flag in re.findall(r"(\b(?:no|without)\s+)?`([^`]+)`", cell):
        (forbidden if negated else required).add(flag.strip())
    return (required, forbidden) if required or forbidden else None


def _figure(cell: str) -> float | None:
    """3.94 from "3.94 img/s"; None for "not measured", "-" and anything without an images/s figure."""
    found = re.search(r"(\d+(?:\.\d+)?)\s*(?:img|images)/s", cell)
    return float(found.group(1)) if found else None


def reference_rows(text: str) -> list[dict[str, Any]]:
    """The CPU-kind rows of a reference-speeds.md table: name (the first cell up to the flag rule), the cell
    itself, its flag rule (None: the row matches no CPU), the figures of ``REFERENCE_CASES`` (None where not
    measured) and the date of the measurement (None for "-")."""
    header: list[str] | None = None
    rows = []
    for line in text.splitlines():
        if not line.strip().startswith("|"):  # a table ends at the first line that is not a row
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells if any("cpu kind" in c.lower() for c in cells) else None
            continue
        if all(set(c) <= set("-: ") for c in cells):  # the |---| line
            continue
        row = dict(zip(header, cells, strict=False))
        first = cells[0]
        name = first.split("`", 1)[0].strip().rstrip(":,").strip() if "`" in first else first
        date = cells[-1] if len(cells) == len(header) and header[-1].lower().startswith("measured") else None
        rows.append({"name": name or first, "kind": first, "rule": _flag_rule(first),
                     "figures": {case: _figure(row.get(case, "")) for case in REFERENCE_CASES},
                     "date": None if date in (None, "", "-") else date})
    return rows


def cpu_vendor(info: str | None = None) -> str:
    """"AMD", "Intel" or the raw vendor_id of the first CPU in ``info`` (default: this machine's); "" if none."""
    vendor = cpu_field("vendor_id", info)
    return {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(vendor, vendor)


def _matches(row: dict[str, Any], flags: set[str], vendor: str) -> bool:
    """Whether a CPU with these flags and vendor is the row's kind: its flag rule holds and, where the row's name
    starts with a vendor (AMD, Intel) and the CPU's vendor is known, it is that vendor (an Intel Xeon that lists
    AVX-512 BF16 has the flags of the "AMD EPYC, Zen 4" rule, not its speed)."""
    if row["rule"] is None:
        return False
    required, forbidden = row["rule"]
    row_vendor = row["name"].split()[0].rstrip(",") if row["name"].split() else ""
    same_vendor = row_vendor not in ("AMD", "Intel") or not vendor or vendor == row_vendor
    return required <= flags and not forbidden & flags and same_vendor


def reference_lookup(flags: set[str] | None = None, path: Path | None = None,
                     vendor: str | None = None) -> tuple[dict[str, Any] | None, str]:
    """(the reference-speeds.md row of the CPU with these ``flags`` and ``vendor``, "") or (None, why there is
    none): the file is absent, no row matches, or more than one does (rows are exclusive by their rules, so the
    kind is then ambiguous). Defaults: this machine's flags and vendor, ``UNPAIRED_REFERENCE_SPEEDS`` or
    ../shared/reference-speeds.md."""
    path = path or Path(os.environ.get("UNPAIRED_REFERENCE_SPEEDS", REFERENCE_SPEEDS))
    flags = cpu_flags() if flags is None else flags
    vendor = cpu_vendor() if vendor is None else vendor
    if not path.is_file():
        return None, f"{path} does not exist: no official figure for this CPU kind ({cpu_description(flags)}), no ratio"
    matching = [row for row in reference_rows(path.read_text()) if _matches(row, flags, vendor)]
    if len(matching) > 1:
        names = "; ".join(row["kind"] for row in matching)
        return None, (f"this CPU kind ({cpu_description(flags)}) matches more than one row of {path.name} "
                      f"({names}): the kind is ambiguous, no ratio")
    if not matching:
        return None, f"this CPU kind ({cpu_description(flags)}) has no official figure in {path.name}: no ratio"
    return {key: matching[0][key] for key in ("name", "kind", "figures", "date")}, ""


def official_speeds(flags: set[str] | None = None, path: Path | None = None,
                    vendor: str | None = None) -> dict[str, Any] | None:
    """The reference-speeds.md row of this CPU kind: ``{"name", "kind", "figures": {case: images/s or None},
    "date"}``; None where the file is absent, no row matches or the kind is ambiguous (``reference_lookup``
    says which)."""
    return reference_lookup(flags, path, vendor)[0]


def cpu_description(flags: set[str] | None = None) -> str:
    """"<model name>, flags avx2 avx512f ..., no amx_bf16": the CPU's name and the flags that tell kinds apart."""
    flags = cpu_flags() if flags is None else flags
    present = [f for f in KIND_FLAGS if f in flags]
    absent = [f for f in KIND_FLAGS if f not in flags]
    return (f"{cpu_name()}, flags {' '.join(present) or 'none of ' + ' '.join(KIND_FLAGS)}"
            + (f", no {' '.join(absent)}" if absent and present else ""))


def official_figure(case: str, flags: set[str] | None = None, path: Path | None = None,
                    vendor: str | None = None) -> dict[str, Any]:
    """The official images/s of ``case`` (one of ``REFERENCE_CASES``) on this CPU kind, for a report:
    ``{"images_per_second": x, "cpu_kind": row name, "measured": date}``, or ``{"images_per_second": None,
    "no_figure": the plain sentence}`` where this kind has no figure for it (never another kind's figure)."""
    row, why = reference_lookup(flags, path, vendor)
    if row is None:
        return {"images_per_second": None, "cpu_kind": None, "no_figure": why}
    figure = row["figures"].get(case)
    if figure is None:
        return {"images_per_second": None, "cpu_kind": row["name"],
                "no_figure": f"this CPU kind ({row['name']}) has no official figure for {case} in reference-speeds.md "
                             "(not measured): no ratio"}
    return {"images_per_second": figure, "cpu_kind": row["name"], "measured": row["date"]}


def provenance(script: str, argv: list[str] | None = None, **machine: Any) -> dict[str, Any]:
    """What every benchmark record starts with: the exact command, the UTC date and the machine (``machine``
    adds keys, e.g. ``native_bf16``). ``argv`` defaults to the command line of this process."""
    import torch

    arguments = sys.argv[1:] if argv is None else argv
    return {"command": " ".join(["python", f"bench/{script}", *arguments]),
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


def step_flops(trainer: Any, step: int) -> float:
    """Floating-point operations of one training step (``trainer.train_step`` on batch ``step``) as torch's
    FlopCounterMode counts them (convolutions and matrix products, forward and backward), so a report can say
    what share of the CPU's peak a speed is. The count depends on shapes only, not on precision or layout."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.train_step(trainer.batches[step])
    return float(counter.get_total_flops())


def conv_gflops(batch: int, cin: int, cout: int, side: int, dtype: Any, channels_last: bool, iterations: int,
                warmup: int = 3) -> float:
    """GFLOP/s of one forward 3x3 convolution (``F.conv2d``, padding 1; 2 FLOPs per multiply-add) over the median
    of ``iterations`` calls after ``warmup``: what this CPU's convolutions reach at that shape and precision."""
    import torch
    import torch.nn.functional as F

    x, w = torch.randn(batch, cin, side, side, dtype=dtype), torch.randn(cout, cin, 3, 3, dtype=dtype)
    if channels_last:
        x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = median_seconds(lambda _: F.conv2d(x, w, padding=1), iterations, warmup)
    return 2 * batch * side * side * cin * cout * 9 / seconds / 1e9


def config_256(method: str, size: int, quick: bool, overrides: list[str] | None = None) -> Any:
    """``method``'s shipped 256 px configuration at ``size`` px, its model shrunk to ``QUICK_MODEL`` when ``quick``."""
    import dataclasses

    from unpaired.config import build_config
    from unpaired.methods import METHODS

    fields = {f.name for f in dataclasses.fields(METHODS.get(method).Config)}
    shrink = [f"model.{k}={v}" for k, v in QUICK_MODEL.items() if k in fields] if quick else []
    return build_config(method, [CONFIGS_256[method]], [f"data.image_size={size}", *(overrides or []), *shrink])


def make_folder(root: Path, size: int, count: int = 16) -> Path:
    """ROOT/trainA and ROOT/trainB with ``count`` random RGB PNGs of ``size`` px each (synthetic training data
    for speed measurements, decoded like real images)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for side in ("trainA", "trainB"):
        (root / side).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / side / f"{i}.png")
    return root


def autocast(bf16: bool) -> Any:
    """bf16 autocast on the CPU when ``bf16``, else a context that does nothing."""
    from contextlib import nullcontext

    import torch

    return torch.autocast("cpu", torch.bfloat16) if bf16 else nullcontext()


def met_text(met: bool | None) -> str:
    """A target's verdict in a report: **met**, **not met**, or "no ratio" where it could not be judged."""
    return "no ratio" if met is None else "**met**" if met else "**not met**"


def add_output_options(parser: argparse.ArgumentParser, name: str) -> None:
    """--set, --out, --work and --quick, as the method benchmarks (munit, tunit) share them."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for the digits run (repeatable)")
    add_quick_option(parser, "tiny budgets to check the script end to end")
    parser.add_argument("--work", type=Path, default=None,
                        help=f"run folders, cached judges and feature network (default runs/bench_{name})")


def add_quick_option(parser: argparse.ArgumentParser, what: str) -> None:
    """--out and --quick (``what`` a quick run does; it writes to a temporary folder), for
    ``resolve_output_folders``; scripts without run folders get --work None."""
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--quick", action="store_true", help=f"{what}; writes to a temporary folder")
    parser.set_defaults(work=None)


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


def data_split(data: str, split: str, rows: tuple[int, int] | None = None, what: str = "") -> dict[str, Any]:
    """One part of a data set as a report names it: rows [start, stop) of DATA's SPLIT in the loader's order, or,
    with ``rows`` None, a part not given as a range (the whole split, or a random draw: ``what`` says which),
    which counts as overlapping every other part of that split."""
    return {"data": data, "split": split, "rows": list(rows) if rows else None, "what": what}


def split_overlaps(splits: dict[str, Any]) -> list[str]:
    """Every pair of a selection part and a test part that share images (same data set and split, rows not
    disjoint): what a report's ``splits`` record must not hold."""
    clashes = []
    for chosen in splits["selection"]:
        for scored in splits["test"]:
            if (chosen["data"], chosen["split"]) != (scored["data"], scored["split"]):
                continue
            a, b = chosen["rows"], scored["rows"]
            if a is None or b is None or (a[0] < b[1] and b[0] < a[1]):
                clashes.append(f"{chosen['data']} {chosen['split']} rows {a or 'all'} chose and {b or 'all'} scored")
    return clashes


def splits_record(selection: list[dict[str, Any]], test: list[dict[str, Any]], chooses: list[str]) -> dict[str, Any]:
    """A report's ``splits``: the data that chose anything (``chooses`` says what it chose) and the data its
    figures are scored on; refuses a record where the two share images."""
    record = {"selection": selection, "test": test, "chooses": chooses}
    clashes = split_overlaps(record)
    if clashes:
        raise ValueError("the selection and test splits overlap: " + "; ".join(clashes))
    return record


def splits_lines(splits: dict[str, Any]) -> list[str]:
    """A ``splits`` record as Markdown lines: which data chose what, and which data the figures are scored on."""
    def part(p: dict[str, Any]) -> str:
        rows = f" rows {p['rows'][0]}-{p['rows'][1] - 1}" if p["rows"] else ""
        return f"{p['data']} {p['split']}{rows}" + (f" ({p['what']})" if p["what"] else "")

    return ["Selection split (chose: " + "; ".join(splits["chooses"]) + "): "
            + ", ".join(part(p) for p in splits["selection"]) + ".  ",
            "Test split (the figures): " + ", ".join(part(p) for p in splits["test"]) + "; no image in both.",
            *(["**Not held out**: " + "; ".join(splits["not_held_out"]) + "."] if splits.get("not_held_out") else []),
            ""]


def recorded(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The run record (JSON) at ``path`` if it was measured with exactly ``settings`` (its "settings" key), else
    None: a benchmark of several sittings reuses such a record instead of running it again."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("settings") == settings else None


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
