"""pix2pix: Image-to-Image Translation with Conditional Adversarial Networks.

P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros. CVPR 2017. https://arxiv.org/abs/1611.07004

The *supervised* reference point of this library: it learns from aligned pairs (x, y) (``--data pairs:DIR``, the
pix2pix layout; ``paired_data``), so its scores on paired benchmarks (maps) are the upper bound the unpaired methods
are measured against. A generator G: x -> y (``nets['gen'][direction]``) and a conditional discriminator D that
judges the pair (x, y) against (x, G(x)) (``nets['dis'][target]``, input channels of x and y concatenated).
Objective (paper eq. 4), with the ``loss_weights`` keys:

    G* = arg min_G max_D  L_cGAN(G, D) + lambda L_L1(G)
    L_cGAN = E[log D(x, y)] + E[log(1 - D(x, G(x)))]       gan     (the original GAN loss, nsgan; Sec. 3.1)
    L_L1   = E[||y - G(x)||_1]                              l1      lambda = 100 (Sec. 4)

As in the paper (Sec. 3.3) and its official code (junyanz/pytorch-CycleGAN-and-pix2pix, ``pix2pix_model.py``,
``networks.py``): G is the U-Net with skips (``UnetGenerator``: 4x4 stride-2 convs down to a 1x1 bottleneck,
``num_downs`` 8 at 256 px, ngf 64, dropout 0.5 in the three innermost decoder layers: the only noise z the paper
keeps); D is the 70x70 PatchGAN (C64-C128-C256-C512, ndf 64) on the channel-wise
concatenation of input and output; the discriminator's loss is halved ("divide the objective by 2 while
optimizing D", Sec. 3.3); D is updated before G on the same step's G(x); weights N(0, 0.02). Adam lr 2e-4, betas
(0.5, 0.999), batch 1, 286 -> 256 random crops and flips of both halves together (jitter, appendix 6.2): see
``configs/pix2pix_maps.yaml``. No image pool (official pix2pix: ``pool_size 0``).

Normalisation: the official code builds batch norm, and the paper runs it at test time with the statistics of the
test batch (Sec. 3.3), which at its batch size of 1 is instance normalisation, as the paper says. The defaults
here are instance norm in G and D (``norm``/``dis_norm`` ``in``): the same computation in training at batch 1 and
at inference in eval mode, without running statistics that a batch of one image would make noisy (``bn`` is the
official layer, for larger batches).

``model.direction`` is the pix2pix ``--direction`` option: a2b (AtoB) or b2a (BtoA); the model translates that
direction only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from unpaired.losses.adversarial import GAN_KINDS, discriminator_loss, generator_loss
from unpaired.losses.reconstruction import l1
from unpaired.methods.base import DIRECTIONS, METHODS, Batch, Method, Step
from unpaired.nn.blocks import init_weights
from unpaired.nn.discriminators import PatchDiscriminator
from unpaired.nn.generators import UNetGenerator


@dataclass
class Pix2PixConfig:
    """The ``model:`` section; defaults are the official pix2pix options (``--netG unet_256 --netD basic
    --gan_mode vanilla --init_type normal --init_gain 0.02``, dropout on), with instance norm for its batch norm at
    batch 1 (see the module docstring)."""

    direction: str = "a2b"
    """a2b (x = A, y = B) or b2a; the official ``--direction AtoB``/``BtoA``."""
    dim: int = 64
    """ngf: width of the U-Net's outermost level (levels widen x2 up to 8 x dim)."""
    num_downs: int | None = None
    """U-Net levels (stride-2 convs down, each mirrored up); None: down to a 1x1 bottleneck, log2(image size): 8
    at 256 px (official ``unet_256``), 7 at 128 (``unet_128``)."""
    norm: str = "in"
    dropout: float = 0.5
    """In the three innermost decoder layers, at training and at test time in the paper; here at training only
    (inference in eval mode is deterministic)."""
    init: str = "gaussian"
    init_gain: float = 0.02
    dis_dim: int = 64
    dis_layers: int = 3
    """Stride-2 convs of the PatchGAN (3, then one stride-1 conv and the 4x4 head: the 70x70 receptive field)."""
    dis_norm: str = "in"
    gan_type: str = "nsgan"


@dataclass
class Pix2PixWeights:
    gan: float = 1.0
    l1: float = 100.0
    """lambda (paper Sec. 4; official ``--lambda_L1 100``)."""


@METHODS.register("pix2pix")
class Pix2Pix(Method):
    name = "pix2pix"
    Config = Pix2PixConfig
    Weights = Pix2PixWeights
    paired_data = True

    def __init__(self, cfg: Pix2PixConfig, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> None:
        super().__init__(cfg, weights, channels, image_size)
        if cfg.direction not in DIRECTIONS:
            raise ValueError(f"model.direction must be one of {', '.join(DIRECTIONS)}, got '{cfg.direction}'")
        if cfg.gan_type not in GAN_KINDS:
            raise ValueError(f"model.gan_type must be one of {', '.join(GAN_KINDS)}, got '{cfg.gan_type}'")
        levels = cfg.num_downs if cfg.num_downs is not None else int(math.log2(image_size))
        self.size_multiple = 2**levels
        if levels < 1 or image_size % self.size_multiple:
            raise ValueError(f"data.image_size={image_size} must be a multiple of 2**model.num_downs="
                             f"{self.size_multiple} (num_downs >= 1)")
        if PatchDiscriminator.output_size(image_size, cfg.dis_layers, 1, 4) < 1:
            raise ValueError(f"data.image_size={image_size} is too small for a PatchGAN of {cfg.dis_layers} "
                             "stride-2 layers (lower model.dis_layers)")
        self.directions = (cfg.direction,)
        self.source, self.target = cfg.direction[0], cfg.direction[-1]
        self.visual_names = (f"x_{self.source}", f"x_{self.source}{self.target}", f"x_{self.target}")
        c_in, c_out = channels[self.source], channels[self.target]
        dis = nn.ModuleDict({self.target: PatchDiscriminator(c_in + c_out, cfg.dis_dim, cfg.dis_layers, cfg.dis_norm,
                                                             "lrelu", "zero", n_stride1=1, head_kernel=4)})
        gen = nn.ModuleDict({cfg.direction: UNetGenerator(c_in, c_out, cfg.dim, levels, cfg.norm, skips=True,
                                                          dropout=cfg.dropout)})
        init_weights(gen, cfg.init, cfg.init_gain)
        init_weights(dis, cfg.init, cfg.init_gain)
        self.nets["dis"] = dis  # official order: D first, then G on the same G(x)
        self.nets["gen"] = gen

    def judge(self, x: Tensor, y: Tensor) -> Tensor:
        """D(x, y): patch logits of the pair, input and output concatenated along the channels."""
        return self.nets["dis"][self.target](torch.cat([x, y], 1))

    def forward_step(self, batch: Batch) -> Step:
        x, y = batch[self.source], batch[self.target]
        return {"x": x, "y": y, "fake": self.nets["gen"][self.cfg.direction](x)}

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        x, y, fake, kind, target = step["x"], step["y"], step["fake"], self.cfg.gan_type, self.target
        if group == "dis":
            if not self.active("gan"):
                return {}
            # two calls, as the official code: one batch of both would mix real and fake in D's batch statistics
            real_logits, fake_logits = self.judge(x, y), self.judge(x, fake.detach())
            return {f"gan/{target}": 0.5 * discriminator_loss(real_logits, fake_logits, kind)}
        terms = {f"gan/{target}": generator_loss(self.judge(x, fake), kind)} if self.active("gan") else {}
        if self.active("l1"):
            terms[f"l1/{target}"] = l1(fake, y)
        return terms

    def translate(self, x: Tensor, direction: str, **options: object) -> Tensor:
        return self.direct_generator(direction, options)(x)

    @torch.no_grad()
    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Rows: the inputs, their translations and the true outputs of the same pairs."""
        x = batch[self.source]
        return dict(zip(self.visual_names, (x, self.translate(x, self.cfg.direction), batch[self.target]),
                        strict=True))
