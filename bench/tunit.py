"""TUNIT benchmark: domains discovered in an unlabelled pool of mixed digit styles, and translation between them.

TUNIT (Baek et al., ICCV 2021, https://arxiv.org/abs/2006.06500) learns from one collection with no domain
labels. What this script does, in order (issue 6, "Benchmark"):

1. The pool: ``--per-source`` training digits from each of ``--sources`` (default MNIST, USPS and inverted
   MNIST: white background, drawn from other MNIST images than the plain ones), all resized to 32x32 gray and
   written as PNG files with random numbers as names into one folder, one sub-folder per source. The sub-folder
   names (the hidden sources) are never read by the unsupervised training: the collection is ordered by file
   name, whatever the folder (``unpaired.data.collection``); they only score the result.
2. Judges (``unpaired.metrics.digits.train_classifier``, one per source on its real training digits and
   labels) and the digit FID feature network (``ensure_feature_net`` on MNIST + USPS), cached in ``--work``.
3. TUNIT trained on the pool with the shipped ``tunit_digits`` config (K = 6 pseudo domains, more than the 2-3
   sources; ``--k`` changes it), ``train.precision=auto`` (+ channels_last with bf16), for ``--steps`` steps or
   ``--minutes`` minutes, whichever comes first. The first ``model.warmup_steps`` (2500) train E alone.
4. Clustering: every pool image assigned by the EMA guiding network; each pseudo domain mapped to the source
   most of its pool images come from (the paper's protocol for K larger than the number of classes). The
   mapping is chosen on the pool; the clustering accuracy is scored on held-out test digits (below): the share
   whose domain maps to their source. Target: >= 0.95. The pool's own figure is reported beside it. The cluster
   sheet and the PCA map of the style codes come from ``unpaired clusters`` (``unpaired.clusters``).
5. Translation, for each ordered pair of sources (s -> t), on ``--eval`` held-out test digits of s. Held out:
   the runs behind tunit_digits.yaml were scored on the first 1,000 test digits of each source
   (bench/results/probes/tunit_digits_config), so every test figure here comes from the rows from
   ``--eval-from`` (1000) on; references and the real digits of the FID come from those rows too.
   - reference-guided: input i takes the style of a random test digit of t (E_s of that reference);
   - domain-guided: every input takes the average style of t's main pseudo domain (the one holding most of t's
     pool images), as ``unpaired translate --domain J``;
   - class preservation: the share of translations that t's judge labels as the input's digit. Target:
     >= 0.9 (reference-guided, every pair);
   - landing: the share of translations that E assigns to a pseudo domain mapped to t;
   - digit FID (MNIST and USPS targets: the feature network knows no inverted digits) of the reference-guided
     translations against real test digits of t, next to the floor (two halves of t's real test digits) and the
     ceiling (the untranslated inputs), all at one set size.
6. AFHQ smoke run (``../shared/data/afhq_samples/ref``: 8-10 animal faces per class in cat/, dog/, wild/,
   names hidden from training) at 64 px with ``tunit_afhq64`` shrunk for a CPU (``--afhq-steps`` steps, half
   of them E's warm-up), then the cluster sheet, the style map and a grid of src/ faces in the styles of
   reference faces. A check of the pipeline, not a quality figure.

Writes OUT/tunit.json, OUT/tunit.md and OUT/tunit_*.png; OUT is --out (default bench/results). ``--quick`` runs
every stage with tiny budgets to check the script end to end; it writes to a fresh temporary folder.

Expected wall time of the default run: about an hour. This is an *estimate* from step times measured with one
torch thread while other work shared the two cores (bf16 + channels_last, batch 32, 32x32): 0.06 s per warm-up
step (E alone), 0.5 s per joint step, so the config's 8000 steps take ~2.5 + ~45 min at one thread; the default
``--minutes 45`` stops training earlier if two threads do not speed it up. Judges and the feature network (~5
min, cached in --work for later runs), the evaluation and the AFHQ smoke run add ~10 min.

    python bench/tunit.py [--minutes 45] [--steps N] [--per-source 3000] [--eval 1000] [--threads 2]
    python bench/tunit.py --quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    QUIET,
    add_output_options,
    autocast,
    data_split,
    met_text,
    pair_counts,
    provenance,
    report_header,
    resolve_output_folders,
    splits_lines,
    splits_record,
    write_report,
)

CLUSTER_TARGET = 0.95
KEPT_TARGET = 0.9
SOURCES = ("mnist", "usps", "mnist_inverted")
FID_SETS = ("mnist", "usps")  # the digit feature network is trained on these
SELECTION_ROWS = 1000
"""The first test digits of each source: they scored the runs that chose tunit_digits.yaml's settings."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's, 8000)")
    parser.add_argument("--minutes", type=float, default=45.0, help="training wall-time budget; 0: none")
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"comma-separated, from {', '.join(SOURCES)}")
    parser.add_argument("--per-source", type=int, default=3000, help="training digits per source in the pool")
    parser.add_argument("--k", type=int, default=None, help="pseudo domains K (default: the config's, 6)")
    parser.add_argument("--eval", type=int, default=1000, help="held-out test digits per source")
    parser.add_argument("--eval-from", type=int, default=SELECTION_ROWS,
                        help="first test row scored: the rows before it chose the config (default 1000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--judge-steps", type=int, default=600)
    parser.add_argument("--feature-steps", type=int, default=1000)
    parser.add_argument("--afhq-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="pool sampling and reference choice")
    add_output_options(parser, "tunit")
    args = parser.parse_args(argv)
    args.argv = argv
    args.sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(args.sources) - set(SOURCES))
    if unknown or len(args.sources) < 2:
        parser.error(f"--sources needs two or more of {', '.join(SOURCES)}; got {args.sources}")
    if args.quick:
        args.steps, args.minutes, args.eval, args.per_source = 6, 0.0, min(args.eval, 64), min(args.per_source, 64)
        args.eval_from = 0  # the tiny stand-in test sets of the tests have no rows past the selection rows
        args.judge_steps, args.feature_steps, args.afhq_steps = 10, 10, 4
        args.overrides = ["model.warmup_steps=3", *args.overrides]
    resolve_output_folders(parser, args, "tunit")
    return args


# -- 1. the pool -------------------------------------------------------------------------------------------------
def load_source(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 N x 1 x 32 x 32 digits and their labels; ``mnist_inverted`` is MNIST with 255 - pixel."""
    from unpaired.data import data_root, open_digits

    digits = open_digits("mnist" if name == "mnist_inverted" else name, data_root(), split, 32, 1)
    images = 255 - digits.images if name == "mnist_inverted" else digits.images
    return images, digits.labels


def pick(count: int, total: int, seed: int, skip: int = 0) -> torch.Tensor:
    """``count`` indices of a seeded permutation of ``total``, after its first ``skip``."""
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    return order[skip:skip + count]


def make_pool(folder: Path, sources: list[str], per_source: int, seed: int) -> dict[str, Any]:
    """Write the pool (see the module docstring); returns {relative path: (source index, digit label)}."""
    shutil.rmtree(folder, ignore_errors=True)
    chosen = {}
    for s, name in enumerate(sources):
        images, labels = load_source(name, "train")
        # inverted MNIST takes other MNIST images than plain MNIST: the same seed, the next block of the order
        skip = per_source if name == "mnist_inverted" and "mnist" in sources else 0
        index = pick(min(per_source, len(images) - skip), len(images), seed, skip)
        chosen[name] = (images[index], labels[index], s)
    total = sum(len(v[0]) for v in chosen.values())
    names = torch.randperm(total, generator=torch.Generator().manual_seed(seed + 1)).tolist()
    hidden, n = {}, 0
    for name, (images, labels, s) in chosen.items():
        (folder / name).mkdir(parents=True)
        for image, label in zip(images, labels.tolist(), strict=True):
            relative = f"{name}/{names[n]:06d}.png"
            Image.fromarray(image[0].numpy(), mode="L").save(folder / relative)
            hidden[relative] = (s, label)
            n += 1
    return hidden


# -- 4. clustering -----------------------------------------------------------------------------------------------
def match_domains(assigned: torch.Tensor, truth: torch.Tensor, k: int,
                  sources: list[str]) -> tuple[float, torch.Tensor, dict[str, Any]]:
    """Pseudo domains against hidden source indices: the clustering accuracy (majority mapping), the K x sources
    count table, and the maps the translation stage reads (each domain's source, each source's main domain)."""
    from unpaired.clusters import majority_accuracy

    accuracy, mapping = majority_accuracy(assigned, truth)
    table = pair_counts(assigned, truth, (k, len(sources)))
    maps = {"domain_to_source": {str(j): sources[c] for j, c in mapping.items()},
            "main_domain_of_source": {name: int(table[:, s].argmax()) for s, name in enumerate(sources)}}
    return accuracy, table, maps


def clustering(translator: Any, pool: Path, hidden: dict[str, Any], sources: list[str], out: Path,
               work: Path) -> dict[str, Any]:
    from unpaired.clusters import write_cluster_report
    from unpaired.data import CollectionSource

    collection = CollectionSource(pool, channels=1)  # no labels: the hidden sources come from `hidden`
    report = write_cluster_report(translator, collection, work / "clusters", per_domain=12)
    assigned = torch.tensor([report["assignments"][p] for p in collection.relative_paths])
    truth = torch.tensor([hidden[p][0] for p in collection.relative_paths])
    k = report["k"]
    accuracy, table, maps = match_domains(assigned, truth, k, sources)
    shutil.copy(work / "clusters" / "domains.png", out / "tunit_digits_domains.png")
    shutil.copy(work / "clusters" / "styles_pca.png", out / "tunit_digits_styles.png")
    return {"pool_accuracy": round(accuracy, 4), "pool_images": len(assigned), "k": k, **maps,
            "counts_domain_by_source": {str(j): dict(zip(sources, table[j].tolist(), strict=True))
                                        for j in range(k) if table[j].sum() > 0},
            "pca_explained_variance": report["pca_explained_variance"]}


def held_out_clustering(translator: Any, scored: dict, sources: list[str], cluster: dict, bf16: bool) -> dict:
    """The pool's domain -> source mapping applied to held-out test digits of every source: their share whose
    pseudo domain maps to their source, and the count table."""
    assigned = torch.cat([encode(translator, scored[name]["test"][0], bf16)[0] for name in sources])
    truth = torch.cat([torch.full((len(scored[name]["test"][0]),), s) for s, name in enumerate(sources)])
    source_of = {int(j): sources.index(name) for j, name in cluster["domain_to_source"].items()}
    mapped = torch.tensor([source_of.get(int(d), -1) for d in assigned])  # -1: a domain no pool image took
    table = pair_counts(assigned, truth, (cluster["k"], len(sources)))
    return {"accuracy": round(float((mapped == truth).float().mean()), 4), "images": len(assigned),
            "test_counts_domain_by_source": {str(j): dict(zip(sources, table[j].tolist(), strict=True))
                                             for j in range(cluster["k"]) if table[j].sum() > 0}}


def held_out_data(data: dict, first: int, count: int) -> dict:
    """Each source's training digits, and its test digits from row ``first`` on (``count`` of them at most)."""
    return {name: {"train": d["train"], "test": tuple(t[first:first + count] for t in d["test"])}
            for name, d in data.items()}


def evaluation_splits(args: argparse.Namespace, scored: dict) -> dict:
    chose = [data_split(name, "train", None, f"the training pool: {args.per_source} random digits")
             for name in args.sources]
    if args.eval_from:
        chose += [data_split(name, "test", (0, args.eval_from), "scored the runs that chose tunit_digits.yaml")
                  for name in args.sources]
    tested = [data_split(name, "test", (args.eval_from, args.eval_from + len(scored[name]["test"][0])))
              for name in args.sources]
    return splits_record(chose, tested, ["tunit_digits.yaml's settings (probes/tunit_digits_config)",
                                         "the pseudo domain -> source mapping (majority over the pool)"])


# -- 5. translation ----------------------------------------------------------------------------------------------
@torch.no_grad()
def translate_all(translator: Any, images: torch.Tensor, styles: torch.Tensor, bf16: bool,
                  batch: int = 250) -> torch.Tensor:
    """Input i with style code i (N x D), in [-1, 1]."""
    from unpaired.metrics.digits import to_unit_range

    method, out = translator.method, []
    for start in range(0, len(images), batch):
        x = to_unit_range(images[start:start + batch]).to(translator.device)
        code = styles[start:start + batch].to(translator.device)
        with autocast(bf16):
            out.append(method.translate_with_styles(x, "a2b", code, paired=True).float().clamp(-1, 1).cpu())
    return torch.cat(out)


@torch.no_grad()
def encode(translator: Any, images: torch.Tensor, bf16: bool, batch: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """(pseudo domain, style code) of each image by the guiding network."""
    from unpaired.metrics.digits import to_unit_range

    domains, styles = [], []
    for start in range(0, len(images), batch):
        with autocast(bf16):
            p, s = translator.method.domain_probabilities_and_styles(
                to_unit_range(images[start:start + batch]).to(translator.device))
        domains.append(p.argmax(1).cpu())
        styles.append(s.float().cpu())
    return torch.cat(domains), torch.cat(styles)


def evaluate_pair(translator: Any, source: str, target: str, data: dict, judges: dict, feature_net: Any,
                  cluster: dict, n: int, bf16: bool, seed: int) -> dict[str, Any]:
    from unpaired.metrics.digits import accuracy, digit_fid, predict

    images, labels = data[source]["test"]
    target_images, target_labels = data[target]["test"]
    images, labels = images[:n], labels[:n]
    chosen = pick(n, len(target_images), seed) if len(target_images) >= n else \
        torch.randint(len(target_images), (n,), generator=torch.Generator().manual_seed(seed))
    references, reference_labels = target_images[chosen], target_labels[chosen]
    _, reference_styles = encode(translator, references, bf16)
    by_reference = translate_all(translator, images, reference_styles, bf16)
    domain = cluster["main_domain_of_source"][target]
    average = translator.method.domain_style(domain).float().cpu().expand(n, -1)
    by_domain = translate_all(translator, images, average, bf16)
    mapped = {int(j) for j, s in cluster["domain_to_source"].items() if s == target}
    landed, _ = encode(translator, by_reference, bf16)
    read = predict(judges[target], by_reference)
    other = reference_labels != labels  # where the two digits differ, the judge tells which one was drawn
    result: dict[str, Any] = {
        "pair": f"{source}->{target}", "inputs": n, "target_main_domain": domain,
        "kept_reference_guided": round(float((read == labels).float().mean()), 4),
        "took_reference_digit": round(float((read[other] == reference_labels[other]).float().mean()), 4),
        "kept_domain_guided": round(float((predict(judges[target], by_domain) == labels).float().mean()), 4),
        "kept_untranslated": round(accuracy(judges[target], images, labels), 4),
        "landed_in_target_domains": round(float(torch.tensor([int(d) in mapped for d in landed]).float().mean()), 4),
    }
    if feature_net is not None and target in FID_SETS:
        m = min(n, len(target_images) // 2)
        real_a, real_b = target_images[:m], target_images[m:2 * m]
        result["digit_fid"] = {"set_size": m,
                               "reference_guided_vs_real": round(digit_fid(feature_net, by_reference[:m], real_b), 3),
                               "domain_guided_vs_real": round(digit_fid(feature_net, by_domain[:m], real_b), 3),
                               "real_vs_real_floor": round(digit_fid(feature_net, real_a, real_b), 3),
                               "untranslated_vs_real": round(digit_fid(feature_net, images[:m], real_b), 3)}
    return result


@torch.no_grad()
def style_digit_probe(translator: Any, data: dict, sources: list[str], n: int, bf16: bool,
                      neighbours: int = 5) -> dict[str, float]:
    """How much of the digit E's style code holds, per source: the digit label of each of the second half of the
    first ``n`` test digits read from its ``neighbours`` nearest codes (cosine) in the first half, by majority
    (0.1 by chance). High: the style carries the shape, so a reference-guided translation can draw the reference's
    digit; the labels only score, nothing is fitted to them."""
    probe = {}
    for name in sources:
        images, labels = (t[:n] for t in data[name]["test"])
        _, codes = encode(translator, images, bf16)
        codes, half = torch.nn.functional.normalize(codes, dim=1), len(codes) // 2
        nearest = (codes[half:] @ codes[:half].T).topk(neighbours, dim=1).indices
        read = labels[:half][nearest].mode(dim=1).values
        probe[name] = round(float((read == labels[half:]).float().mean()), 4)
    return probe


def translation_grid(translator: Any, data: dict, sources: list[str], cluster: dict, bf16: bool, path: Path) -> None:
    """For each source: one test digit per class, then its translation into every other source's main domain."""
    from unpaired.images import save_grid

    rows: dict[str, torch.Tensor] = {}
    for source in sources:
        images, labels = data[source]["test"]
        picks = [int((labels == c).nonzero()[0]) for c in range(10) if (labels == c).any()]
        x = images[picks]
        rows[source] = x.float() / 127.5 - 1
        for target in sources:
            if target != source:
                code = translator.method.domain_style(cluster["main_domain_of_source"][target]).float().cpu()
                rows[f"-> {target}"] = translate_all(translator, x, code.expand(len(x), -1), bf16)
    save_grid(rows, path)


# -- 6. AFHQ smoke -----------------------------------------------------------------------------------------------
def afhq_smoke(args: argparse.Namespace, work: Path, bf16: bool, out: Path) -> dict[str, Any]:
    from unpaired.clusters import write_cluster_report
    from unpaired.config import build_config
    from unpaired.data import CollectionSource, data_root, list_images
    from unpaired.images import save_grid
    from unpaired.inference import load
    from unpaired.training.logging import read_metrics
    from unpaired.training.trainer import Trainer

    folder = data_root() / "afhq_samples"
    if not (folder / "ref").is_dir():
        print(f"skipping the AFHQ smoke run: {folder / 'ref'} not found", flush=True)
        return {"skipped": f"{folder / 'ref'} not found"}
    steps = args.afhq_steps
    overrides = [f"data.source={folder / 'ref'}", f"train.max_steps={steps}", f"train.checkpoint_every={steps}",
                 f"train.sample_every={steps}", f"model.warmup_steps={steps // 2}", "train.batch_size=8",
                 # a CPU-sized TUNIT: widths 16-32 instead of the official 64
                 "model.guide_dim=16", "model.dim=16", "model.dis_dim=16", "model.mlp_dim=64",
                 f"train.precision={'bf16' if bf16 else 'fp32'}", f"train.channels_last={str(bf16).lower()}", *QUIET]
    cfg = build_config("tunit", ["tunit_afhq64"], overrides)
    result = Trainer(cfg, work / "afhq").fit()
    translator = load(result.checkpoint, device="cpu")
    collection = CollectionSource(folder / "ref", channels=3, load_size=64, label_fraction=1.0)
    report = write_cluster_report(translator, collection, work / "afhq_clusters", per_domain=10, score_folders=True)
    shutil.copy(work / "afhq_clusters" / "domains.png", out / "tunit_afhq_domains.png")
    shutil.copy(work / "afhq_clusters" / "styles_pca.png", out / "tunit_afhq_styles.png")

    def prepared(paths: list[Path]) -> torch.Tensor:
        images = []
        for path in paths:
            with Image.open(path) as image:
                images.append(translator.prepare(image.convert("RGB"), "a2b", 64))
        return torch.cat(images)

    sources = prepared([list_images(folder / "src" / c)[0][0] for c in ("cat", "dog", "wild")])
    references = prepared([list_images(folder / "ref" / c)[0][k] for c in ("cat", "dog", "wild") for k in (0, 1)])
    with torch.no_grad():
        out_images = translator.translate(sources, reference=references).unflatten(0, (len(sources), -1))
    # first column: the input (a white cell above it); the other columns: one reference style each
    rows = {"references": torch.cat([torch.ones_like(sources[:1]), references]),
            **{f"src {i}": torch.cat([sources[i:i + 1], out_images[i]]) for i in range(len(sources))}}
    save_grid({k: v.clamp(-1, 1) for k, v in rows.items()}, out / "tunit_afhq_translations.png")
    last = read_metrics(result.run_dir)[-1]
    totals = {k: round(v, 4) for k, v in last.items() if k.startswith("total/")}
    return {"steps": result.step, "warmup_steps": steps // 2, "image_size": 64, "batch_size": cfg.train.batch_size,
            "train_seconds": round(result.seconds, 1), "final_totals": totals,
            "finite": all(math.isfinite(v) for v in totals.values()), "images": report["images"],
            "counts": report["counts"], "folder_accuracy": report["folder_accuracy"],
            "run_dir": str(result.run_dir)}


# -- main --------------------------------------------------------------------------------------------------------
def header(args: argparse.Namespace, bf16: bool) -> dict[str, Any]:
    """The exact command, the date and the machine, for the report."""
    return {**provenance("tunit.py", args.argv, native_bf16=bf16), "quick": args.quick, "sources": args.sources}


def main(argv: list[str] | None = None) -> None:
    from unpaired.config import build_config
    from unpaired.data import data_root
    from unpaired.devices import resolve_precision
    from unpaired.inference import load
    from unpaired.methods.tunit import TUNIT
    from unpaired.metrics.digits import accuracy, cached_digit_judge, ensure_feature_net
    from unpaired.training.logging import read_metrics
    from unpaired.training.trainer import Trainer

    args = parse_args(argv)
    started_all = time.perf_counter()
    torch.set_num_threads(args.threads)
    bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    for folder in (args.out, args.work):
        folder.mkdir(parents=True, exist_ok=True)
    # this run's own folder under --work (pool, runs, cluster reports); judges and features stay cached in --work
    work = Path(tempfile.mkdtemp(prefix=dt.datetime.now().strftime("%Y%m%d-%H%M%S-"), dir=args.work))
    results = header(args, bf16)

    # 1. the pool
    pool = work / "pool"
    hidden = make_pool(pool, args.sources, args.per_source, args.seed)
    results["pool"] = {"folder": str(pool), "images": len(hidden), "per_source": args.per_source}
    print("pool", results["pool"], flush=True)

    # 2. judges and the feature network
    started = time.perf_counter()
    data = {name: {split: load_source(name, split) for split in ("train", "test")} for name in args.sources}
    judges = {name: cached_digit_judge(name, *data[name]["train"], args.judge_steps, args.work)
              for name in args.sources}
    fid_sets = tuple(s for s in FID_SETS if s in args.sources)
    feature_net = (ensure_feature_net(args.work / f"features_{args.feature_steps}", data_root(), FID_SETS, 32, 1,
                                      steps=args.feature_steps) if fid_sets else None)
    results["judges"] = {"steps": args.judge_steps, "accuracy_on_real_test": {
        name: round(accuracy(judges[name], *data[name]["test"]), 4) for name in args.sources}}
    results["feature_net"] = None if feature_net is None else {
        k: feature_net.info.get(k) for k in ("sets", "image_size", "channels", "steps", "test_accuracy")}
    results["judges_seconds"] = round(time.perf_counter() - started, 1)
    print("judges", results["judges"], flush=True)

    # 3. train TUNIT on the pool
    overrides = [f"data.source={pool}", "train.precision=auto", f"train.channels_last={str(bf16).lower()}", *QUIET,
                 *([f"train.max_steps={args.steps}"] if args.steps else []),
                 *([f"train.max_minutes={args.minutes}"] if args.minutes else []),
                 *([f"model.k={args.k}"] if args.k else []), *args.overrides]
    cfg = build_config(None, ["tunit_digits"], overrides)  # method tunit_peer, its preset
    print(f"training TUNIT on {len(hidden)} pooled digits: up to {cfg.train.max_steps} steps"
          + (f" or {args.minutes} minutes" if args.minutes else "")
          + f", E alone for the first {cfg.model.warmup_steps}", flush=True)
    result = Trainer(cfg, work / "digits").fit()
    last = read_metrics(result.run_dir)[-1]
    results["training"] = {
        "config": "tunit_digits", "overrides": overrides, "k": cfg.model.k, "warmup_steps": cfg.model.warmup_steps,
        "mode": cfg.model.mode, "labels_read": TUNIT.label_fraction(cfg.model),
        "precision": "bf16" if bf16 else "fp32", "channels_last": bf16, "batch_size": cfg.train.batch_size,
        "steps": result.step, "max_steps": cfg.train.max_steps, "max_minutes": args.minutes or None,
        "stopped_by": result.stopped_by, "seconds": round(result.seconds, 1),
        "images_per_second": round(result.images_per_second, 2),
        "joint_steps": max(0, result.step - cfg.model.warmup_steps),
        "final_losses": {k: round(v, 4) for k, v in last.items() if k.startswith(("loss/", "total/"))},
        "grid": str(result.grid), "run_dir": str(result.run_dir),
    }
    print("training", {k: results["training"][k] for k in ("steps", "joint_steps", "seconds")}, flush=True)
    if result.grid:
        shutil.copy(result.grid, args.out / "tunit_digits_samples.png")

    # 4. clustering, 5. translation
    translator = load(result.checkpoint, device="cpu")
    translator.method.to(memory_format=torch.channels_last if bf16 else torch.contiguous_format)
    started = time.perf_counter()
    results["clustering"] = clustering(translator, pool, hidden, args.sources, args.out, work)
    scored = held_out_data(data, args.eval_from, args.eval)
    results["splits"] = evaluation_splits(args, scored)
    results["clustering"].update(held_out_clustering(translator, scored, args.sources, results["clustering"], bf16))
    print("clustering", results["clustering"], flush=True)
    pairs = []
    for source in args.sources:
        for target in args.sources:
            if source != target:
                n = len(scored[source]["test"][0])
                pairs.append(evaluate_pair(translator, source, target, scored, judges, feature_net,
                                           results["clustering"], n, bf16, args.seed))
                print("translation", pairs[-1], flush=True)
    results["translation"] = pairs
    results["style_digit_probe"] = style_digit_probe(translator, scored, args.sources, args.eval, bf16)
    print("style digit probe", results["style_digit_probe"], flush=True)
    translation_grid(translator, scored, args.sources, results["clustering"], bf16,
                     args.out / "tunit_digits_translations.png")
    results["evaluation_seconds"] = round(time.perf_counter() - started, 1)

    # 6. AFHQ
    results["afhq_smoke"] = afhq_smoke(args, work, bf16, args.out)
    print("afhq", results["afhq_smoke"], flush=True)

    results.update(targets=targets(results), total_seconds=round(time.perf_counter() - started_all, 1),
                   run_folder=str(work))
    write_report(args.out, "tunit", results, render(results))
    print(f"wrote {args.out / 'tunit.json'} and {args.out / 'tunit.md'}", flush=True)


def targets(r: dict) -> dict:
    clustered = r["clustering"]["accuracy"]
    kept = min(p["kept_reference_guided"] for p in r["translation"])
    return {"clustering_accuracy": {"value": clustered, "target": CLUSTER_TARGET, "met": clustered >= CLUSTER_TARGET},
            "class_preserved_reference_guided_min_over_pairs": {"value": kept, "target": KEPT_TARGET,
                                                                  "met": kept >= KEPT_TARGET}}


def render(r: dict) -> str:
    t, tr, c = r["targets"], r["training"], r["clustering"]
    mode = tr.get("mode", "unsupervised")  # records written before the mode was recorded were unsupervised
    if mode == "unsupervised":
        labels_read = "the names are never read by the training, which orders the collection by file name"
    elif mode == "semi":
        labels_read = (f"model.mode=semi: the training reads the names of the first {tr['labels_read']:.0%} of each "
                       "sub-folder as labels")
    else:
        labels_read = ("model.mode=supervised: the training reads every name as the image's label: the comparison "
                       "with every domain known")
    title = "unlabelled" if mode == "unsupervised" else f"{mode}-labelled"
    lines = report_header(f"TUNIT on a mixed, {title} pool of digits (CPU)", r)
    if "splits" in r:
        lines += splits_lines(r["splits"])
    lines += [
        "## Targets", "", "| target | measured | goal | |", "|---|---|---|---|",
        f"| clustering accuracy (pseudo domain -> majority source) | {t['clustering_accuracy']['value']} | "
        f">= {CLUSTER_TARGET} | {met_text(t['clustering_accuracy']['met'])} |",
        f"| class preserved, reference-guided, min over source pairs | "
        f"{t['class_preserved_reference_guided_min_over_pairs']['value']} | >= {KEPT_TARGET} | "
        f"{met_text(t['class_preserved_reference_guided_min_over_pairs']['met'])} |", "",
        *([] if mode == "unsupervised" else [
            f"> The targets are set for the unsupervised mode; this run reads labels (model.mode={mode}), so its "
            "figures are a comparison for the unsupervised runs, not a claim on the targets.", ""]),
        "## Pool and training", "",
        f"{r['pool']['images']} training digits, {r['pool']['per_source']} from each of {', '.join(r['sources'])}, "
        f"32x32 gray, in one folder (one sub-folder per source; {labels_read}).  ",
        f"Config `tunit_digits` + `{' '.join(tr['overrides'][1:])}`: K = {tr['k']}, batch {tr['batch_size']}, "
        f"{tr['precision']}{' + channels_last' if tr['channels_last'] else ''}; {tr['steps']} steps (stopped by "
        f"{tr['stopped_by']}; E alone for the first {tr['warmup_steps']}, so {tr['joint_steps']} joint steps) in "
        f"{tr['seconds'] / 60:.1f} min ({tr['images_per_second']} images/s overall).  ",
        "Judges (one per source, its real training digits) on real test digits: "
        + ", ".join(f"{k} {v}" for k, v in r["judges"]["accuracy_on_real_test"].items()) + ".", "",
        "## Discovered domains", "",
        *([f"Clustering accuracy {c['accuracy']} over {c['images']} held-out test digits (EMA guiding network; "
           f"each pseudo domain mapped to its majority source in the pool, where the same figure is "
           f"{c['pool_accuracy']} over {c['pool_images']} images). Test digits per pseudo domain and source: "
           + "; ".join(f"{j}: " + ", ".join(f"{s} {n}" for s, n in counts.items())
                       for j, counts in c["test_counts_domain_by_source"].items()) + ". Pool images per pseudo "
           "domain and hidden source:"] if "pool_accuracy" in c else
          [f"Clustering accuracy {c['accuracy']} over {c['images']} pool images (EMA guiding network). Images per "
           "pseudo domain and hidden source:"]), "",
        "| pseudo domain | " + " | ".join(r["sources"]) + " | mapped to |", "|---|" + "---|" * (len(r["sources"]) + 1),
    ]
    for j, counts in c["counts_domain_by_source"].items():
        lines.append(f"| {j} | " + " | ".join(str(counts[s]) for s in r["sources"])
                     + f" | {c['domain_to_source'][j]} |")
    lines += [
        "", "Sheet of each domain's most confident images: `tunit_digits_domains.png`; style codes on their first "
        f"two principal components ({', '.join(f'{100 * v:.1f}%' for v in c['pca_explained_variance'])} of the "
        "variance), coloured by pseudo domain: `tunit_digits_styles.png`.", "",
        "## Translation", "",
        f"{r['translation'][0]['inputs']} held-out test digits of each source. Reference-guided: each input takes the "
        "style of a random test digit of the target source; domain-guided: the average style of the target's main "
        "pseudo domain (`unpaired translate --domain J`). Kept: the target judge reads the input's digit. Landed: "
        "E assigns the translation to a pseudo domain mapped to the target. Took ref.: where the reference shows "
        "another digit than the input, the share of reference-guided translations the judge reads as the "
        "reference's digit (~0.1 by chance; high: the style code carries the digit).", "",
        "| pair | kept (reference) | took ref. | kept (domain) | kept untranslated | landed | digit FID ref. | "
        "FID domain | FID floor | FID untranslated |", "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r["translation"]:
        f = p.get("digit_fid")
        fid = (f"{f['reference_guided_vs_real']} | {f['domain_guided_vs_real']} | {f['real_vs_real_floor']} | "
               f"{f['untranslated_vs_real']}") if f else "n/a | n/a | n/a | n/a"
        lines.append(f"| {p['pair']} | {p['kept_reference_guided']} | {p.get('took_reference_digit', 'n/a')} | "
                     f"{p['kept_domain_guided']} | "
                     f"{p['kept_untranslated']} | {p['landed_in_target_domains']} | {fid} |")
    lines += [
        "", "Digit FID: Frechet distance of the digit feature network (MNIST + USPS) features, at the set size of "
        "the real half (n/a for inverted targets, which that network never saw). Grid: "
        "`tunit_digits_translations.png` (per source, one test digit per class, then into each other source's main "
        "domain); training samples: `tunit_digits_samples.png`.", "",
    ]
    if "style_digit_probe" in r:
        lines += [
            "Digit in the style code: the label of each of the second half of a source's test digits read from its "
            "5 nearest style codes (cosine) in the first half (0.1 by chance; high: the style carries the shape): "
            + ", ".join(f"{k} {v}" for k, v in r["style_digit_probe"].items()) + ".", "",
        ]
    a = r["afhq_smoke"]
    if "skipped" in a:
        lines += ["## AFHQ smoke run", "", f"Skipped: {a['skipped']}.", ""]
    else:
        lines += [
            f"## AFHQ smoke run (64 px, the {a['images']} reference faces of afhq_samples, classes hidden)", "",
            f"{a['steps']} steps ({a['warmup_steps']} of E alone), batch {a['batch_size']}, in {a['train_seconds']} s; "
            f"final totals {a['final_totals']} (finite: {a['finite']}). Images per pseudo domain: {a['counts']}; "
            f"agreement with the hidden cat/dog/wild folders: {a['folder_accuracy']['accuracy']}. Files: "
            "`tunit_afhq_domains.png`, `tunit_afhq_styles.png`, `tunit_afhq_translations.png` (each src face, then "
            "in the styles of two reference faces per class). A check of the pipeline, not a quality figure.", "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
