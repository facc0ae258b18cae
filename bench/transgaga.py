"""TransGaGa benchmark: translation across a large known shape change, scored against the truth (issue 38).

What it does, in order:

1. Data: the warped-digits benchmark (``unpaired.data.warped_digits``) written to WORK/warped_digits at 32 px:
   trainA = MNIST train rows [0, 30000) as they are, trainB = rows [30000, 60000) bent, rotated by 40 degrees
   and restyled; test digits A with their true B version (the same digit warped and restyled).
2. A judge: a ``DigitClassifier`` trained on domain B's training digits with their labels (cached in WORK); it
   only scores.
3. Training: TransGaGa, CycleGAN, UNIT and MUNIT, each with its shipped digits config on the same data, the
   same image size (32) and the same budget: ``--minutes`` of wall time (or ``--steps``, whichever ends first),
   one run per seed of ``--seeds``.
4. Scoring a -> b on the first ``--eval`` MNIST test digits against their true B version:
   - stroke-mask IoU (``warped_digits.stroke_mask``: pixels nearer the ink colour than the background colour),
     mean over digits, and L1 to the truth ([-1, 1] units);
   - class kept: the share of translations the domain-B judge gives the input's label;
   - landmark equivariance under flips (TransGaGa only, the one method with landmarks): mean distance between
     the landmarks of a flipped digit and the flipped landmarks of the digit (normalised units);
   - reference rows: the untranslated A digit, the A digit given B's appearance with A's shape (what a perfect
     shape-keeping translator would output), and the truth itself.
   Per method: mean and standard deviation over the seeds run. **Verdict** "clearly above": TransGaGa's IoU is above
   every other method's in every seed (its lowest seed above their highest) and its mean exceeds theirs by more
   than twice the larger of the two seed standard deviations; and its class kept is not below theirs (mean), since
   a blob in the warped digits' usual place overlaps the truth better than the input's shape does without being a
   translation of the digit.
5. A picture (OUT/transgaga_digits.png): inputs, truth and each method's output (first seed), TransGaGa's
   landmarks drawn; and a smoke grid on the AFHQ cat and CelebA-HQ face samples (64 px, ``--smoke-steps``)
   with landmarks drawn (OUT/transgaga_faces.png), skipped when the samples are absent.

Writes OUT/transgaga.json and OUT/transgaga.md, after every run (a cut-short benchmark still reports, marked
partial). Each finished run leaves a record in OUT/transgaga_runs (its scores, training figures and machine, and
its first digits as a PNG strip), committed with the report; a later invocation with the same settings reuses the
record instead of training again. So the 12 runs of the default (~3 hours) may take several sittings, each on a
quiet CPU: ``--seeds 0`` in one, ``--seeds 0,1,2`` in the next (seed 0 reused). The report lists every run's
machine: a run's wall-time budget buys more steps on a faster CPU, so the methods are compared within a seed, whose
four runs come from one sitting. ``--quick`` runs every stage with tiny budgets to check the script end to end; its
figures mean nothing, so it writes to a fresh temporary folder (never bench/results).

    python bench/transgaga.py [--minutes 15] [--seeds 0,1,2] [--eval 2000] [--threads 2] [--set KEY=VALUE ...]
    python bench/transgaga.py --records-only   # trains nothing: the report from the runs recorded so far
    python bench/transgaga.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    QUIET,
    add_output_options,
    cpu_description,
    provenance,
    recorded,
    report_header,
    resolve_output_folders,
    write_report,
)

METHODS = {"transgaga": "transgaga_digits", "cyclegan": "cyclegan_digits", "unit": "unit_digits",
           "munit": "munit_digits"}
"""The methods compared, each with its shipped digits config."""
SIZE = 32
GRID_DIGITS = 12
FACES = {"A": ("afhq_samples", ("cat",)), "B": ("celeba_hq_samples", ("female", "male"))}
"""The smoke pair: AFHQ cats (domain a) and CelebA-HQ faces (domain b) of ../shared/data, as (folder, classes);
their ref/ images train, their src/ images are shown."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-time per run (0: steps only)")
    parser.add_argument("--steps", type=int, default=100000, help="training steps per run (the other cap)")
    parser.add_argument("--seeds", default=None, help="training seeds, comma-separated (default 0,1,2; --quick: 0)")
    parser.add_argument("--eval", type=int, default=2000, help="MNIST test digits scored")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--judge-steps", type=int, default=3000, help="training steps of the domain-B judge")
    parser.add_argument("--smoke-steps", type=int, default=300, help="steps of the cat <-> face smoke run")
    parser.add_argument("--records-only", action="store_true",
                        help="train nothing: the report from the runs recorded in OUT/transgaga_runs so far")
    add_output_options(parser, "transgaga")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.steps, args.eval, args.judge_steps, args.smoke_steps = 0.0, 2, 12, 10, 2
        args.overrides = ["model.dim=8", "model.dis_dim=8", "model.n_res=2", "model.dis_layers=2",
                          "model.dis_scales=1", "model.mlp_dim=16", "model.transformer_dim=16", "train.batch_size=4",
                          *args.overrides]
    args.seeds = args.seeds or ("0" if args.quick else "0,1,2")
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    resolve_output_folders(parser, args, "transgaga")
    return args


def fitting_overrides(method: str, overrides: list[str]) -> list[str]:
    """``overrides`` without the ``model.*`` keys that ``method``'s config does not have (--set model.mlp_dim=16
    shrinks MUNIT and TransGaGa and leaves CycleGAN alone)."""
    from unpaired.methods import METHODS as REGISTRY

    fields = {f.name for f in dataclasses.fields(REGISTRY.get(method).Config)}
    return [o for o in overrides if not o.startswith("model.") or o.split("=")[0].split(".")[1] in fields]


def train(method: str, seed: int, data: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from unpaired.config import build_config
    from unpaired.training.trainer import Trainer

    overrides = [f"data.source={data}", f"data.image_size={SIZE}", "data.num_workers=0", f"train.seed={seed}",
                 f"train.max_steps={args.steps}", f"train.max_minutes={args.minutes or 'null'}",
                 f"train.checkpoint_every={args.steps}", f"train.sample_every={args.steps}", *QUIET,
                 *fitting_overrides(method, args.overrides)]
    folder = work / f"{method}_seed{seed}"
    if folder.exists():  # a run stopped before its record was written: a wall-time budget cannot be resumed
        print(f"{folder}: an unfinished earlier run, removed: this one starts afresh", flush=True)
        shutil.rmtree(folder)
    trainer = Trainer(build_config(method, [METHODS[method]], overrides), folder)
    print(f"training {method} seed {seed}: {args.minutes:g} min or {args.steps} steps", flush=True)
    result = trainer.fit()
    return {"checkpoint": str(result.checkpoint), "steps": result.step, "seconds": round(result.seconds, 1),
            "images_per_second": round(result.images_per_second, 2), "overrides": overrides,
            "precision": trainer.precision}


def iou(masks: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-image intersection over union of boolean N x H x W masks (1 where both are empty)."""
    union = (masks | truth).flatten(1).sum(1)
    return torch.where(union > 0, (masks & truth).flatten(1).sum(1) / union.clamp_min(1), torch.ones(len(masks)))


def score(outputs: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor, judge: Any) -> dict[str, float]:
    """IoU of stroke masks and L1 to the truth, and the share of outputs the domain-B judge labels correctly."""
    from unpaired.data.warped_digits import stroke_mask
    from unpaired.metrics.digits import accuracy, to_unit_range

    outputs, truth_float = to_unit_range(outputs), to_unit_range(truth)
    return {"iou": round(float(iou(stroke_mask(outputs, "b"), stroke_mask(truth, "b")).mean()), 4),
            "l1": round(float((outputs - truth_float).abs().mean()), 4),
            "class_kept": round(accuracy(judge, outputs, labels), 4)}


@torch.no_grad()
def translations(translator: Any, inputs: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """a -> b of uint8 inputs (3 channels, as the folders are read), float in [-1, 1]; a method that draws
    appearances draws them from seed 0, the same for every input."""
    from unpaired.images import to_float

    options = {"seed": 0} if "seed" in translator.method.translate_options else {}
    return torch.cat([translator.translate(to_float(inputs[i:i + batch]), "a2b", **options).float().cpu()
                      for i in range(0, len(inputs), batch)])


@torch.no_grad()
def flip_equivariance(method: Any, inputs: torch.Tensor) -> float:
    """Mean distance between E^g(flip(x)) and flip(E^g(x)) (horizontal flip: x -> -x), normalised units."""
    from unpaired.images import to_float

    x = to_float(inputs)
    points = method.landmarks("a", x)
    flipped = method.landmarks("a", x.flip(-1))
    mirrored = points * torch.tensor([-1.0, 1.0])
    # a landmark may come back under another index after a flip: match each to the nearest mirrored one
    distances = torch.cdist(flipped, mirrored).amin(-1)
    return round(float(distances.mean()), 4)


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 4), "std": round(statistics.pstdev(values), 4),
            "min": min(values), "max": max(values)}


def verdict(table: dict[str, Any]) -> dict[str, Any]:
    """Whether TransGaGa's IoU is clearly above each shape-keeping method's without losing more digits than it
    (see the module docstring)."""
    ours = table["transgaga"]
    iou_above, class_kept = {}, {}
    for name, row in table.items():
        if name == "transgaga":
            continue
        iou, our_iou = row["iou"], ours["iou"]
        margin = 2 * max(our_iou["std"], iou["std"])
        iou_above[name] = bool(our_iou["min"] > iou["max"] and our_iou["mean"] - iou["mean"] > margin)
        class_kept[name] = bool(ours["class_kept"]["mean"] >= row["class_kept"]["mean"])
    checks = {name: iou_above[name] and class_kept[name] for name in iou_above}
    return {"clearly_above": checks, "iou_clearly_above": iou_above, "class_kept_at_least": class_kept,
            "all": all(checks.values()),
            "rule": "every TransGaGa seed above every seed of the other method in IoU, the mean gap above twice the "
                    "larger seed standard deviation, and TransGaGa's mean class kept at least the other's"}


def picture_rows(name: str, method: Any, inputs: torch.Tensor, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rows one run adds to the picture: its outputs, and for a method with landmarks, those of the inputs and
    of the outputs drawn over them."""
    from unpaired.images import to_float
    from unpaired.nn.landmarks import overlay_landmarks

    rows = {name: outputs}
    if hasattr(method, "landmarks"):
        x = to_float(inputs)
        with torch.no_grad():
            rows["A landmarks"] = overlay_landmarks(x, method.landmarks("a", x))
            rows["out landmarks"] = overlay_landmarks(outputs, method.translated_landmarks(x, "a2b"))
    return rows


def save_strip(rows: dict[str, torch.Tensor], path: Path) -> None:
    """Rows of equal-size images in [-1, 1], side by side and stacked without labels or gaps (``load_strip`` reads
    them back, as uint8), written atomically."""
    from PIL import Image

    from unpaired.images import to_uint8
    from unpaired.io import atomic_write

    bands = [np.concatenate(list(to_uint8(images.clamp(-1, 1))), axis=1) for images in rows.values()]
    strip = Image.fromarray(np.concatenate(bands, axis=0))
    atomic_write(path, lambda handle: strip.save(handle, format="PNG"))


def load_strip(path: Path, names: list[str]) -> dict[str, torch.Tensor]:
    from PIL import Image

    from unpaired.images import to_float

    with Image.open(path) as image:
        array = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    return {name: to_float(torch.stack(band.split(SIZE, dim=2)))
            for name, band in zip(names, array.split(SIZE, dim=1), strict=True)}


def run_settings(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """What a run's figures depend on: its record is reused only when all of these are the same."""
    return {"method": name, "config": METHODS[name], "seed": seed, "minutes": args.minutes, "max_steps": args.steps,
            "eval": args.eval, "judge_steps": args.judge_steps, "threads": args.threads,
            "overrides": fitting_overrides(name, args.overrides)}


def faces_smoke(args: argparse.Namespace, work: Path, out: Path, records: Path) -> dict[str, Any]:
    """A short TransGaGa run on the cat and face samples at 64 px, and a grid with the landmarks drawn (its record
    reused when the grid is there and the settings are the same)."""
    from PIL import Image

    from unpaired.config import build_config
    from unpaired.data import data_root, list_images
    from unpaired.images import save_grid
    from unpaired.inference import load
    from unpaired.io import atomic_json
    from unpaired.nn.landmarks import overlay_landmarks
    from unpaired.training.trainer import Trainer

    settings = {"smoke_steps": args.smoke_steps, "overrides": fitting_overrides("transgaga", args.overrides)}
    done = recorded(records / "faces_smoke.json", settings)
    if done and (out / done["grid"]).is_file():
        print("cat <-> face smoke run: reused its record", flush=True)
        return done
    if args.records_only:
        return {"skipped": "not recorded yet (--records-only trains nothing)"}
    root = data_root()
    missing = [str(root / name) for name, _ in FACES.values() if not (root / name).is_dir()]
    if missing:
        print(f"skipping the cat <-> face smoke run: {', '.join(missing)} not found", flush=True)
        return {"skipped": f"{', '.join(missing)} not found"}
    folder = work / "cat2face"
    for side, (name, classes) in FACES.items():
        for split, part in (("train", "ref"), ("test", "src")):
            (folder / f"{split}{side}").mkdir(parents=True, exist_ok=True)
            for cls in classes:
                for path in list_images(root / name / part / cls)[0]:
                    shutil.copy(path, folder / f"{split}{side}" / path.name)
    steps = args.smoke_steps
    overrides = [f"data.source={folder}", "data.image_size=64", "data.load_size=64", "data.flip=true",
                 "data.num_workers=0", "model.landmarks=30", "model.pca_dims=20", "model.geo_n_down=2",
                 f"train.max_steps={steps}", f"train.checkpoint_every={steps}", f"train.sample_every={steps}",
                 "train.batch_size=4", *QUIET, *fitting_overrides("transgaga", args.overrides)]
    result = Trainer(build_config("transgaga", ["transgaga_digits"], overrides), work / "cat2face_run").fit()
    translator = load(result.checkpoint, device="cpu")
    method = translator.method
    rows: dict[str, torch.Tensor] = {}
    for source, target in (("a", "b"), ("b", "a")):
        images = []
        for path in list_images(folder / f"test{source.upper()}")[0][:5]:
            with Image.open(path) as image:
                images.append(translator.prepare(image, f"{source}2{target}", 64))
        x = torch.cat(images)
        direction = f"{source}2{target}"
        with torch.no_grad():
            y = translator.translate(x, direction)
            rows[f"{source} + marks"] = overlay_landmarks(x, method.landmarks(source, x))
            rows[f"{direction} + marks"] = overlay_landmarks(y, method.translated_landmarks(x, direction))
    grid = save_grid({k: v.clamp(-1, 1) for k, v in rows.items()}, out / "transgaga_faces.png")
    done = {"settings": settings, "steps": result.step, "seconds": round(result.seconds, 1), "grid": grid.name,
            "run_dir": str(result.run_dir), "machine": cpu_description()}
    atomic_json(records / "faces_smoke.json", done)
    return done


def main(argv: list[str] | None = None) -> None:
    from unpaired.data import data_root
    from unpaired.data.warped_digits import load_warped_digits, restyle, write_warped_digits
    from unpaired.io import atomic_json
    from unpaired.metrics.digits import accuracy, cached_digit_judge

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    records = args.out / "transgaga_runs"
    records.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {**provenance("transgaga.py", argv), "quick": args.quick, "seeds": args.seed_list,
                              "budget": {"minutes": args.minutes, "max_steps": args.steps}}
    root = data_root()
    data = args.work / "warped_digits"
    if not (data / "warped_digits.json").is_file():
        shutil.rmtree(data, ignore_errors=True)  # a half-written folder from a stopped run
        write_warped_digits(data, root, SIZE, limit=200 if args.quick else None)
    train_b = load_warped_digits(root, "train", SIZE, limit=200 if args.quick else None)
    test = load_warped_digits(root, "test", SIZE, limit=args.eval)
    inputs = test.a.expand(-1, 3, -1, -1)  # the folders' gray A digits are read as RGB
    judge = cached_digit_judge("warped_digits_b", train_b.b, train_b.labels_b, args.judge_steps, args.work)
    record["judge"] = {"steps": args.judge_steps, "accuracy_on_true_b_test": round(accuracy(judge, test.b,
                                                                                              test.labels_b), 4)}
    record["references"] = {
        "untranslated A": score(inputs, test.b, test.labels_a, judge),
        "A shape, B appearance (a perfect shape keeper)": score(restyle(test.a), test.b, test.labels_a, judge),
        "truth": score(test.b, test.b, test.labels_a, judge),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in METHODS}
    record["faces_smoke"] = {"skipped": "not run yet"}
    for seed in args.seed_list:  # seed-major: a sitting cut short has whole seeds, each seed's runs close in time
        for name in METHODS:
            path = records / f"{name}_seed{seed}.json"
            run = recorded(path, run_settings(name, seed, args))
            if run is not None:
                print(f"{name} seed {seed}: reused {path}", flush=True)
            elif args.records_only:
                continue
            else:
                run = measure(name, seed, args, data, inputs, test, judge)
                save_strip(run.pop("picture"), path.with_suffix(".png"))
                atomic_json(path, run)
                print(name, seed, run["scores"], flush=True)
            runs[name].append(run)
            write_results(record, runs, args, test, started)
    record["faces_smoke"] = faces_smoke(args, args.work, args.out, records)
    write_results(record, runs, args, test, started)


def measure(name: str, seed: int, args: argparse.Namespace, data: Path, inputs: torch.Tensor, test: Any,
            judge: Any) -> dict[str, Any]:
    """Train one run and score it: its record, with the rows it adds to the picture under "picture"."""
    from unpaired.inference import load

    run = {"settings": run_settings(name, seed, args), "machine": cpu_description(), **train(name, seed, data, args,
                                                                                      args.work / "runs")}
    translator = load(run["checkpoint"], device="cpu")
    outputs = translations(translator, inputs)
    run["scores"] = score(outputs, test.b, test.labels_a, judge)
    if hasattr(translator.method, "landmarks"):
        run["scores"]["flip_equivariance"] = flip_equivariance(translator.method, inputs[:500])
    run["picture"] = picture_rows(name, translator.method, inputs[:GRID_DIGITS], outputs[:GRID_DIGITS])
    run["rows"] = list(run["picture"])
    return run


def write_results(record: dict[str, Any], runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace,
                  test: Any, started: float) -> None:
    """The report over the runs recorded so far, and its picture (the first seed's run of each method)."""
    from unpaired.images import save_grid, to_float

    done = {name: rows for name, rows in runs.items() if rows}
    record["runs"] = runs
    record["complete"] = all(len(rows) == len(args.seed_list) for rows in runs.values())
    record["table"] = {name: {metric: spread([r["scores"][metric] for r in rows]) for metric in rows[0]["scores"]}
                       for name, rows in done.items()}
    record["verdict"] = verdict(record["table"]) if len(done) == len(METHODS) else None
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    if done:
        pictures = {"input A": to_float(test.a[:GRID_DIGITS]), "truth B": to_float(test.b[:GRID_DIGITS])}
        extras: dict[str, torch.Tensor] = {}
        for name, rows in done.items():
            strip = load_strip(args.out / "transgaga_runs" / f"{name}_seed{rows[0]['settings']['seed']}.png",
                               rows[0]["rows"])
            pictures[name] = strip.pop(name)
            extras.update(strip)
        save_grid({**pictures, **extras}, args.out / "transgaga_digits.png")
    write_report(args.out, "transgaga", record, render(record))


def render(r: dict[str, Any]) -> str:
    lines = report_header("TransGaGa on warped digits: A -> B against the truth", r)
    budget = r["budget"]
    lines += [f"Budget per run: {budget['minutes']:g} min or {budget['max_steps']} steps, whichever ends first; "
              f"seeds {', '.join(map(str, r['seeds']))}; each method's shipped digits config at 32 px; "
              f"{sum(run['seconds'] for rows in r['runs'].values() for run in rows) / 60:.0f} min of training in "
              "the runs recorded (this invocation's own time is above).  ",
              f"Judge (trained on domain B's training digits): {r['judge']['accuracy_on_true_b_test']:.4f} on the "
              "true B test digits.", "",
              "| method | IoU to truth (mean +- sd over seeds) | L1 to truth | class kept | landmark flip error |",
              "|---|---|---|---|---|"]
    if not r["complete"]:
        lines[-2:-2] = [f"**Partial**: {sum(map(len, r['runs'].values()))} of {len(r['seeds']) * len(r['runs'])} "
                        "runs recorded so far.", ""]
    for name, row in r["table"].items():
        flip = f"{row['flip_equivariance']['mean']:.3f}" if "flip_equivariance" in row else "n/a (no landmarks)"
        lines.append(f"| {name} | {row['iou']['mean']:.3f} +- {row['iou']['std']:.3f} | {row['l1']['mean']:.3f} | "
                     f"{row['class_kept']['mean']:.3f} | {flip} |")
    for name, row in r["references"].items():
        lines.append(f"| *{name}* | {row['iou']:.3f} | {row['l1']:.3f} | {row['class_kept']:.3f} | |")
    if r["verdict"]:
        v = r["verdict"]
        yes = {True: "yes", False: "no"}
        lines += ["", f"Clearly above ({v['rule']}): " + ", ".join(
            f"{name}: {yes[ok]} (IoU {yes[v['iou_clearly_above'][name]]}, class kept "
            f"{yes[v['class_kept_at_least'][name]]})" for name, ok in v["clearly_above"].items()) + "."]
    lines += ["", "Picture: transgaga_digits.png (inputs, truth, each method's output of its first seed run, "
              "TransGaGa's landmarks).", "",
              "The runs (each a record in transgaga_runs/; the budget buys more steps on a faster machine, so compare "
              "methods within a seed):", "",
              "| method | seed | steps | train images/s | precision | machine |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {run['settings']['seed']} | {run['steps']} | {run['images_per_second']:.1f} | "
              f"{run['precision']} | {run['machine']} |" for name, rows in r["runs"].items() for run in rows]
    lines.append("")
    smoke = r["faces_smoke"]
    lines.append(f"Cat <-> face smoke run: {smoke['skipped']}" if "skipped" in smoke else
                 f"Cat <-> face smoke run: {smoke['steps']} steps in {smoke['seconds']:.0f} s, {smoke['grid']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
