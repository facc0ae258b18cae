"""Consistency constraints of the one-to-one family: cycle, distance and geometry. Pure functions.

- Cycle consistency (CycleGAN, Zhu et al. 2017, eq. 2; DiscoGAN, Kim et al. 2017, eq. 3-4; DualGAN, Yi
  et al. 2017, eq. 3): ``||F(G(x)) - x||``, L1 in CycleGAN/DualGAN, mean squared error in DiscoGAN's code.
- Distance preservation (DistanceGAN, Benaim & Wolf 2017, eq. 5-6): for pairs x_i, x_j of the source,

      | (||x_i - x_j||_1 - mu_A) / sigma_A  -  (||G(x_i) - G(x_j)||_1 - mu_B) / sigma_B |,

  with mu, sigma the mean and standard deviation of the pairwise distances in each domain, estimated
  before training. ``||.||_1`` is the *mean* absolute difference per pixel, as in the official code
  (sagiebenaim/DistanceGAN, ``distance``). The self-distance variant (eq. 7) compares the left and right
  halves L(x), R(x) of one image instead of two images, so it works at batch size 1.
- Geometry consistency (GcGAN, Fu et al. 2019, eq. 2): for a transform f with inverse f^-1,

      ||G(x) - f^-1(G~(f(x)))||_1 + ||G~(f(x)) - f(G(x))||_1.

``f`` is ``vflip`` (upside down) or ``rot90`` (90 degrees clockwise, the paper's Fig. 1), applied to the
last two axes, so it works on NCHW batches and on single CHW images alike.
- Semantic consistency (CyCADA, Hoffman et al., ICML 2018, eq. 4): a frozen classifier f trained on the
  labelled domain must give a translation the class it gives the input, ``CE(f(G(x)), argmax f(x))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GEOMETRIES = ("rot90", "vflip")
CYCLE_METRICS = ("l1", "mse")


def _check_geometry(kind: str) -> str:
    if kind not in GEOMETRIES:
        raise ValueError(f"unknown geometric transform '{kind}'; valid: {', '.join(GEOMETRIES)}")
    return kind


def geometric_transform(x: Tensor, kind: str) -> Tensor:
    """f(x): 'vflip' flips rows (upside down); 'rot90' rotates the image 90 degrees clockwise."""
    if _check_geometry(kind) == "vflip":
        return x.flip(-2)
    return torch.rot90(x, -1, (-2, -1))


def inverse_geometric_transform(x: Tensor, kind: str) -> Tensor:
    """f^-1(x): exact (pixels are only moved, never interpolated)."""
    if _check_geometry(kind) == "vflip":
        return x.flip(-2)
    return torch.rot90(x, 1, (-2, -1))


def _l1(a: Tensor, b: Tensor) -> Tensor:
    return (a.float() - b.float()).abs().mean()


def cycle_consistency(reconstruction: Tensor, original: Tensor, metric: str = "l1") -> Tensor:
    """||F(G(x)) - x||: mean absolute error ('l1') or mean squared error ('mse')."""
    if metric == "l1":
        return _l1(reconstruction, original)
    if metric == "mse":
        return (reconstruction.float() - original.float()).pow(2).mean()
    raise ValueError(f"unknown cycle metric '{metric}'; valid: {', '.join(CYCLE_METRICS)}")


def geometry_consistency(translated: Tensor, translated_f: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """GcGAN's two terms for y = G(x) and y~ = G~(f(x)): (||y - f^-1(y~)||_1, ||y~ - f(y)||_1).

    Both terms carry gradients into both translations, as the paper's equation says. (The official code
    detaches the target of each term, which halves the gradient at the same weight.)
    """
    return (_l1(translated, inverse_geometric_transform(translated_f, kind)),
            _l1(translated_f, geometric_transform(translated, kind)))


def semantic_consistency(classifier: nn.Module, inputs: Tensor, translations: Tensor) -> Tensor:
    """CyCADA's semantic loss: cross-entropy of ``classifier(translations)`` against the classes the same frozen
    ``classifier`` reads in ``inputs`` (pseudo-labels, so no label is needed). Gradients reach the translations
    only: the pseudo-labels are taken without a graph, and the classifier's own parameters should be frozen."""
    with torch.no_grad():
        pseudo_labels = classifier(inputs).argmax(1)
    return F.cross_entropy(classifier(translations).float(), pseudo_labels)


# -------------------- DistanceGAN


def pairwise_distances(x: Tensor) -> Tensor:
    """Mean absolute difference of every pair i < j of a batch: N x ... -> N(N-1)/2 distances (row-major)."""
    flat = x.float().flatten(1)
    i, j = torch.triu_indices(len(flat), len(flat), 1, device=flat.device)
    return (flat[i] - flat[j]).abs().mean(1)


def halves(x: Tensor) -> tuple[Tensor, Tensor]:
    """Left and right halves L(x), R(x) of each image (the paper's operators; the width must be even)."""
    width = x.shape[-1]
    if width % 2:
        raise ValueError(f"self-distance needs an even image width, got {width}")
    return x[..., : width // 2], x[..., width // 2:]


def self_distances(x: Tensor) -> Tensor:
    """Mean absolute difference between the left and right half of each image: N x ... -> N."""
    left, right = halves(x.float())
    return (left - right).abs().flatten(1).mean(1)


def distance_loss(source: Tensor, translated: Tensor, source_stats: tuple[Tensor, Tensor] | None = None,
                  target_stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Mean over pairs of |(d_src - mu_src) / sigma_src - (d_out - mu_tgt) / sigma_tgt|.

    ``source``/``translated`` are matching distances (``pairwise_distances`` or ``self_distances``) of the
    inputs and of their translations; stats None leaves that side unnormalised.
    """
    if source.numel() == 0:
        raise ValueError("no distances to compare: pairwise distances need at least two images per batch")

    def normalise(d: Tensor, stats: tuple[Tensor, Tensor] | None) -> Tensor:
        return d if stats is None else (d - stats[0]) / stats[1]

    return (normalise(source, source_stats) - normalise(translated, target_stats)).abs().mean()


@torch.no_grad()
def distance_statistics(images: Tensor, kind: str = "pairwise", scale: float = 1.0,
                        chunk: int = 64) -> tuple[float, float]:
    """Mean and (population) standard deviation of the distances within a set of images, as DistanceGAN
    estimates them before training (official code: ``get_expectation`` / ``get_std``).

    ``images``: N x ... of any dtype; distances are computed on ``images * scale`` (pass uint8 images with
    ``scale=1/127.5`` to get the distances of the [-1, 1] images without holding them as floats). 'pairwise'
    uses all N(N-1)/2 pairs, in blocks of ``chunk`` rows; 'self' the N left/right-half distances.
    """
    if kind == "self":
        values = torch.cat([self_distances(block.double()) for block in images.split(chunk)]) * scale
        return float(values.mean()), float(values.std(correction=0))
    if kind != "pairwise":
        raise ValueError(f"unknown distance kind '{kind}'; valid: pairwise, self")
    n = len(images)
    if n < 2:
        raise ValueError(f"pairwise distance statistics need at least two images, got {n}")
    flat = images.flatten(1)
    dim = flat.shape[1]
    total = torch.zeros((), dtype=torch.float64)
    squares = torch.zeros((), dtype=torch.float64)
    for start in range(0, n, chunk):
        rows = flat[start:start + chunk].float()
        for other in range(start, n, chunk):
            block = torch.cdist(rows, flat[other:other + chunk].float(), p=1).double() * (scale / dim)
            if other == start:  # the diagonal block: keep only pairs i < j
                block = block[torch.triu_indices(*block.shape, 1).unbind()]
            total += block.sum()
            squares += block.pow(2).sum()
    pairs = n * (n - 1) / 2
    mean = total / pairs
    return float(mean), float((squares / pairs - mean**2).clamp_min(0).sqrt())
