"""MUNIT benchmark: MNIST <-> USPS class preservation over sampled styles, diversity, digit FID, training speed.

What it does, in order (issue 4, "Benchmark"):

1. Training speed, timed like bench/train_speed.py (``Trainer.train_step``: one forward, the dis and gen
   updates; images/s = batch / median step time over ``--speed-steps`` steps after ``--speed-warmup``):
   MUNIT next to UNIT at the digits size (each method's shipped digits config, batch 64, 32x32, MNIST:USPS),
   and the official-code reference configuration for MUNIT and UNIT (``common.REFERENCE_CONFIGS``, "small64":
   64x64, dim 32, 2 residual blocks, discriminators dim 32 with 4 layers and 3 scales, LSGAN, batch 8;
   synthetic 64 px RGB images), in fp32 and in bf16 autocast + channels_last. The official MUNIT code's figure
   for that configuration is the one of this CPU kind in ../shared/reference-speeds.md (``common.official_figure``:
   the row picked by the CPU's flags); a CPU kind without a figure gets no ratio, said plainly. The target is
   1.3x the official figure.
2. Judges: a ``DigitClassifier`` per domain trained on that domain's real training digits with its labels
   (``unpaired.metrics.digits.train_classifier``); they only score, never train the translator.
   The digit feature network for "digit FID" (``ensure_feature_net``: MNIST + USPS training labels, 32x32
   gray). Both are cached in ``--work`` (default runs/bench_munit, git-ignored) and reused by later runs.
3. MUNIT trained on MNIST (a) <-> USPS (b) with the shipped ``munit_digits`` config (plus ``--set``
   overrides), ``train.precision=auto`` (bf16 autocast where the CPU runs it natively) and channels_last
   with bf16, for ``--steps`` steps or ``--minutes`` minutes, whichever comes first.
4. Evaluation on held-out test digits: the shipped config was chosen on the first 2,000 test digits of each
   domain (bench/results/probes/munit_digits_config), so each direction is scored on the test rows from
   ``--eval-from`` (2000) on, up to ``--eval`` of them (default: all, MNIST test rows 2000-9999). A direction
   with fewer than ``MIN_HELD_OUT`` such rows (USPS has 2,007 test digits) is scored on its first ``--eval``
   rows instead and the report marks it "not held out: its config was chosen on these digits". 8 style codes
   are drawn once from the prior N(0, I) (the same 8 for every input):
   - class preservation per style: the share of translations that the target-domain judge labels as the
     source digit's label; min and mean over the 8 styles, each with a 95 % bootstrap interval over the inputs
     (``BOOTSTRAP`` resamples). Target: min >= 0.95 for a -> b. Next to it: the
     untranslated source digits under the same judge (the floor of a translator that returns its input), and
     per source class the share kept and the most frequent confusions;
   - diversity: mean pixel-L1 distance between the 8 translations of the same input, over all 28 pairs
     (``mean_pairwise_distance``; pixel L1 because no VGG/LPIPS weights exist here; [-1, 1] units, 0..2).
     Scale and floor: the same translator with one style repeated 8 times (a styles-ignoring translator;
     exactly 0 up to rounding), and real target digits: 8 different real target test digits of the
     input's class ("same class"), and of any class. "Clearly above zero" is defined as: diversity >= 0.1x
     the real same-class diversity, i.e. the 8 styles vary a digit by at least a tenth of how much real
     writers of the target domain vary it;
   - style reconstruction error |E_t^s(G_t(c, s)) - s| (L1 per code element) for prior codes s; an
     encoder that ignores the image and returns the prior mean scores sqrt(2/pi) = 0.80;
   - digit FID (and KID) of translations vs real target test digits, with one of the 8 styles per input
     (input i takes style i mod 8); floor reference: FID between two disjoint halves of the real target test
     set; ceiling reference: the untranslated source digits vs the same real half. All three at equal set
     sizes (FID is biased by the set size): n = min(--eval, half the target test set).
5. edges2handbags samples (8 training images per side) at 64 px: a short smoke run of the shipped
   ``munit_edges2handbags`` config that writes a grid of the test edges in 8 styles and reference-guided.

Writes OUT/munit.json, OUT/munit.md, OUT/munit_styles.png (8-style digit translations) and
OUT/munit_edges2handbags.png; OUT is --out (default bench/results). ``--quick`` runs every stage with tiny
budgets to check the script end to end; its figures mean nothing, so it writes to a fresh temporary folder
(never bench/results) and keeps its judges and feature network there.

    python bench/munit.py [--minutes 120] [--steps N] [--eval N] [--threads 2] [--set KEY=VALUE ...]
    python bench/munit.py --quick
    python bench/munit.py --evaluate RUN_DIR   # judges and step 4 again on the run OUT/munit.json reports
    python bench/munit.py --resume RUN_DIR     # step 3 continues a stopped digits run in place, then 4 and 5

``--resume`` is for a training longer than one sitting: the digits run (``WORK/STAMP/digits``) of a bench that
was stopped (Ctrl-C, SIGTERM: the trainer saves a checkpoint first) continues from its last checkpoint with its
own config.yaml (``--set`` may change train.* keys, e.g. ``train.precision=bf16`` on a machine where bf16 is
fast), exactly as ``unpaired train --resume``; so it keeps the run's time cap unless ``--minutes`` sets one. The
speed stage runs again on this machine; the report gives the step the training resumed from, and the run's
metrics.jsonl keeps the images/s of every stretch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    FAST,
    FP32,
    QUIET,
    REFERENCE_CONFIGS,
    add_output_options,
    autocast,
    data_split,
    make_folder,
    median_step_seconds,
    met_text,
    official_figure,
    pair_counts,
    provenance,
    report_header,
    resolve_output_folders,
    splits_lines,
    splits_record,
    write_report,
)

SPEED_TARGET = 1.3
KEPT_TARGET = 0.95
DIVERSITY_RATIO_TARGET = 0.1
STYLES = 8
SELECTION_ROWS = 2000
"""The first test digits of each domain, on which munit_digits.yaml's settings were chosen."""
MIN_HELD_OUT = 500
"""Fewer held-out test digits than this and a direction is scored on the selection rows, marked as such."""
BOOTSTRAP = 1000
"""Resamples of the inputs behind the 95 % intervals of class kept."""
DIGIT_CLASSES = 10
NAMES = {"a": "mnist", "b": "usps"}

BATCH_64 = ["train.batch_size=64"]  # the digits speed cases: both methods at one batch, whatever the configs train with
MUNIT_REFERENCE_64 = REFERENCE_CONFIGS["MUNIT small64 b8"][2]  # reference-speeds.md's configurations
UNIT_REFERENCE_64 = REFERENCE_CONFIGS["UNIT small64 b8"][2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's, 12000)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training wall-time cap; 0: none (the config's 12000 steps took 91 min on 2 idle "
                             "cores). Default: 120 for a new run; with --resume the run's own config.yaml "
                             "keeps its cap, as `unpaired train --resume` does")
    parser.add_argument("--eval", type=int, default=None, help="test digits per direction (default: all held out)")
    parser.add_argument("--eval-from", type=int, default=SELECTION_ROWS,
                        help="first test row scored: the rows before it chose the config (default 2000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--judge-steps", type=int, default=3000,
                        help="judge training steps (3000: 0.975 on real USPS test digits, 600: 0.961)")
    parser.add_argument("--feature-steps", type=int, default=1000,
                        help="training steps of the digit FID network (cached in --work: delete it to retrain)")
    parser.add_argument("--speed-steps", type=int, default=5)
    parser.add_argument("--speed-warmup", type=int, default=2)
    parser.add_argument("--handbags-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="style codes of the evaluation")
    parser.add_argument("--evaluate", type=Path, default=None, metavar="RUN_DIR",
                        help="train nothing: evaluate again the digits run that OUT/munit.json reports (its "
                             "training.run_dir), keeping its speed, training and edges2handbags sections")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the stopped digits run RUN_DIR (a WORK/STAMP/digits folder) from its last "
                             "checkpoint instead of starting one, then evaluate it")
    parser.add_argument("--live-weights", action="store_true",
                        help="evaluate the trained weights themselves, not their EMA copy (when the run keeps one)")
    add_output_options(parser, "munit")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.minutes, args.eval = 3, 0.0, min(args.eval or 64, 64)
        args.judge_steps, args.feature_steps, args.handbags_steps = 10, 10, 2
        args.speed_steps, args.speed_warmup = 1, 1
    # --quick times tiny batches of the networks --set makes (model.dim=8...): the cases run, the figures mean nothing
    args.speed_overrides = ["train.batch_size=2", *args.overrides] if args.quick else []
    if args.minutes is None and args.resume is None:
        args.minutes = 120.0
    resolve_output_folders(parser, args, "munit")
    if args.resume is not None and args.evaluate is not None:
        parser.error("--resume trains on and --evaluate trains nothing: give one of them")
    if args.resume is not None:  # read as the resumed training will read it
        from unpaired.config import ConfigError
        from unpaired.training.checkpoint import CheckpointError
        from unpaired.training.trainer import config_for_resume

        try:
            method = config_for_resume(args.resume, []).method
        except (CheckpointError, ConfigError) as err:
            parser.error(f"--resume: {err}")
        if method != "munit":
            parser.error(f"--resume {args.resume}: a run of method '{method}', not munit")
    if args.evaluate is not None:
        report = args.out / "munit.json"
        if not report.is_file():
            parser.error(f"--evaluate needs the report of the run it evaluates again: {report} does not exist")
        trained = Path(json.loads(report.read_text())["training"]["run_dir"])
        if trained.resolve() != args.evaluate.resolve():
            parser.error(f"--evaluate {args.evaluate}: {report} reports the training of {trained}, another run")
    return args


# -- 1. training speed -------------------------------------------------------------------------------------------
def time_case(method: str, config_files: list[str], overrides: list[str], source: str, steps: int, warmup: int,
              run_dir: Path) -> dict:
    from unpaired.config import build_config
    from unpaired.training.trainer import Trainer

    cfg = build_config(method, config_files, [f"data.source={source}", *QUIET, *overrides])
    trainer = Trainer(cfg, run_dir)
    median = median_step_seconds(trainer, steps, warmup)
    batch = cfg.train.batch_size
    return {"method": method, "config": config_files, "overrides": overrides, "batch_size": batch,
            "image_size": cfg.data.image_size, "precision": trainer.precision, "median_step_s": round(median, 4),
            "images_per_second": round(batch / median, 2)}


def measure_speed(args: argparse.Namespace, work: Path) -> dict:
    synthetic = make_folder(work / "synthetic64", 64)
    for side in "AB":  # a test split too, so the trainer's sample grids need no fallback
        shutil.copytree(synthetic / f"train{side}", synthetic / f"test{side}")
    cases = {}
    for name, method, files, overrides, source in [
        ("munit_digits32_b64_fp32", "munit", ["munit_digits"], BATCH_64 + FP32, "mnist:usps"),
        ("munit_digits32_b64_bf16_cl", "munit", ["munit_digits"], BATCH_64 + FAST, "mnist:usps"),
        ("unit_digits32_b64_fp32", "unit", ["unit_digits"], BATCH_64 + FP32, "mnist:usps"),
        ("unit_digits32_b64_bf16_cl", "unit", ["unit_digits"], BATCH_64 + FAST, "mnist:usps"),
        ("munit_ref64_b8_fp32", "munit", [], MUNIT_REFERENCE_64 + FP32, str(synthetic)),
        ("munit_ref64_b8_bf16_cl", "munit", [], MUNIT_REFERENCE_64 + FAST, str(synthetic)),
        ("unit_ref64_b8_fp32", "unit", [], UNIT_REFERENCE_64 + FP32, str(synthetic)),
        ("unit_ref64_b8_bf16_cl", "unit", [], UNIT_REFERENCE_64 + FAST, str(synthetic)),
    ]:
        cases[name] = time_case(method, files, [*overrides, *args.speed_overrides], source, args.speed_steps,
                                args.speed_warmup, work / "speed" / name)
        print("speed", name, cases[name]["images_per_second"], "images/s", flush=True)
    shutil.rmtree(work / "speed", ignore_errors=True)  # run folders of timed steps only: nothing to keep
    shutil.rmtree(synthetic, ignore_errors=True)
    official = official_figure("MUNIT small64 b8")  # this CPU kind's figure, or why there is none
    figure = official["images_per_second"]
    ratio = {p: None if figure is None else round(cases[f"munit_ref64_b8_{p}"]["images_per_second"] / figure, 2)
             for p in ("fp32", "bf16_cl")}
    return {"cases": cases, "official_munit_ref64_images_per_second": figure, "official_munit_ref64": official,
            "munit_ref64_vs_official": ratio,
            "munit_vs_unit_digits32": {p: round(cases[f"munit_digits32_b64_{p}"]["images_per_second"]
                                                / cases[f"unit_digits32_b64_{p}"]["images_per_second"], 2)
                                       for p in ("fp32", "bf16_cl")}}


# -- 2. judges and the digit feature network: unpaired.metrics.digits (cached_digit_judge, ensure_feature_net) ---
# -- 4. evaluation -----------------------------------------------------------------------------------------------
@torch.no_grad()
def translate_styles(translator: Any, images: torch.Tensor, direction: str, codes: torch.Tensor, bf16: bool,
                     batch: int = 250) -> Iterator[tuple[int, torch.Tensor]]:
    """Yields (start, B x K x C x H x W translations in [-1, 1]) for chunks of ``images`` (uint8)."""
    from unpaired.metrics.digits import to_unit_range

    for start in range(0, len(images), batch):
        x = to_unit_range(images[start:start + batch])
        with autocast(bf16):
            out = translator.translate(x, direction, style=codes).float().clamp(-1, 1)
        yield start, out.unflatten(0, (len(x), len(codes)))


def real_diversity(target_images: torch.Tensor, target_labels: torch.Tensor, classes: torch.Tensor, k: int,
                   seed: int) -> float:
    """Mean pairwise pixel L1 within groups of k distinct real target images, one group per entry of
    ``classes``: k images of that class, or of any class where the entry is -1 (fewer, the same number in every
    group, where a class has fewer than k test images: tiny stand-in data sets)."""
    from unpaired.metrics.digits import to_unit_range
    from unpaired.metrics.diversity import mean_pairwise_distance

    gen = torch.Generator().manual_seed(seed)
    by_class = {int(c): (target_labels == c).nonzero().flatten() for c in target_labels.unique()}
    everything = torch.arange(len(target_images))
    pools = [by_class[int(c)] if c >= 0 else everything for c in classes.tolist()]
    k = min(k, *(len(pool) for pool in pools))
    groups = []
    for pool in pools:
        groups.append(pool[torch.randperm(len(pool), generator=gen)[:k]])
    return mean_pairwise_distance(to_unit_range(target_images[torch.stack(groups)]))


def confusion_summary(confusion: torch.Tensor, top: int = 5) -> tuple[list[float], list[dict]]:
    """From counts (true label x judged label): each label's share judged right, and the ``top`` most frequent
    confusions as the share of that label's images judged as the other label."""
    totals = confusion.sum(1, keepdim=True).clamp(min=1)
    per_class = (confusion.diag() / totals.flatten()).tolist()
    shares = confusion / totals * (1 - torch.eye(len(confusion)))
    values, indices = shares.flatten().topk(min(top, shares.numel()))
    return [round(v, 4) for v in per_class], [
        {"label": int(i) // len(confusion), "judged": int(i) % len(confusion), "share_of_label": round(float(v), 4)}
        for v, i in zip(values, indices, strict=True)]


def scored_rows(total: int, start: int, count: int | None) -> tuple[int, int, bool]:
    """The test rows [first, stop) a direction is scored on, and whether they are held out from the selection:
    rows from ``start`` on when enough remain (``MIN_HELD_OUT``), else the first rows (not held out)."""
    if total - start >= MIN_HELD_OUT:
        return start, total if count is None else min(total, start + count), True
    return 0, total if count is None else min(total, count), False


def kept_intervals(correct: torch.Tensor, seed: int, resamples: int = BOOTSTRAP) -> dict[str, list[float]]:
    """95 % bootstrap intervals (percentile) of the min and the mean over styles of class kept, from the
    inputs x styles matrix of judged-correct translations, resampling the inputs."""
    gen = torch.Generator().manual_seed(seed)
    n = correct.shape[0]
    shares = torch.stack([correct[torch.randint(n, (n,), generator=gen)].float().mean(0) for _ in range(resamples)])
    bounds = torch.tensor([0.025, 0.975])
    return {stat: [round(float(v), 4) for v in torch.quantile(values, bounds)]
            for stat, values in (("min", shares.min(1).values), ("mean", shares.mean(1)))}


def evaluate_direction(translator: Any, source: str, data: dict, judges: dict, feature_net: Any,
                       codes: torch.Tensor, rows: tuple[int, int, bool], bf16: bool, seed: int) -> dict:
    from unpaired.metrics.digits import digit_features, predict, to_unit_range
    from unpaired.metrics.diversity import mean_pairwise_distance, style_reconstruction_error
    from unpaired.metrics.frechet import frechet_distance, kernel_inception_distance

    target = "b" if source == "a" else "a"
    direction = f"{source}2{target}"
    first, stop, held_out = rows
    images, labels = data[source]["test"].images[first:stop], data[source]["test"].labels[first:stop]
    n, k = stop - first, len(codes)
    started = time.perf_counter()
    correct = torch.zeros(n, k, dtype=torch.bool)
    # counts of (source label, judged label), over all styles
    confusion = torch.zeros(DIGIT_CLASSES, DIGIT_CLASSES, dtype=torch.long)
    distance_sum, one_style = 0.0, []
    for start, out in translate_styles(translator, images, direction, codes, bf16):
        b = len(out)
        predicted = predict(judges[target], out.flatten(0, 1)).view(b, k)
        truth = labels[start:start + b, None]
        correct[start:start + b] = predicted == truth
        confusion += pair_counts(truth.expand(-1, k).flatten(), predicted.flatten(), confusion.shape)
        distance_sum += mean_pairwise_distance(out) * b
        one_style.append(out[torch.arange(b), torch.arange(start, start + b) % k])
    kept = correct.float().mean(0)
    # the floor: what a translator that returns its input scores under the same judge
    untranslated = float((predict(judges[target], images) == labels).float().mean())
    per_class, top_confusions = confusion_summary(confusion)
    fixed = next(translate_styles(translator, images[:100], direction, codes[:1].repeat(k, 1), bf16, 100))[1]
    real = data[target]["test"]
    diversity = {
        "munit_8_styles": distance_sum / n,
        "one_style_repeated": mean_pairwise_distance(fixed),
        "real_target_same_class": real_diversity(real.images, real.labels, labels, k, seed),
        "real_target_any_class": real_diversity(real.images, real.labels, torch.full((n,), -1), k, seed + 1),
    }
    diversity["ratio_to_real_same_class"] = diversity["munit_8_styles"] / diversity["real_target_same_class"]
    with autocast(bf16):
        style_error = style_reconstruction_error(translator, to_unit_range(images[:250]), direction, k=k,
                                                 seed=seed + 2)
    # digit FID / KID at equal set sizes: translations, and untranslated sources, vs one real half; halves vs halves
    m = min(n, len(real.images) // 2)
    features = {
        "translations": digit_features(feature_net, torch.cat(one_style)[:m]),
        "sources": digit_features(feature_net, images[:m]),
        "real_half_1": digit_features(feature_net, real.images[:m]),
        "real_half_2": digit_features(feature_net, real.images[m:2 * m]),
    }
    reference = features["real_half_2"]
    kid_size = min(1000, m)
    fid = {name: frechet_distance(features[name], reference) for name in ("translations", "real_half_1", "sources")}
    kid = {name: kernel_inception_distance(features[name], reference, subsets=100, subset_size=kid_size, seed=seed)
           for name in ("translations", "real_half_1", "sources")}
    return {
        "direction": f"{NAMES[source]}->{NAMES[target]}", "inputs": n, "test_rows": [first, stop],
        "held_out": held_out,
        "kept_per_style": [round(float(v), 4) for v in kept],
        "kept_min": round(float(kept.min()), 4), "kept_mean": round(float(kept.mean()), 4),
        "kept_95": kept_intervals(correct, seed),
        "untranslated_kept": round(untranslated, 4),
        "kept_per_class": per_class,
        "top_confusions": top_confusions,
        "diversity_pixel_l1": {key: round(value, 4) for key, value in diversity.items()},
        "style_reconstruction_l1": round(style_error, 4),
        "digit_fid": {"set_size": m, "translations_vs_real": round(fid["translations"], 3),
                      "real_vs_real_floor": round(fid["real_half_1"], 3),
                      "untranslated_source_vs_real": round(fid["sources"], 3)},
        "digit_kid": {"subset_size": kid_size, "subsets": 100,
                      **{f"{label}": [round(kid[name][0], 5), round(kid[name][1], 5)]
                         for label, name in (("translations_vs_real", "translations"),
                                             ("real_vs_real_floor", "real_half_1"),
                                             ("untranslated_source_vs_real", "sources"))}},
        "eval_seconds": round(time.perf_counter() - started, 1),
    }


def digit_grid(translator: Any, data: dict, codes: torch.Tensor, bf16: bool, path: Path) -> Path:
    """Rows: one test digit of each class per column, then its translation in each of the 8 styles; both ways."""
    from unpaired.images import save_grid

    rows: dict[str, torch.Tensor] = {}
    for source, target in (("a", "b"), ("b", "a")):
        test = data[source]["test"]
        picks = [int((test.labels == c).nonzero()[0]) for c in range(10) if (test.labels == c).any()]
        images = test.images[picks]
        _, out = next(translate_styles(translator, images, f"{source}2{target}", codes, bf16))
        rows[NAMES[source]] = images.float() / 127.5 - 1
        for s in range(len(codes)):
            rows[f"{NAMES[target]} s{s + 1}"] = out[:, s]
    return save_grid(rows, path)


# -- 5. edges2handbags smoke -------------------------------------------------------------------------------------
def handbags_smoke(args: argparse.Namespace, work: Path, bf16: bool, out_dir: Path) -> dict:
    from unpaired.config import build_config
    from unpaired.data import data_root, list_images
    from unpaired.images import save_grid
    from unpaired.inference import load
    from unpaired.training.logging import read_metrics
    from unpaired.training.trainer import Trainer

    folder = data_root() / "edges2handbags_samples"
    if not (folder / "trainA").is_dir():
        print(f"skipping the edges2handbags smoke run: {folder} not found", flush=True)
        return {"skipped": f"{folder} not found"}
    steps = args.handbags_steps
    overrides = [f"data.source={folder}", "data.image_size=64", "data.load_size=64", "data.num_workers=0",
                 f"train.max_steps={steps}", f"train.checkpoint_every={steps}", f"train.sample_every={steps}",
                 f"train.precision={'bf16' if bf16 else 'fp32'}", f"train.channels_last={str(bf16).lower()}", *QUIET]
    cfg = build_config("munit", ["munit_edges2handbags"], overrides)
    result = Trainer(cfg, work / "edges2handbags").fit()
    translator = load(result.checkpoint, device="cpu")
    def prepared(side: str, domain: str) -> torch.Tensor:
        images = []
        for path in list_images(folder / side)[0][:8]:
            with Image.open(path) as image:
                images.append(translator.prepare(image, "a2b", 64, domain=domain))
        return torch.cat(images)

    x, refs = prepared("testA", "a"), prepared("testB", "b")
    codes = translator.method.sample_styles(STYLES, args.seed)
    with autocast(bf16), torch.no_grad():
        styled = translator.translate(x, "a2b", style=codes).float().unflatten(0, (len(x), STYLES))
        guided = translator.method.nets["gen"]["b"].decode(translator.method.encode_content("a", x),
                                                           translator.method.encode_style("b", refs)).float()
    rows = {"edges": x, **{f"style {s + 1}": styled[:, s] for s in range(STYLES)}, "ref photo": refs,
            "ref style": guided}
    grid = save_grid({k: v.clamp(-1, 1) for k, v in rows.items()}, out_dir / "munit_edges2handbags.png")
    last = read_metrics(result.run_dir)[-1]
    losses = {k: round(v, 4) for k, v in last.items() if k.startswith("total/")}
    return {"steps": result.step, "image_size": 64, "batch_size": cfg.train.batch_size,
            "train_seconds": round(result.seconds, 1), "images_per_second": round(result.images_per_second, 2),
            "final_totals": losses, "finite": all(math.isfinite(v) for v in losses.values()),
            "grid": grid.name, "run_dir": str(result.run_dir)}


# -- main --------------------------------------------------------------------------------------------------------
def train_digits(args: argparse.Namespace, bf16: bool, work: Path, results: dict) -> Path:
    """3. MUNIT trained on MNIST <-> USPS; fills ``results["training"]``, returns the checkpoint."""
    from unpaired.config import build_config
    from unpaired.training.logging import read_metrics
    from unpaired.training.trainer import Trainer, config_for_resume

    # a resumed run keeps its own cap unless --minutes names one: a cap it never had would stop it short
    limits = [*([f"train.max_steps={args.steps}"] if args.steps else []),
              *([f"train.max_minutes={args.minutes or 'null'}"] if args.minutes is not None else [])]
    if args.resume is None:
        overrides = ["data.source=mnist:usps", "train.precision=auto", f"train.channels_last={str(bf16).lower()}",
                     *QUIET, *limits, *args.overrides]
        trainer = Trainer(build_config("munit", ["munit_digits"], overrides), work / "digits")
    else:  # the run's own config.yaml, as `unpaired train --resume` reads it
        overrides = [*limits, *args.overrides]
        trainer = Trainer(config_for_resume(args.resume, overrides), args.resume, resume=True)
    cfg, resumed_from = trainer.cfg, trainer.step
    print(f"training MUNIT on MNIST <-> USPS: up to {cfg.train.max_steps} steps"
          + (f" or {cfg.train.max_minutes:g} minutes" if cfg.train.max_minutes else "")
          + (f", resumed at step {resumed_from}" if args.resume else ""), flush=True)
    result = trainer.fit()
    last = read_metrics(result.run_dir)[-1]
    results["training"] = {
        "config": "munit_digits", "overrides": overrides, "resumed_from_step": resumed_from if args.resume else None,
        "precision": trainer.precision, "channels_last": bool(cfg.train.channels_last),
        "batch_size": cfg.train.batch_size, "image_size": cfg.data.image_size,
        "steps": result.step, "max_steps": cfg.train.max_steps, "max_minutes": cfg.train.max_minutes,
        "stopped_by": result.stopped_by, "seconds": round(result.seconds, 1),
        "images_per_second": round(result.images_per_second, 2),
        "final_losses": {k: round(v, 4) for k, v in last.items() if k.startswith(("loss/", "total/"))},
        "run_dir": str(result.run_dir),
    }
    print("training", {k: results["training"][k] for k in ("steps", "seconds", "images_per_second")}, flush=True)
    return result.checkpoint


def main(argv: list[str] | None = None) -> None:
    from unpaired.data import data_root, open_digits
    from unpaired.devices import resolve_precision
    from unpaired.inference import load
    from unpaired.metrics.digits import accuracy, cached_digit_judge, ensure_feature_net

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    bench_started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    results: dict[str, Any] = {
        **provenance("munit.py", argv, native_bf16=bf16),
        "quick": args.quick,
    }

    if args.evaluate is not None:  # the measured sections of the run being evaluated again stay as they were
        earlier = json.loads((args.out / "munit.json").read_text())
        results = {**earlier, "evaluated_again": {**results, "run_dir": str(args.evaluate)}}
    else:  # 1. speed
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        work = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=args.work))  # this run's folders
        started = time.perf_counter()
        results["speed"] = measure_speed(args, work)
        results["speed"]["seconds"] = round(time.perf_counter() - started, 1)

    # 2. data, judges, feature network
    root = data_root()
    data = {d: {split: open_digits(NAMES[d], root, split, 32, 1) for split in ("train", "test")} for d in "ab"}
    started = time.perf_counter()
    judges = {d: cached_digit_judge(NAMES[d], data[d]["train"].images, data[d]["train"].labels, args.judge_steps,
                                    args.work) for d in "ab"}
    feature_net = ensure_feature_net(args.work, root, ("mnist", "usps"), 32, 1, steps=args.feature_steps)
    results["judges"] = {
        "steps": args.judge_steps,
        "accuracy_on_real_test": {NAMES[d]: round(accuracy(judges[d], data[d]["test"].images,
                                                           data[d]["test"].labels), 4) for d in "ab"},
    }
    results["feature_net"] = {k: feature_net.info.get(k) for k in ("sets", "image_size", "channels", "steps",
                                                                     "test_accuracy")}
    results["judges_and_feature_net_seconds"] = round(time.perf_counter() - started, 1)
    print("judges", results["judges"], "feature net", results["feature_net"], flush=True)

    checkpoint = args.evaluate if args.evaluate is not None else train_digits(args, bf16, work, results)

    # 4. evaluation
    translator = load(checkpoint, device="cpu", use_ema=not args.live_weights)
    translator.method.to(memory_format=torch.channels_last if bf16 else torch.contiguous_format)
    codes = translator.method.sample_styles(STYLES, args.seed)
    results["evaluation"] = {"styles": STYLES, "style_seed": args.seed, "autocast_bf16": bf16,
                             "weights": "EMA copy" if translator.uses_ema else "trained weights", "directions": {}}
    for source in "ab":
        rows = scored_rows(len(data[source]["test"].images), args.eval_from, args.eval)
        report = evaluate_direction(translator, source, data, judges, feature_net, codes, rows, bf16, args.seed)
        results["evaluation"]["directions"][report["direction"]] = report
        print("eval", report, flush=True)
    results["splits"] = evaluation_splits(results["evaluation"]["directions"], args.eval_from)
    digit_grid(translator, data, codes, bf16, args.out / "munit_styles.png")

    if args.evaluate is None:  # 5. edges2handbags smoke
        results["edges2handbags_smoke"] = handbags_smoke(args, work, bf16, args.out)
        print("edges2handbags", results["edges2handbags_smoke"], flush=True)
        results["total_seconds"] = round(time.perf_counter() - bench_started, 1)
        results["run_folder"] = str(work)
    else:
        results["evaluated_again"]["seconds"] = round(time.perf_counter() - bench_started, 1)
    results["targets"] = targets(results)
    write_report(args.out, "munit", results, render(results))
    print(f"wrote {args.out / 'munit.json'}, {args.out / 'munit.md'}, {args.out / 'munit_styles.png'}", flush=True)


def evaluation_splits(directions: dict, eval_from: int) -> dict:
    """The selection rows (those that chose the config) and the held-out rows each direction is scored on; a
    direction scored on selection rows is listed apart, as not held out."""
    chose = [data_split(name, "test", (0, eval_from), "chose munit_digits.yaml (probes/munit_digits_config)")
             for name in NAMES.values()]
    scored = [data_split(e["direction"].split("->")[0], "test", tuple(e["test_rows"]), e["direction"])
              for e in directions.values() if e["held_out"]]
    record = splits_record(chose, scored, ["munit_digits.yaml's settings (class kept, min over 8 styles)"])
    record["not_held_out"] = [f"{e['direction']}: test rows {e['test_rows'][0]}-{e['test_rows'][1] - 1}, its config "
                              "was chosen on these digits" for e in directions.values() if not e["held_out"]]
    return record


def targets(r: dict) -> dict:
    a2b = r["evaluation"]["directions"]["mnist->usps"]
    ratio = r["speed"]["munit_ref64_vs_official"]
    best = None if None in ratio.values() else max(ratio.values())
    return {
        "class_preservation_mnist_to_usps_min_over_styles": {"value": a2b["kept_min"], "target": KEPT_TARGET,
                                                              "met": a2b["kept_min"] >= KEPT_TARGET},
        "diversity_ratio_to_real_same_class_mnist_to_usps": {
            "value": a2b["diversity_pixel_l1"]["ratio_to_real_same_class"], "target": DIVERSITY_RATIO_TARGET,
            "met": a2b["diversity_pixel_l1"]["ratio_to_real_same_class"] >= DIVERSITY_RATIO_TARGET},
        "speed_vs_official_munit_ref64": {"value": best, "target": SPEED_TARGET,
                                          "met": None if best is None else best >= SPEED_TARGET,
                                          "fp32": ratio["fp32"], "bf16_cl": ratio["bf16_cl"]},
    }


def official_munit_text(speed: dict) -> str:
    """"3.72 images/s (AMD EPYC, Zen 4)", or the sentence that says why this CPU kind has no official figure."""
    official = speed.get("official_munit_ref64")
    if official is None:  # a record written before the figures came per CPU kind
        return f"{speed['official_munit_ref64_images_per_second']} images/s"
    if official["images_per_second"] is None:
        return official["no_figure"]
    return f"{official['images_per_second']} images/s ({official['cpu_kind']})"


def interval(direction: dict, stat: str) -> str:
    bounds = direction.get("kept_95", {}).get(stat)
    return f" ({bounds[0]:.3f}-{bounds[1]:.3f})" if bounds else ""


def render(r: dict) -> str:
    t, tr = r["targets"], r["training"]
    kept = t["class_preservation_mnist_to_usps_min_over_styles"]
    spread = t["diversity_ratio_to_real_same_class_mnist_to_usps"]
    fast = t["speed_vs_official_munit_ref64"]
    ev = r["evaluation"]["directions"]
    start = tr.get("resumed_from_step")  # a --resume run: this process trained steps start..steps
    resumed = "" if start is None else (f", resumed at step {start} of an earlier bench run (`--resume`): steps "
                                        f"{start}-{tr['steps']}")
    stretches = "" if start is None else "; the images/s of every stretch are in the run's metrics.jsonl"
    lines = report_header("MUNIT on MNIST <-> USPS (CPU)", r)
    if "splits" in r:
        lines += splits_lines(r["splits"])
    if "evaluated_again" in r:
        again = r["evaluated_again"]
        lines += [f"Judges and evaluation measured again on the same trained run by `{again['command']}` on "
                  f"{again['date']} ({again['seconds'] / 60:.1f} min); speed, training and edges2handbags are from "
                  "the command above.", ""]
    lines += [
        "## Targets", "",
        "| target | measured | goal | |", "|---|---|---|---|",
        f"| class preservation MNIST->USPS, min over 8 styles | {kept['value']} | >= {KEPT_TARGET} | "
        f"{met_text(kept['met'])} |",
        f"| diversity clearly above zero: 8-style diversity / real same-class diversity (MNIST->USPS) | "
        f"{spread['value']:.3f} | >= {DIVERSITY_RATIO_TARGET} | {met_text(spread['met'])} |",
        f"| training speed vs official MUNIT at 64x64 dim 32 2 res batch 8 ({official_munit_text(r['speed'])}) | "
        + ("no official figure for this CPU kind" if fast["value"] is None else
           f"{fast['value']}x (fp32 {fast['fp32']}x, bf16+cl {fast['bf16_cl']}x)")
        + f" | >= {SPEED_TARGET}x | {met_text(fast['met'])} |", "",
        "## Training (MNIST a <-> USPS b, 32x32 gray)", "",
        f"Config `munit_digits` + `{' '.join(tr['overrides'])}`: batch {tr['batch_size']}, precision {tr['precision']}"
        f"{' + channels_last' if tr['channels_last'] else ''}; {tr['steps']} steps (stopped by {tr['stopped_by']})"
        f"{resumed} in {tr['seconds'] / 60:.1f} min, {tr['images_per_second']} images/s overall (sampling and "
        f"checkpoints included){stretches}.", "",
        f"Judges (trained on each real domain's training digits, {r['judges']['steps']} steps) on real test digits: "
        + ", ".join(f"{k} {v}" for k, v in r["judges"]["accuracy_on_real_test"].items()) + ".  ",
        f"Digit FID feature network ({r['feature_net']['steps']} steps on MNIST + USPS train, balanced batches) on "
        f"real test digits: " + ", ".join(f"{k} {v}" for k, v in (r["feature_net"]["test_accuracy"] or {}).items())
        + ".", "",
        "## Class preservation per style", "",
        "Share of the translations of the scored test digits that the target judge labels as the source label, "
        "for each of 8 style codes drawn once from N(0, I); min and mean with a 95 % bootstrap interval over the "
        "inputs.", "",
        *(["Scored on: " + "; ".join(
            f"{name} test rows {e['test_rows'][0]}-{e['test_rows'][1] - 1} ({e['inputs']} digits, "
            + ("held out)" if e["held_out"] else "**not held out: its config was chosen on these digits**)")
            for name, e in ev.items()) + ".", ""] if "test_rows" in next(iter(ev.values())) else []),
        f"Generator evaluated: {r['evaluation'].get('weights', 'trained weights')}.", "",
        "| direction | " + " | ".join(f"s{i + 1}" for i in range(STYLES))
        + " | min (95 %) | mean (95 %) | untranslated input |",
        "|---|" + "---|" * (STYLES + 3),
    ]
    for name, e in ev.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in e["kept_per_style"])
                     + f" | {e['kept_min']:.3f}{interval(e, 'min')} | {e['kept_mean']:.3f}{interval(e, 'mean')} | "
                     f"{e['untranslated_kept']:.3f} |")
    lines += [
        "", "'untranslated input': the source digits themselves under the target judge, the floor of a translator "
        "that returns its input.", "",
        "Per source class, over all 8 styles, and the most frequent confusions (share of that class's translations):",
        "", "| direction | " + " | ".join(str(c) for c in range(DIGIT_CLASSES)) + " | most frequent confusions |",
        "|---|" + "---|" * (DIGIT_CLASSES + 1),
    ]
    for name, e in ev.items():
        confusions = ", ".join(f"{c['label']}->{c['judged']} {c['share_of_label']:.3f}" for c in e["top_confusions"])
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in e["kept_per_class"]) + f" | {confusions} |")
    lines += [
        "", "## Diversity (mean pixel L1 between outputs, [-1, 1] units)", "",
        "| direction | 8 styles of one input | one style repeated 8x | 8 real target digits, same class | "
        "8 real target digits, any class | ratio to same class |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in ev.items():
        d = e["diversity_pixel_l1"]
        lines.append(f"| {name} | {d['munit_8_styles']:.4f} | {d['one_style_repeated']:.4f} | "
                     f"{d['real_target_same_class']:.4f} | {d['real_target_any_class']:.4f} | "
                     f"{d['ratio_to_real_same_class']:.3f} |")
    lines += [
        "", "Pixel L1 stands in for LPIPS (no VGG weights here). \"Clearly above zero\" = at least "
        f"{DIVERSITY_RATIO_TARGET}x the spread of real same-class target digits; a translator that ignores the "
        "style scores the 'one style repeated' column (0 up to rounding).", "",
        "## Style reconstruction and digit FID", "",
        "| direction | style recon. L1 (prior-mean guess: 0.80) | FID translations vs real | "
        "FID real vs real (floor) | FID untranslated source vs real | KID translations | KID floor | set size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in ev.items():
        f, k = e["digit_fid"], e["digit_kid"]
        lines.append(f"| {name} | {e['style_reconstruction_l1']} | {f['translations_vs_real']} | "
                     f"{f['real_vs_real_floor']} | {f['untranslated_source_vs_real']} | "
                     f"{k['translations_vs_real'][0]:.4f} +- {k['translations_vs_real'][1]:.4f} | "
                     f"{k['real_vs_real_floor'][0]:.4f} +- {k['real_vs_real_floor'][1]:.4f} | {f['set_size']} |")
    lines += [
        "", "Digit FID: Frechet distance of the digit feature network's 128 pooled features "
        "(`unpaired.metrics.digits.digit_fid`); translations use style i mod 8 for input i; every FID of a row is "
        "against the same half of the real target test set, at the same set size. KID: mean +- std over 100 "
        "subsets (polynomial kernel, unbiased).", "",
        "## Training speed (`Trainer.train_step`, median of timed steps after warm-up)", "",
        "| case | method | batch | size | precision | median step (s) | images/s |", "|---|---|---|---|---|---|---|",
    ]
    for name, c in r["speed"]["cases"].items():
        lines.append(f"| {name} | {c['method']} | {c['batch_size']} | {c['image_size']} | {c['precision']}"
                     f"{' + cl' if 'train.channels_last=true' in c['overrides'] else ''} | {c['median_step_s']} | "
                     f"{c['images_per_second']} |")
    s = r["speed"]
    lines += [
        "", f"MUNIT / UNIT images/s at 32x32 batch 64: fp32 {s['munit_vs_unit_digits32']['fp32']}, bf16+cl "
        f"{s['munit_vs_unit_digits32']['bf16_cl']}. Official MUNIT code at 64x64, dim 32, 2 res, batch 8, on this "
        f"CPU kind: {official_munit_text(s)}.", "",
    ]
    h = r["edges2handbags_smoke"]
    if "skipped" in h:
        lines += ["## edges2handbags smoke run", "", f"Skipped: {h['skipped']}.", ""]
    else:
        lines += [
            "## edges2handbags smoke run (64 px, 8 training images per side)", "",
            f"`munit_edges2handbags` at 64 px, batch {h['batch_size']}: {h['steps']} steps in {h['train_seconds']} s "
            f"({h['images_per_second']} images/s); final totals {h['final_totals']} (finite: {h['finite']}). Grid: "
            f"`{h['grid']}` (test edges; 8 prior styles; test photos as references and the reference-guided "
            "outputs). A smoke check of the pipeline, not a quality figure.", "",
        ]
    lines += ["8-style digit translations: `munit_styles.png` (columns: one test digit per class; rows: the source, "
              "then styles 1-8).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
