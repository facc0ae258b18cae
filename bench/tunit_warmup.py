"""How reliably TUNIT's guiding network E finds the hidden sources in its warm-up, over seeds and variants.

E trains alone for the first ``model.warmup_steps`` (2500 in ``tunit_digits``); whatever split of the pool it
has then is what the generator and the discriminator learn from. This script runs ``bench/tunit.py`` with
``--steps`` equal to the warm-up (so E alone, nothing else trains) for every seed of ``--seeds`` and every
variant of ``--variant`` (NAME=OVERRIDE[,OVERRIDE...], ``base`` is the shipped config), and tabulates the
clustering accuracy (bench/tunit.py's protocol: each pseudo domain mapped to its majority source) and the number
of pseudo domains holding more than 1% of the pool.

Each run writes WORK/NAME_sSEED/tunit.json; a run whose folder already holds one is read, not run again, so an
interrupted sweep resumes and runs made by hand with the same command can be filed there. Writes
OUT/tunit_warmup.json and OUT/tunit_warmup.md (OUT: --out, default bench/results).

    python bench/tunit_warmup.py --seeds 0-5 --variant base= --variant lr1e-4=model.guide_lr_scale=1
    python bench/tunit_warmup.py --quick    # seed 0, base only, each run bench/tunit.py --quick: a smoke check
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import add_quick_option, provenance, provenance_lines, resolve_output_folders, write_report

HERE = Path(__file__).resolve().parent
SOURCE_SHARE = 0.01
"""A pseudo domain counts as used when it holds more than this share of the pool."""
QUICK_STEPS = 6
"""The steps of ``bench/tunit.py --quick``, which every run of a --quick sweep is."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-5", help="train.seed values: 'A-B' or comma-separated")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=OVERRIDE[,OVERRIDE...] (repeatable; default: base=, the shipped config)")
    parser.add_argument("--steps", type=int, default=2500, help="steps of each run (the config's warm-up: 2500)")
    add_quick_option(parser, "seed 0 and the base variant only (unless given), each run `bench/tunit.py --quick` "
                             "on 1 thread: checks the script end to end")
    parser.add_argument("--work", type=Path, default=None,
                        help="runs, judges and pools (shared with bench/tunit.py's --work; default "
                             "runs/bench_tunit_warmup)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.variant = "0", QUICK_STEPS, args.variant or ["base="]
    resolve_output_folders(parser, args, "tunit_warmup")
    low, _, high = args.seeds.partition("-")
    args.seeds = list(range(int(low), int(high) + 1)) if high else [int(s) for s in args.seeds.split(",")]
    variants = args.variant or ["base="]
    args.variants = {}
    for text in variants:
        name, sep, overrides = text.partition("=")
        if not sep or not name:
            parser.error(f"--variant needs NAME=OVERRIDE[,OVERRIDE...], got '{text}'")
        args.variants[name] = [o for o in overrides.split(",") if o]
    return args


def run_once(name: str, overrides: list[str], seed: int, args: argparse.Namespace) -> dict:
    """bench/tunit.py for ``args.steps`` steps with ``overrides`` and ``seed`` (or its earlier result)."""
    out = args.work / f"{name}_s{seed}"
    result = out / "tunit.json"
    if not result.exists():
        sets = [arg for o in [*overrides, f"train.seed={seed}"] for arg in ("--set", o)]
        command = [sys.executable, str(HERE / "tunit.py"), "--minutes", "0", "--steps", str(args.steps), *sets,
                   "--out", str(out), "--work", str(args.work), *(["--quick", "--threads", "1"] if args.quick else [])]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
    report = json.loads(result.read_text())
    counts = report["clustering"]["counts_domain_by_source"]
    total = report["clustering"]["images"]
    used = sum(1 for by_source in counts.values() if sum(by_source.values()) > SOURCE_SHARE * total)
    return {"seed": seed, "clustering": report["clustering"]["accuracy"], "domains_used": used,
            "steps": report["training"]["steps"], "overrides": report["training"]["overrides"],
            "command": report["command"], "machine": report["machine"], "date": report["date"]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results: dict = {**provenance("tunit_warmup.py", argv), "quick": args.quick, "steps": args.steps, "variants": {}}
    for name, overrides in args.variants.items():
        runs = [run_once(name, overrides, seed, args) for seed in args.seeds]
        scores = [r["clustering"] for r in runs]
        results["variants"][name] = {"overrides": overrides, "runs": runs, "mean": round(statistics.mean(scores), 4),
                                     "min": min(scores), "at_least_0.95": sum(s >= 0.95 for s in scores)}
    lines = [f"# TUNIT: E's warm-up alone ({args.steps} steps), clustering accuracy over seeds", "",
             *(["> **`--quick` run: tiny budgets that only check the script end to end. These figures are NOT "
                "measurements.**", ""] if args.quick else []),
             *provenance_lines(results, "Summary command"),
             f"Each run: `python bench/tunit.py --minutes 0 --steps {args.steps} --set OVERRIDES --set train.seed=S"
             f"{' --quick' if args.quick else ''}` "
             "(its own command, date and machine are in the json).", "",
             "| variant | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | min | >= 0.95 |",
             "|---|" + "---|" * (len(args.seeds) + 3)]
    for name, v in results["variants"].items():
        cells = [f"{r['clustering']} ({r['domains_used']} dom.)" for r in v["runs"]]
        lines.append(f"| {name} `{','.join(v['overrides']) or 'shipped'}` | " + " | ".join(cells)
                     + f" | {v['mean']} | {v['min']} | {v['at_least_0.95']}/{len(v['runs'])} |")
    machines = sorted({(r["machine"]["cpu"], r["machine"]["threads"], r["machine"]["torch"])
                       for v in results["variants"].values() for r in v["runs"]})
    lines += ["", "dom.: pseudo domains holding more than 1% of the pool (K = 6; 3 hidden sources).",
              "Machines of the runs: " + "; ".join(f"{cpu}, {threads} torch threads, torch {torch}"
                                                   for cpu, threads, torch in machines) + "."]
    write_report(args.out, "tunit_warmup", results, "\n".join(lines))


if __name__ == "__main__":
    main()
