"""What scoring and deployment cost on this CPU: FID/KID wall time per 1,000 images, and translation latency per
image at 256 px in eager mode, TorchScript and ONNX Runtime, at 1 and 2 threads.

1. FID/KID: the FID Inception network's features of ``--images`` random 256 px RGB images (read as uint8, resized
   to 299 as for `unpaired eval`; timed per 1,000 images), then FID and KID (100 subsets of 1,000) between two
   sets of 1,000 feature vectors: the wall time `unpaired eval fid` spends per 1,000 images of each set. The
   network's weights do not change its speed: without ``--inception-weights`` (or the file in
   $UNPAIRED_HOME/weights) random weights are used, and the report says so.
2. Latency: each method's shipped 256 px configuration (random weights: speed does not depend on them), one image
   of 256 x 256, median of ``--calls`` calls after 2 warm-up calls: ``Translator.translate`` (eager, no_grad), the
   exported TorchScript file (torch.jit, frozen) and the exported ONNX file on ONNX Runtime's CPU provider, each at
   1 and 2 threads (torch's intra-op threads; ONNX Runtime's intra_op_num_threads).
3. horse2zebra FID: each ``--run`` (a checkpoint trained on horse2zebra) translates testA, scored against testB as
   `unpaired eval translation` does (FID, KID with the subset lowered to the 120/140 test images, IS), beside
   published figures as context. Needs the real FID Inception weights: without them (or without a run) the
   report says what is missing and measures nothing.

    python bench/metrics.py [--inception-weights FILE] [--images 200] [--calls 10] [--methods cyclegan,unit,munit]
                            [--run RUN ...] [--horse2zebra DIR]

Writes bench/results/metrics.json and metrics.md. Needs unpaired[onnx] for the ONNX column.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    CONFIGS_256,
    add_quick_option,
    config_256,
    median_seconds,
    provenance,
    provenance_lines,
    resolve_output_folders,
    write_report,
)

THREADS = (1, 2)
PUBLISHED_HORSE2ZEBRA = [
    ("CycleGAN (official model)", 77.2, "Park et al., ECCV 2020 (CUT), Table 1; best FID during training"),
    ("CUT", 45.5, "Park et al., ECCV 2020 (CUT), Table 1; best FID during training"),
]
"""Published horse -> zebra FIDs (pytorch-fid, the 120 test horses against the 140 test zebras) as context only:
the papers report the best FID over training, a choice made on the test set, which this benchmark does not make."""


def inception(weights: Path | None) -> tuple[torch.nn.Module, str]:
    from unpaired.metrics.inception import FIDInception, WeightsError, load_inception

    try:
        return load_inception(weights), "FID Inception weights file"
    except WeightsError:
        if weights is not None:
            raise
        return FIDInception().eval().requires_grad_(False), "random weights (no weights file found; same speed)"


def time_fid_kid(args: argparse.Namespace) -> dict:
    from unpaired.metrics.fidelity import Settings, features_of_images, score_features

    net, source = inception(args.inception_weights)
    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.integers(0, 256, (3, 256, 256), dtype=np.uint8)) for _ in range(args.images)]
    started = time.perf_counter()
    features = features_of_images(net, images, args.batch_size, desc="inception features")
    per_image = (time.perf_counter() - started) / args.images
    n = 1000 if not args.quick else 20
    gen = torch.Generator().manual_seed(0)

    def random_set(shift: float):  # the shapes of two scored sets: 1,000 pool features and logits each
        return type(features)(torch.randn(n, features.pool.shape[1], generator=gen) + shift,
                              torch.randn(n, features.logits.shape[1], generator=gen))

    real, fake = random_set(0.0), random_set(0.1)
    settings = Settings(kid_subset_size=min(1000, n))
    started = time.perf_counter()
    score_features(real, fake, settings)
    scoring = time.perf_counter() - started
    return {"weights": source, "images_timed": args.images, "batch_size": args.batch_size,
            "features_seconds_per_1000": round(per_image * 1000, 2), "set_size": n, "scores_seconds": round(scoring, 2),
            "total_seconds_per_1000_each": round(per_image * 2000 + scoring, 2)}


def time_latency(method: str, args: argparse.Namespace, work: Path) -> dict:
    from unpaired.config import to_object, weights_dict
    from unpaired.export import ExportedTranslator, export
    from unpaired.inference import Translator
    from unpaired.methods import build_method
    from unpaired.methods.base import StylePrior, has_capability

    size = args.size
    cfg = config_256(method, size, args.quick)
    torch.manual_seed(0)
    channels = {"a": cfg.data.channels or 3, "b": cfg.data.channels or 3}
    model = build_method(method, to_object(cfg, "model"), weights_dict(cfg), channels, size)
    translator = Translator(model, cfg, torch.device("cpu"), 0, False)
    style = {"seed": 0} if has_capability(model, StylePrior) else {}
    x = torch.rand(1, channels["a"], size, size) * 2 - 1
    row: dict[str, dict[str, float | None]] = {}
    files = {fmt: export(translator, work / f"{method}.{fmt}", fmt, "a2b", **style).path
             for fmt in ("torchscript", "onnx")}
    for threads in THREADS:
        torch.set_num_threads(threads)
        scripted = ExportedTranslator(files["torchscript"])
        onnx = ExportedTranslator(files["onnx"], threads=threads)
        row[f"{threads} thread(s)"] = {
            "eager": median_seconds(lambda _: translator.translate(x, "a2b", **style), args.calls, 2),
            "torchscript": median_seconds(lambda _, m=scripted: m.translate(x), args.calls, 2),
            "onnxruntime": median_seconds(lambda _, m=onnx: m.translate(x), args.calls, 2)}
    torch.set_num_threads(args.threads)
    return {"config": CONFIGS_256[method] + (" (quick: tiny)" if args.quick else ""), "ms": {
        t: {k: round(v * 1000, 2) for k, v in cases.items()} for t, cases in row.items()}}


def horse2zebra_fid(args: argparse.Namespace) -> dict:
    """Each run's FID on horse2zebra a2b, or why nothing was measured."""
    from unpaired.inference import load
    from unpaired.metrics.fidelity import Settings
    from unpaired.metrics.inception import WeightsError, find_weights, load_inception
    from unpaired.metrics.translation import evaluate_translation

    missing = []
    if not args.run:
        missing.append("no horse2zebra run given (--run)")
    try:
        weights = find_weights(args.inception_weights)
    except WeightsError as error:
        missing.append(f"no FID Inception weights ({error})")
    if not (args.horse2zebra / "testA").is_dir():
        missing.append(f"no horse2zebra test split at {args.horse2zebra}")
    if missing:
        return {"measured": False, "missing": missing, "runs": {}}
    net = load_inception(weights)
    runs = {}
    for run in args.run:
        report = evaluate_translation(load(run, "cpu"), net, weights, args.horse2zebra, "a2b",
                                      Settings(batch_size=args.batch_size), limit=args.limit)
        runs[str(run)] = {k: report[k] for k in ("scores", "n_real", "n_fake", "settings")}
    return {"measured": True, "missing": [], "weights": str(weights), "runs": runs}


def markdown(r: dict) -> str:
    lines = ["# FID/KID cost and translation latency", ""]
    if r["quick"]:
        lines += ["> **`--quick` run: tiny budgets that only check the script end to end. These figures are NOT "
                  "measurements.**", ""]
    f = r["fid_kid"]
    lines += [*provenance_lines(r), "", "## FID / KID per 1,000 images", "",
              f"Inception features: {f['features_seconds_per_1000']} s per 1,000 images (timed on {f['images_timed']} "
              f"images of 256 px, batch {f['batch_size']}; {f['weights']}).  ",
              f"FID + KID + IS from two sets of {f['set_size']} features: {f['scores_seconds']} s.  ",
              f"`unpaired eval fid` on 1,000 real + 1,000 fake images: about {f['total_seconds_per_1000_each']} s "
              "(real features are cached after the first run).", "",
              f"## Translation latency, one {r['size']} x {r['size']} image (ms, median of {r['calls']})", "",
              "| method | threads | eager | TorchScript | ONNX Runtime |", "|---|---|---|---|---|"]
    for method, result in r["latency"].items():
        for threads, cases in result["ms"].items():
            lines.append(f"| {method} ({result['config']}) | {threads} | {cases['eager']} | {cases['torchscript']} | "
                         f"{cases['onnxruntime']} |")
    h = r.get("horse2zebra", {"measured": False, "missing": ["not part of this run"], "runs": {}})
    lines += ["", "## horse2zebra FID (horse -> zebra, the test split)", ""]
    if not h["measured"]:
        lines += ["Not measured: " + "; ".join(h["missing"]) + ".", ""]
    lines += ["| run | FID | KID x 100 | IS | test images (fake / real) |", "|---|---|---|---|---|"]
    for run, score in h["runs"].items():
        s = score["scores"]
        lines.append(f"| {run} | {s['fid']:.1f} | {100 * s['kid_mean']:.2f} +- {100 * s['kid_std']:.2f} | "
                     f"{s['is_mean']:.2f} | {score['n_fake']} / {score['n_real']} |")
    lines += [f"| published: {name} | {fid} | - | - | 120 / 140 ({source}) |" for name, fid, source in
              PUBLISHED_HORSE2ZEBRA]
    lines += ["", "Published figures are context, not a target: those papers report the best FID over training, a "
              "choice made on these test images; a run here is scored once, at its last checkpoint."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inception-weights", type=Path, default=None)
    parser.add_argument("--images", type=int, default=200, help="images whose Inception features are timed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calls", type=int, default=10, help="timed calls per latency case")
    parser.add_argument("--methods", default="cyclegan,unit,munit")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the FID/KID part")
    parser.add_argument("--run", type=Path, action="append", default=[], metavar="RUN",
                        help="a run (or checkpoint) trained on horse2zebra whose a2b FID is measured (repeatable)")
    parser.add_argument("--horse2zebra", type=Path, default=None,
                        help="the horse2zebra folder (default $UNPAIRED_DATA/horse2zebra)")
    parser.add_argument("--limit", type=int, default=None, help="--run: translate only the first N test horses")
    add_quick_option(parser, "4 images, 1 call, tiny 32 px networks, cyclegan only")
    args = parser.parse_args(argv)
    if args.horse2zebra is None:
        from unpaired.data.sources import data_root

        args.horse2zebra = data_root() / "horse2zebra"
    args.size = 256
    if args.quick:
        args.images, args.batch_size, args.calls, args.size, args.methods = 4, 4, 1, 32, "cyclegan"
    resolve_output_folders(parser, args, "metrics")
    torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in CONFIGS_256]
    if unknown:
        parser.error(f"--methods: no 256 px configuration for {', '.join(unknown)} (known: {', '.join(CONFIGS_256)})")
    record = {**provenance("metrics.py", argv), "quick": args.quick, "size": args.size, "calls": args.calls,
              "fid_kid": time_fid_kid(args)}
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as work:
        record["latency"] = {m: time_latency(m, args, Path(work)) for m in methods}
    record["horse2zebra"] = horse2zebra_fid(args)
    write_report(args.out, "metrics", record, markdown(record))


if __name__ == "__main__":
    main()
