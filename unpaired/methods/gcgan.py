"""GcGAN: Geometry-Consistent Generative Adversarial Networks for One-Sided Unsupervised Domain Mapping.

H. Fu, M. Gong, C. Wang, K. Batmanghelich, K. Zhang, D. Tao. CVPR 2019. https://arxiv.org/abs/1809.05852

A geometric transform f that does not change an image's meaning (``model.geometry``: ``rot90``, a 90
degree clockwise rotation, or ``vflip``, upside down) maps X to X~ and Y to Y~. Besides G_XY: X -> Y,
GcGAN learns G_X~Y~: X~ -> Y~ (the same network by default, ``model.shared_generator``, as in the
official ``gc_gan_share`` model; else a second one) with its own discriminator D_Y~ (``nets['dis']['b_f']``)
on f(y), and ties the two by geometry consistency. Objective (paper eq. 1-2) with the ``loss_weights`` keys:

    L = L_GAN(G_XY, D_Y) + L_GAN(G_X~Y~, D_Y~)                         gan/b, gan/b_f
        + lambda ( ||G_XY(x) - f^-1(G_X~Y~(f(x)))||_1                   geometry/a2b
                 + ||G_X~Y~(f(x)) - f(G_XY(x))||_1 )                    geometry/a2b_f
        + identity terms ||G_XY(y) - y||_1 + ||G_X~Y~(f(y)) - f(y)||_1    identity/b, identity/b_f

lambda = 20 = lambda_AB (10) x lambda_gc (2) of the official code (hufu6371/GcGAN, options/train_options.py;
the issue quotes the paper's 2 x 10); identity weight lambda_AB x identity = 10 x 0.5 (its default; the
released cityscapes script uses 0.3). Both geometry terms keep their gradients into both translations, as
in the paper's equation; the official code detaches the target of each term (half the gradient at the
same weight). Networks, GAN loss, pool and optimiser are CycleGAN's, as in the official code.

The official repository's cycle-consistent variant (``gc_cycle_gan_model.py``) reconstructs the rotated
B images with the wrong generator (``rec_gc_B = netG_BA(fake_gc_A)``, where G_AB must map the rotated
fake A back to rotated B). This method is written from the paper's equations and has no such term; a
cycle-consistent variant must pair each transformed translation with the generator of the opposite
direction.

``model.direction`` picks the side (a2b by default; ``both`` trains two one-sided GcGANs at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from unpaired.losses.consistency import (
    GEOMETRIES,
    geometric_transform,
    geometry_consistency,
    inverse_geometric_transform,
)
from unpaired.methods.base import METHODS, Batch, Step
from unpaired.methods.one_to_one import OneToOne, OneToOneConfig, Plan


@dataclass
class GcGANConfig(OneToOneConfig):
    direction: str = "a2b"
    geometry: str = "rot90"
    """'rot90' (official default 'rot') or 'vflip' (official 'vf')."""
    shared_generator: bool = True
    """One network for G_XY and G_X~Y~ (official gc_gan_share), or a separate one for f(x)."""


@dataclass
class GcGANWeights:
    gan: float = 1.0
    geometry: float = 20.0
    identity: float = 5.0
    gp: float = 10.0


@METHODS.register("gcgan")
class GcGAN(OneToOne):
    name = "gcgan"
    Config = GcGANConfig
    Weights = GcGANWeights
    visual_names = ("x_a", "x_ab", "x_b", "x_ab_f")

    def __init__(self, cfg: GcGANConfig, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> None:
        if cfg.geometry not in GEOMETRIES:
            raise ValueError(f"model.geometry must be one of {', '.join(GEOMETRIES)}, got '{cfg.geometry}'")
        super().__init__(cfg, weights, channels, image_size)

    def f_generator(self, direction: str) -> str:
        """Name of G_X~Y~ for a direction."""
        return direction if self.cfg.shared_generator else f"{direction}_f"

    def add_networks(self, gen: nn.ModuleDict, dis: nn.ModuleDict) -> None:
        for direction in self.directions:
            if not self.cfg.shared_generator:
                gen[f"{direction}_f"] = self.make_generator(direction[0], direction[-1])
            dis[f"{direction[-1]}_f"] = self.make_discriminator(direction[-1])

    def add_inputs(self, step: Step) -> None:
        for domain in ("a", "b"):
            step[f"fx_{domain}"] = geometric_transform(step[f"x_{domain}"], self.cfg.geometry)

    def first_round(self) -> Plan:
        plan = super().first_round()
        for direction in self.directions:
            source, target, g = direction[0], direction[-1], self.f_generator(direction)
            plan.append((g, f"fx_{source}", f"x_{source}{target}_f"))
            if self.active("identity"):
                plan.append((g, f"fx_{target}", f"idt_{target}_f"))
        return plan

    def adversaries(self) -> list[tuple[str, str, str]]:
        extra = [(f"{d[-1]}_f", f"fx_{d[-1]}", f"x_{d[0]}{d[-1]}_f") for d in self.directions]
        return super().adversaries() + extra

    def identities(self) -> list[tuple[str, str, str]]:
        extra = [(f"{d[-1]}_f", f"idt_{d[-1]}_f", f"fx_{d[-1]}") for d in self.directions]
        return super().identities() + extra

    def constraint_terms(self, step: Step) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        if self.active("geometry"):
            for direction in self.directions:
                key = f"x_{direction[0]}{direction[-1]}"
                terms[f"geometry/{direction}"], terms[f"geometry/{direction}_f"] = geometry_consistency(
                    step[key], step[f"{key}_f"], self.cfg.geometry)
        return terms

    @torch.no_grad()
    def extra_visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Row x_ab_f: f^-1(G_X~Y~(f(x_a))), which geometry consistency wants equal to row x_ab."""
        rows = {}
        for direction in self.directions:
            source, target = direction[0], direction[-1]
            fx = geometric_transform(batch[source], self.cfg.geometry)
            y_f = self.nets["gen"][self.f_generator(direction)](fx)
            rows[f"x_{source}{target}_f"] = inverse_geometric_transform(y_f, self.cfg.geometry)
        return rows
