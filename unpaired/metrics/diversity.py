"""Diversity and faithfulness of multimodal translation (several outputs per input, e.g. MUNIT).

- ``mean_pairwise_distance``: how different the K outputs of one input are, averaged over all pairs of
  outputs and over inputs (the diversity measure of MUNIT Sec. 5.2 and BicycleGAN, there with LPIPS).
  With a feature network (``unpaired.nn.vgg.load_vgg16_features(path, LPIPS_LAYERS)``, torchvision's VGG16
  weights) and LPIPS's learned channel weights (``load_lpips_weights``: ``LPIPS_VERSION``, the file
  ``lpips/weights/v0.1/vgg.pth`` that the ``lpips`` package ships) the distance is LPIPS itself, equal to the
  lpips package's ``LPIPS(net='vgg', version='0.1')`` (tested; its input scaling is the ImageNet normalisation
  of ``VGG16Features``, the same constants). With the feature network alone it is LPIPS's formula with every
  channel weight 1 (the "baseline" form in Zhang et al. 2018: comparable with each other, not with published
  LPIPS numbers). Without either it falls back to the mean absolute pixel difference, in [-1, 1] units (range
  0..2).
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
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unpaired.methods.base import StylePrior, require

Features = Callable[[Tensor], list[Tensor]]


def _unit_channels(f: Tensor, eps: float = 1e-10) -> Tensor:
    """Each spatial position's feature vector scaled to unit length (LPIPS's normalisation)."""
    f = f.float()
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


LPIPS_VERSION = "LPIPS v0.1, VGG16 (Zhang et al., CVPR 2018; lin weights lpips/weights/v0.1/vgg.pth)"
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


def load_lpips_weights(path: str | Path) -> list[Tensor]:
    """LPIPS v0.1's learned channel weights for VGG16 (the 1x1 convolutions ``lin0`` ... ``lin4`` of the lpips
    package's ``weights/v0.1/vgg.pth``) as five vectors; a ValueError naming the file when it is not that file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such LPIPS weights file (lpips/weights/v0.1/vgg.pth of the lpips package)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors of all kinds: name the file
        raise ValueError(f"{path}: not a readable weights file ({str(err).splitlines()[0]})") from None
    try:
        weights = [state[f"lin{k}.model.1.weight"].float().reshape(-1) for k in range(len(LPIPS_CHANNELS))]
    except (KeyError, TypeError, AttributeError):
        weights = []
    if [len(w) for w in weights] != list(LPIPS_CHANNELS):
        raise ValueError(f"{path}: not LPIPS v0.1's VGG weights (expected lin0.model.1.weight ... lin4.model.1.weight "
                         f"of {', '.join(map(str, LPIPS_CHANNELS))} channels)")
    return weights


def lpips_like(features_x: list[Tensor], features_y: list[Tensor],
               channel_weights: list[Tensor] | None = None) -> Tensor:
    """Per-sample distance: sum over layers of the spatial mean of ||f_x - f_y||^2 over unit-length channel
    vectors, each channel's square weighted by ``channel_weights`` (LPIPS; None: all 1, each layer then
    contributes 0..4)."""
    total = 0.0
    for k, (fx, fy) in enumerate(zip(features_x, features_y, strict=True)):
        squares = (_unit_channels(fx) - _unit_channels(fy)).pow(2)
        if channel_weights is not None:
            squares = squares * channel_weights[k].to(squares)[None, :, None, None]
        total = total + squares.sum(1).flatten(1).mean(1)
    return total  # type: ignore[return-value]


def pixel_l1(x: Tensor, y: Tensor) -> Tensor:
    """Per-sample mean absolute difference of pixels in [-1, 1] (0..2)."""
    return (x.float() - y.float()).abs().flatten(1).mean(1)


@torch.no_grad()
def mean_pairwise_distance(samples: Tensor, features: Features | None = None,
                           channel_weights: list[Tensor] | None = None) -> float:
    """Mean distance between the outputs of the same input over all K*(K-1)/2 pairs, averaged over inputs.

    ``samples``: N x K x C x H x W (K >= 2 outputs for each of N inputs). A method's N*K input-major output
    becomes that with ``out.unflatten(0, (N, K))``. ``features``: a network giving a list of feature maps
    (gray images are repeated to RGB for it); None: the pixel L1 fallback. ``channel_weights``: LPIPS's
    (``load_lpips_weights``), with VGG16 features at ``LPIPS_LAYERS``.
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
        distances.append(lpips_like([m[first] for m in maps], [m[second] for m in maps], channel_weights))
    return float(torch.cat(distances).mean())


def _method(model: Any) -> Any:
    return getattr(model, "method", model)  # a Translator holds its method


@torch.no_grad()
def translation_diversity(model: Any, images: Tensor, direction: str, k: int = 8, seed: int = 0,
                          features: Features | None = None, channel_weights: list[Tensor] | None = None) -> float:
    """``mean_pairwise_distance`` of K translations of each image, with K prior styles drawn from ``seed``."""
    out = model.translate(images, direction, styles=k, seed=seed)
    return mean_pairwise_distance(out.unflatten(0, (images.shape[0], k)), features, channel_weights)


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
