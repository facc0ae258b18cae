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


def _features_of_both(features: Features, output: Tensor, target: Tensor) -> tuple[list[Tensor], int]:
    """The feature maps of ``output`` and ``target`` (detached) from one call of ``features`` (gray repeated to RGB
    when the two differ in channels), and the batch size of ``output``, where each map splits into the two."""
    if output.shape[1] != target.shape[1]:
        output, target = (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x for x in (output, target))
    return features(torch.cat([output, target.detach()])), output.shape[0]


def domain_invariant_perceptual(features: Features, output: Tensor, target: Tensor) -> Tensor:
    """MUNIT's domain-invariant perceptual loss (Huang et al. 2018, Sec. 5.1 / appendix; NVlabs/MUNIT
    ``compute_vgg_loss``): ``instance_normalized_distance`` of the features of a translation and of its
    source image, averaged over the feature network's layers. One network call serves both images (they
    may be of domains with different channel counts: gray is repeated to RGB first)."""
    maps, n = _features_of_both(features, output, target)
    return sum(instance_normalized_distance(m[:n], m[n:]) for m in maps) / len(maps)  # type: ignore[return-value]


def gram_matrix(features: Tensor) -> Tensor:
    """``N x C x C`` Gram matrices of ``N x C x H x W`` feature maps, divided by C H W (Gatys et al. 2016): the
    channels' co-activations, which describe texture and colour and ignore where things are."""
    n, c, h, w = features.shape
    flat = features.float().reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def gram_distance(features: Features, output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference of the Gram matrices of ``output`` and ``target`` over the feature network's
    layers (TransGaGa's appearance consistency, Wu et al. 2019, eq. for L_con^a: |zeta(x) - zeta(x_hat)|).
    One network call serves both images; gray is repeated to RGB when the two differ in channels."""
    maps, n = _features_of_both(features, output, target)
    return sum((gram_matrix(m[:n]) - gram_matrix(m[n:])).abs().mean() for m in maps) / len(maps)  # type: ignore[return-value]
