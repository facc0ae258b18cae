"""Training speed of UNIT, MUNIT and CycleGAN at the official code's reference configurations, on CPU.

Measures, with the real trainer (``Trainer.train_step``: one forward, then the dis and gen updates; data decoding
included, synthetic 64 px images in a temporary folder), the configurations of ../shared/reference-speeds.md
(``common.REFERENCE_CONFIGS``):

- UNIT small64: dim 32, 2 residual blocks, discriminators dim 32 (4 layers, 3 scales, LSGAN), 64x64, batch 8;
- MUNIT small64: the same sizes (MUNIT's own discriminator default, dim 64, is overridden to the reference's 32);
- CycleGAN 64: ``cyclegan_256`` at 64x64 (9 residual blocks, ngf/ndf 64, 70x70 PatchGAN), batch 8;

each in ``fp32`` (contiguous), ``fp32_cl`` (fp32 + channels_last) and, where the CPU runs bf16 natively
(``avx512_bf16`` or ``amx_bf16``), ``bf16_cl`` (bf16 autocast + channels_last). Per case: median step time over
``--steps`` timed steps after ``--warmup``, images/s = batch / median, GFLOP per image (torch's flop counter over
one training step, ``common.step_flops``), the effective GFLOP/s, and the fraction of this CPU's 3x3 convolution
peak of that precision (``common.conv_gflops`` at the residual-block shape, measured in the same run): how far
the step is from the physical limit. The ratio to the official code is taken against the figure of *this* CPU
kind's row in reference-speeds.md (picked by its /proc/cpuinfo flags); a CPU kind without a figure gets a plain
sentence, never another kind's figure. Targets (fp32, best of fp32 and fp32_cl): UNIT and MUNIT >= 1.5x the
official code, CycleGAN >= 1.2x.

Then UNIT's peak resident memory (RSS) at 256x256, dim 64, 4 residual blocks, batch 1 (the official code needs
4.4 GB there), each case in a fresh process.

Writes bench/results/train_speed.json and train_speed.md. ``--quick`` (1 timed step without warm-up, tiny
convolution-peak budgets, no 256 px memory cases) only checks the script end to end: it writes to a temporary
folder, never bench/results, and its report says that its figures are no measurement.

    python bench/train_speed.py [--steps 10] [--warmup 3] [--threads 2] [--peak-iterations 20]
    python bench/train_speed.py --quick [--out DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    FAST,
    QUIET,
    REFERENCE_CONFIGS,
    RESIDUAL_BLOCK_SHAPE,
    ROOT,
    add_quick_option,
    conv_gflops,
    cpu_flags,
    make_folder,
    median_step_seconds,
    official_figure,
    provenance,
    reference_lookup,
    report_header,
    resolve_output_folders,
    step_flops,
    write_report,
)

OFFICIAL_256PX_PEAK_GB = 4.4  # the official UNIT code's peak RSS at 256 px, batch 1 (reference-speeds.md, Zen 4)
TARGETS = {"UNIT small64 b8": 1.5, "MUNIT small64 b8": 1.5, "CycleGAN 64 b8": 1.2}
"""fp32 speed-up over the official code on the same CPU kind (best of fp32 and fp32_cl)."""
PRECISIONS = {  # name: (overrides, dtype of the convolution peak it is held against, channels_last)
    "fp32": (["train.precision=fp32", "train.channels_last=false"], torch.float32, False),
    "fp32_cl": (["train.precision=fp32", "train.channels_last=true"], torch.float32, True),
    "bf16_cl": (["train.precision=bf16", "train.channels_last=true"], torch.bfloat16, True),
}
STREET_256 = ["model.dim=64", "model.n_res=4", "data.image_size=256", "train.batch_size=1"]


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU has bf16 instructions (AVX-512 BF16 or AMX): bf16 runs are timed only there."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def build_trainer(method: str, config_files: list[str], overrides: list[str], size: int, work: Path):
    from unpaired.config import build_config
    from unpaired.training.trainer import Trainer

    data = work / f"data{size}"
    if not data.is_dir():
        make_folder(data, size)
        for side in "AB":  # a test split too, so the trainer's sample grids need no fallback
            shutil.copytree(data / f"train{side}", data / f"test{side}")
    cfg = build_config(method, config_files, [f"data.source={data}", *QUIET, *overrides])
    run = Path(tempfile.mkdtemp(dir=work))
    return Trainer(cfg, run / "run")


def conv_peaks(precisions: list[str], iterations: int, warmup: int) -> dict[str, float]:
    """GFLOP/s of one 3x3 convolution at the residual-block shape, per precision (its dtype and layout)."""
    return {name: round(conv_gflops(*RESIDUAL_BLOCK_SHAPE, PRECISIONS[name][1], PRECISIONS[name][2], iterations,
                                    warmup), 1) for name in precisions}


def time_case(case: str, precision: str, args: argparse.Namespace, work: Path, peak: float,
              official: dict, flops: float | None) -> dict:
    """One configuration in one precision: median step, images/s, FLOPs (counted once per configuration: the
    count depends on shapes only), effective GFLOP/s, share of the conv peak, ratio to the official figure."""
    method, files, overrides = REFERENCE_CONFIGS[case]
    overrides = [*overrides, *PRECISIONS[precision][0]]
    trainer = build_trainer(method, files, overrides, 64, work)
    batch = trainer.cfg.train.batch_size
    median = median_step_seconds(trainer, args.steps, args.warmup)
    if flops is None:
        flops = step_flops(trainer, args.warmup + args.steps)
    del trainer
    effective = flops / median / 1e9
    result = {"method": method, "config": files, "overrides": overrides, "precision": precision,
              "batch_size": batch, "image_size": 64, "median_step_s": round(median, 4),
              "images_per_second": round(batch / median, 3), "flops_per_step": flops,
              "gflop_per_image": round(flops / batch / 1e9, 2), "effective_gflops": round(effective, 1),
              "conv_peak_gflops": peak, "fraction_of_conv_peak": round(effective / peak, 3)}
    if official["images_per_second"] is None:
        result["vs_official"], result["no_figure"] = None, official["no_figure"]
    else:
        result["vs_official"] = round(batch / median / official["images_per_second"], 2)
    return result


def peak_rss_case(overrides: list[str], steps: int) -> dict:
    """Run a few UNIT 256x256 steps in a fresh process and report its peak RSS (ru_maxrss)."""
    code = (
        "import sys, resource, tempfile, time; from pathlib import Path; sys.path.insert(0, 'bench');"
        "import train_speed as b; work = Path(tempfile.mkdtemp());"
        f"tr = b.build_trainer('unit', [], {overrides!r}, 256, work);"
        f"ts = [];\nfor t in range({steps}):\n    s = time.perf_counter(); tr.train_step(tr.batches[t]); "
        "ts.append(time.perf_counter() - s)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, sorted(ts)[len(ts) // 2])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    rss_kb, median = out.stdout.split()[-2:]
    return {"peak_rss_gb": round(int(rss_kb) / 1024**2, 3), "median_step_s": round(float(median), 3),
            "overrides": overrides}


def memory_cases() -> dict:
    low = ["train.low_memory=true"]
    batch8 = [*STREET_256, "train.batch_size=8"]
    cases = {}
    for name, overrides, steps in [
        ("street256_b1_fp32", STREET_256, 4),
        ("street256_b1_fp32_lowmem", STREET_256 + low, 4),
        ("street256_b1_bf16_cl", STREET_256 + FAST, 4),
        ("street256_b1_bf16_cl_lowmem", STREET_256 + FAST + low, 4),
        ("street256_b8_bf16_cl_lowmem", batch8 + FAST + low, 2),
    ]:
        cases[name] = peak_rss_case(overrides, steps=steps)
        print(name, cases[name], flush=True)
    return cases


def targets(speed: dict) -> dict:
    """Per method: the best fp32 ratio (fp32 or fp32_cl) against its target, or why there is none."""
    out = {}
    for case, goal in TARGETS.items():
        fp32 = [speed[case]["precisions"][name] for name in ("fp32", "fp32_cl")]
        best = max(fp32, key=lambda c: c["images_per_second"])
        official = speed[case]["official"]
        entry = {"target": goal, "best_fp32_precision": best["precision"],
                 "best_fp32_images_per_second": best["images_per_second"]}
        if official["images_per_second"] is None:
            entry.update(value=None, met=None, no_figure=official["no_figure"])
        else:
            entry.update(value=best["vs_official"], met=best["vs_official"] >= goal)
        out[case] = entry
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-iterations", type=int, default=20,
                        help="timed calls of the convolution whose throughput is the peak")
    add_quick_option(parser, "1 timed step and no warm-up, no 256 px memory cases")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.peak_iterations = 1, 0, 1
    resolve_output_folders(parser, args, "train_speed")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    bf16 = native_bf16()
    row, why = reference_lookup()
    results: dict = {
        **provenance("train_speed.py", argv, native_bf16=bf16,
                     cpu_kind=row["name"] if row else None, cpu_flags=" ".join(sorted(cpu_flags()))),
        "quick": args.quick, "steps": args.steps, "warmup": args.warmup,
        "reference_speeds": ({"row": row["kind"], "measured": row["date"], "figures": row["figures"]} if row
                             else {"row": None, "no_figure": why}),
    }
    precisions = [p for p in PRECISIONS if p != "bf16_cl" or bf16]
    peak_warmup = 1 if args.quick else 3
    results["conv_peak"] = {"shape": dict(zip(("batch", "in_channels", "out_channels", "side"), RESIDUAL_BLOCK_SHAPE,
                                              strict=True)),
                            "iterations": args.peak_iterations, "gflops": conv_peaks(precisions, args.peak_iterations,
                                                                                   peak_warmup)}
    print("conv peak GFLOP/s", results["conv_peak"]["gflops"], flush=True)
    speed = {}
    with tempfile.TemporaryDirectory(prefix="train_speed_") as tmp:
        for case in REFERENCE_CONFIGS:
            official = official_figure(case)
            speed[case] = {"official": official, "precisions": {}}
            flops = None
            for precision in PRECISIONS:
                if precision not in precisions:
                    speed[case]["precisions"][precision] = {
                        "precision": precision,
                        "skipped": "this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16 in its flags)"}
                    continue
                c = time_case(case, precision, args, Path(tmp), results["conv_peak"]["gflops"][precision],
                              official, flops)
                flops = c["flops_per_step"]
                speed[case]["precisions"][precision] = c
                print(case, precision, {k: c[k] for k in ("images_per_second", "gflop_per_image",
                                                          "fraction_of_conv_peak", "vs_official")}, flush=True)
    results["speed"] = speed
    results["targets"] = targets(speed)
    if not args.quick:
        results["memory_256px"] = memory_cases()
        results["peak_fraction_of_official_256px"] = {
            name: round(case["peak_rss_gb"] / OFFICIAL_256PX_PEAK_GB, 2)
            for name, case in results["memory_256px"].items() if name.startswith("street256_b1")}
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    write_report(args.out, "train_speed", results, render(results))


def render(r: dict) -> str:
    lines = report_header("Training speed at the official reference configurations (CPU)", r)
    ref = r["reference_speeds"]
    if ref["row"]:
        lines += [f"CPU kind: **{r['machine']['cpu_kind']}** (reference-speeds.md row: {ref['row']}; official "
                  f"figures measured {ref['measured']}). Every ratio below is against that row.", ""]
    else:
        lines += [f"CPU kind: {ref['no_figure']}.", ""]
    peak = r["conv_peak"]
    shape = peak["shape"]
    lines += [f"Convolution peak of this CPU (`common.conv_gflops`: one 3x3 `F.conv2d`, batch {shape['batch']}, "
              f"{shape['in_channels']} -> {shape['out_channels']} channels, {shape['side']}x{shape['side']}, median of "
              f"{peak['iterations']} calls): " + ", ".join(f"{k} {v} GFLOP/s" for k, v in peak["gflops"].items())
              + ".", "",
              "## Speed", "",
              "| configuration | precision | median step (s) | images/s | GFLOP/image | effective GFLOP/s | "
              "share of conv peak | official images/s | vs official |",
              "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for case, s in r["speed"].items():
        off = s["official"]["images_per_second"]
        for name, c in s["precisions"].items():
            if "skipped" in c:
                lines.append(f"| {case} | {name} | skipped: {c['skipped']} | | | | | | |")
                continue
            ratio = f"**{c['vs_official']}x**" if c["vs_official"] is not None else "no ratio"
            lines.append(f"| {case} | {name} | {c['median_step_s']} | {c['images_per_second']} | "
                         f"{c['gflop_per_image']} | {c['effective_gflops']} | {c['fraction_of_conv_peak']:.1%} | "
                         f"{off if off is not None else 'none'} | {ratio} |")
        if off is None and s["official"]["no_figure"] not in notes:
            notes.append(s["official"]["no_figure"])
    lines += ["", *[f"No ratio: {note}.  " for note in notes], *([""] if notes else [])]
    lines += ["## Targets (fp32, best of fp32 and fp32_cl, against the official code on this CPU kind)", "",
              "| configuration | best fp32 images/s | vs official | target | |", "|---|---|---|---|---|"]
    for case, t in r["targets"].items():
        if t["value"] is None:
            lines.append(f"| {case} | {t['best_fp32_images_per_second']} ({t['best_fp32_precision']}) | no official "
                         f"figure for this CPU kind | >= {t['target']}x | no ratio |")
        else:
            lines.append(f"| {case} | {t['best_fp32_images_per_second']} ({t['best_fp32_precision']}) | "
                         f"{t['value']}x | >= {t['target']}x | {'met' if t['met'] else '**NOT met**'} |")
    if "memory_256px" in r:
        lines += ["", "## UNIT peak memory at 256x256, dim 64, 4 residual blocks", "",
                  "| case | batch | median step (s) | peak RSS (GB) |", "|---|---|---|---|"]
        for name, c in r["memory_256px"].items():
            lines.append(f"| {name} | {8 if '_b8_' in name else 1} | {c['median_step_s']} | {c['peak_rss_gb']} |")
        lines += ["", f"Official UNIT code at 256x256 dim 64 4 res batch 1: {OFFICIAL_256PX_PEAK_GB} GB peak "
                  "(measured on the AMD EPYC Zen 4 kind; out of memory at 20 GB with batch 8); fraction of that here "
                  "(target <= 0.5x): " + ", ".join(f"{k} **{v}x**" for k, v in
                                                     r["peak_fraction_of_official_256px"].items()) + ".", "",
                  "lowmem = `train.low_memory=true` (freed activations go back to the OS every step: flat RSS, some "
                  "page-fault cost). Peak RSS is the process's ru_maxrss over 4 steps (2 at batch 8), in a fresh "
                  "process."]
    lines += ["", f"Median of {r['steps']} timed `Trainer.train_step` calls after {r['warmup']} warm-up steps, data "
              "decoding included (synthetic 64 px PNGs). fp32 = `train.precision=fp32 train.channels_last=false`, "
              "fp32_cl = fp32 + `train.channels_last=true`, bf16_cl = `train.precision=bf16` (autocast) + "
              "channels_last. GFLOP/image: convolutions and matrix products of one training step (forward and "
              "backward) as `torch.utils.flop_counter` counts them, / batch; effective GFLOP/s = that work / median "
              "step time; share of conv peak = effective GFLOP/s / the convolution peak of the same precision "
              "(fp32 for fp32, fp32 channels_last for fp32_cl, bf16 channels_last for bf16_cl). Official figures: "
              "../shared/reference-speeds.md (official code, same protocol, random tensors, no data loading)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    _ = resource  # ru_maxrss is read in the child processes
    main()
