"""TransGaGa's prior on landmark heatmaps (Wu et al., CVPR 2019, Sec. 3.1), as two pure functions.

Without labels, nothing else keeps the K heatmaps apart and sharp, so the paper adds

    L_prior = sum_{i != j} exp(-|p_i - p_j|^2 / (2 sigma^2))  +  Var(g),

a *separation* term that pushes the landmarks p_i (the heatmaps' first moments) apart, and a *concentration* term,
each heatmap's spatial variance, that makes each one a peak. The two are separate loss terms here
(``separation``, ``concentration``), so each has its own weight and ablation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unpaired.nn.landmarks import spatial_variance


def separation(points: Tensor, sigma: float) -> Tensor:
    """``sum_{i != j} exp(-|p_i - p_j|^2 / (2 sigma^2))`` per image (``points``: ``N x K x 2``), averaged over
    the batch. Each pair counts twice (i, j and j, i) as in the paper's sum; K equal points give the largest
    value, K (K - 1)."""
    squared = (points[:, :, None, :] - points[:, None, :, :]).pow(2).sum(-1).float()  # N x K x K
    close = torch.exp(-squared / (2 * sigma**2))
    off_diagonal = 1 - torch.eye(points.shape[1], device=points.device, dtype=close.dtype)
    return (close * off_diagonal).sum((1, 2)).mean()


def concentration(heatmaps: Tensor, points: Tensor | None = None) -> Tensor:
    """Mean spatial variance of the heatmaps (``N x K x H x W``, each a distribution over space) around their
    centres ``points`` (default: their first moments); 0 when each heatmap is a single pixel."""
    return spatial_variance(heatmaps.float(), points).mean()
