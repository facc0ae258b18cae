"""Perceptual terms on features of a fixed network (e.g. ``unpaired.nn.vgg.VGG16Features``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Features = Callable[[Tensor], list[Tensor]]


def instance_normalized_distance(f: Tensor, g: Tensor, eps: float = 1e-5) -> Tensor:
    """Mean squared difference of two feature maps after instance normalisation (no affine).

    Instance norm removes each channel's per-image mean and scale, which carry much of an image's
    style/domain, so what remains compares content. Feature maps need more than one spatial position.
    """
    return (F.instance_norm(f.float(), eps=eps) - F.instance_norm(g.float(), eps=eps)).pow(2).mean()


def domain_invariant_perceptual(features: Features, output: Tensor, target: Tensor) -> Tensor:
    """MUNIT's domain-invariant perceptual loss (Huang et al. 2018, Sec. 5.1 / appendix; NVlabs/MUNIT
    ``compute_vgg_loss``): ``instance_normalized_distance`` of the features of a translation and of its
    source image, averaged over the feature network's layers. One network call serves both images (they
    may be of domains with different channel counts: gray is repeated to RGB first)."""
    if output.shape[1] != target.shape[1]:
        output, target = (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x for x in (output, target))
    maps = features(torch.cat([output, target.detach()]))
    n = output.shape[0]
    return sum(instance_normalized_distance(m[:n], m[n:]) for m in maps) / len(maps)  # type: ignore[return-value]
