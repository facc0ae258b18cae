"""Where a TransGaGa checkpoint of the warped-digits benchmark loses the geometry, on validation digits.

Validation: MNIST test rows 8000-8499, where settings are chosen (the benchmark reports rows 0-1999 only).
Prints: translation IoU to the true B version and class kept (the benchmark's judge); both again for decoding the
truth's own landmarks (what a perfect geometry transformer Phi^g would reach); the distance of Phi^g's landmarks to
the truth's, against a shuffled pairing and the mean B shape; and how well landmarks move with a moved image.

    PYTHONPATH=. python bench/results/probes/transgaga_geometry_correspondence/diagnose.py CHECKPOINT WORK
(WORK: the benchmark's --work folder, which holds the cached judge.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/, for the benchmark's own scoring
from transgaga import iou

from unpaired.data import data_root
from unpaired.data.warped_digits import load_warped_digits, stroke_mask
from unpaired.images import to_float
from unpaired.inference import load
from unpaired.metrics.digits import accuracy, cached_digit_judge, to_unit_range
from unpaired.nn.landmarks import move_images, move_points, random_similarity

ROWS = slice(8000, 8500)


@torch.no_grad()
def main(checkpoint: str, work: str) -> None:
    torch.manual_seed(0)
    method = load(checkpoint, device="cpu").method
    test = load_warped_digits(data_root(), "test", 32)
    x_a, truth, labels = to_float(test.a[ROWS].expand(-1, 3, -1, -1)), test.b[ROWS], test.labels_a[ROWS]
    x_b = to_float(truth)
    train = load_warped_digits(data_root(), "train", 32)
    judge = cached_digit_judge("warped_digits_b", train.b, train.labels_b, 3000, work)

    def overlap(images: torch.Tensor) -> float:
        return round(float(iou(stroke_mask(to_unit_range(images), "b"), stroke_mask(truth, "b")).mean()), 3)

    translated = method.translate(x_a, "a2b")
    print(f"translation: IoU {overlap(translated)}, class kept "
          f"{accuracy(judge, to_unit_range(translated), labels):.3f}")
    p_a, p_true = method.landmarks("a", x_a), method.landmarks("b", x_b)
    appearance = method.transform_appearance("a2b", method.encode_style("a", x_a))
    decoded = method.decode("b", p_true, appearance, x_a)
    print(f"decoding the truth's own landmarks: IoU {overlap(decoded)}, class kept "
          f"{accuracy(judge, to_unit_range(decoded), labels):.3f}")
    p_ab = method.transform_geometry("a2b", p_a)

    def distance(points: torch.Tensor) -> float:
        return round(float((points - p_true).norm(dim=-1).mean()), 3)

    print(f"landmarks: Phi^g {distance(p_ab)}, shuffled {distance(p_ab[torch.randperm(len(p_ab))])}, "
          f"mean B shape {distance(p_true.mean(0, keepdim=True))}")
    for domain, x in (("a", x_a), ("b", x_b)):
        cfg = method.cfg  # the checkpoint's own ranges (the defaults for a run without the term)
        matrix, offset = random_similarity(len(x), cfg.equivariance_degrees, cfg.equivariance_scale,
                                           cfg.equivariance_shift)
        moved = method.landmarks(domain, move_images(x, matrix, offset))
        error = (moved - move_points(method.landmarks(domain, x), matrix, offset)).norm(dim=-1).mean()
        print(f"equivariance {domain}: {float(error):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
