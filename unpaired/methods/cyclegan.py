"""CycleGAN: Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks.

J.-Y. Zhu, T. Park, P. Isola, A. A. Efros. ICCV 2017. https://arxiv.org/abs/1703.10593

Two mappings G: X -> Y and F: Y -> X (``nets['gen']['a2b']``, ``['b2a']``) and two discriminators D_Y, D_X
(``nets['dis']['b']``, ``['a']``). Full objective (eq. 3), with the ``loss_weights`` keys:

    L = L_GAN(G, D_Y) + L_GAN(F, D_X)                          gan       (LSGAN, Sec. 4)
        + lambda ||F(G(x)) - x||_1 + lambda ||G(F(y)) - y||_1    cycle     lambda = 10
        + ||G(y) - y||_1 + ||F(x) - x||_1                       identity  0.5 * lambda = 5 (Sec. 5.2)

Defaults are the official code's (junyanz/pytorch-CycleGAN-and-pix2pix, ``cycle_gan_model.py`` and
``networks.py``): ResNet generator (9 blocks at 256 px, 6 at 128 px and below), 70x70 PatchGAN, instance
norm, least-squares GAN, image pool of 50, Adam lr 2e-4 betas (0.5, 0.999), lr constant for the first half
and linearly decayed to 0 over the second (the shipped configs set ``optim.lr_policy=linear`` and
``optim.decay_fraction = 0.5``). The paper's alternatives are configuration keys:
``model.gan_type`` (nsgan = the original GAN loss, wgan-gp), ``loss_weights.identity=0`` (no identity
term), ``model.direction=a2b`` with ``loss_weights.cycle=0`` (the "GAN alone" ablation of Sec. 5.1.4).

DiscoGAN (Kim et al. 2017) and DualGAN (Yi et al. 2017) are the same objective with other networks and
loss choices: see the shipped ``discogan_64.yaml`` and ``dualgan_256.yaml``, which say what they change.
"""

from __future__ import annotations

from dataclasses import dataclass

from unpaired.methods.base import METHODS
from unpaired.methods.one_to_one import OneToOne, OneToOneConfig


@dataclass
class CycleGANWeights:
    gan: float = 1.0
    cycle: float = 10.0
    """lambda_A = lambda_B = 10 (official train options)."""
    identity: float = 5.0
    """lambda_identity * lambda = 0.5 * 10 (official cycle_gan_model.py)."""
    gp: float = 10.0


@METHODS.register("cyclegan")
class CycleGAN(OneToOne):
    name = "cyclegan"
    Config = OneToOneConfig
    Weights = CycleGANWeights
    visual_names = ("x_a", "x_ab", "x_aba", "x_b", "x_ba", "x_bab")
