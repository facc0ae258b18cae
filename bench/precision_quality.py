"""Does bf16 autocast cost quality? UNIT on MNIST <-> USPS trained twice, fp32 and bf16 + channels_last.

Both runs use the shipped ``unit_digits`` config, the same seed and the same number of steps. Quality is
class preservation: the share of translated test digits that a judge classifier, trained on the *real*
target domain with its labels (never used by the translator), assigns to the source digit's label.
Reports judge accuracy on real test digits, class preservation both ways, final loss terms and wall time.
Writes OUT/precision_quality.json and .md, and a sample grid per precision (OUT: --out, default bench/results).

    python bench/precision_quality.py [--steps 300] [--eval 2000]
    python bench/precision_quality.py --quick    # 2 steps, 10 judge steps: checks the script end to end
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_quick_option, provenance, provenance_lines, resolve_output_folders, write_report


def main(argv: list[str] | None = None) -> None:
    from unpaired.config import build_config
    from unpaired.data import data_root, open_digits
    from unpaired.inference import load
    from unpaired.metrics.digits import accuracy, class_preservation, train_classifier
    from unpaired.training.logging import read_metrics
    from unpaired.training.trainer import Trainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval", type=int, default=2000, help="test digits per direction")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--judge-steps", type=int, default=600, help="training steps of each judge")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for both runs (repeatable)")
    add_quick_option(parser, "2 training steps, 10 judge steps, 64 test digits: checks the script end to end")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.eval, args.judge_steps = 2, min(args.eval, 64), 10
    resolve_output_folders(parser, args, "precision_quality")
    torch.set_num_threads(args.threads)

    root = data_root()
    mnist_train, usps_train = (open_digits(n, root, "train", 32) for n in ("mnist", "usps"))
    mnist_test, usps_test = (open_digits(n, root, "test", 32) for n in ("mnist", "usps"))
    started = time.perf_counter()
    judges = {"a": train_classifier(mnist_train.images, mnist_train.labels, args.judge_steps),
              "b": train_classifier(usps_train.images, usps_train.labels, args.judge_steps)}
    judge_seconds = time.perf_counter() - started
    judge_accuracy = {"mnist_test": accuracy(judges["a"], mnist_test.images, mnist_test.labels),
                      "usps_test": accuracy(judges["b"], usps_test.images, usps_test.labels)}
    print("judges", judge_accuracy, f"{judge_seconds:.0f}s", flush=True)

    runs = {}
    work = Path(tempfile.mkdtemp())
    for name, overrides in [("fp32", ["train.precision=fp32", "train.channels_last=false"]),
                            ("bf16_cl", ["train.precision=bf16", "train.channels_last=true"])]:
        cfg = build_config("unit", ["unit_digits"], ["data.source=mnist:usps", f"train.max_steps={args.steps}",
                                                     "train.progress=false", "train.tensorboard=false",
                                                     f"train.checkpoint_every={args.steps}", *overrides,
                                                     *args.overrides])
        run_dir = work / name
        result = Trainer(cfg, run_dir).fit()
        translator = load(result.checkpoint, device="cpu")
        n = args.eval
        with torch.autocast("cpu", torch.bfloat16, enabled=name != "fp32"):
            a2b = class_preservation(partial(translator.translate, direction="a2b"), mnist_test.images[:n],
                                     mnist_test.labels[:n], judges["b"])
            b2a = class_preservation(partial(translator.translate, direction="b2a"), usps_test.images[:n],
                                     usps_test.labels[:n], judges["a"])
        last = read_metrics(run_dir)[-1]
        runs[name] = {
            "overrides": overrides, "steps": result.step, "train_seconds": round(result.seconds, 1),
            "images_per_second": round(result.images_per_second, 1),
            "class_preservation_mnist_to_usps": round(a2b, 4), "class_preservation_usps_to_mnist": round(b2a, 4),
            "final_losses": {k: round(v, 4) for k, v in last.items() if k.startswith(("loss/", "total/"))},
        }
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy(result.grid, args.out / f"precision_quality_{name}.png")
        print(name, runs[name], flush=True)

    results = {
        **provenance("precision_quality.py", argv), "quick": args.quick,
        "steps": args.steps, "eval_digits_per_direction": args.eval,
        "judge_accuracy_on_real_test": {k: round(v, 4) for k, v in judge_accuracy.items()},
        "runs": runs,
    }
    write_report(args.out, "precision_quality", results, render(results))


def render(r: dict) -> str:
    judges = r["judge_accuracy_on_real_test"]
    lines = [
        "# bf16 autocast vs fp32: UNIT quality on MNIST <-> USPS", "",
        *(["> **`--quick` run: tiny budgets that only check the script end to end. These figures are NOT "
           "measurements.**", ""] if r.get("quick") else []),
        *provenance_lines(r), "",
        f"Same config (`unit_digits`, batch 64, 32x32), seed and {r['steps']} steps. Class preservation on the first "
        f"{r['eval_digits_per_direction']} test digits of each domain, one seed; judges are classifiers trained on "
        f"the real target domain (accuracy on real test digits: MNIST {judges['mnist_test']}, "
        f"USPS {judges['usps_test']}).", "",
        "| precision | steps | MNIST->USPS kept | USPS->MNIST kept | gen total | dis total |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in r["runs"].items():
        losses = run["final_losses"]
        lines.append(f"| {name} | {run['steps']} | "
                     f"{run['class_preservation_mnist_to_usps']} | {run['class_preservation_usps_to_mnist']} | "
                     f"{losses.get('total/gen', '')} | {losses.get('total/dis', '')} |")
    lines += ["", "Speed is measured by bench/train_speed.py on a quiet machine; this benchmark compares quality at a "
              "fixed number of steps (its wall times in the JSON may include other load on the machine).",
              "", "Sample grids: `precision_quality_fp32.png`, `precision_quality_bf16_cl.png`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
