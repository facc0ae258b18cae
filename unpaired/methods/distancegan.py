"""DistanceGAN: One-Sided Unsupervised Domain Mapping.

S. Benaim, L. Wolf. NeurIPS 2017. https://arxiv.org/abs/1706.00826

One mapping G_AB learnt without its inverse: the distance between two source images, normalised by the
source domain's distance statistics, should equal the normalised distance between their translations
(eq. 5-6). For batch size 1 the self-distance variant (eq. 7) compares the left and right halves of one
image. Terms (``loss_weights`` keys):

- ``gan``            L_GAN(G_AB, D_B), as in CycleGAN (least squares, image pool of 50)
- ``distance``       mean over pairs i < j of the batch of
                     |(||x_i - x_j||_1 - mu_A) / sigma_A - (||G(x_i) - G(x_j)||_1 - mu_B) / sigma_B|
- ``self_distance``  the same with the halves L(x), R(x) of each image and their own statistics
- ``cycle``          optional CycleGAN cycle term (needs ``model.direction=both``)
- ``identity``       optional CycleGAN identity term
- ``gp``             WGAN-GP penalty weight, used only with ``gan_type: wgan-gp``

mu and sigma (mean and population standard deviation of the distances within each domain) are estimated
once before training in ``prepare`` from up to ``model.stats_images`` (900, the official ``max_items``)
training images per domain, centre-cropped to the training size and taken evenly over the set (the
official code takes the first 900 of a shuffled epoch). They are buffers, so checkpoints keep them.
Defaults are the official code's (sagiebenaim/DistanceGAN, cyclegan_based_models: lambda_distance 1,
lambda cycle 10 when used, and CycleGAN's networks and optimiser). The paper's halves are left/right (its
L and R operators); the official code splits top/bottom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from unpaired.images import crop_and_flip
from unpaired.losses.consistency import distance_loss, distance_statistics, pairwise_distances, self_distances
from unpaired.methods.base import METHODS, Step
from unpaired.methods.one_to_one import OneToOne, OneToOneConfig

KINDS = {"distance": "pairwise", "self_distance": "self"}


@dataclass
class DistanceGANConfig(OneToOneConfig):
    direction: str = "a2b"
    """'a2b' or 'b2a' (one-sided), or 'both' (two one-sided mappings, optionally tied by the cycle term)."""
    stats_images: int = 900
    """Images per domain for the distance statistics (official ``max_items``). All pairs are used, so the
    pairwise statistics cost O(N^2 x pixels): under a second for digits, a few minutes at 256 px."""
    normalize_distances: bool = True
    """False compares raw distances (the official ``--unnormalized_distances`` ablation)."""


@dataclass
class DistanceGANWeights:
    gan: float = 1.0
    distance: float = 1.0
    self_distance: float = 0.0
    cycle: float = 0.0
    identity: float = 0.0
    gp: float = 10.0


@METHODS.register("distancegan")
class DistanceGAN(OneToOne):
    name = "distancegan"
    Config = DistanceGANConfig
    Weights = DistanceGANWeights
    visual_names = ("x_a", "x_ab", "x_b")

    def __init__(self, cfg: DistanceGANConfig, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> None:
        super().__init__(cfg, weights, channels, image_size)
        if cfg.stats_images < 2:
            raise ValueError(f"model.stats_images must be >= 2, got {cfg.stats_images}")
        # [domain a/b, mean/std] per distance kind; NaN until prepare() estimates them
        self.register_buffer("pairwise_stats", torch.full((2, 2), float("nan")))
        self.register_buffer("self_stats", torch.full((2, 2), float("nan")))

    @torch.no_grad()
    def prepare(self, sources: dict[str, Any]) -> None:
        """Estimate mu, sigma of each active distance kind in each domain from the training images."""
        for term, kind in KINDS.items():
            if not self.active(term):
                continue
            for row, domain in enumerate(("a", "b")):
                source = sources[domain]
                count = min(len(source), self.cfg.stats_images)
                picks = torch.linspace(0, len(source) - 1, count).round().long().unique()
                images = torch.stack([crop_and_flip(source[int(i)], self.image_size, None, False) for i in picks])
                mean, std = distance_statistics(images, kind, scale=1 / 127.5)  # uint8 -> [-1, 1] distances
                if not std > 0:
                    raise ValueError(f"distancegan: the {kind} distances of domain {domain} ({source.name}) "
                                     f"have no spread (std {std}); cannot normalise them")
                getattr(self, f"{kind}_stats")[row] = torch.tensor([mean, std])

    def stats(self, kind: str, domain: str) -> tuple[Tensor, Tensor] | None:
        if not self.cfg.normalize_distances:
            return None
        mean, std = getattr(self, f"{kind}_stats")["ab".index(domain)]
        if torch.isnan(mean):
            raise RuntimeError(f"distancegan: the {kind} distance statistics were not estimated; prepare(sources) "
                               "estimates them before a fresh run (the Trainer calls it), for the terms active then")
        return mean, std

    def constraint_terms(self, step: Step) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        for direction in self.directions:
            source, target = direction[0], direction[-1]
            x, y = step[f"x_{source}"], step[f"x_{source}{target}"]
            if self.active("distance"):
                if len(x) < 2:
                    raise ValueError("distancegan: loss_weights.distance compares pairs of images and needs "
                                     "train.batch_size >= 2; at batch size 1 use loss_weights.self_distance "
                                     "(the paper's variant for it) and loss_weights.distance=0")
                terms[f"distance/{direction}"] = distance_loss(
                    pairwise_distances(x), pairwise_distances(y),
                    self.stats("pairwise", source), self.stats("pairwise", target))
            if self.active("self_distance"):
                terms[f"self_distance/{direction}"] = distance_loss(
                    self_distances(x), self_distances(y), self.stats("self", source), self.stats("self", target))
        return terms
