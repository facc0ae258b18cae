"""Method leaderboard: the one-to-one family and UNIT on equal terms, CycleGAN's speed, and maps aerial -> map.

Four parts (``--parts digits,speed,maps,maps_baseline``), all on this machine's CPU:

(a) digits. CycleGAN, DistanceGAN, GcGAN and UNIT trained on MNIST -> USPS with their shipped ``*_digits``
    configs, the same data (``mnist:usps``), image size (32), batch size (``--digit-batch``, 32 for all: the
    one-to-one configs' own; UNIT's config says 64), step budget (``--digit-steps``; the linear-decay
    schedules decay from half of it) and seeds (``--seeds``; one seed by default on CPU, so no spread is
    shown unless more are given). Every method runs in ``--precision`` (bf16 autocast + channels_last by
    default, the fast CPU setting), and the methods in ``--both-precisions`` (CycleGAN by default) run in fp32
    too, to show what bf16 costs in quality. Scores of the a -> b (MNIST -> USPS) translations of the first
    ``--eval`` MNIST test digits, always computed in fp32:
      * class preservation: the share that a judge (``metrics.digits.train_classifier`` on the *real* USPS
        training digits and labels, never seen by any translator) labels with the source digit's class;
      * digit FID between those translations and the real USPS test digits, with the feature network and
        ``digit_fid`` of ``unpaired.metrics.digits`` when that module provides them (else 'n/a' and why);
      * training images/s: the median over the trainer's logging windows (data decoding included;
        start-up, sample grids and checkpoints excluded), and the whole-run wall-clock figure.
    The last sample grid of each method's first seed is copied next to the table.
(b) speed at the official CycleGAN reference configuration: 64x64, ResNet generator with 9 blocks, ngf/ndf
    64, 70x70 PatchGAN, instance norm, LSGAN, image pool 50, batch 8 (``cyclegan_256`` with
    ``data.image_size=64 data.load_size=64 train.batch_size=8``). ``Trainer.train_step`` is timed as in
    bench/train_speed.py (median of ``--speed-steps`` after ``--speed-warmup``, data decoding of synthetic
    images included), fp32 and bf16 + channels_last, against the official code's figure for this CPU kind in
    ../shared/reference-speeds.md (``common.official_figure``: the row picked by the CPU's flags; a kind without
    a figure gets no ratio, said plainly), target 1.5x.
(c) maps aerial photo -> map at a small CPU scale: CycleGAN (``cyclegan_256``), DistanceGAN (its official
    defaults: CycleGAN's networks; at batch 1 its self-distance term, paper eq. 7) and GcGAN (``gcgan_maps``)
    trained on ``pairs:<maps/train>@0.8`` (the first 80 % of the 400 shared images, A and B from disjoint
    files; see unpaired.data.paired) at
    ``--maps-size`` px (load size x 286/256 with random crops and flips, as the official 286/256), the same
    networks for all (``--maps-dim``, 6 residual blocks as CycleGAN's rule for <= 128 px), batch 1 (official),
    ``--precision``, and the same budget: ``--maps-steps`` steps each, or ``--maps-minutes`` minutes each
    when given (then the steps reached are reported). Each is then scored by ``unpaired eval paired`` on the
    held-out 20 % (80 images) at the training size, ground truth resized with ``area`` (box average: the
    GcGAN script's un-antialiased bilinear point-samples map lines at 64 px). Reported: RMSE and pixel
    accuracy at delta 5/10/20, and whether the GcGAN paper's ordering (GcGAN at least as good as CycleGAN)
    holds, with the per-image paired difference and its standard error. Beside them, under the same budget,
    networks' width, data and held-out pairs: pix2pix (``pix2pix_maps``), the *supervised* upper bound, trained
    on the aligned pairs of the same train part (both halves of every train file).
(d) maps_baseline: the same scores for a constant output (the mean colour of the train maps), the floor that a
    translator which ignores its input reaches; seconds.

Writes ``--out``/leaderboard.json, leaderboard.md and leaderboard_*.png (``--out`` defaults to bench/results;
``--quick`` runs tiny budgets into a temporary folder and refuses bench/results). Parts not named in
``--parts`` are kept from the earlier leaderboard.json in ``--out`` (``--fresh`` drops them), each with the
command, date and machine that measured it, so the parts can run at different times. Speeds are only meaningful
on an otherwise idle machine.

Expected wall time of the full default run: about 2 hours. This is an *estimate*, scaled from the per-step
speeds of one ``--quick`` run (and of 8 timed maps steps at the default 64 px) taken with 1 torch thread while
another benchmark shared the 2 cores; 2 threads on an idle machine should be faster. Breakdown: (a) ~85 min
(judge and feature network ~5 min; 1000 steps at batch 32 take ~15 min for CycleGAN bf16, ~30 min for
CycleGAN fp32, ~23 min for UNIT, ~9 min for GcGAN, ~3 min for DistanceGAN), (b) ~4 min, (c) ~35 min (5000
steps at 64 px, batch 1: ~18 min CycleGAN, ~10 min GcGAN, ~6 min DistanceGAN, plus the evaluations).

    python bench/leaderboard.py                              # everything, the defaults above
    python bench/leaderboard.py --parts maps --maps-minutes 20
    python bench/leaderboard.py --quick                      # smoke test, ~2-4 minutes
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    FAST,
    FP32,
    QUIET,
    REFERENCE_CONFIGS,
    RESULTS,
    make_folder,
    median_step_seconds,
    official_figure,
    provenance,
    provenance_lines,
    step_flops,
    write_report,
)

SPEED_TARGET = 1.5
DIGIT_METHODS = {"cyclegan": "cyclegan_digits", "distancegan": "distancegan_digits", "gcgan": "gcgan_digits",
                 "unit": "unit_digits"}
MAPS_RESNET = ["model.n_res=6"]
"""The unpaired methods' ResNet generator at <= 128 px (CycleGAN's rule)."""
MAPS_METHODS = {"cyclegan": (["cyclegan_256"], MAPS_RESNET),
                "distancegan": ([], [*MAPS_RESNET, "loss_weights.distance=0", "loss_weights.self_distance=1"]),
                "gcgan": (["gcgan_maps"], MAPS_RESNET),
                "pix2pix": (["pix2pix_maps"], ["model.num_downs=null"])}
"""(config files, overrides) per method on maps. DistanceGAN's class defaults are the official (CycleGAN)
networks; at batch 1 it uses the self-distance term (paper eq. 7), the pairwise one needs two images. pix2pix is
the supervised upper bound: trained on the aligned pairs of the same train part (its U-Net down to 1x1 at the
bench's size: ``num_downs`` = log2 of it)."""
MAPS_COMMON = ["optim.lr=0.0002", "optim.beta1=0.5", "optim.weight_decay=0.0", "optim.lr_policy=linear",
               "data.flip=true", "train.batch_size=1", "data.num_workers=0"]
"""The official CycleGAN/GcGAN/DistanceGAN/pix2pix optimiser and data settings, stated for all (DistanceGAN has
no maps config)."""
PRECISIONS = {"fp32": FP32, "bf16_cl": FAST}  # explicit
SPEED_REFERENCE = REFERENCE_CONFIGS["CycleGAN 64 b8"][2]  # with cyclegan_256, as reference-speeds.md says
PARTS = ("digits", "speed", "maps", "maps_baseline")
SUPERVISED = ("pix2pix",)
"""Maps methods trained on the aligned pairs (the upper bound), not on unpaired halves."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets into a temporary folder (smoke test)")
    parser.add_argument("--fresh", action="store_true",
                        help="drop the parts of an earlier leaderboard.json in --out that this run does not redo "
                             "(by default they are kept, each with the command and date that measured it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="bf16_cl",
                        help="precision of every training run")
    parser.add_argument("--both-precisions", default="cyclegan",
                        help="digits: methods also trained in the other precision (comma-separated, or 'none')")
    parser.add_argument("--digit-steps", type=int, default=1000)
    parser.add_argument("--digit-batch", type=int, default=32)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (digits and maps)")
    parser.add_argument("--eval", type=int, default=2000, help="MNIST test digits translated and scored")
    parser.add_argument("--judge-steps", type=int, default=600)
    parser.add_argument("--feature-steps", type=int, default=1000, help="training steps of the digit-FID features")
    parser.add_argument("--speed-steps", type=int, default=10)
    parser.add_argument("--speed-warmup", type=int, default=3)
    parser.add_argument("--maps-steps", type=int, default=5000)
    parser.add_argument("--maps-minutes", type=float, default=None,
                        help="train each maps method for this many minutes instead of --maps-steps steps")
    parser.add_argument("--maps-size", type=int, default=64)
    parser.add_argument("--maps-dim", type=int, default=32, help="generator and discriminator width (official 64)")
    parser.add_argument("--maps-data", default=None, help="aligned pairs folder (default $UNPAIRED_DATA/maps/train)")
    parser.add_argument("--maps-fraction", type=float, default=0.8)
    args = parser.parse_args(argv)
    if args.quick:
        args.digit_steps, args.judge_steps, args.feature_steps, args.eval, args.seeds = 6, 10, 10, 64, "0"
        args.speed_steps, args.speed_warmup = 2, 1
        args.maps_steps, args.maps_minutes, args.maps_size, args.maps_dim = 4, None, 32, 8
        if args.out is None:
            args.out = Path(tempfile.mkdtemp(prefix="leaderboard_quick_"))
        elif args.out.resolve() == RESULTS.resolve():
            parser.error("--quick never writes to bench/results; give another --out or none")
    args.out = args.out or RESULTS
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown --parts {', '.join(sorted(unknown))}")
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    both = args.both_precisions.strip().lower()
    args.both_precisions = [] if both in ("", "none") else [m.strip() for m in both.split(",")]
    wrong = set(args.both_precisions) - set(DIGIT_METHODS)
    if wrong:
        parser.error(f"--both-precisions: unknown method(s) {', '.join(sorted(wrong))}")
    return args


def run_overrides(steps: int, seed: int) -> list[str]:
    """Budget, schedule and quiet logging shared by every training run of the leaderboard."""
    # (the linear-decay configs start their decay at half of max_steps themselves: optim.decay_fraction)
    return [f"train.max_steps={steps}", f"train.seed={seed}",
            f"train.log_every={max(1, min(20, steps // 5))}", f"train.sample_every={steps}",
            f"train.checkpoint_every={steps}", "train.keep_checkpoints=1", *QUIET]


def train_run(method: str, files: list[str], overrides: list[str], run_dir: Path) -> dict:
    from unpaired.config import build_config
    from unpaired.training.logging import read_metrics
    from unpaired.training.trainer import Trainer

    cfg = build_config(method, files, overrides)
    trainer = Trainer(cfg, run_dir)
    result = trainer.fit()
    windows = [r["speed/images_per_second"] for r in read_metrics(run_dir) if "speed/images_per_second" in r]
    return {"steps": result.step, "stopped_by": result.stopped_by, "train_seconds": round(result.seconds, 1),
            "images_per_second": round(statistics.median(windows), 2) if windows else None,
            "wall_images_per_second": round(result.images_per_second, 2),
            "seconds_per_step": round(result.seconds / max(result.step, 1), 4),
            "checkpoint": str(result.checkpoint), "grid": str(result.grid) if result.grid else None}


# -------------------- (a) digits


def fid_tools(work: Path, steps: int) -> tuple[tuple | None, dict]:
    """(feature network, digit_fid) from unpaired.metrics.digits and a description, or (None, {'n/a': why}).

    The feature network is the one ``ensure_feature_net`` trains on the labelled MNIST and USPS training digits
    (32x32 gray), kept in the temporary work folder."""
    try:
        from unpaired.metrics.digits import digit_fid, ensure_feature_net
    except ImportError as err:
        return None, {"n/a": f"unpaired.metrics.digits has no digit FID yet ({err})"}
    model = ensure_feature_net(work / "digit_features", steps=steps)
    return (model, digit_fid), {"features": f"DigitClassifier trained on MNIST + USPS train digits ({steps} steps; "
                                            f"test accuracy {model.info.get('test_accuracy')})"}


def digits_part(args: argparse.Namespace, work: Path) -> dict:
    from unpaired.data import data_root, open_digits
    from unpaired.inference import load
    from unpaired.metrics.digits import accuracy, class_preservation, to_unit_range, train_classifier

    root = data_root()
    usps_train, usps_test = (open_digits("usps", root, s, 32, 1) for s in ("train", "test"))
    mnist_test = open_digits("mnist", root, "test", 32, 1)
    started = time.perf_counter()
    judge = train_classifier(usps_train.images, usps_train.labels, steps=args.judge_steps, seed=0)
    part: dict = {"judge": {"trained_on": "usps/train (real digits and labels)", "steps": args.judge_steps,
                            "accuracy_usps_test": round(accuracy(judge, usps_test.images, usps_test.labels), 4),
                            "seconds": round(time.perf_counter() - started, 1)}}
    tools, part["fid"] = fid_tools(work, args.feature_steps)
    if tools:
        part["fid"]["real"] = f"usps/test ({len(usps_test)} digits)"
    print("judge", part["judge"], "| fid:", part["fid"], flush=True)
    n = min(args.eval, len(mnist_test))
    images, labels = mnist_test.images[:n], mnist_test.labels[:n]
    runs: dict = {}
    for method, config in DIGIT_METHODS.items():
        precisions = [args.precision] + [p for p in PRECISIONS if p != args.precision
                                         and method in args.both_precisions]
        for precision in precisions:
            name = f"{method}_{precision}"
            per_seed = []
            for seed in args.seeds:
                overrides = ["data.source=mnist:usps", f"train.batch_size={args.digit_batch}",
                             *run_overrides(args.digit_steps, seed), *PRECISIONS[precision]]
                run = train_run(method, [config], overrides, work / "digits" / f"{name}_seed{seed}")
                translator = load(run["checkpoint"], device="cpu")
                with torch.no_grad():
                    fake = torch.cat([translator.translate(to_unit_range(images[i:i + 256]), "a2b").float()
                                      for i in range(0, n, 256)])
                run["class_preservation"] = round(class_preservation(lambda x: x, fake, labels, judge), 4)
                if tools:
                    model, fid = tools
                    run["digit_fid"] = round(float(fid(model, fake, to_unit_range(usps_test.images))), 3)
                run["seed"] = seed
                per_seed.append(run)
                print(name, {k: v for k, v in run.items() if k not in ("checkpoint", "grid")}, flush=True)
            grid = per_seed[0]["grid"]
            if grid:
                shutil.copy(grid, args.out / f"leaderboard_digits_{name}.png")
            runs[name] = {"method": method, "precision": precision, "config": config, "seeds": per_seed,
                          **summarise(per_seed, ["class_preservation", "digit_fid", "images_per_second",
                                                 "wall_images_per_second", "seconds_per_step"])}
    part.update({"steps": args.digit_steps, "batch_size": args.digit_batch, "image_size": 32,
                 "seeds": args.seeds, "eval_digits": n, "runs": runs})
    return part


def summarise(runs: list[dict], keys: list[str]) -> dict:
    """Mean (and population std over seeds when there are several) of each key present in every run."""
    out: dict = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        if len(values) != len(runs):
            continue
        mean = statistics.fmean(values)
        whole = all(isinstance(v, int) for v in values) and mean.is_integer()
        out[key] = int(mean) if whole else round(mean, 4)
        if len(values) > 1:
            out[f"{key}_std"] = round(statistics.pstdev(values), 4)
    return out


# -------------------- (b) speed at the official reference configuration


def speed_part(args: argparse.Namespace, work: Path) -> dict:
    from unpaired.config import build_config
    from unpaired.training.trainer import Trainer

    data = make_folder(work / "speed_data", 64)
    official = official_figure("CycleGAN 64 b8")  # this CPU kind's figure, or why there is none
    figure = official["images_per_second"]
    cases = {}
    for precision, extra in PRECISIONS.items():
        cfg = build_config("cyclegan", ["cyclegan_256"], [f"data.source={data}", *SPEED_REFERENCE, *QUIET, *extra])
        trainer = Trainer(cfg, work / f"speed_{precision}")
        median = median_step_seconds(trainer, args.speed_steps, args.speed_warmup)
        batch = cfg.train.batch_size
        flops = step_flops(trainer, args.speed_warmup + args.speed_steps)
        cases[precision] = {"median_step_s": round(median, 4), "images_per_second": round(batch / median, 3),
                            "vs_official": None if figure is None else round(batch / median / figure, 2),
                            "gflop_per_image": round(flops / batch / 1e9, 1),
                            "effective_gflops": round(flops / median / 1e9, 1),
                            "timed_steps": args.speed_steps, "overrides": SPEED_REFERENCE + extra}
        print("speed", precision, cases[precision], flush=True)
        del trainer
    return {"config": "cyclegan_256 + " + " ".join(SPEED_REFERENCE), "batch_size": 8, "image_size": 64,
            "official_images_per_second": figure, "official": official, "target_speedup": SPEED_TARGET,
            "cases": cases, "best_speedup": None if figure is None else max(c["vs_official"] for c in cases.values())}


# -------------------- (c) maps aerial -> map


def maps_part(args: argparse.Namespace, work: Path) -> dict:
    from unpaired.cli import cli
    from unpaired.data import data_root

    folder = Path(args.maps_data) if args.maps_data else data_root() / "maps" / "train"
    spec = f"pairs:{folder}@{args.maps_fraction:g}"
    size = args.maps_size
    load_size = round(size * 286 / 256)
    steps = args.maps_steps if args.maps_minutes is None else 10**9
    shared = [f"data.source={spec}", f"data.image_size={size}", f"data.load_size={load_size}",
              f"model.dim={args.maps_dim}", f"model.dis_dim={args.maps_dim}", *MAPS_COMMON,
              *PRECISIONS[args.precision]]
    if args.maps_minutes is not None:
        shared.append(f"train.max_minutes={args.maps_minutes}")
    runs: dict = {}
    for method, (files, own) in MAPS_METHODS.items():
        per_seed = []
        for seed in args.seeds:
            budget = run_overrides(steps, seed)
            if args.maps_minutes is not None:  # a time budget: decay over a nominal 2000 steps is meaningless
                budget = [o for o in budget if not o.startswith(("train.sample_every", "train.checkpoint_every"))]
                budget += ["optim.lr_policy=constant", "train.sample_every=500", "train.checkpoint_every=500"]
            run = train_run(method, files, [*shared, *own, *budget, "train.num_samples=8"],
                            work / "maps" / f"{method}_seed{seed}")
            out = args.out / "leaderboard_maps_eval" / f"{method}_seed{seed}"
            command = ["eval", "paired", "--checkpoint", run["checkpoint"], "--data", spec, "--direction", "a2b",
                       "--size", str(size), "--gt-resize", "area", "--device", "cpu", "--out", str(out),
                       "--overwrite"]
            cli.main(command, standalone_mode=False)
            report = json.loads((out / "report.json").read_text())
            run.update({"seed": seed, "eval_command": "unpaired " + " ".join(command), "eval_images": report["images"],
                        **report["mean"], "per_image": {r["file"]: r for r in report["per_image"]}})
            per_seed.append(run)
            print("maps", method, {k: v for k, v in run.items() if k not in ("checkpoint", "grid", "per_image")},
                  flush=True)
        if per_seed[0]["grid"]:
            shutil.copy(per_seed[0]["grid"], args.out / f"leaderboard_maps_{method}.png")
        keys = ["rmse", "acc_5", "acc_10", "acc_20", "images_per_second", "seconds_per_step", "steps"]
        runs[method] = {"config_files": files, "overrides": own, "seeds": per_seed, **summarise(per_seed, keys)}
    part = {"data": spec, "image_size": size, "load_size": load_size, "dim": args.maps_dim,
            "budget": (f"{args.maps_minutes:g} minutes per method" if args.maps_minutes is not None
                       else f"{args.maps_steps} steps per method"),
            "precision": args.precision, "gt_resize": "area", "runs": runs}
    part["gcgan_vs_cyclegan"] = ordering(runs["gcgan"]["seeds"], runs["cyclegan"]["seeds"])
    for run in runs.values():
        for seeded in run["seeds"]:
            seeded.pop("per_image")
    return part


def maps_baseline_part(args: argparse.Namespace, work: Path) -> dict:
    """What a translator that ignores its input scores on the maps protocol: every output is one constant image,
    the mean colour of the *training* maps (B halves of the train part, resized like the ground truth). The
    floor against which the trained methods' RMSE and pixel accuracy mean something."""
    from unpaired.data import data_root
    from unpaired.data.paired import PairedFolderSource, list_pairs, split_pairs
    from unpaired.metrics.paired import resize_truth, score_images

    folder = Path(args.maps_data) if args.maps_data else data_root() / "maps" / "train"
    train, test = split_pairs(len(list_pairs(folder)), args.maps_fraction)
    size = (args.maps_size, args.maps_size)
    maps_train, maps_test = (PairedFolderSource(folder, "b", 3, None, part) for part in (train, test))
    colour = torch.stack([resize_truth(maps_train[i], size, "area").float().mean((1, 2))
                          for i in range(len(maps_train))]).mean(0)
    truth = torch.stack([resize_truth(maps_test[i], size, "area") for i in range(len(maps_test))])
    constant = colour.round().to(torch.uint8).view(1, 3, 1, 1).expand_as(truth)
    scores = {key: round(float(value.mean()), 4) for key, value in score_images(constant, truth).items()}
    return {"what": "constant image: mean colour of the train maps", "colour": [round(float(c), 1) for c in colour],
            "train_images": len(maps_train), "eval_images": len(maps_test), "image_size": args.maps_size, **scores}


def ordering(gcgan: list[dict], cyclegan: list[dict]) -> dict:
    """Does GcGAN >= CycleGAN hold (lower RMSE, higher accuracy)? Per-image paired differences over the
    held-out images (all seeds pooled, matched by seed and file), with their standard error."""
    out = {}
    for key, better in (("rmse", -1), ("acc_5", 1), ("acc_10", 1), ("acc_20", 1)):
        diffs = [g["per_image"][f][key] - c["per_image"][f][key]
                 for g, c in zip(gcgan, cyclegan, strict=True) for f in g["per_image"] if f in c["per_image"]]
        mean = statistics.fmean(diffs)
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        out[key] = {"gcgan_minus_cyclegan": round(mean, 4), "standard_error": round(se, 4),
                    "gcgan_at_least_as_good": bool(better * mean >= 0),
                    "images": len(diffs),
                    "verdict": ("no clear difference" if not abs(mean) > 2 * se  # nan SE: no verdict either
                                else "GcGAN better" if better * mean > 0 else "GcGAN worse")}
    return out


# -------------------- report


def render(r: dict) -> str:
    lines = ["# Method leaderboard (CPU)", "", *provenance_lines(r, "Latest command"),
             "Each part below names the command that measured it (parts may come from different runs).", ""]
    if r.get("quick"):
        lines += ["**--quick smoke run: tiny budgets, the numbers mean nothing.**", ""]
    d = r.get("digits")
    if d:
        fid_note = d["fid"].get("n/a")
        lines += [
            "## MNIST -> USPS", "", *_measured(d),
            f"Shipped `*_digits` configs, 32x32, batch {d['batch_size']}, {d['steps']} steps, seeds {d['seeds']}. "
            f"Scores of the a -> b translations of the first {d['eval_digits']} MNIST test digits. Judge: a "
            f"classifier trained on real USPS training digits and labels ({d['judge']['steps']} steps; accuracy on "
            f"real USPS test digits {d['judge']['accuracy_usps_test']}), never used in training. Digit FID: "
            + (f"n/a ({fid_note})." if fid_note else f"translations vs real USPS test, {d['fid']['features']}."),
            "",
            "| method | precision | class preservation | digit FID | train images/s | wall images/s |",
            "|---|---|---|---|---|---|",
        ]
        for run in d["runs"].values():
            lines.append(f"| {run['method']} | {run['precision']} | {_pm(run, 'class_preservation')} | "
                         f"{_pm(run, 'digit_fid')} | {_pm(run, 'images_per_second')} | "
                         f"{_pm(run, 'wall_images_per_second')} |")
        lines += ["", "Train images/s: median over logging windows (data included, start-up, grids and checkpoints "
                  "excluded); wall: the whole run. Grids: `leaderboard_digits_<method>_<precision>.png`.", ""]
    s = r.get("speed")
    if s:
        lines += ["## CycleGAN speed at the official reference configuration", "", *_measured(s),
                  f"`{s['config']}` (9 residual blocks, ngf/ndf 64, 70x70 PatchGAN, batch 8, 64x64); median "
                  "`Trainer.train_step` time, data decoding included.", "",
                  f"| precision | median step (s) | images/s | vs official {_official_text(s)} | GFLOP/image | "
                  "effective GFLOP/s |", "|---|---|---|---|---|---|"]
        for name, c in s["cases"].items():
            ratio = "no ratio" if c["vs_official"] is None else f"{c['vs_official']}x"
            lines.append(f"| {name} | {c['median_step_s']} | {c['images_per_second']} | {ratio} | "
                         f"{c.get('gflop_per_image', 'n/a')} | {c.get('effective_gflops', 'n/a')} |")
        best = (f"No ratio: {s['official']['no_figure']}." if s["best_speedup"] is None else
                f"Best: **{s['best_speedup']}x** the official code (target {s['target_speedup']}x).")
        lines += ["", f"{best} GFLOP/image: "
                  "convolutions and matrix products of one training step (forward and backward) as "
                  "`torch.utils.flop_counter` counts them; effective GFLOP/s = that work / median step time.", ""]
        if {"fp32", "bf16_cl"} <= set(s["cases"]):
            ratio = s["cases"]["bf16_cl"]["images_per_second"] / s["cases"]["fp32"]["images_per_second"]
            lines += [f"bf16 + channels_last against fp32 on the same machine and code: **{ratio:.2f}x** (a ratio "
                      "that does not depend on where the official figure was measured).", ""]
    mp = r.get("maps")
    if mp:
        lines += ["## Maps aerial -> map (paired evaluation of unpaired training)", "", *_measured(mp),
                  f"Trained on `{mp['data']}` (train part; A and B from disjoint files, or the aligned pairs for the "
                  f"supervised pix2pix) at {mp['image_size']} px (load {mp['load_size']}, random crops and flips), "
                  f"width {mp['dim']}, 6 residual blocks (pix2pix: its U-Net), batch 1, "
                  f"{mp['precision']}, budget {mp['budget']}; scored by `unpaired eval paired` on the held-out part "
                  f"at {mp['image_size']}x{mp['image_size']}, ground truth resized with `{mp['gt_resize']}`.", "",
                  "| method | steps | RMSE | acc delta=5 | acc delta=10 | acc delta=20 | train images/s |",
                  "|---|---|---|---|---|---|---|"]
        for method, run in mp["runs"].items():
            name = f"{method} (supervised: aligned pairs)" if method in SUPERVISED else method
            lines.append(f"| {name} | {_pm(run, 'steps')} | {_pm(run, 'rmse')} | {_pm(run, 'acc_5')} | "
                         f"{_pm(run, 'acc_10')} | {_pm(run, 'acc_20')} | {_pm(run, 'images_per_second')} |")
        base = r.get("maps_baseline")
        if base:
            lines.append(f"| *{base['what']}* | - | {base['rmse']} | {base['acc_5']} | {base['acc_10']} | "
                         f"{base['acc_20']} | - |")
        o = mp["gcgan_vs_cyclegan"]
        verdicts = {o[k]["verdict"] for k in ("rmse", "acc_5")}
        overall = ("holds" if "GcGAN worse" not in verdicts else
                   "does not hold" if "GcGAN better" not in verdicts else "is mixed (better on one, worse on one)")
        lines += ["", f"GcGAN >= CycleGAN (the paper's ordering) **{overall}** at this scale. Per-image paired "
                  f"differences GcGAN - CycleGAN over {o['rmse']['images']} held-out images (a difference counts "
                  f"beyond two standard errors): RMSE {o['rmse']['gcgan_minus_cyclegan']} (SE "
                  f"{o['rmse']['standard_error']}: {o['rmse']['verdict']}), acc@5 {o['acc_5']['gcgan_minus_cyclegan']} "
                  f"(SE {o['acc_5']['standard_error']}: {o['acc_5']['verdict']}). "
                  "Reports per method: `leaderboard_maps_eval/`; grids: `leaderboard_maps_<method>.png`.", ""]
        lines += _supervised_lines(mp["runs"], base)
        if base:
            beaten = {key: [m for m, run in mp["runs"].items() if key in run
                            and (run[key] < base[key] if key == "rmse" else run[key] > base[key])]
                      for key in ("rmse", "acc_5", "acc_10", "acc_20")}
            lines += ["Against the constant image (a translator that ignores its input): "
                      + "; ".join(f"{key} beaten by {', '.join(names) if names else 'none'}"
                                  for key, names in beaten.items())
                      + ". A method that does not beat it has not yet learnt to draw the map of *its* input.", ""]
    return "\n".join(lines)


def _supervised_lines(runs: dict, base: dict | None) -> list[str]:
    """Where the supervised upper bound stands: does it beat every unpaired method (and the constant image)?"""
    lines = []
    for method in SUPERVISED:
        if method not in runs:
            continue
        others = {m: r for m, r in runs.items() if m not in SUPERVISED}
        if base:
            others = {**others, "the constant image": base}
        verdicts = []
        for key in ("rmse", "acc_5"):
            mine = runs[method].get(key)
            if mine is None:
                continue
            better = [m for m, r in others.items() if key in r and (mine < r[key] if key == "rmse" else mine > r[key])]
            worse = sorted(set(others) - set(better))
            verdicts.append(f"{key}: better than {'every other row' if not worse else ', '.join(better) or 'none'}"
                            + (f", not than {', '.join(worse)}" if worse else ""))
        lines += [f"{method}, trained on the aligned pairs (the supervised upper bound), at the same budget: "
                  + "; ".join(verdicts) + ".", ""]
    return lines


def _official_text(speed: dict) -> str:
    """"1.35 images/s (AMD EPYC, Zen 4)": the official figure the speed part divides by, and its CPU kind."""
    official = speed.get("official")
    if official is None:  # a part measured before the figures came per CPU kind
        return f"{speed['official_images_per_second']} images/s"
    if official["images_per_second"] is None:
        return "(no figure for this CPU kind)"
    return f"{official['images_per_second']} images/s ({official['cpu_kind']})"


def _measured(part: dict) -> list[str]:
    """The line that says which command measured a part, when, and on what machine."""
    m = part.get("measured")
    if not m:
        return []
    machine = m["machine"]
    quick = " **(--quick: the numbers mean nothing)**" if m.get("quick") else ""
    return [f"Measured by `{m['command']}` on {m['date']}, {machine['cpu']}, {machine['threads']} torch threads, "
            f"in {m['seconds']} s{quick}.", ""]


def _pm(run: dict, key: str) -> str:
    if key not in run:
        return "n/a"
    return f"{run[key]} ± {run[key + '_std']}" if f"{key}_std" in run else f"{run[key]}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    measured = {**provenance("leaderboard.py", argv), "quick": args.quick}
    results = kept_parts(args.out / "leaderboard.json", args.parts) if not (args.quick or args.fresh) else {}
    results = {**results, **measured, "seconds": results.get("seconds", {})}
    parts = {"digits": digits_part, "speed": speed_part, "maps": maps_part, "maps_baseline": maps_baseline_part}
    with tempfile.TemporaryDirectory(prefix="leaderboard_runs_") as tmp:
        for name in args.parts:
            started = time.perf_counter()
            results[name] = parts[name](args, Path(tmp))
            results["seconds"][name] = round(time.perf_counter() - started, 1)
            results[name]["measured"] = {**measured, "seconds": results["seconds"][name]}
            (args.out / "leaderboard.json").write_text(json.dumps(results, indent=2) + "\n")  # partial results
    write_report(args.out, "leaderboard", results, render(results))
    print(f"wrote {args.out / 'leaderboard.json'} and {args.out / 'leaderboard.md'}")


def kept_parts(path: Path, rerun: list[str]) -> dict:
    """The parts of an earlier leaderboard.json that this run does not redo, each with the command, date and
    machine that measured it, so parts run at different times (``--parts maps`` after ``--parts digits``) end up
    in one table. Older files without per-part records lend their top-level command, date and machine."""
    if not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    kept: dict = {"seconds": {}}
    for name in PARTS:
        if name in earlier and name not in rerun:
            part = earlier[name]
            part.setdefault("measured", {key: earlier.get(key) for key in ("command", "date", "quick", "machine")}
                            | {"seconds": earlier.get("seconds", {}).get(name)})
            kept[name], kept["seconds"][name] = part, part["measured"]["seconds"]
    return kept

if __name__ == "__main__":
    main()
