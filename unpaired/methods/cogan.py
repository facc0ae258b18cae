"""CoGAN: Coupled Generative Adversarial Networks.

M.-Y. Liu, O. Tuzel. NeurIPS 2016. https://arxiv.org/abs/1606.07536

Two GANs, one per domain, learn the *joint* distribution of the two domains from unpaired samples: the generators
g_1, g_2 share their first layers (the high-level semantics of an image, decoded first) and the discriminators
f_1, f_2 share their last layers (the high-level features they judge), so one noise vector z gives a pair of
corresponding images (g_1(z), g_2(z)). Code names: domain 1 = ``a``, 2 = ``b``; ``nets['gen']`` holds
``CoupledGenerators`` (``shared`` + ``heads``), ``nets['dis']`` holds ``CoupledDiscriminators`` (``first`` +
``shared``), see ``unpaired.nn.coupled`` for the paper's digit architecture. Objective (paper eq. 4), with the
``loss_weights`` keys:

    max_{g_1, g_2} min_{f_1, f_2}  V = E[log f_1(x_1)] + E[log(1 - f_1(g_1(z)))]
                                      + E[log f_2(x_2)] + E[log(1 - f_2(g_2(z)))]      gan/a, gan/b

(the original GAN loss, ``gan_type`` nsgan; the generators minimise the non-saturating form, as the official code).
Domain adaptation (paper Sec. 5): with ``classes`` > 0 a softmax head on the discriminators' shared features is
trained with the discriminators on labelled domain-a images (``cls``, weight 10 in the official adaptation config);
since those features are shared, the head then classifies domain-b images through f_2 (``classify``), which is the
paper's adaptation result. The official adaptation trainer adds a term the paper does not describe, kept here as
``feature_match`` (0 by default, 0.01 in ``cogan_digits``, its ``mse_weight``): the discriminators' shared features
of the two images of one z, g_1(z) and g_2(z), should agree (squared distance summed over the features, averaged
over the batch), trained into the discriminators only.

Translation of a given image (the paper's "cross-domain image transformation", Sec. 4): there is no encoder, so
the shared code is found by inversion, z* = argmin_z ||g_1(z) - x||^2 (Adam on z from a fixed start, for
``invert_steps`` steps at ``invert_lr``), and the translation is g_2(z*). An optimisation per image has no fixed
graph: CoGAN models translate, but cannot be exported (``exportable``).

Defaults are the official code's digit settings (github.com/mingyuliutw/CoGAN, cogan_pytorch:
``net_cogan_mnist2usps.py``, ``trainer_cogan_mnist2usps.py``, ``exps/mnist2usps_full_cogan.yaml``: the digit
networks, latent 100 drawn from N(0, I), Adam lr 2e-4 betas (0.5, 0.999) weight decay 5e-4, batch 64, 10,000
iterations): see ``configs/cogan_digits.yaml``. Two differences: the weights start from PyTorch's default init (the
official code: Xavier), and the generator update reuses the step's pair g(z) instead of drawing a second z (the
trainer computes each image once per step). The inversion's steps and rate are ours (the paper gives none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from unpaired.losses.adversarial import GAN_KINDS, discriminator_loss, generator_loss
from unpaired.methods.base import DOMAINS, METHODS, AuxiliaryClassifier, Batch, Method, Step, cat_batches, split_like
from unpaired.nn.coupled import CoupledDiscriminators, CoupledGenerators


@dataclass
class CoGANConfig:
    """The ``model:`` section: the paper's digit networks (``unpaired.nn.coupled``)."""

    latent_dim: int = 100
    dim: int = 128
    """Width of the last shared generator layer; the first has 8x (1024 at 28 px, the paper's)."""
    dis_dim: int = 20
    """Channels of each discriminator's own first conv (paper: 20)."""
    dis_dim2: int = 50
    dis_features: int = 500
    """The shared 'FC 500' features, which the domain-adaptation head reads."""
    gan_type: str = "nsgan"
    classes: int = 0
    """Classes of the domain-adaptation head on the discriminators' shared features (0: none); needs domain-a
    labels (a labelled digit set as domain a)."""
    invert_steps: int = 300
    """Adam steps on z per translation (inversion)."""
    invert_lr: float = 0.05


@dataclass
class CoGANWeights:
    gan: float = 1.0
    cls: float = 10.0
    """The adaptation head's cross-entropy (official ``cls_weight`` 10)."""
    feature_match: float = 0.0
    """Official adaptation trainer's ``mse_weight`` (0.01 there); not in the paper."""


@METHODS.register("cogan")
class CoGAN(Method):
    name = "cogan"
    Config = CoGANConfig
    Weights = CoGANWeights
    visual_names = ("x_a", "g_a", "g_b", "x_b")
    exportable = False

    def __init__(self, cfg: CoGANConfig, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> None:
        super().__init__(cfg, weights, channels, image_size)
        if cfg.gan_type not in GAN_KINDS:
            raise ValueError(f"model.gan_type must be one of {', '.join(GAN_KINDS)}, got '{cfg.gan_type}'")
        if cfg.classes < 0 or cfg.invert_steps < 0 or cfg.invert_lr <= 0:
            raise ValueError("model.classes and model.invert_steps must be >= 0 and model.invert_lr > 0")
        self.nets["dis"] = CoupledDiscriminators(channels, image_size, cfg.dis_dim, cfg.dis_dim2, cfg.dis_features,
                                                 cfg.classes)  # the official order: D first, then G
        self.nets["gen"] = CoupledGenerators(cfg.latent_dim, channels, image_size, cfg.dim)

    @classmethod
    def labelled_domains(cls, cfg: CoGANConfig) -> tuple[str, ...]:
        return ("a",) if cfg.classes else ()

    @classmethod
    def classifier_head_settings(cls, cfg: CoGANConfig, classes: int) -> list[str]:
        """The head on the shared discriminator features; the discriminators share their last layers already."""
        return [f"model.classes={classes}"]

    def provides(self, capability: type) -> bool:
        """The auxiliary classifier exists only with ``model.classes`` > 0."""
        if capability is AuxiliaryClassifier and not self.cfg.classes:
            return False
        return super().provides(capability)

    def classify(self, x: Tensor, domain: str) -> Tensor:
        """Class logits of images of ``domain``: the head on f_domain's shared features."""
        return self.nets["dis"].classify(x, domain)

    def sample_z(self, count: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(count, self.cfg.latent_dim, generator=generator).to(device)

    # -- training ------------------------------------------------------------------------------------
    def forward_step(self, batch: Batch) -> Step:
        x_a = batch["a"]
        z = torch.randn(x_a.shape[0], self.cfg.latent_dim, device=x_a.device)
        fake = self.nets["gen"](z)  # one z, a pair of images
        return {"x_a": x_a, "x_b": batch["b"], "g_a": fake["a"], "g_b": fake["b"], "labels_a": batch.get("a_labels")}

    def shared_features(self, inputs: list[tuple[str, Tensor]]) -> list[Tensor]:
        """[(domain, images)] -> the shared features of f_domain: each domain's first layer, then the shared layers
        once on all inputs."""
        dis = self.nets["dis"]
        first = [dis.first[d](x) for d, x in inputs]
        return split_like(dis.shared(cat_batches(*first)), first)

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        kind = self.cfg.gan_type
        terms: dict[str, Tensor] = {}
        logit = self.nets["dis"].logit
        if group == "dis":
            if self.active("gan") or self.active("feature_match"):
                features = self.shared_features([(d, step[f"x_{d}"]) for d in DOMAINS]
                                                + [(d, step[f"g_{d}"].detach()) for d in DOMAINS])
                real, fake = features[:len(DOMAINS)], features[len(DOMAINS):]
                if self.active("gan"):
                    terms.update({f"gan/{d}": discriminator_loss(logit(r), logit(f), kind)
                                  for d, r, f in zip(DOMAINS, real, fake, strict=True)})
                if self.active("feature_match"):  # summed over the feature elements, averaged over the batch
                    terms["feature_match"] = (fake[0].float() - fake[1].float()).pow(2).flatten(1).sum(1).mean()
            if self.cfg.classes and self.active("cls"):
                if step["labels_a"] is None:
                    raise ValueError("cogan: model.classes > 0 needs domain-a labels (a labelled digit set as "
                                     "domain a), and this batch has none")
                terms["cls/a"] = F.cross_entropy(self.classify(step["x_a"], "a"), step["labels_a"])
            return terms
        if self.active("gan"):
            features = self.shared_features([(d, step[f"g_{d}"]) for d in DOMAINS])
            terms.update({f"gan/{d}": generator_loss(logit(f), kind) for d, f in zip(DOMAINS, features, strict=True)})
        return terms

    # -- inference -----------------------------------------------------------------------------------
    def invert(self, x: Tensor, domain: str, steps: int | None = None, lr: float | None = None
               ) -> tuple[Tensor, list[float]]:
        """z* = argmin_z mean((g_domain(z) - x)^2) by Adam from a fixed start (N(0, I) drawn from seed 0), and the
        reconstruction error before each step and after the last. Only z gets gradients; the networks stay as
        they are (call in eval mode: batch norm then uses its running statistics)."""
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"cogan generates {self.image_size}x{self.image_size} images only, got "
                             f"{x.shape[-2]}x{x.shape[-1]}: give inputs of the training size")
        steps = self.cfg.invert_steps if steps is None else steps
        lr = self.cfg.invert_lr if lr is None else lr
        gen = self.nets["gen"]
        start = self.sample_z(x.shape[0], x.device, torch.Generator().manual_seed(0))
        z = start.to(torch.float32).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        errors: list[float] = []
        target = x.detach().float()
        with torch.enable_grad():
            for _ in range(steps):
                error = F.mse_loss(gen(z, (domain,))[domain].float(), target)
                (z.grad,) = torch.autograd.grad(error, z)  # no weight gradients
                optimizer.step()
                errors.append(float(error.detach()))
        with torch.no_grad():
            errors.append(float(F.mse_loss(gen(z, (domain,))[domain].float(), target)))
        return z.detach(), errors

    def translate(self, x: Tensor, direction: str, **options: object) -> Tensor:
        """g_target(z*), z* the inversion of ``x`` through g_source (see ``invert``)."""
        if options:
            raise TypeError(f"cogan.translate takes no options, got {', '.join(options)}")
        source, target = self.check_direction(direction).split("2")
        z, _ = self.invert(x, source)
        with torch.no_grad():
            return self.nets["gen"](z, (target,))[target]

    @torch.no_grad()
    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Real images of each domain around the pairs g_a(z), g_b(z) of fixed noise vectors (one z per column):
        inversion is too slow for every grid."""
        x_a = batch["a"]
        z = self.sample_z(x_a.shape[0], x_a.device, torch.Generator().manual_seed(0))  # the same z at every grid
        pair = self.nets["gen"](z)
        return {"x_a": x_a, "g_a": pair["a"], "g_b": pair["b"], "x_b": batch["b"]}
