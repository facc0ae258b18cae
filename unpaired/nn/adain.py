"""Adaptive instance normalisation (AdaIN); the MLP that produces its parameters is ``nn.blocks.MLP``.

AdaIN (Huang & Belongie, ICCV 2017; used by MUNIT, Huang et al. ECCV 2018, eq. 7) normalises each
channel of each sample and applies an affine transform whose parameters come from outside the network:

    AdaIN(z, gamma, beta) = gamma * (z - mu(z)) / sigma(z) + beta

with mu, sigma the per-sample, per-channel mean and standard deviation over space. In MUNIT gamma and
beta are computed per sample by an MLP from the style code, so a batch may mix styles. The modules hold
no parameters of their own: ``assign_adain_params`` (or the ``adain_params`` context manager) sets
gamma and beta of every ``AdaptiveInstanceNorm2d`` in a network from one ``N x num_adain_params``
tensor before the network runs. The layout of that tensor follows the official MUNIT code
(NVlabs/MUNIT ``assign_adain_params``): module by module, in ``modules()`` order, first the C biases
(beta), then the C scales (gamma).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AdaptiveInstanceNorm2d(nn.Module):
    """Instance norm whose per-sample affine (``gamma``, ``beta``: N x C each) is assigned before use.

    Computed as one fused ``group_norm`` over the batch viewed as a single sample of N*C channels, one
    group per channel: each (sample, channel) plane is normalised and gets its own scale and shift, and
    backward keeps only the input. gamma/beta are cast to the input's dtype, so it runs under bf16
    autocast (where convs give bf16 features and the style MLP bf16 parameters) and in fp32 alike.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.gamma: Tensor | None = None
        self.beta: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.gamma is None or self.beta is None:
            raise RuntimeError("AdaptiveInstanceNorm2d: gamma/beta not assigned; use assign_adain_params() "
                               "(or the adain_params() context) before running the network")
        n, c, h, w = x.shape
        if self.gamma.shape != (n, c) or self.beta.shape != (n, c):
            raise ValueError(f"AdaIN parameters are {tuple(self.gamma.shape)} for features of shape "
                             f"{tuple(x.shape)}; expected ({n}, {c})")
        if not torch.is_grad_enabled():  # inference and export: the same maths, the batch size kept symbolic
            out = F.instance_norm(x, eps=self.eps)  # (group_norm's n * c groups would fix it in an exported graph)
            return out * self.gamma.to(x.dtype)[:, :, None, None] + self.beta.to(x.dtype)[:, :, None, None]
        out = F.group_norm(x.reshape(1, n * c, h, w), n * c, self.gamma.reshape(-1).to(x.dtype),
                           self.beta.reshape(-1).to(x.dtype), self.eps)
        return out.reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def adain_layers(module: nn.Module) -> list[AdaptiveInstanceNorm2d]:
    return [m for m in module.modules() if isinstance(m, AdaptiveInstanceNorm2d)]


def num_adain_params(module: nn.Module) -> int:
    """How many numbers per sample the AdaIN layers of ``module`` need (2 per channel: beta and gamma)."""
    return sum(2 * m.num_features for m in adain_layers(module))


def assign_adain_params(params: Tensor, module: nn.Module) -> None:
    """Split ``params`` (N x num_adain_params(module)) into beta, gamma of each AdaIN layer, in order."""
    total = num_adain_params(module)
    if params.dim() != 2 or params.shape[1] != total:
        raise ValueError(f"AdaIN parameters must be N x {total} for this network, got {tuple(params.shape)}")
    offset = 0
    for m in adain_layers(module):
        c = m.num_features
        m.beta = params[:, offset:offset + c]
        m.gamma = params[:, offset + c:offset + 2 * c]
        offset += 2 * c


def clear_adain_params(module: nn.Module) -> None:
    """Drop assigned parameters (and the autograd graph they hold) from every AdaIN layer."""
    for m in adain_layers(module):
        m.gamma = m.beta = None


@contextlib.contextmanager
def adain_params(module: nn.Module, params: Tensor) -> Iterator[nn.Module]:
    """``with adain_params(decoder, mlp(style)): y = decoder(content)``; cleared again on exit, so modules
    never keep tensors from an earlier call (and can be deep-copied, e.g. for EMA)."""
    assign_adain_params(params, module)
    try:
        yield module
    finally:
        clear_adain_params(module)
