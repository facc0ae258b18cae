"""Paired evaluation: translate one half of aligned A|B images and compare with the other half.

The protocol is the GcGAN paper's for maps aerial photo -> map (Fu et al., CVPR 2019, Table 1; the official
``evaluation/evaluate_maps.py`` of github.com/hufu6371/GcGAN), applied at any evaluation size:

- the translation is made at ``size`` x ``size`` (256 in the paper, the training size there) and compared
  with the ground-truth half resized to the same size. The paper's script resizes the 600x600 ground truth
  with OpenCV's INTER_LINEAR, i.e. bilinear *without* antialiasing: ``gt_resize="linear"`` here (the
  default). Far below 256 px that point-samples the thin lines of a map, so ``gt_resize="area"`` (box
  average, antialiased) is offered for small-scale runs and must be reported with the numbers;
- **RMSE** per image, on 0-255 RGB: ``sqrt(mean over pixels of sum over R, G, B of (y - t)^2)``, the root
  mean squared *colour-vector* distance, exactly as the paper's script computes it (it sums the squared
  differences of the three channels and divides by the pixel count only). This is sqrt(3) times the RMSE
  over individual channel values. The data set's RMSE is the mean of the per-image values;
- **pixel accuracy** at threshold delta: the share of pixels whose largest absolute R, G or B difference
  from the ground truth is below delta (``max_c |y_c - t_c| < delta``). The paper reports delta = 5; 10 and
  20 are added by default to show how close the misses are. The data set's accuracy is the mean over images
  (which equals the pooled share of pixels, as every image has the same size).

Translations are turned into 0-255 by rounding (``(x + 1) * 127.5``, clamped); one-channel outputs count as
gray RGB.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from unpaired.data import DataError
from unpaired.data.paired import PairedFolderSource
from unpaired.images import image_grid, to_uint8
from unpaired.io import atomic_write

DEFAULT_DELTAS = (5, 10, 20)
GT_RESIZE = ("linear", "area")
REPORT_FILES = ("report.json", "report.md", "per_image.csv", "examples.png")


def _rgb(images: Tensor, name: str) -> Tensor:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected N x C x H x W images with 1 or 3 channels, got {tuple(images.shape)}")
    images = images.double()
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    pred, target = _rgb(pred, "pred"), _rgb(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return pred, target


def rmse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image RMSE of 0-255 images (N x C x H x W): sqrt(mean over pixels of the squared RGB distance)."""
    pred, target = _pair(pred, target)
    return (pred - target).pow(2).sum(1).mean((1, 2)).sqrt()


def pixel_accuracy(pred: Tensor, target: Tensor, delta: float) -> Tensor:
    """Per-image share of pixels whose largest absolute RGB difference (0-255 scale) is below ``delta``."""
    if delta <= 0:
        raise ValueError(f"delta must be positive, got {delta}")
    pred, target = _pair(pred, target)
    return ((pred - target).abs().amax(1) < delta).double().mean((1, 2))


def score_images(pred: Tensor, target: Tensor, deltas: Sequence[float] = DEFAULT_DELTAS) -> dict[str, Tensor]:
    """``{'rmse': per-image RMSE, 'acc_<delta>': per-image pixel accuracy, ...}`` for 0-255 images."""
    scores = {"rmse": rmse(pred, target)}
    for delta in deltas:
        scores[accuracy_key(delta)] = pixel_accuracy(pred, target, delta)
    return scores


def parse_deltas(text: str) -> tuple[float, ...]:
    """'5,10,20' -> (5.0, 10.0, 20.0); a ValueError naming the option for anything else."""
    try:
        deltas = tuple(float(d) for d in text.split(",") if d.strip())
    except ValueError:
        deltas = ()
    if not deltas or any(not d > 0 for d in deltas):
        raise ValueError(f"--deltas {text!r}: give positive numbers separated by commas, e.g. 5,10,20")
    return deltas


def accuracy_key(delta: float) -> str:
    return f"acc_{delta:g}"


def resize_truth(image: Tensor, size: tuple[int, int], mode: str = "linear") -> Tensor:
    """uint8 C x H x W ground truth -> uint8 C x size: 'linear' (bilinear, no antialiasing: the GcGAN script's
    OpenCV INTER_LINEAR) or 'area' (box average)."""
    if mode not in GT_RESIZE:
        raise ValueError(f"gt_resize must be one of {', '.join(GT_RESIZE)}, got {mode!r}")
    if tuple(image.shape[1:]) == tuple(size):
        return image
    x = image[None].float()
    if mode == "linear":
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    else:
        x = F.interpolate(x, size=size, mode="area")
    return x[0].round().clamp(0, 255).to(torch.uint8)


@dataclass
class PairedReport:
    """The result of one paired evaluation; ``rows`` holds the per-image scores."""

    checkpoint: str
    method: str
    step: int
    direction: str
    data: str
    size: tuple[int, int]
    gt_resize: str
    deltas: tuple[float, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    examples: dict[str, Tensor] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return ["rmse", *(accuracy_key(d) for d in self.deltas)]

    def mean(self, key: str) -> float:
        return float(np.mean([row[key] for row in self.rows]))

    def std(self, key: str) -> float:
        return float(np.std([row[key] for row in self.rows]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint, "method": self.method, "step": self.step, "direction": self.direction,
            "data": self.data, "images": len(self.rows), "size": list(self.size), "gt_resize": self.gt_resize,
            "deltas": list(self.deltas),
            "mean": {k: round(self.mean(k), 6) for k in self.keys},
            "std": {k: round(self.std(k), 6) for k in self.keys},
            "definitions": {
                "rmse": "per image sqrt(mean over pixels of sum over RGB of squared 0-255 differences) "
                        "(GcGAN evaluate_maps.py), mean over images",
                "acc_D": "per image share of pixels with max over RGB of |difference| < D (0-255), mean over images",
                "gt_resize": "linear = bilinear without antialiasing (GcGAN script, OpenCV INTER_LINEAR); "
                             "area = box average",
            },
            "per_image": self.rows,
        }

    def table(self) -> str:
        """A small text table: one line per measure, mean and standard deviation over images."""
        lines = [f"{'measure':<16}{'mean':>10}{'std':>10}"]
        for key in self.keys:
            label = "RMSE (0-255)" if key == "rmse" else f"acc (delta={key[4:]})"
            lines.append(f"{label:<16}{self.mean(key):>10.4f}{self.std(key):>10.4f}")
        return "\n".join(lines)

    def markdown(self) -> str:
        h, w = self.size
        lines = [
            "# Paired evaluation", "",
            f"Checkpoint: `{self.checkpoint}` ({self.method}, step {self.step})  ",
            f"Direction: {self.direction}; data: {self.data}; {len(self.rows)} images at {w}x{h}; "
            f"ground truth resized with `{self.gt_resize}`.", "",
            "| measure | mean | std |", "|---|---|---|",
        ]
        for key in self.keys:
            label = "RMSE (0-255 RGB)" if key == "rmse" else f"pixel accuracy, delta = {key[4:]}"
            lines.append(f"| {label} | {self.mean(key):.4f} | {self.std(key):.4f} |")
        lines += ["", "RMSE: per image sqrt(mean over pixels of the squared RGB distance), as the GcGAN evaluation "
                  "script; pixel accuracy: share of pixels whose largest RGB difference is below delta. Both are "
                  "means over images. Per-image values: `per_image.csv`; examples (source, translation, ground "
                  "truth): `examples.png`."]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["file", *self.keys], lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({"file": row["file"], **{k: f"{row[k]:.6f}" for k in self.keys}})
        return buffer.getvalue()


@torch.no_grad()
def evaluate_pairs(translator: Any, folder: Path, direction: str = "a2b", size: int = 256,
                   indices: list[int] | None = None, deltas: Sequence[float] = DEFAULT_DELTAS,
                   gt_resize: str = "linear", limit: int | None = None, examples: int = 4, batch_size: int = 8,
                   data: str | None = None, checkpoint: str | Path = "", progress: bool = False) -> PairedReport:
    """Score ``translator`` (an ``unpaired.inference.Translator``) on the aligned pairs of ``folder``.

    ``direction`` a2b translates the left halves and compares with the right ones (b2a the reverse);
    ``indices`` picks files by natural-order position (None: all); ``limit`` keeps the first N of them;
    ``data`` and ``checkpoint`` are only recorded in the report.
    """
    if direction not in ("a2b", "b2a"):
        raise ValueError(f"direction must be a2b or b2a, got {direction!r}")
    if gt_resize not in GT_RESIZE:
        raise ValueError(f"gt_resize must be one of {', '.join(GT_RESIZE)}, got {gt_resize!r}")
    if not deltas or any(not d > 0 for d in deltas):
        raise ValueError(f"deltas must be positive numbers, got {list(deltas)}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    source = PairedFolderSource(folder, direction[0], 3, None, indices)
    target = PairedFolderSource(folder, direction[-1], 3, None, indices)
    count = len(source) if limit is None else min(limit, len(source))
    if count < 1:
        raise ValueError(f"{folder}: no images to evaluate (--limit {limit})")
    report = PairedReport(checkpoint=str(checkpoint), method=translator.config.method,
                          step=int(translator.step), direction=direction, data=data or str(folder), size=(0, 0),
                          gt_resize=gt_resize, deltas=tuple(deltas))
    shown: dict[str, list[Tensor]] = {"source": [], "output": [], "truth": []}
    starts = range(0, count, batch_size)
    if progress and count > batch_size:
        starts = tqdm(starts, desc=f"eval paired {direction}", unit="batch")
    for start in starts:
        stop = min(start + batch_size, count)
        inputs = torch.cat([translator.prepare(Image.fromarray(source[i].permute(1, 2, 0).numpy()), direction, size)
                            for i in range(start, stop)])
        outputs = translator.translate(inputs, direction).float().cpu()
        pred = torch.from_numpy(to_uint8(outputs)).permute(0, 3, 1, 2)  # N x 3 x H x W uint8, rounded
        report.size = tuple(pred.shape[2:])
        truth = torch.stack([resize_truth(target[i], report.size, gt_resize) for i in range(start, stop)])
        scores = score_images(pred, truth, deltas)
        for k, i in enumerate(range(start, stop)):
            report.rows.append({"file": source.file_name(i), **{key: float(v[k]) for key, v in scores.items()}})
        if len(shown["source"]) < examples:
            take = min(examples - len(shown["source"]), stop - start)
            shown["source"] += list(inputs[:take].cpu())
            shown["output"] += list(outputs[:take])
            shown["truth"] += list(truth[:take].float().div(127.5).sub(1))
    report.examples = {k: torch.stack(v) for k, v in shown.items() if v}
    return report


def check_outputs(out: Path, overwrite: bool, names: tuple[str, ...] = REPORT_FILES) -> None:
    """Refuse (DataError) to replace report files (``names``) already in ``out`` unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; --out needs a folder for the report files")
    existing = [name for name in names if (out / name).exists()]
    if existing and not overwrite:
        raise DataError(f"{out}: already holds {', '.join(existing)}; pass --overwrite to replace them "
                        "or choose another --out")


def write_report(report: PairedReport, out: Path, overwrite: bool = False) -> dict[str, Path]:
    """Write report.json, report.md, per_image.csv and examples.png into ``out`` (atomically, each)."""
    check_outputs(out, overwrite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = report.to_dict()
    for key in ("mean", "std"):
        payload[key] = {k: (None if math.isnan(v) else v) for k, v in payload[key].items()}
    png = io.BytesIO()
    if report.examples:
        image_grid(report.examples).save(png, format="PNG")
    contents = {"report.json": json.dumps(payload, indent=2) + "\n", "report.md": report.markdown(),
                "per_image.csv": report.csv(), "examples.png": png.getvalue()}
    written = {}
    for name, content in contents.items():
        if not content:
            continue
        data = content.encode() if isinstance(content, str) else content
        atomic_write(out / name, lambda handle, data=data: handle.write(data))
        written[name] = out / name
    return written
