"""The domains a single-collection method (TUNIT) discovered: who went where, what each looks like, style maps.

TUNIT (Baek et al., ICCV 2021, https://arxiv.org/abs/2006.06500) assigns every image of its one unlabelled
collection to one of K pseudo domains with the domain head of its guiding network, and gives it a style code
with the style head. ``unpaired clusters RUN`` runs the trained guiding network (EMA weights) over the
collection and writes:

- ``domains.png``: one row per pseudo domain with its most confident images (the highest p(domain | image)
  among the images assigned to it) and how many images it holds;
- ``styles_pca.png``: the style codes projected on their first two principal components, one colour per
  pseudo domain (the paper shows a t-SNE; PCA is linear and deterministic). Drawn with PIL only;
- ``clusters.json``: counts, the representatives' file names, every image's assignment, the PCA's explained
  variance and, with ``score_folders``, the agreement with the collection's sub-folder names.

``majority_accuracy`` is the paper's clustering accuracy for K larger than the number of true classes: each
pseudo domain is mapped to the true class most of its images have, and accuracy is the share of images whose
domain maps to their class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from unpaired.images import crop_and_flip, image_grid, to_float
from unpaired.methods.base import DiscoveredDomains, require

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (57, 59, 121), (173, 73, 74),
           (99, 121, 57), (140, 109, 49), (123, 65, 115), (49, 130, 189), (230, 85, 13), (49, 163, 84),
           (117, 107, 177), (99, 99, 99)]
"""Distinct colours for the pseudo domains (repeating after 20)."""


def majority_accuracy(assigned: Tensor, truth: Tensor) -> tuple[float, dict[int, int]]:
    """Share of images whose cluster's majority class is their class, and that cluster -> class mapping.

    ``assigned``: cluster of each image (N ints), ``truth``: its true class (N ints >= 0). With as many
    clusters as classes this is at most the Hungarian-matched accuracy; with more clusters, several may map
    to one class, so splitting a class costs nothing and mixing two classes in one cluster does.
    """
    if assigned.shape != truth.shape or assigned.dim() != 1 or len(assigned) == 0:
        raise ValueError(f"need two 1-D tensors of one non-zero length, got {tuple(assigned.shape)} and "
                         f"{tuple(truth.shape)}")
    mapping: dict[int, int] = {}
    correct = 0
    for cluster in assigned.unique().tolist():
        classes = truth[assigned == cluster]
        counts = torch.bincount(classes)
        mapping[int(cluster)] = int(counts.argmax())
        correct += int(counts.max())
    return correct / len(assigned), mapping


def pca_2d(codes: Tensor) -> tuple[Tensor, list[float]]:
    """N x D codes -> N x 2 coordinates on the first two principal axes, and the share of the variance each
    axis explains (signs are fixed so that each axis's largest loading is positive: reruns agree)."""
    x = codes.double() - codes.double().mean(0)
    if len(x) < 2:
        return torch.zeros(len(x), 2), [0.0, 0.0]
    _, singular, vh = torch.linalg.svd(x, full_matrices=False)
    axes = vh[:2]
    axes = axes * axes.gather(1, axes.abs().argmax(1, keepdim=True)).sign()
    points = x @ axes.t()
    if points.shape[1] < 2:  # one-dimensional codes
        points = torch.cat([points, torch.zeros(len(points), 2 - points.shape[1], dtype=points.dtype)], 1)
    variance = singular.pow(2)
    explained = (variance[:2] / variance.sum().clamp_min(1e-12)).tolist() + [0.0] * (2 - min(2, len(variance)))
    return points.float(), [round(v, 4) for v in explained]


def scatter_plot(points: Tensor, groups: Tensor, counts: list[int], explained: list[float], title: str,
                 size: int = 640) -> Image.Image:
    """A PIL scatter plot of N x 2 ``points`` coloured by group, with axes, a title and a legend."""
    margin, legend_width = 48, 150
    image = Image.new("RGB", (size + legend_width, size), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    low, high = points.min(0).values, points.max(0).values
    span = (high - low).clamp_min(1e-9)
    pad = 8  # keeps the outermost dots off the frame
    pixels = (points - low) / span * (size - 2 * margin - 2 * pad)
    xs = (margin + pad + pixels[:, 0]).tolist()
    ys = (size - margin - pad - pixels[:, 1]).tolist()  # y grows upwards on the plot
    draw.rectangle([margin, margin, size - margin, size - margin], outline=(160, 160, 160))
    order = torch.randperm(len(points), generator=torch.Generator().manual_seed(0)).tolist()  # no group on top
    for i in order:
        color = PALETTE[int(groups[i]) % len(PALETTE)]
        draw.ellipse([xs[i] - 2, ys[i] - 2, xs[i] + 2, ys[i] + 2], fill=color)
    draw.text((margin, 16), title, fill="black", font=font)
    draw.text((size // 2 - 40, size - margin + 16), f"PC 1 ({100 * explained[0]:.1f}% of variance)", fill="black",
              font=font)
    draw.text((4, margin - 16), f"PC 2 ({100 * explained[1]:.1f}%)", fill="black", font=font)
    top = margin
    for j, count in enumerate(counts):
        if count == 0:
            continue
        draw.rectangle([size + 8, top + 2, size + 18, top + 12], fill=PALETTE[j % len(PALETTE)])
        draw.text((size + 24, top), f"domain {j}: {count}", fill="black", font=font)
        top += 18
    return image


def _batches(source: Any, image_size: int, batch_size: int, count: int) -> Iterator[Tensor]:
    for start in range(0, count, batch_size):
        stop = min(count, start + batch_size)
        yield to_float(torch.stack([crop_and_flip(source[i], image_size, None, False) for i in range(start, stop)]))


@torch.no_grad()
def assign(translator: Any, source: Any, batch_size: int = 128, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """Soft assignments (N x K) and style codes (N x D) of the first ``limit`` images of ``source`` (all by
    default), centre-cropped to the training size, by the translator's guiding network."""
    method = require(translator.method, DiscoveredDomains, "a cluster report")
    count = len(source) if limit is None else min(limit, len(source))
    probabilities, styles = [], []
    for x in _batches(source, translator.image_size, batch_size, count):
        p, s = method.domain_probabilities_and_styles(x.to(translator.device))
        probabilities.append(p.float().cpu())
        styles.append(s.float().cpu())
    return torch.cat(probabilities), torch.cat(styles)


def representatives(probabilities: Tensor, per_domain: int) -> dict[int, list[int]]:
    """For each pseudo domain, the indices of up to ``per_domain`` images assigned to it, most confident first."""
    assigned = probabilities.argmax(1)
    chosen: dict[int, list[int]] = {}
    for j in range(probabilities.shape[1]):
        members = (assigned == j).nonzero().flatten()
        order = probabilities[members, j].argsort(descending=True, stable=True)
        chosen[j] = members[order[:per_domain]].tolist()
    return chosen


def domain_sheet(source: Any, image_size: int, chosen: dict[int, list[int]], counts: list[int]) -> Image.Image:
    """One labelled row per pseudo domain that holds images: its representatives (centre crops)."""
    rows = {f"domain {j} ({counts[j]})": to_float(torch.stack([crop_and_flip(source[i], image_size, None, False)
                                                              for i in picks]))
            for j, picks in chosen.items() if picks}
    return image_grid(rows, label_width=104)


def write_cluster_report(translator: Any, source: Any, out: Path, per_domain: int = 8, limit: int | None = None,
                         batch_size: int = 128, score_folders: bool = False,
                         checkpoint: str | Path = "") -> dict[str, Any]:
    """Assign the collection ``source`` (an ``ImageSource``), write domains.png, styles_pca.png and
    clusters.json into ``out``; returns the JSON content. ``score_folders``: ``source.labels`` (from sub-folder
    names, read for this score only) are compared with the assignments by ``majority_accuracy``."""
    probabilities, styles = assign(translator, source, batch_size, limit)
    k = probabilities.shape[1]
    assigned = probabilities.argmax(1)
    counts = torch.bincount(assigned, minlength=k).tolist()
    chosen = representatives(probabilities, per_domain)
    points, explained = pca_2d(styles)
    out.mkdir(parents=True, exist_ok=True)
    domain_sheet(source, translator.image_size, chosen, counts).save(out / "domains.png")
    title = f"TUNIT style codes of {len(styles)} images, first two principal components, coloured by pseudo domain"
    scatter_plot(points, assigned, counts, explained, title).save(out / "styles_pca.png")
    names = [_relative_name(source, i) for i in range(len(assigned))]
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint), "step": translator.step, "collection": str(getattr(source, "name", "")),
        "images": len(assigned), "k": k, "counts": counts,
        "representatives": {str(j): [names[i] for i in picks] for j, picks in chosen.items()},
        "pca_explained_variance": explained,
        "assignments": dict(zip(names, assigned.tolist(), strict=True)),
        "files": {"sheet": "domains.png", "embedding": "styles_pca.png"},
    }
    if score_folders:
        labels = source.labels[:len(assigned)]
        known = labels >= 0
        accuracy, mapping = majority_accuracy(assigned[known], labels[known])
        class_names = getattr(source, "class_names", None) or []
        report["folder_accuracy"] = {
            "accuracy": round(accuracy, 4), "images": int(known.sum()),
            "domain_to_folder": {str(j): class_names[c] if c < len(class_names) else c for j, c in mapping.items()},
        }
    (out / "clusters.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _relative_name(source: Any, i: int) -> str:
    paths = getattr(source, "relative_paths", None)
    return paths[i] if paths is not None else source.file_name(i)
