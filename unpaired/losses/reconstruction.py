"""Reconstruction and variational terms (VAE, cycle consistency)."""

from __future__ import annotations

from torch import Tensor


def l1(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error: the image reconstruction and cycle terms of UNIT, MUNIT and CycleGAN."""
    return (output.float() - target.float()).abs().mean()


def kl_standard_normal(mu: Tensor, logvar: Tensor | None = None) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), averaged over every latent element.

    With ``logvar=None`` the posterior has unit variance (UNIT: z = mu + eps, eps ~ N(0, I)), and the KL
    reduces to mu^2 / 2. The official UNIT code uses mean(mu^2), twice this value.
    """
    mu = mu.float()
    if logvar is None:
        return 0.5 * (mu**2).mean()
    logvar = logvar.float()
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).mean()
