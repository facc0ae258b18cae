"""TUNIT's guiding network and the queue of keys its style codes are contrasted against.

Baek et al., "Rethinking the Truly Unsupervised Image-to-Image Translation", ICCV 2021, Sec. 3.1
(https://arxiv.org/abs/2006.06500; official code github.com/clovaai/tunit, models/guidingNet.py): one trunk,
VGG11 with batch norm, serves two heads: the domain head (K logits, the pseudo domain of an image) and the style
head (the style code). The key queue is MoCo's (He et al., CVPR 2020) memory of the keys of earlier batches.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unpaired.nn.blocks import ConvBlock

VGG11_CONVS = (1, 1, 2, 2, 2)
"""3x3 convs per stage of VGG11 (each stage ends with a 2x2 max pooling); widths dim x 1, 2, 4, 8, 8."""


class GuidingNetwork(nn.Module):
    """E: a VGG11-BN ``trunk`` (``stages`` of 3x3 conv-BN-ReLU blocks, each ended by 2x2 max pooling), global
    average pooling, and two linear heads: ``domain`` (K logits) and ``style`` (the style code). Initialised as
    the official GuidingNet: kaiming (fan out) convs, N(0, 0.01) linear weights, zero biases."""

    def __init__(self, in_channels: int, dim: int, stages: int, k: int, style_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for stage, convs in enumerate(VGG11_CONVS[:stages]):
            out = dim * min(2**stage, 8)
            for _ in range(convs):
                layers.append(ConvBlock(width, out, 3, 1, 1, "bn", "relu", "zero"))
                width = out
            layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.trunk = nn.Sequential(*layers)
        self.domain = nn.Linear(width, k)
        self.style = nn.Linear(width, style_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(domain logits N x K, style codes N x style_dim), from one pass of the trunk."""
        features = self.trunk(x)
        return self.domain(features), self.style(features)

    def encode_style(self, x: Tensor) -> Tensor:
        return self.style(self.trunk(x))


class KeyQueue(nn.Module):
    """The last ``size`` style keys, oldest first (MoCo's queue of negatives), in checkpointed buffers."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def negatives(self) -> Tensor:
        return self.keys[:int(self.count)]

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        """Append ``keys`` (N x dim); beyond ``size`` the oldest are dropped."""
        kept = torch.cat([self.negatives(), keys.detach().to(self.keys.dtype)])[-len(self.keys):]
        self.keys[:len(kept)] = kept
        self.count.fill_(len(kept))
