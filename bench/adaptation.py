"""UNIT's digit domain-adaptation table on this CPU: MNIST -> USPS and USPS -> MNIST, several seeds each.

Each run is one ``unpaired eval adaptation`` (``unpaired.metrics.adaptation.run_adaptation``): UNIT trained on
the unlabelled training digits of both domains for ``--translator-minutes``, then digit classifiers trained
with source labels only (rows ``source_only``, ``translated_self_ensembling``, ``self_ensembling``, ``ensemble`` of
those two, its control without translation ``ensemble_without_translation``, and UNIT's own classifier head on its
discriminators, ``discriminator_head``, the paper's way: the translator is trained with the head and CoGAN-style
shared discriminator layers, as in the paper, and serves every row; optionally ``translated``) and the
target-supervised upper limit, all scored on the whole target test set. The headline of each direction is the row
the protocol's rule picks on the source validation split alone (the highest mean source-validation accuracy over
the seeds run), whatever its target figure. Writes
``--out``/adaptation.json, adaptation.md (mean +- std over seeds, wall time per run, the digit FID of the
translations) and adaptation_examples.png (source test digits and their translations, first seed of each
direction). The runs' own folders (translators, per-run reports) go to ``--work`` (not committed).

    python bench/adaptation.py                       # 2 directions x 3 seeds, the defaults (~35 min a run)
    python bench/adaptation.py --seeds 0             # one run per direction; later seeds reuse its records
    python bench/adaptation.py --seeds 0 --translator-minutes 1 --classifier-steps 200 --work /tmp/a --out /tmp/a
    python bench/adaptation.py --quick               # seed 0, 3 translator steps: checks the script end to end

``--method cogan`` runs CoGAN's own adaptation (Liu & Tuzel 2016, Sec. 5) in the same protocol: the translator is
CoGAN (``cogan_digits``) with a classifier head on its discriminators' shared layers, trained on source labels, and
the rows are ``source_only``, ``discriminator_head`` and ``target_supervised`` (a method that translates by an
optimisation per image, as CoGAN's inversion, gets no translated rows by default: inverting 54,000 digits would
take hours). Its translator keeps a checkpoint every ``--curve-every`` steps, and the report gives the head's target
accuracy at each, against the training wall time (its own report: ``--out``/adaptation_cogan.json, .md, with
``adaptation_cogan_runs/``), next to the official CoGAN code's points on this machine kind
(issue 39: 0.760 MNIST -> USPS and 0.636 USPS -> MNIST after 89 minutes, 1,400 iterations) and the paper's figures
(0.9565 / 0.9315 after 10,000 iterations):

    python bench/adaptation.py --method cogan --seeds 0 --translator-minutes 90
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shlex
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from common import (
    add_quick_option,
    cpu_name,
    data_split,
    recorded,
    resolve_output_folders,
    splits_lines,
    splits_record,
    write_report,
)

from unpaired.io import atomic_json
from unpaired.methods import METHODS
from unpaired.metrics.adaptation import (
    ENSEMBLES,
    PAPER,
    SELECTION_RULE,
    AdaptationSettings,
    default_rows,
    run_adaptation,
    selected_row,
    translator_config_name,
)

DEFAULT_METHOD = "unit"
"""The protocol's translator (UNIT's digit table); its report is ``adaptation``."""
TARGET_SEEDS = 3
"""Seeds a target is judged on; with fewer, ``met`` stays empty."""


@dataclass(frozen=True)
class ReadBeside:
    """What one method's adaptation report is read beside (nothing, for a method without an entry in READ_BESIDE)."""

    paper: dict[str, float] = field(default_factory=dict)
    """Its paper's accuracy per task: the report's paper column."""
    targets: dict[str, float] = field(default_factory=dict)
    """What an issue asks of it per task (mean over TARGET_SEEDS seeds, 30 minutes a run): target and met columns."""
    points: dict[str, list[dict]] = field(default_factory=dict)
    """Published or measured points of its discriminator head, which the head's accuracy-against-time curve is read
    beside."""
    config_choice: str | None = None
    """How its translator config was chosen, for the report's record of what chose what."""


def cogan_points(official: float, paper: float) -> list[dict]:
    return [{"what": "official CoGAN code, this machine kind, 2 threads (issue 39)", "minutes": 89,
             "iterations": 1400, "accuracy": official},
            {"what": "CoGAN paper (NeurIPS 2016, Table 1)", "minutes": None, "iterations": 10000, "accuracy": paper}]


READ_BESIDE = {
    "unit": ReadBeside(paper=PAPER, targets={"mnist->usps": 0.965, "usps->mnist": 0.94},  # issue 8: beat the paper
                       config_choice="the translator config: unit_adaptation against unit_digits (see "
                       "probes/unit_adaptation_config: the probes behind it also read USPS test labels, which this "
                       "benchmark no longer does)"),
    "cogan": ReadBeside(points={"mnist->usps": cogan_points(0.760, 0.9565),
                                "usps->mnist": cogan_points(0.636, 0.9315)}),
}


def read_beside(method: str) -> ReadBeside:
    return READ_BESIDE.get(method, ReadBeside())


TRAINED_WITH_TRANSLATOR = {"discriminator_head"}
"""Rows trained with the translator itself, not as separate classifiers of ``--classifier-steps`` steps."""
ROW_NOTES = {
    "ensemble": "`ensemble` averages the " + " and ".join(f"`{m}`" for m in ENSEMBLES["ensemble"])
    + " classifiers of the run (mean class probabilities).",
    "ensemble_without_translation": "`ensemble_without_translation` is its control without translation (two "
    "`self_ensembling` classifiers of different seeds): the gap between the two is what translation adds.",
    "discriminator_head": "`discriminator_head` is the paper's own classifier (a head on the translator's "
    "discriminators).",
    "target_supervised": "`target_supervised` (trained on target labels) is the upper limit, measured in the same "
    "runs with the same classifier.",
    "source_only": "`source_only` is the no-adaptation floor, measured in the same runs with the same classifier.",
}
"""What the report says about each row it has."""


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def fmt(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "-"
    return f"{stats['mean']:.4f} +- {stats['std']:.4f}" if stats["n"] > 1 else f"{stats['mean']:.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="mnist->usps,usps->mnist")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--translator-minutes", type=float, default=AdaptationSettings.translator_minutes)
    parser.add_argument("--classifier-steps", type=int, default=AdaptationSettings.classifier_steps)
    parser.add_argument("--method", default=DEFAULT_METHOD,
                        help="translator method (cogan: its own adaptation, see above)")
    parser.add_argument("--variants", default=None,
                        help="rows (default: the protocol's; source_only,discriminator_head,target_supervised for a "
                             "method that translates by an optimisation per image)")
    parser.add_argument("--fid-steps", type=int, default=None, help="digit FID network steps (default 1000; 0 for a "
                                                                    "method that translates by an optimisation)")
    parser.add_argument("--curve-every", type=int, default=None,
                        help="keep a translator checkpoint every N steps and score the discriminator head at each: "
                             "accuracy against wall time (default: 250 for a method without translated rows)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for the translators (repeatable)")
    add_quick_option(parser, "seed 0, 3 translator steps, 10 classifier steps, 64 images per split: checks the "
                             "script end to end")
    parser.add_argument("--work", type=Path, default=None, help="run folders (default runs/bench_adaptation)")
    parser.add_argument("--records-only", action="store_true",
                        help="run nothing: rewrite the table from the runs recorded so far")
    args = parser.parse_args(argv)
    rows, fid_steps = default_rows(args.method)
    args.variants = args.variants or ",".join(rows)
    args.fid_steps = fid_steps if args.fid_steps is None else args.fid_steps
    if args.curve_every is None and not METHODS.get(args.method).exportable:  # no translated rows: the head's curve
        args.curve_every = 250
    if args.curve_every:  # every checkpoint kept: the curve reads them all
        args.overrides = [f"train.checkpoint_every={args.curve_every}", "train.keep_checkpoints=1000000",
                          *args.overrides]
    quick = {}
    if args.quick:
        args.seeds, args.classifier_steps, args.translator_minutes = "0", 10, None
        args.fid_steps = min(args.fid_steps, 5)
        quick = {"translator_steps": 3, "batch_size": 8, "limit": 64}
        args.overrides = ["train.batch_size=8", *args.overrides, "train.checkpoint_every=3"]
    stem = report_name(args.method)
    resolve_output_folders(parser, args, stem)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = [t.strip().split("->") for t in args.tasks.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    command = "python bench/adaptation.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    records = args.out / f"{stem}_runs"  # one small JSON (+ examples PNG) per finished run, committed
    records.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {f"{s}->{t}": [] for s, t in tasks}
    for seed in seeds:  # seed-major: a cut-short benchmark still has both directions
        for source, target in tasks:
            task, name = f"{source}->{target}", f"{source}2{target}_seed{seed}"
            settings = AdaptationSettings(source=source, target=target, seed=seed, variants=variants,
                                          method=args.method, translator_minutes=args.translator_minutes,
                                          classifier_steps=args.classifier_steps, fid_steps=args.fid_steps,
                                          overrides=args.overrides, **quick)
            record = records / f"{name}.json"
            report = recorded(record, asdict(settings))
            if report is not None:  # measured earlier with these exact settings
                print(f"{task} seed {seed}: reused {record}", flush=True)
            elif args.records_only:
                continue
            else:
                # one work folder per settings: a run of other settings is never resumed or reused
                digest = hashlib.sha1(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:8]
                folder = args.work / f"{name}_{digest}"
                started = time.perf_counter()
                report = run_adaptation(settings, folder)
                report["wall_seconds"] = round(time.perf_counter() - started, 1)
                report["translator_steps"] = json.loads((folder / "translator" / "translator_done.json")
                                                        .read_text())["step"]
                for row in report["rows"].values():
                    row.pop("trace", None)
                if args.curve_every and "discriminator_head" in variants:
                    report["curve"] = head_curve(folder / "translator", settings)
                atomic_json(record, report)
                if (folder / "examples.png").is_file():
                    shutil.copyfile(folder / "examples.png", records / f"{name}.png")
            runs[task].append(report)
            print(f"{task} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in report["accuracy"].items())
                  + f" ({report['wall_seconds']:.0f} s)", flush=True)
            write_results(runs, seeds, variants, command, args.out, records, args.quick)
    print((args.out / f"{stem}.md").read_text())


def report_name(method: str) -> str:
    """UNIT's table is ``adaptation``; another method's own adaptation gets its own report beside it, so a run of
    ``--method cogan`` never overwrites UNIT's."""
    return "adaptation" if method == DEFAULT_METHOD else f"adaptation_{method}"


def head_curve(run_dir: Path, settings: AdaptationSettings) -> list[dict]:
    """The translator's discriminator head scored at every checkpoint it kept: target test accuracy (and source
    validation accuracy) against the training wall time up to that step. The time is the trainer's own, summed
    from its logged speed windows (training steps with their data; grids and checkpoints left out)."""
    from omegaconf import OmegaConf

    from unpaired.data import data_root
    from unpaired.inference import load
    from unpaired.metrics.adaptation import head_accuracy, load_digit_domains
    from unpaired.training.logging import read_metrics

    domains = load_digit_domains(settings, data_root())
    batch = int(OmegaConf.load(run_dir / "config.yaml").train.batch_size)
    elapsed, previous, seconds = {0: 0.0}, 0, 0.0
    for record in read_metrics(run_dir):
        if "speed/images_per_second" in record:
            seconds += (record["step"] - previous) * batch / record["speed/images_per_second"]
            previous = record["step"]
            elapsed[previous] = seconds
    curve = []
    for checkpoint in sorted((run_dir / "checkpoints").glob("step_*.pt")):
        translator = load(checkpoint, device="cpu")
        logged = max(s for s in elapsed if s <= translator.step)
        curve.append({"step": translator.step, "seconds": round(elapsed[logged], 2),
                      "minutes": round(elapsed[logged] / 60, 2),
                      "target_test_accuracy": round(head_accuracy(translator, *domains.target_test, "b"), 4),
                      "source_validation_accuracy": round(head_accuracy(translator, *domains.source_val, "a"), 4)})
    return curve


def write_results(runs: dict[str, list[dict]], seeds: list[int], variants: list[str], command: str, out: Path,
                  records: Path, quick: bool = False) -> None:
    """The table over the runs finished so far (written after every run: a cut-short benchmark still reports)."""
    table: dict[str, dict] = {}
    for task, reports in runs.items():
        if not reports:
            continue
        rows = {v: summary([r["accuracy"][v] for r in reports]) for v in variants}
        validation = {v: summary([r["rows"][v]["source_validation_accuracy"] for r in reports])
                      for v in variants if v != "target_supervised"}
        headline = selected_row({v: stats["mean"] for v, stats in validation.items()})
        fids = [r["digit_fid"]["translated_vs_target_test"] for r in reports if r.get("digit_fid")]
        untranslated = [r["digit_fid"]["untranslated_vs_target_test"] for r in reports if r.get("digit_fid")]
        complete = len(reports) == len(seeds)
        beside = read_beside(reports[0]["settings"]["method"])
        table[task] = {
            "accuracy": rows,
            "source_validation": validation,
            "headline": headline,
            "digit_fid": summary(fids) if fids else None,
            "digit_fid_untranslated": summary(untranslated) if untranslated else None,
            "seeds": [r["settings"]["seed"] for r in reports],
            "wall_seconds": [r["wall_seconds"] for r in reports],
            "translator_steps": [r["translator_steps"] for r in reports],
            "paper": beside.paper.get(task),
            "curves": [r["curve"] for r in reports if r.get("curve")],
            "reference_points": beside.points.get(task, []),
            "target": beside.targets.get(task),
            "met": (rows[headline]["mean"] >= beside.targets[task] and max(r["wall_seconds"] for r in reports) <= 1800)
            if complete and len(reports) >= TARGET_SEEDS and task in beside.targets else None,
        }
    first = next(r for reports in runs.values() for r in reports)
    payload = {"quick": quick, "command": command,
               "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": f"{cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
               "seeds": seeds, "complete": all(len(r) == len(seeds) for r in runs.values()),
               "semantic_consistency": any(r.get("semantic_consistency") for rs in runs.values() for r in rs),
               "settings": first["settings"], "table": table, "splits": splits(runs),
               "runs": {task: [{k: r[k] for k in ("accuracy", "digit_fid", "seconds", "wall_seconds", "data")}
                               for r in reports] for task, reports in runs.items()}}
    stem = report_name(first["settings"]["method"])
    examples = out / f"{stem}_examples.png"
    written = write_examples(runs, records, examples)
    write_report(out, stem, payload, markdown(payload, variants, examples.name if written else None))


def splits(runs: dict[str, list[dict]]) -> dict:
    """What chose what (the source validation split of every run) and what the figures are scored on."""
    selection, test = [], []
    for task, reports in runs.items():
        source, target = task.split("->")
        for r in reports:
            share, seed = r["settings"]["validation_fraction"], r["settings"]["seed"]
            selection.append(data_split(source, "train", None, f"validation: a random {share:.0%}, seed {seed}"))
        if reports:
            test.append(data_split(target, "test", None, "all of it"))
    settings = next(r for reports in runs.values() for r in reports)["settings"]
    chose = ["the headline row of each direction (the protocol's rule)"]
    if set(settings["variants"]) - TRAINED_WITH_TRANSLATOR:
        chose.append("classifier steps (6000, not 2000)")
    config_choice = read_beside(settings["method"]).config_choice
    if config_choice:
        chose.append(config_choice)
    return splits_record(selection, test, chose)


def markdown(payload: dict, variants: list[str], examples: str | None) -> str:
    s = payload["settings"]
    config = translator_config_name(AdaptationSettings(**s))
    steps = sorted({n for row in payload["table"].values() for n in row["translator_steps"]})
    semantic = payload.get("semantic_consistency")
    beside = read_beside(s["method"])
    columns = bool(beside.paper or beside.targets)  # the paper, target and met columns
    classifiers = set(variants) - TRAINED_WITH_TRANSLATOR
    lines = [
        f"# Digit domain adaptation with {s['method'].upper()} (MNIST <-> USPS)", "",
        *(["> **`--quick` run: tiny budgets that only check the script end to end. These figures are NOT "
           "measurements.**", ""] if payload.get("quick") else []),
        f"Command: `{payload['command']}`  ", f"Date: {payload['date']}  ", f"Machine: {payload['machine']}", "",
        *splits_lines(payload["splits"]),
        f"Per run: {s['method'].upper()} (`{config}`, {s['image_size']}x{s['image_size']}, bf16 where native) "
        f"trained on the training digits of both domains, the source validation digits held out "
        f"({'/'.join(map(str, steps))} steps"
        + (f", capped at {s['translator_minutes']} min" if s["translator_minutes"] else ", no time cap")
        + (", with CyCADA's semantic-consistency term judged by the run's own source_only classifier, frozen"
           if semantic else "")
        + (", with a classifier head on its discriminators trained on source labels (the discriminator_head "
           "row)" if "discriminator_head" in variants else "") + ")"
        + (f"; then digit classifiers ({s['classifier_steps']} steps, batch {s['batch_size']}) trained with "
           "**source labels only**" if classifiers else "")
        + "; every row scored on the whole target test set (MNIST 10,000; USPS 2,007, the standard usps.h5 split "
        "upsampled from 16x16: the paper's usps_28x28.pkl re-split is not available)."
        + (" Classifier hyper-parameters are the self-ensembling paper's defaults (with its class-balance term)."
           if classifiers else ""), "",
        *([] if payload["complete"] else ["**Partial**: not every seed has run yet.", ""]),
        "| task | **headline** (the rule's row) | " + " | ".join(variants)
        + (f" | {s['method'].upper()} paper | target | met" if columns else "")
        + " | digit FID (untranslated) | wall min/run |",
        "|---|" + "---|" * (len(variants) + (6 if columns else 3)),
    ]
    for task, row in payload["table"].items():
        fid = (f"{fmt(row['digit_fid'])} ({fmt(row['digit_fid_untranslated'])})" if row["digit_fid"] else "-")
        walls = ", ".join(f"{w / 60:.1f}" for w in row["wall_seconds"])
        met = {True: "yes", False: "**no**", None: f"- (needs {TARGET_SEEDS} seeds)"}[row["met"]]
        lines.append(f"| {task} | **{fmt(row['accuracy'][row['headline']])}** `{row['headline']}` | "
                     + " | ".join(fmt(row["accuracy"][v]) for v in variants)
                     + (f" | {row['paper'] or '-'} | {row['target'] or '-'} | {met}" if columns else "")
                     + f" | {fid} | {walls} |")
    lines += ["", "Mean +- standard deviation over the seeds run: "
              + "; ".join(f"{t} {row['seeds']}" for t, row in payload["table"].items())
              + f" (asked for: {payload['seeds']}). The headline is {SELECTION_RULE} (mean over the seeds run), "
              "chosen before any target figure is read. "
              + " ".join(text for row, text in ROW_NOTES.items() if row in variants),
              "", "Source validation accuracy (held-out source digits, translated for the translated rows; the "
              "figures the rule reads):", "",
              "| task | " + " | ".join(v for v in variants if v != "target_supervised") + " |",
              "|---|" + "---|" * len([v for v in variants if v != "target_supervised"])]
    for task, row in payload["table"].items():
        lines.append(f"| {task} | " + " | ".join(fmt(row["source_validation"][v]) for v in variants
                                                 if v != "target_supervised") + " |")
    lines += ["", "Translator steps reached per run: "
              + "; ".join(f"{t}: {row['translator_steps']}" for t, row in payload["table"].items()) + ".",
              *(["", f"Examples (source test digits above their translations): {examples}."] if examples else [])]
    lines += curve_lines(payload)
    return "\n".join(lines) + "\n"


def curve_lines(payload: dict) -> list[str]:
    """Accuracy of the discriminator head against training wall time, per task and seed, beside the reference
    points (official code, paper) of the method."""
    lines: list[str] = []
    for task, row in payload["table"].items():
        if not row.get("curves"):
            continue
        lines += ["", f"## {task}: discriminator head accuracy against training time", "",
                  "| seed | step | training minutes | target test accuracy | source validation accuracy |",
                  "|---|---|---|---|---|"]
        for seed, curve in zip(row["seeds"], row["curves"], strict=False):
            lines += [f"| {seed} | {p['step']} | {p['minutes']} | {p['target_test_accuracy']:.4f} | "
                      f"{p['source_validation_accuracy']:.4f} |" for p in curve]
        for point in row.get("reference_points", []):
            minutes = "-" if point["minutes"] is None else point["minutes"]
            lines.append(f"| *{point['what']}* | {point['iterations']} | {minutes} | "
                         f"{point['accuracy']:.4f} | - |")
    return lines


def write_examples(runs: dict[str, list[dict]], records: Path, path: Path) -> bool:
    """One picture of the runs' example translations; False (nothing written) when no run translated."""
    from PIL import Image

    pictures = [records / f"{task.replace('->', '2')}_seed{reports[0]['settings']['seed']}.png"
                for task, reports in runs.items() if reports]
    pictures = [Image.open(p).convert("RGB") for p in pictures if p.is_file()]
    if not pictures:
        return False
    sheet = Image.new("RGB", (max(p.width for p in pictures), sum(p.height for p in pictures)), "white")
    top = 0
    for picture in pictures:
        sheet.paste(picture, (0, top))
        top += picture.height
    sheet.save(path)
    return True


if __name__ == "__main__":
    main()
