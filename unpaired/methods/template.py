"""An example method to copy, registered as ``template`` so the tests train, resume and load it like any method:
a one-sided GAN G: A -> B with an identity term (GAN: Goodfellow et al. 2014 eq. 1; identity: CycleGAN Sec. 5.2),

    min_G max_D  L_GAN(G, D_B) + lambda_idt ||G(y) - y||_1        (loss_weights keys: gan/b, identity/b)
To add a method, copy this file into unpaired/methods/ (every module there is imported, so it registers itself).
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from unpaired.losses.adversarial import discriminator_loss, generator_loss
from unpaired.losses.reconstruction import l1
from unpaired.methods.base import METHODS, Batch, Method, Step
from unpaired.nn.discriminators import PatchDiscriminator
from unpaired.nn.generators import ResnetGenerator


@dataclass
class TemplateConfig:
    """The ``model:`` section (architecture only): G with ``n_down`` stride-2 convs and ``n_res`` residual blocks
    of width ``dim`` (ngf); PatchGAN D_B of ``dis_layers`` stride-2 convs, width ``dis_dim`` (ndf)."""
    dim: int = 64
    n_down: int = 2
    n_res: int = 6
    dis_dim: int = 64
    dis_layers: int = 3
    gan_type: str = "lsgan"  # L_GAN: nsgan (the paper's), lsgan, hinge or wgan


@dataclass
class TemplateWeights:
    """The ``loss_weights:`` section: one float per term name (the part before ``/``); 0 skips the term."""
    gan: float = 1.0
    identity: float = 5.0  # lambda_idt


@METHODS.register("template")
class Template(Method):
    name = "template"
    Config = TemplateConfig
    Weights = TemplateWeights
    visual_names = ("x_a", "x_ab", "x_b")
    directions = ("a2b",)

    def __init__(self, cfg: TemplateConfig, weights: dict, channels: dict[str, int], image_size: int) -> None:
        super().__init__(cfg, weights, channels, image_size)
        self.size_multiple = 2**cfg.n_down
        # one optimiser per group, updated in this order: D first, then G on the same translations
        self.nets["dis"] = nn.ModuleDict({"b": PatchDiscriminator(channels["b"], cfg.dis_dim, cfg.dis_layers)})
        self.nets["gen"] = nn.ModuleDict({"a2b": ResnetGenerator(channels["a"], channels["b"], cfg.dim, cfg.n_down,
                                                                 cfg.n_res)})

    def forward_step(self, batch: Batch) -> Step:
        """Every translation the losses need, once per step, with its graph (a zero weight skips its work)."""
        step = {"x_b": batch["b"], "x_ab": self.nets["gen"]["a2b"](batch["a"])}
        if self.active("identity"):
            step["idt_b"] = self.nets["gen"]["a2b"](batch["b"])
        return step

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        """Raw terms of ``group``; the trainer weighs them by ``loss_weights`` and steps that group only. A zero
        weight skips its work: with ``gan`` 0, D never runs and its group waits (it returns no term)."""
        d, kind, on = self.nets["dis"]["b"], self.cfg.gan_type, self.active
        if group == "dis":
            return {"gan/b": discriminator_loss(d(step["x_b"]), d(step["x_ab"].detach()), kind)} if on("gan") else {}
        terms = {"gan/b": generator_loss(d(step["x_ab"]), kind)} if on("gan") else {}
        if on("identity"):
            terms["identity/b"] = l1(step["idt_b"], step["x_b"])
        return terms

    def translate(self, x: Tensor, direction: str = "a2b", **options: object) -> Tensor:
        if self.check_direction(direction) not in self.directions or options:
            raise ValueError("this template model is one-sided: it translates a2b only, and takes no options")
        return self.nets["gen"]["a2b"](x)

    @torch.no_grad()
    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        return {"x_a": batch["a"], "x_ab": self.translate(batch["a"]), "x_b": batch["b"]}
