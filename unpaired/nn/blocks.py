"""Convolution, residual and normalisation blocks shared by every method.

The vocabulary follows the MUNIT/UNIT reference networks (Huang et al. 2018; Liu et al. 2017): a network
is a stack of ``ConvBlock`` (pad -> conv -> norm -> activation) and ``ResBlock``; norms and activations
are chosen by short names so configs can switch them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class LayerNorm(nn.Module):
    """Per-sample normalisation over (C, H, W) with a per-channel affine, as in the UNIT/MUNIT decoders.

    Unlike ``nn.LayerNorm`` the affine parameters do not depend on the spatial size, so one network
    serves any image size.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.layer_norm(x, x.shape[1:], eps=self.eps)
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def make_norm(kind: str, channels: int) -> nn.Module:
    """'in' instance norm (no affine, as in the reference code), 'ln', 'bn' or 'none'."""
    if kind == "in":
        return nn.InstanceNorm2d(channels)
    if kind == "ln":
        return LayerNorm(channels)
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; valid: in, ln, bn, none")


def make_activation(kind: str) -> nn.Module:
    """'relu', 'lrelu' (slope 0.2), 'prelu', 'selu', 'tanh' or 'none'."""
    table = {
        "relu": lambda: nn.ReLU(inplace=True),
        "lrelu": lambda: nn.LeakyReLU(0.2, inplace=True),
        "prelu": nn.PReLU,
        "selu": lambda: nn.SELU(inplace=True),
        "tanh": nn.Tanh,
        "none": nn.Identity,
    }
    if kind not in table:
        raise ValueError(f"unknown activation '{kind}'; valid: {', '.join(table)}")
    return table[kind]()


PADDINGS = {"reflect": "reflect", "replicate": "replicate", "zero": "zeros"}


class ConvBlock(nn.Sequential):
    """pad -> conv -> norm -> activation; ``spectral`` wraps the convolution in spectral normalisation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        norm: str = "none",
        activation: str = "relu",
        pad_type: str = "zero",
        spectral: bool = False,
    ) -> None:
        if pad_type not in PADDINGS:
            raise ValueError(f"unknown padding '{pad_type}'; valid: {', '.join(PADDINGS)}")
        # A bias right before a mean-subtracting norm is cancelled exactly: leave it out.
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                         padding_mode=PADDINGS[pad_type], bias=norm not in ("bn", "in"))
        super().__init__(
            spectral_norm(conv) if spectral else conv,
            make_norm(norm, out_channels),
            make_activation(activation),
        )


class ResBlock(nn.Module):
    """x + conv3x3(norm, act) -> conv3x3(norm, no act): the residual block of UNIT/MUNIT/CycleGAN."""

    def __init__(self, channels: int, norm: str = "in", activation: str = "relu", pad_type: str = "zero") -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBlock(channels, channels, 3, 1, 1, norm, activation, pad_type),
            ConvBlock(channels, channels, 3, 1, 1, norm, "none", pad_type),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResBlocks(nn.Sequential):
    def __init__(self, count: int, channels: int, norm: str = "in", activation: str = "relu",
                 pad_type: str = "zero") -> None:
        super().__init__(*(ResBlock(channels, norm, activation, pad_type) for _ in range(count)))


class Upsample2x(nn.Sequential):
    """Nearest-neighbour x2 then a 5x5 conv (no checkerboard artefacts, unlike transposed convs)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "ln", activation: str = "relu",
                 pad_type: str = "zero") -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvBlock(in_channels, out_channels, 5, 1, 2, norm, activation, pad_type),
        )


def init_weights(module: nn.Module, kind: str = "kaiming", gain: float = 0.02) -> None:
    """Initialise conv/linear weights in place: 'kaiming', 'gaussian' (std=gain), 'xavier', 'orthogonal'.

    Biases start at zero. Spectral-normalised convs are initialised through their original weight.
    """
    for m in module.modules():
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            continue
        weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        with torch.no_grad():
            if kind == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif kind == "gaussian":
                nn.init.normal_(weight, 0.0, gain)
            elif kind == "xavier":
                nn.init.xavier_normal_(weight, gain=math.sqrt(2))
            elif kind == "orthogonal":
                nn.init.orthogonal_(weight, gain=math.sqrt(2))
            else:
                raise ValueError(f"unknown init '{kind}'; valid: kaiming, gaussian, xavier, orthogonal")
            if m.bias is not None:
                m.bias.zero_()
