"""GAN objectives on discriminator logits.

Every function takes logits as a tensor or a list of tensors (one per discriminator scale); the loss is
the mean over each map, summed over scales. Kinds:

- ``nsgan``: the original minimax GAN (Goodfellow et al. 2014) with the non-saturating generator loss,
  written with softplus: -log sigmoid(t) = softplus(-t).
- ``lsgan``: least squares (Mao et al. 2017) with targets 1 for real and 0 for fake.
- ``hinge``: hinge loss (Lim & Ye 2017; Miyato et al. 2018).
- ``wgan``: Wasserstein critic (Arjovsky et al. 2017); pair it with ``gradient_penalty`` for WGAN-GP
  (Gulrajani et al. 2017) or with spectral norm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

GAN_KINDS = ("nsgan", "lsgan", "hinge", "wgan", "wgan-gp")

Logits = Tensor | list[Tensor]


def _scales(logits: Logits) -> list[Tensor]:
    return list(logits) if isinstance(logits, (list, tuple)) else [logits]


def _check(kind: str) -> str:
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN objective '{kind}'; valid: {', '.join(GAN_KINDS)}")
    return "wgan" if kind == "wgan-gp" else kind


def discriminator_loss(real: Logits, fake: Logits, kind: str) -> Tensor:
    """Loss the discriminator minimises: real logits should read 'real', fake ones 'fake'."""
    kind = _check(kind)
    real_terms: dict[str, Callable[[Tensor], Tensor]] = {
        "nsgan": lambda t: F.softplus(-t).mean(),
        "lsgan": lambda t: ((t - 1) ** 2).mean(),
        "hinge": lambda t: F.relu(1 - t).mean(),
        "wgan": lambda t: -t.mean(),
    }
    fake_terms: dict[str, Callable[[Tensor], Tensor]] = {
        "nsgan": lambda t: F.softplus(t).mean(),
        "lsgan": lambda t: (t**2).mean(),
        "hinge": lambda t: F.relu(1 + t).mean(),
        "wgan": lambda t: t.mean(),
    }
    pairs = zip(_scales(real), _scales(fake), strict=True)
    return sum(real_terms[kind](r.float()) + fake_terms[kind](f.float()) for r, f in pairs)  # type: ignore[return-value]


def generator_loss(fake: Logits, kind: str) -> Tensor:
    """Loss the generator minimises so that its images read as real."""
    kind = _check(kind)
    terms: dict[str, Callable[[Tensor], Tensor]] = {
        "nsgan": lambda t: F.softplus(-t).mean(),
        "lsgan": lambda t: ((t - 1) ** 2).mean(),
        "hinge": lambda t: -t.mean(),
        "wgan": lambda t: -t.mean(),
    }
    return sum(terms[kind](f.float()) for f in _scales(fake))  # type: ignore[return-value]


def gradient_penalty(discriminator: Callable[[Tensor], Logits], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat of real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    outputs = _scales(discriminator(mixed))
    grads = torch.autograd.grad(sum(o.sum() for o in outputs), mixed, create_graph=True)[0]
    return ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(real_logits: Logits, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real images (``real`` must require grad)."""
    total = sum(o.sum() for o in _scales(real_logits))
    grads = torch.autograd.grad(total, real, create_graph=True)[0]
    return grads.pow(2).flatten(1).sum(1).mean()
