"""Diversity and faithfulness of multimodal translation (several outputs per input, e.g. MUNIT).

- ``mean_pairwise_distance``: how different the K outputs of one input are, averaged over all pairs of
  outputs and over inputs (the diversity measure of MUNIT Sec. 5.2 and BicycleGAN, there with LPIPS).
  With a feature network (e.g. ``unpaired.nn.vgg.load_vgg16_features(path, LPIPS_LAYERS)``) the distance is
  LPIPS-like: LPIPS's formula with every channel weight 1 (the "baseline" form in Zhang et al. 2018, not
  its learned calibration, so values are comparable with each other, not with published LPIPS numbers).
  Without one it falls back to the mean absolute pixel difference, in [-1, 1] units (range 0..2).
  A collapsed model (every style gives the same image) scores 0.
- ``style_reconstruction_error``: |E_s(G(c, s)) - s| for codes s drawn from the prior: does the style a
  translation was asked for survive into the image (MUNIT's latent reconstruction, measured at test time)?
- ``translation_diversity``: draws K styles per input through the method and applies
  ``mean_pairwise_distance``.

Samples are float tensors in [-1, 1]. Methods are reached through their translate options only (and
``encode_style`` for the style error); a ``Translator`` or the method itself may be passed.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import torch
from torch import Tensor

from unpaired.methods.base import StylePrior, require

Features = Callable[[Tensor], list[Tensor]]


def _unit_channels(f: Tensor, eps: float = 1e-10) -> Tensor:
    """Each spatial position's feature vector scaled to unit length (LPIPS's normalisation)."""
    f = f.float()
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


def lpips_like(features_x: list[Tensor], features_y: list[Tensor]) -> Tensor:
    """Per-sample distance: sum over layers of the spatial mean of ||f_x - f_y||^2 over unit-length channel
    vectors. Each layer contributes 0..4."""
    total = 0.0
    for fx, fy in zip(features_x, features_y, strict=True):
        total = total + (_unit_channels(fx) - _unit_channels(fy)).pow(2).sum(1).flatten(1).mean(1)
    return total  # type: ignore[return-value]


def pixel_l1(x: Tensor, y: Tensor) -> Tensor:
    """Per-sample mean absolute difference of pixels in [-1, 1] (0..2)."""
    return (x.float() - y.float()).abs().flatten(1).mean(1)


@torch.no_grad()
def mean_pairwise_distance(samples: Tensor, features: Features | None = None) -> float:
    """Mean distance between the outputs of the same input over all K*(K-1)/2 pairs, averaged over inputs.

    ``samples``: N x K x C x H x W (K >= 2 outputs for each of N inputs). A method's N*K input-major output
    becomes that with ``out.unflatten(0, (N, K))``. ``features``: a network giving a list of feature maps
    (gray images are repeated to RGB for it); None: the pixel L1 fallback.
    """
    if samples.dim() != 5 or samples.shape[1] < 2:
        raise ValueError(f"samples must be N x K x C x H x W with K >= 2, got {tuple(samples.shape)}")
    k = samples.shape[1]
    pairs = list(combinations(range(k), 2))
    first = torch.tensor([i for i, _ in pairs], device=samples.device)
    second = torch.tensor([j for _, j in pairs], device=samples.device)
    distances = []
    for outputs in samples:  # one input at a time: K images
        if features is None:
            distances.append(pixel_l1(outputs[first], outputs[second]))
            continue
        if outputs.shape[1] == 1:
            outputs = outputs.expand(-1, 3, -1, -1)
        maps = features(outputs)
        distances.append(lpips_like([m[first] for m in maps], [m[second] for m in maps]))
    return float(torch.cat(distances).mean())


def _method(model: Any) -> Any:
    return getattr(model, "method", model)  # a Translator holds its method


@torch.no_grad()
def translation_diversity(model: Any, images: Tensor, direction: str, k: int = 8, seed: int = 0,
                          features: Features | None = None) -> float:
    """``mean_pairwise_distance`` of K translations of each image, with K prior styles drawn from ``seed``."""
    out = model.translate(images, direction, styles=k, seed=seed)
    return mean_pairwise_distance(out.unflatten(0, (images.shape[0], k)), features)


@torch.no_grad()
def style_reconstruction_error(model: Any, images: Tensor, direction: str, k: int = 8, seed: int = 0) -> float:
    """Mean |E_t^s(G_t(E_s^c(x), s)) - s| (L1 per code element) over the images and K codes s ~ N(0, I)
    drawn from ``seed``; t is the target domain. Needs a method with a style prior (``StylePrior``: MUNIT) and a
    ``style=`` translate option."""
    method = require(_method(model), StylePrior, "the style reconstruction error")
    device = next(method.parameters()).device
    codes = method.sample_styles(k, seed, device)
    out = method.translate(images.to(device), direction, style=codes)  # N*K, input-major
    recovered = method.encode_style(direction[-1], out)
    return float((recovered.float() - codes.repeat(images.shape[0], 1)).abs().mean())
