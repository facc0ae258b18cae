"""Where a TransGaGa checkpoint of the warped-digits benchmark loses the geometry, on validation digits.

Validation: MNIST test rows 8000-8499, where settings are chosen (the benchmark reports rows 0-1999 only).
Prints: translation IoU to the true B version and class kept (the benchmark's judge); both again for decoding, with
the translated appearance, the truth's own landmarks (what a perfect geometry transformer Phi^g would reach), the
same through b's PCA, the input's own landmarks (Phi^g the identity), the best affine map of the input's landmarks
fitted on 400 of these pairs (a supervised bound), and Phi^g's; the distance of Phi^g's landmarks to the truth's,
against a shuffled pairing and the mean B shape, and Phi^g's cycle error; and how well landmarks move with a moved
image.

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

    def decoded(name: str, points: torch.Tensor) -> None:
        images = method.decode("b", points, appearance, x_a)
        kept = accuracy(judge, to_unit_range(images), labels)
        print(f"decoding {name}: IoU {overlap(images)}, class kept {kept:.3f}")

    decoded("the truth's own landmarks", p_true)
    decoded("the truth's landmarks through b's PCA", method.nets["gen"]["pca"]["b"].denoise(p_true))
    decoded("the input's own landmarks (Phi^g the identity)", p_a)
    inputs = torch.cat([p_a.flatten(1), torch.ones(len(p_a), 1)], 1)  # a supervised bound: the best affine map,
    fitted = inputs @ torch.linalg.lstsq(inputs[:400], p_true.flatten(1)[:400]).solution  # fitted on 400 pairs
    decoded("a least-squares affine map of the input's landmarks (fitted on 400 of these pairs)",
            fitted.view_as(p_true))
    p_ab = method.transform_geometry("a2b", p_a)
    decoded("Phi^g's landmarks", p_ab)

    def distance(points: torch.Tensor) -> float:
        return round(float((points - p_true).norm(dim=-1).mean()), 3)

    print(f"landmarks: Phi^g {distance(p_ab)}, shuffled {distance(p_ab[torch.randperm(len(p_ab))])}, "
          f"mean B shape {distance(p_true.mean(0, keepdim=True))}; Phi^g b->a after a->b back to the input's "
          f"{float((method.transform_geometry('b2a', p_ab) - p_a).norm(dim=-1).mean()):.3f}")
    cfg = method.cfg  # the checkpoint's own ranges (the defaults for a run without the term)
    for domain, x in (("a", x_a), ("b", x_b)):
        matrix, offset = random_similarity(len(x), cfg.equivariance_degrees, cfg.equivariance_scale,
                                           cfg.equivariance_shift)
        moved = method.landmarks(domain, move_images(x, matrix, offset))
        error = (moved - move_points(method.landmarks(domain, x), matrix, offset)).norm(dim=-1).mean()
        print(f"equivariance {domain}: {float(error):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
