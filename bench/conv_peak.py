"""What this CPU's convolutions reach: GFLOP/s of single 3x3 convolutions at the shapes that dominate the
CycleGAN reference configuration (64 px, ngf 64, batch 8), in fp32, fp32 channels_last and bf16 channels_last.

The speed figures of the other benchmarks are only meaningful next to what the hardware does: the leaderboard
reports each training step's effective GFLOP/s, and this script says how close that is to a bare convolution
on the same machine. Forward convolutions only (``F.conv2d``, padding 1), median over ``--iterations`` calls
after 3 warm-up calls: ``common.conv_gflops``, the function bench/train_speed.py measures its peaks with.

    python bench/conv_peak.py [--threads 2] [--iterations 20]

Writes bench/results/conv_peak.json and conv_peak.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    RESIDUAL_BLOCK_SHAPE,
    add_quick_option,
    conv_gflops,
    provenance,
    provenance_lines,
    resolve_output_folders,
    write_report,
)

SHAPES = {  # name: (batch, in channels, out channels, side), as in cyclegan_256 at 64 px, batch 8
    "residual block 256ch 16x16": RESIDUAL_BLOCK_SHAPE,
    "down/up 128ch 32x32": (8, 64, 128, 32),
}
CASES = {"fp32": (torch.float32, False), "fp32_cl": (torch.float32, True), "bf16_cl": (torch.bfloat16, True)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20)
    add_quick_option(parser, "1 timed call per case to check the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations = 1
    resolve_output_folders(parser, args, "conv_peak")
    torch.set_num_threads(args.threads)
    rows = {name: {case: round(conv_gflops(*shape, dtype, cl, args.iterations), 1)
                   for case, (dtype, cl) in CASES.items()} for name, shape in SHAPES.items()}
    result = {**provenance("conv_peak.py", argv), "quick": args.quick, "iterations": args.iterations,
              "gflops": rows}
    lines = ["# 3x3 convolution throughput of this CPU", "", *provenance_lines(result), "",
             "GFLOP/s of `F.conv2d` (3x3, padding 1), median of "
             f"{args.iterations} calls after 3 warm-up calls.", "",
             "| shape (batch 8) | " + " | ".join(CASES) + " |", "|---" * (len(CASES) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(str(v) for v in row.values()) + " |" for name, row in rows.items()]
    write_report(args.out, "conv_peak", result, "\n".join(lines))


if __name__ == "__main__":
    main()
