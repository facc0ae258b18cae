"""The one-to-one family's shared part: generators G (one per direction), discriminators D (one per target
domain), adversarial terms with an image history buffer, identity and cycle terms.

CycleGAN is this base with its own weights; DistanceGAN and GcGAN add one constraint each by filling the
hooks below (``add_networks``, ``add_inputs``, ``first_round``, ``adversaries``, ``identities``,
``constraint_terms``, ``extra_visuals``), so every method reads as its paper's objective.

Names. Directions ``a2b``/``b2a`` name the generators (``nets['gen'][direction]``, G = G_a2b and F = G_b2a
in CycleGAN's notation); discriminators are named by the domain they judge (``nets['dis']['b']`` = D_Y).
Step keys: ``x_a`` (inputs), ``x_ab`` = G(x_a), ``x_aba`` = F(G(x_a)), ``idt_b`` = G(x_b).

Terms (``loss_weights`` keys; a zero weight skips the term and the translations only it needs):

- ``gan``      adversarial loss per discriminator. The discriminator's term is (real + fake) / 2 as in the
  official CycleGAN code, on fakes drawn through the image pool (``model.pool_size``);
- ``identity`` ||G(y) - y||_1 (CycleGAN Sec. 5.2, "identity mapping loss"); the official code weighs it
  lambda_identity * lambda = 0.5 * 10, so its weight here is 5;
- ``cycle``    ||F(G(x)) - x|| for both directions (CycleGAN eq. 2); needs ``model.direction=both``;
- ``gp``       WGAN-GP penalty weight, used only with ``gan_type: wgan-gp``.

Order of updates: generators first, then discriminators on the same step's translations (through the
pool), as in the official CycleGAN/GcGAN/DistanceGAN code (``optimize_parameters``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from unpaired.losses.adversarial import GAN_KINDS, discriminator_loss, generator_loss, gradient_penalty
from unpaired.losses.consistency import CYCLE_METRICS, cycle_consistency
from unpaired.losses.reconstruction import l1
from unpaired.methods.base import DIRECTIONS, Batch, Method, Step, cat_batches
from unpaired.nn.blocks import init_weights
from unpaired.nn.discriminators import PatchDiscriminator
from unpaired.nn.generators import UPSAMPLING, ResnetGenerator, UNetGenerator
from unpaired.nn.image_pool import ImagePool

GENERATORS = ("resnet", "unet", "encdec")
Plan = list[tuple[str, str, str]]
"""(generator name, input step key, output step key)"""


@dataclass
class OneToOneConfig:
    """Architecture options shared by CycleGAN, DistanceGAN and GcGAN (the ``model:`` section).

    Defaults: CycleGAN's official ones (junyanz/pytorch-CycleGAN-and-pix2pix, cycle_gan model: resnet
    generator, ngf 64, 70x70 PatchGAN ndf 64 n_layers_D 3, instance norm, lsgan, pool 50, init normal 0.02,
    no dropout).
    """

    direction: str = "both"
    """Generators to train: 'a2b' or 'b2a' (one-sided) or 'both'."""
    gen: str = "resnet"
    """'resnet' (CycleGAN), 'unet' (pix2pix U-Net, DualGAN) or 'encdec' (DiscoGAN: the U-Net without skips)."""
    dim: int = 64
    n_down: int = 2
    """Stride-2 levels: 2 for resnet; unet/encdec go down to 1x1 at 256 px with 8 (pix2pix), 4 for DiscoGAN at 64."""
    n_res: int | None = None
    """Residual blocks of the resnet generator; None: 6 for images <= 128 px, 9 above (CycleGAN appendix 7.2)."""
    upsample: str = "transpose"
    """resnet upsampling: 'transpose' (3x3 transposed conv, CycleGAN) or 'nearest' (nearest x2 + 3x3 conv)."""
    norm: str = "in"
    pad_type: str = "reflect"
    dropout: float = 0.0
    """unet/encdec: dropout after the three innermost up convs (DualGAN's noise: 0.5)."""
    init: str = "gaussian"
    init_gain: float = 0.02
    dis_dim: int = 64
    dis_layers: int = 3
    """Stride-2 convs of the PatchGAN discriminator."""
    dis_stride1: int = 1
    """Stride-1 4x4 convs after them (1 in the 70x70 PatchGAN)."""
    dis_head_kernel: int = 4
    dis_norm: str = "in"
    dis_pad_type: str = "zero"
    gan_type: str = "lsgan"
    pool_size: int = 50
    """Image history buffer per discriminator (0: off)."""
    cycle_metric: str = "l1"
    """'l1' (CycleGAN, DualGAN) or 'mse' (DiscoGAN's code)."""


def other(domain: str) -> str:
    return "b" if domain == "a" else "a"


class OneToOne(Method):
    """Base class of the one-to-one methods; not registered itself."""

    def __init__(self, cfg: Any, weights: dict[str, float], channels: dict[str, int], image_size: int) -> None:
        super().__init__(cfg, weights, channels, image_size)
        self._check(cfg)
        self.directions: tuple[str, ...] = DIRECTIONS if cfg.direction == "both" else (cfg.direction,)
        gen, dis = nn.ModuleDict(), nn.ModuleDict()
        for direction in self.directions:
            gen[direction] = self.make_generator(direction[0], direction[-1])
            dis[direction[-1]] = self.make_discriminator(direction[-1])
        self.add_networks(gen, dis)
        init_weights(gen, cfg.init, cfg.init_gain)
        init_weights(dis, cfg.init, cfg.init_gain)
        self.pools = nn.ModuleDict({name: ImagePool(cfg.pool_size) for name in dis})
        self.nets["gen"] = gen  # official order: generators first, then discriminators
        self.nets["dis"] = dis

    def _check(self, cfg: Any) -> None:
        choices = {"direction": ("a2b", "b2a", "both"), "gen": GENERATORS, "upsample": UPSAMPLING,
                   "gan_type": GAN_KINDS, "cycle_metric": CYCLE_METRICS}
        for key, allowed in choices.items():
            if getattr(cfg, key) not in allowed:
                raise ValueError(f"model.{key} must be one of {', '.join(allowed)}, got '{getattr(cfg, key)}'")
        if self.active("cycle") and cfg.direction != "both":
            raise ValueError(f"loss_weights.cycle needs generators both ways (model.direction=both), "
                             f"got model.direction={cfg.direction}")
        if self.active("identity") and self.channels["a"] != self.channels["b"]:
            raise ValueError(f"loss_weights.identity needs the same channels in both domains, got "
                             f"{self.channels['a']} and {self.channels['b']}; set it to 0")
        if cfg.gen == "resnet" and cfg.dropout:
            raise ValueError("model.dropout applies to the unet/encdec generators only")
        if cfg.pool_size < 0:
            raise ValueError(f"model.pool_size must be >= 0, got {cfg.pool_size}")
        size = self.image_size
        self.size_multiple = 2**cfg.n_down
        if size % self.size_multiple:
            raise ValueError(f"data.image_size={size} must be divisible by 2**model.n_down={self.size_multiple}")
        if PatchDiscriminator.output_size(size, cfg.dis_layers, cfg.dis_stride1, cfg.dis_head_kernel) < 1:
            raise ValueError(f"data.image_size={size} is too small for a discriminator of {cfg.dis_layers} "
                             f"stride-2 and {cfg.dis_stride1} stride-1 layers")

    # -- networks ------------------------------------------------------------------------------------
    def make_generator(self, source: str, target: str) -> nn.Module:
        cfg, c_in, c_out = self.cfg, self.channels[source], self.channels[target]
        if cfg.gen == "resnet":
            n_res = cfg.n_res if cfg.n_res is not None else (6 if self.image_size <= 128 else 9)
            return ResnetGenerator(c_in, c_out, cfg.dim, cfg.n_down, n_res, cfg.norm, cfg.pad_type, cfg.upsample)
        return UNetGenerator(c_in, c_out, cfg.dim, cfg.n_down, cfg.norm, skips=cfg.gen == "unet",
                             dropout=cfg.dropout)

    def make_discriminator(self, domain: str) -> nn.Module:
        cfg = self.cfg
        return PatchDiscriminator(self.channels[domain], cfg.dis_dim, cfg.dis_layers, cfg.dis_norm, "lrelu",
                                  cfg.dis_pad_type, n_stride1=cfg.dis_stride1, head_kernel=cfg.dis_head_kernel)

    def run(self, net: nn.Module, inputs: list[Tensor], norm: str) -> list[Tensor]:
        """``net`` on each input. One call on the concatenation, unless batch norm would then mix the
        inputs' statistics (the official code calls the nets one input at a time)."""
        if norm == "bn" or len(inputs) == 1:
            return [net(x) for x in inputs]
        return list(net(cat_batches(*inputs)).split([len(x) for x in inputs]))

    def translate_into(self, step: Step, plan: Plan) -> None:
        """Run a plan, one batched call per generator, writing the outputs into ``step``."""
        gen = self.nets["gen"]
        for name in dict.fromkeys(g for g, _, _ in plan):
            jobs = [(src, dst) for g, src, dst in plan if g == name]
            outputs = self.run(gen[name], [step[src] for src, _ in jobs], self.cfg.norm)
            step.update((dst, y) for (_, dst), y in zip(jobs, outputs, strict=True))

    # -- hooks a method fills to add its constraint ---------------------------------------------------
    def add_networks(self, gen: nn.ModuleDict, dis: nn.ModuleDict) -> None:
        """Extra generators/discriminators (GcGAN's for the transformed domain)."""

    def add_inputs(self, step: Step) -> None:
        """Extra inputs derived from the batch (GcGAN: f(x))."""

    def first_round(self) -> Plan:
        """Translations of the real inputs: G(x) and, for the identity term, G(y)."""
        plan = []
        for direction in self.directions:
            source, target = direction[0], direction[-1]
            plan.append((direction, f"x_{source}", f"x_{source}{target}"))
            if self.active("identity"):
                plan.append((direction, f"x_{target}", f"idt_{target}"))
        return plan

    def adversaries(self) -> list[tuple[str, str, str]]:
        """(discriminator, real step key, fake step key) for every adversarial pair."""
        return [(d[-1], f"x_{d[-1]}", f"x_{d[0]}{d[-1]}") for d in self.directions]

    def identities(self) -> list[tuple[str, str, str]]:
        """(term suffix, output key, target key) of the identity terms."""
        return [(d[-1], f"idt_{d[-1]}", f"x_{d[-1]}") for d in self.directions]

    def constraint_terms(self, step: Step) -> dict[str, Tensor]:
        """The method's own terms for the generator group."""
        return {}

    def extra_visuals(self, batch: Batch) -> dict[str, Tensor]:
        return {}

    # -- training ------------------------------------------------------------------------------------
    def forward_step(self, batch: Batch) -> Step:
        step: Step = {"x_a": batch["a"], "x_b": batch["b"]}
        self.add_inputs(step)
        self.translate_into(step, self.first_round())
        if self.active("cycle"):
            self.translate_into(step, [("b2a", "x_ab", "x_aba"), ("a2b", "x_ba", "x_bab")])
        return step

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        if group == "dis":
            return self.discriminator_terms(step)
        dis, kind = self.nets["dis"], self.cfg.gan_type
        terms: dict[str, Tensor] = {}
        if self.active("gan"):
            for name, _, fake in self.adversaries():
                terms[f"gan/{name}"] = generator_loss(dis[name](step[fake]), kind)
        if self.active("identity"):
            for suffix, output, target in self.identities():
                terms[f"identity/{suffix}"] = l1(step[output], step[target])
        if self.active("cycle"):
            for d in ("a", "b"):
                terms[f"cycle/{d}"] = cycle_consistency(step[f"x_{d}{other(d)}{d}"], step[f"x_{d}"],
                                                        self.cfg.cycle_metric)
        terms.update(self.constraint_terms(step))
        return terms

    def discriminator_terms(self, step: Step) -> dict[str, Tensor]:
        dis, kind = self.nets["dis"], self.cfg.gan_type
        terms: dict[str, Tensor] = {}
        adversarial, penalty = self.active("gan"), kind == "wgan-gp" and self.active("gp")
        if not (adversarial or penalty):  # D has no term: no forward, and the pools keep their images
            return terms
        for name, real_key, fake_key in self.adversaries():
            real, fake = step[real_key], self.pools[name](step[fake_key].detach())
            if adversarial:
                real_logits, fake_logits = self.run(dis[name], [real, fake], self.cfg.dis_norm)
                terms[f"gan/{name}"] = 0.5 * discriminator_loss(real_logits, fake_logits, kind)
            if penalty:
                terms[f"gp/{name}"] = gradient_penalty(dis[name], real, fake)
        return terms

    # -- inference -----------------------------------------------------------------------------------
    def translate(self, x: Tensor, direction: str, **options: object) -> Tensor:
        return self.direct_generator(direction, options)(x)

    @torch.no_grad()
    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Rows x_a, x_ab[, x_aba] per direction (one-sided: plus the real targets x_b), then the method's."""
        rows: dict[str, Tensor] = {}
        for direction in self.directions:
            source, target = direction[0], direction[-1]
            y = self.translate(batch[source], direction)
            rows[f"x_{source}"], rows[f"x_{source}{target}"] = batch[source], y
            if len(self.directions) == 2:
                rows[f"x_{source}{target}{source}"] = self.translate(y, f"{target}2{source}")
        if len(self.directions) == 1:
            target = self.directions[0][-1]
            rows[f"x_{target}"] = batch[target]
        rows.update(self.extra_visuals(batch))
        return rows
