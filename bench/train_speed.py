"""UNIT training speed and memory on CPU.

Measures, with the real trainer (``Trainer.train_step``: one forward, then the dis and gen updates):

1. digits: 32x32, the shipped ``unit_digits`` config, batch 64;
2. the official-code reference configuration: 64x64, dim 32, 2 residual blocks, 3-scale 4-layer
   discriminators, LSGAN, batch 8. The official UNIT code ran it at 3.9 images/s on this kind of machine
   (2.0 s per iteration, median of 10 after warm-up, 2 threads); the target is 1.3x that;
3. peak resident memory (RSS) at 256x256, dim 64, 4 residual blocks, batch 1 (the official code needs
   4.4 GB there); each peak-memory case runs in a fresh process.

Each speed case runs in fp32 and in bf16 autocast + channels_last. Images/s = batch size / median step
time over ``--steps`` timed steps after ``--warmup`` steps; data decoding is included (synthetic images
in a temporary folder). Writes bench/results/train_speed.json and train_speed.md.

    python bench/train_speed.py [--steps 10] [--warmup 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, median_step_seconds, provenance, provenance_lines, write_report

OFFICIAL_64PX_IMAGES_PER_SECOND = 3.9
OFFICIAL_256PX_PEAK_GB = 4.4

DIGITS = ["unit_digits"]
REFERENCE_64 = ["model.dim=32", "model.n_res=2", "model.dis_dim=64", "model.dis_layers=4", "model.dis_scales=3",
                "model.gan_type=lsgan", "data.image_size=64", "train.batch_size=8"]
STREET_256 = ["model.dim=64", "model.n_res=4", "data.image_size=256", "train.batch_size=1"]
FAST = ["train.precision=bf16", "train.channels_last=true"]


def make_folder(root: Path, size: int, count: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for side in ("trainA", "trainB"):
        (root / side).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / side / f"{i}.png")
    return root


def build_trainer(config_files: list[str], overrides: list[str], size: int, work: Path):
    from unpaired.config import build_config
    from unpaired.training.trainer import Trainer

    data = make_folder(work / f"data{size}", size)
    cfg = build_config("unit", config_files, [f"data.source={data}", "train.tensorboard=false",
                                              "train.progress=false", *overrides])
    run = Path(tempfile.mkdtemp(dir=work))
    return Trainer(cfg, run / "run")


def time_case(config_files: list[str], overrides: list[str], size: int, steps: int, warmup: int,
              work: Path) -> dict:
    trainer = build_trainer(config_files, overrides, size, work)
    batch_size = trainer.cfg.train.batch_size
    median = median_step_seconds(trainer, steps, warmup)
    return {"batch_size": batch_size, "image_size": size, "median_step_s": round(median, 4),
            "images_per_second": round(batch_size / median, 2), "overrides": overrides}


def peak_rss_case(overrides: list[str], steps: int) -> dict:
    """Run a few 256x256 steps in a fresh process and report its peak RSS (ru_maxrss)."""
    code = (
        "import sys, resource, tempfile, time; from pathlib import Path; sys.path.insert(0, 'bench');"
        "import train_speed as b; work = Path(tempfile.mkdtemp());"
        f"tr = b.build_trainer([], {overrides!r}, 256, work);"
        f"ts = [];\nfor t in range({steps}):\n    s = time.perf_counter(); tr.train_step(tr.batches[t]); "
        "ts.append(time.perf_counter() - s)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, sorted(ts)[len(ts) // 2])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    rss_kb, median = out.stdout.split()[-2:]
    return {"peak_rss_gb": round(int(rss_kb) / 1024**2, 3), "median_step_s": round(float(median), 3),
            "overrides": overrides}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {
        **provenance("train_speed.py"),
        "official_reference": {"images_per_second_64px_batch8": OFFICIAL_64PX_IMAGES_PER_SECOND,
                               "peak_gb_256px_batch1": OFFICIAL_256PX_PEAK_GB},
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, files, overrides, size in [
            ("digits32_b64_fp32", DIGITS, [], 32),
            ("digits32_b64_bf16_cl", DIGITS, FAST, 32),
            ("ref64_b8_fp32", [], REFERENCE_64, 64),
            ("ref64_b8_bf16_cl", [], REFERENCE_64 + FAST, 64),
        ]:
            case = time_case(files, overrides, size, args.steps, args.warmup, work)
            results["cases"][name] = case
            print(name, case, flush=True)
    low = ["train.low_memory=true"]
    batch8 = [*STREET_256, "train.batch_size=8"]
    for name, overrides, steps in [
        ("street256_b1_fp32", STREET_256, 4),
        ("street256_b1_fp32_lowmem", STREET_256 + low, 4),
        ("street256_b1_bf16_cl", STREET_256 + FAST, 4),
        ("street256_b1_bf16_cl_lowmem", STREET_256 + FAST + low, 4),
        ("street256_b8_bf16_cl_lowmem", batch8 + FAST + low, 2),
    ]:
        case = peak_rss_case(overrides, steps=steps)
        results["cases"][name] = case
        print(name, case, flush=True)
    cases = results["cases"]
    best64 = max(cases["ref64_b8_fp32"]["images_per_second"], cases["ref64_b8_bf16_cl"]["images_per_second"])
    results["speedup_vs_official_64px"] = round(best64 / OFFICIAL_64PX_IMAGES_PER_SECOND, 2)
    results["peak_fraction_of_official_256px"] = {
        name: round(case["peak_rss_gb"] / OFFICIAL_256PX_PEAK_GB, 2)
        for name, case in cases.items() if name.startswith("street256_b1")}
    write_report(RESULTS, "train_speed", results, render(results))


def render(results: dict) -> str:
    lines = [
        "# UNIT training speed and memory (CPU)", "", *provenance_lines(results), "",
        "| case | batch | size | median step (s) | images/s | peak RSS (GB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in results["cases"].items():
        batch = c.get("batch_size", 8 if "_b8_" in name else 1)
        lines.append(f"| {name} | {batch} | {c.get('image_size', 256)} | {c['median_step_s']} | "
                     f"{c.get('images_per_second', '')} | {c.get('peak_rss_gb', '')} |")
    ref = results["official_reference"]
    lines += [
        "",
        f"Official UNIT code, 64x64 dim 32 2 res 3x4 LSGAN batch 8: {ref['images_per_second_64px_batch8']} images/s "
        f"-> best here is **{results['speedup_vs_official_64px']}x** (target 1.3x).  ",
        f"Official UNIT code at 256x256 dim 64 4 res batch 1: {ref['peak_gb_256px_batch1']} GB peak (and out of "
        "memory at 20 GB with batch 8); fraction of that here (target <= 0.5x): "
        + ", ".join(f"{k} **{v}x**" for k, v in results["peak_fraction_of_official_256px"].items()) + ".",
        "",
        "bf16 = `train.precision=bf16` (autocast), cl = `train.channels_last=true`, lowmem = `train.low_memory=true`"
        " (freed activations go back to the OS every step: flat RSS, some page-fault cost). Peak RSS is the"
        " process's ru_maxrss over 4 steps (2 at batch 8), in a fresh process. Steps include data decoding.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    _ = resource  # ru_maxrss is read in the child processes
    main()
