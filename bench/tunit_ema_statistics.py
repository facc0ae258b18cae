"""A trained TUNIT run evaluated again with its EMA guiding network's batch-norm statistics as stored, and
re-estimated for its weights: does the EMA copy's clustering and translation depend on those statistics?

Before commit 6a79bc9 the trainer's EMA copy took the live network's batch-norm running statistics at every step,
with averaged weights (since then TUNIT re-estimates the copy's own at every step). This script loads RUN's last
checkpoint (the EMA copy, as ``unpaired translate`` does) and scores it twice with ``bench/tunit.py``'s judges and
protocol, on the first ``--eval`` test digits of each source: first as stored, then after re-estimating the
statistics of E (``unpaired.metrics.adaptation.recalibrate_batch_norm``: one pass, cumulative averages) over 3000
training digits of each source, shuffled. Pseudo domains are mapped to sources by majority over those test digits.
Writes OUT/NAME.json and OUT/NAME.md (OUT: --out, default bench/results).

    python bench/tunit_ema_statistics.py RUN_DIGITS_FOLDER --name tunit_style_tiles_ema_statistics
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import RESULTS, provenance, provenance_lines, write_report
from munit import cached_judge
from tunit import SOURCES, encode, evaluate_pair, load_source, match_domains, style_digit_probe


def score(translator: object, data: dict, judges: dict, n: int) -> dict:
    """bench/tunit.py's clustering (majority mapping, over test digits here) and translation figures."""
    assigned = torch.cat([encode(translator, data[name]["test"][0][:n], False)[0] for name in SOURCES])
    truth = torch.cat([torch.full((min(n, len(data[name]["test"][0])),), s) for s, name in enumerate(SOURCES)])
    accuracy, table, cluster = match_domains(assigned, truth, translator.method.cfg.k, list(SOURCES))
    pairs = [evaluate_pair(translator, s, t, data, judges, None, cluster, n, False, 0)
             for s in SOURCES for t in SOURCES if s != t]
    return {"test_clustering_accuracy": round(accuracy, 4), "counts_domain_by_source": table.tolist(),
            "translation": pairs,
            "style_digit_probe": style_digit_probe(translator, data, list(SOURCES), n, False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a bench/tunit.py run's digits folder (holds checkpoints/)")
    parser.add_argument("--name", default="tunit_ema_statistics")
    parser.add_argument("--eval", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("runs/bench_tunit"), help="judges (bench/tunit.py's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from unpaired import load
    from unpaired.metrics.adaptation import recalibrate_batch_norm

    checkpoint = sorted((args.run / "checkpoints").glob("step_*.pt"))[-1]
    data = {name: {split: load_source(name, split) for split in ("train", "test")} for name in SOURCES}
    judges = {name: cached_judge(name, *data[name]["train"], 600, args.work) for name in SOURCES}
    pool = torch.cat([data[name]["train"][0][:3000] for name in SOURCES])
    pool = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))]
    record = {**provenance("tunit_ema_statistics.py"), "checkpoint": str(checkpoint)}
    for case in ("as_stored", "re_estimated"):
        translator = load(checkpoint, device="cpu")
        if case == "re_estimated":
            recalibrate_batch_norm(translator.method.guide, pool, batch_size=256)
        record[case] = score(translator, data, judges, args.eval)
        print(case, record[case]["test_clustering_accuracy"], flush=True)
    lines = ["# TUNIT: the EMA guiding network's batch-norm statistics, as stored and re-estimated", "",
             *provenance_lines(record), f"Checkpoint: `{checkpoint}`", "",
             "| measure | as stored | re-estimated |", "|---|---|---|",
             f"| clustering of the test digits | {record['as_stored']['test_clustering_accuracy']} | "
             f"{record['re_estimated']['test_clustering_accuracy']} |"]
    for a, b in zip(record["as_stored"]["translation"], record["re_estimated"]["translation"], strict=True):
        for key in ("kept_reference_guided", "took_reference_digit", "kept_domain_guided", "landed_in_target_domains"):
            lines.append(f"| {a['pair']} {key.replace('_', ' ')} | {a[key]} | {b[key]} |")
    lines.append(f"| style digit probe (5-NN) | {record['as_stored']['style_digit_probe']} | "
                 f"{record['re_estimated']['style_digit_probe']} |")
    write_report(args.out, args.name, record, "\n".join(lines))


if __name__ == "__main__":
    main()
