"""Warped digits: an unpaired benchmark with a large, known shape change (TransGaGa's setting, issue 38).

No public data set with a large geometric gap between domains fits a CPU, so this one is built from MNIST where
the right answer is known:

- domain A: the first half of the MNIST training digits as they are (gray, padded from 28 to ``size`` px);
- domain B: the *other* half under one fixed smooth warp ``T`` (a bend, then a rotation by ``ROTATION_DEGREES``
  and a slight shrink, see :func:`warp_points`) and a new appearance (strokes thickened and coloured
  ``INK_RGB`` on a dark textured background, see :func:`restyle`). No training digit has its pair in the other
  domain;
- test digits: A is the test digit, B is *the same* digit warped and restyled, written under the same file name,
  so ``testB/NAME`` is the true translation of ``testA/NAME`` (and the reverse). ``unpaired eval translation``
  scores such same-name pairs; ``bench/transgaga.py`` scores stroke-mask IoU against them.

Everything is a pure function of the MNIST files: no random numbers, so two runs write identical images. The warp is
a bijection of the plane with a closed-form inverse (:func:`warp_points` with ``inverse=True``), so a B digit can
be unwarped back to its A version wherever the warp keeps it inside the frame.

Layout written by :func:`write_warped_digits` (what ``--data DIR`` reads): ``trainA/ trainB/ testA/ testB/`` of
PNGs, ``labels.csv`` (split, domain, file, class) and ``warped_digits.json`` (the warp, the appearance and the
MNIST rows of each folder).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from unpaired.io import atomic_json

from .digits import load_mnist
from .errors import DataError

__all__ = [
    "WarpedDigits",
    "load_warped_digits",
    "restyle",
    "stroke_mask",
    "to_domain_b",
    "warp_images",
    "warp_points",
    "write_warped_digits",
]

ROTATION_DEGREES = 40.0
"""Counter-clockwise rotation of the warp: large enough that no shape-keeping translation matches the truth."""
BEND = 0.6
"""Horizontal shift per squared height (normalised coordinates): the digit's middle moves left of its ends."""
BEND_CENTRE = 0.25
"""Height-squared at which the bend shifts nothing, so the bend leaves the digit roughly centred."""
SHRINK = 0.85
"""Scale after the rotation, so the rotated, bent digit stays inside the frame."""
INK_RGB = (255, 150, 30)
"""Stroke colour of domain B (orange)."""
PAPER_RGB = (25, 35, 95)
"""Mean background colour of domain B (dark blue), modulated by ``TEXTURE_AMPLITUDE``."""
TEXTURE_AMPLITUDE = 22.0
"""Peak change of the background (0-255 units) by its fixed diagonal texture."""
THICKEN = 3
"""Side of the square dilation that thickens domain B's strokes (1 keeps them)."""
PNG_DIGITS = 5
"""Zero-padded width of the file names (NNNNN.png: the row in the MNIST split)."""


def warp_points(points: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """``T(p)`` (or ``T^-1(p)``) of points ``... x 2`` given as (x, y) in normalised image coordinates ([-1, 1],
    y down, as ``grid_sample``). ``T = shrink o rotate o bend`` with bend(x, y) = (x + BEND (y^2 - BEND_CENTRE), y);
    each factor is a bijection of the plane with a closed-form inverse, so ``T^-1(T(p)) = p`` everywhere."""
    angle = math.radians(ROTATION_DEGREES)
    cos, sin = math.cos(angle), math.sin(angle)
    x, y = points.unbind(-1)
    if not inverse:
        x = x + BEND * (y * y - BEND_CENTRE)
        # counter-clockwise on screen (y points down): x' = cos x + sin y, y' = -sin x + cos y
        x, y = cos * x + sin * y, -sin * x + cos * y
        return torch.stack([SHRINK * x, SHRINK * y], -1)
    x, y = x / SHRINK, y / SHRINK
    x, y = cos * x - sin * y, sin * x + cos * y
    return torch.stack([x - BEND * (y * y - BEND_CENTRE), y], -1)


def _pixel_grid(size: int) -> torch.Tensor:
    """size x size x 2 pixel centres (x, y) in normalised coordinates (``align_corners=False``)."""
    ramp = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    return torch.stack([xx, yy], -1)


def warp_images(images: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """uint8 or float ``N x C x S x S`` images moved by the warp: output pixel q shows input point ``T^-1(q)``
    (``inverse``: ``T(q)``, undoing the warp). Bilinear; what comes from outside the frame is 0."""
    size = images.shape[-1]
    # the backward map of the image warp is the inverse point map
    grid = warp_points(_pixel_grid(size), inverse=not inverse).float()
    x = images.float()
    out = F.grid_sample(x, grid.expand(len(x), -1, -1, -1), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else out


def _texture(size: int) -> torch.Tensor:
    """size x size background offsets in [-1, 1]: two crossed diagonal waves, fixed (no random numbers)."""
    ramp = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    return 0.5 * torch.sin((xx + yy) * (2 * math.pi / 6)) + 0.5 * torch.sin((xx - 2 * yy) * (2 * math.pi / 11))


def restyle(ink: torch.Tensor) -> torch.Tensor:
    """Domain B's appearance: uint8 ``N x 1 x S x S`` ink (255 = stroke) -> uint8 ``N x 3 x S x S``: strokes
    thickened by a ``THICKEN`` square dilation, coloured ``INK_RGB`` over a ``PAPER_RGB`` background with a fixed
    texture."""
    alpha = ink.float() / 255
    if THICKEN > 1:
        alpha = F.max_pool2d(alpha, THICKEN, 1, THICKEN // 2)
    paper = torch.tensor(PAPER_RGB, dtype=torch.float32).view(1, 3, 1, 1)
    paper = paper + TEXTURE_AMPLITUDE * _texture(ink.shape[-1])[None, None]
    colour = torch.tensor(INK_RGB, dtype=torch.float32).view(1, 3, 1, 1)
    return (paper * (1 - alpha) + colour * alpha).round().clamp(0, 255).to(torch.uint8)


def pad_digits(images: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``N x 28 x 28`` MNIST digits -> ``N x 1 x size x size``, centred with a black border (no resampling:
    the strokes keep their width). ``size`` must be at least 28."""
    x = torch.as_tensor(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x[:, None]
    extra = size - x.shape[-1]
    if extra < 0:
        raise ValueError(f"warped digits need size >= {x.shape[-1]}, got {size}")
    return F.pad(x, (extra // 2, extra - extra // 2, extra // 2, extra - extra // 2))


def to_domain_b(digits: torch.Tensor) -> torch.Tensor:
    """Padded uint8 ``N x 1 x S x S`` digits (domain A) -> their domain-B version: warped, then restyled."""
    return restyle(warp_images(digits))


def stroke_mask(images: torch.Tensor, domain: str) -> torch.Tensor:
    """Boolean ``N x S x S`` stroke masks of domain ``domain`` images (uint8 0..255 or float in [-1, 1]).

    ``a``: pixels brighter than mid-gray (the mean over channels). ``b``: pixels nearer to ``INK_RGB`` than to
    ``PAPER_RGB`` (by their projection on the line between the two colours), so a translation is scored on its
    strokes whatever it does to the background texture."""
    x = images.float()
    if images.dtype != torch.uint8:
        x = (x.clamp(-1, 1) + 1) * 127.5
    if domain == "a":
        return x.mean(1) > 127.5
    if domain != "b":
        raise ValueError(f"domain must be 'a' or 'b', got {domain!r}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    paper = torch.tensor(PAPER_RGB, dtype=torch.float32).view(1, 3, 1, 1)
    direction = torch.tensor(INK_RGB, dtype=torch.float32).view(1, 3, 1, 1) - paper
    along = ((x - paper) * direction).sum(1) / direction.pow(2).sum()
    return along > 0.5


@dataclass
class WarpedDigits:
    """One split of the benchmark in memory: uint8 ``N x C x S x S`` images and int64 labels.

    ``a``/``b``: the two domains (training: disjoint MNIST rows; test: the same rows, so ``b[i]`` is the true
    translation of ``a[i]``); ``rows_a``/``rows_b``: the MNIST rows they come from."""

    a: torch.Tensor
    labels_a: torch.Tensor
    rows_a: torch.Tensor
    b: torch.Tensor
    labels_b: torch.Tensor
    rows_b: torch.Tensor


def load_warped_digits(root: str | Path, split: str, size: int = 32, limit: int | None = None) -> WarpedDigits:
    """The benchmark's ``split`` ("train" or "test") from the MNIST files under ``root`` (the data root).

    train: A = MNIST train rows [0, N/2), B = rows [N/2, N) warped and restyled; test: A = the test digits,
    B = the same digits warped and restyled (the truth). ``limit`` keeps the first ``limit`` rows of each
    domain."""
    images, labels = load_mnist(Path(root), split)
    n = len(images)
    if split == "train":
        rows_a, rows_b = torch.arange(0, n // 2), torch.arange(n // 2, n)
    else:
        rows_a = rows_b = torch.arange(n)
    if limit is not None:
        rows_a, rows_b = rows_a[:limit], rows_b[:limit]
    labels = torch.from_numpy(labels.astype(np.int64))
    digits = pad_digits(images, size)
    return WarpedDigits(a=digits[rows_a], labels_a=labels[rows_a], rows_a=rows_a,
                        b=to_domain_b(digits[rows_b]), labels_b=labels[rows_b], rows_b=rows_b)


@dataclass
class WarpSettings:
    """What ``warped_digits.json`` records, so a reader knows exactly which data it has."""

    size: int
    rotation_degrees: float = ROTATION_DEGREES
    bend: float = BEND
    bend_centre: float = BEND_CENTRE
    shrink: float = SHRINK
    ink_rgb: tuple[int, int, int] = INK_RGB
    paper_rgb: tuple[int, int, int] = PAPER_RGB
    texture_amplitude: float = TEXTURE_AMPLITUDE
    thicken: int = THICKEN


def write_warped_digits(out: str | Path, root: str | Path, size: int = 32, limit: int | None = None,
                        progress: bool = True) -> dict[str, int]:
    """Write the benchmark to ``out`` (trainA/ trainB/ testA/ testB/, labels.csv, warped_digits.json); returns
    the number of images per folder. ``out`` must not hold these folders already (nothing is overwritten)."""
    out = Path(out)
    taken = [name for name in ("trainA", "trainB", "testA", "testB") if (out / name).exists()]
    if taken:
        raise DataError(f"{out}: already holds {', '.join(taken)}; choose an empty --out folder")
    splits = {split: load_warped_digits(root, split, size, limit) for split in ("train", "test")}
    counts: dict[str, int] = {}
    label_rows: list[tuple[str, str, str, int]] = []
    total = sum(len(s.a) + len(s.b) for s in splits.values())
    with tqdm(total=total, desc="warped digits", unit="img", disable=not progress) as bar:
        for split, data in splits.items():
            for domain, images, labels, rows in (("A", data.a, data.labels_a, data.rows_a),
                                                 ("B", data.b, data.labels_b, data.rows_b)):
                folder = out / f"{split}{domain}"
                folder.mkdir(parents=True)
                for image, label, row in zip(images, labels.tolist(), rows.tolist(), strict=True):
                    name = f"{row:0{PNG_DIGITS}d}.png"
                    array = image.permute(1, 2, 0).numpy()
                    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(folder / name)
                    label_rows.append((split, domain, name, label))
                    bar.update()
                counts[folder.name] = len(images)
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("split", "domain", "file", "class"))
        writer.writerows(label_rows)
    info = {"settings": asdict(WarpSettings(size)), "source": "MNIST", "counts": counts,
            "rows": {"trainA": "MNIST train rows [0, N/2)", "trainB": "MNIST train rows [N/2, N), warped",
                     "testA": "MNIST test rows", "testB": "the same MNIST test rows, warped: the truth of testA"}}
    atomic_json(out / "warped_digits.json", json.loads(json.dumps(info)))
    return counts
