"""Patch and multi-scale discriminators (pix2pixHD/UNIT/MUNIT style) and the multi-task discriminator of
StarGAN v2 that TUNIT uses (one output per domain).

Discriminators return raw logits; the adversarial objective lives in ``unpaired.losses.adversarial`` so
any discriminator can be trained with any GAN loss.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from unpaired.nn.blocks import PADDINGS, ConvBlock


class PatchDiscriminator(nn.Sequential):
    """``n_layers`` 4x4 stride-2 convs, ``n_stride1`` 4x4 stride-1 convs, then a ``head_kernel`` conv to one
    logit per patch. Every conv after the first doubles the channels; the first has no norm.

    The defaults (``n_stride1=0``, ``head_kernel=1``) are the UNIT/MUNIT patch discriminator. The 70x70
    PatchGAN of pix2pix/CycleGAN (C64-C128-C256 stride 2, C512 stride 1, then a 4x4 stride-1 conv to one
    channel; official ``NLayerDiscriminator``) is ``n_layers=3, n_stride1=1, head_kernel=4`` with zero
    padding and instance norm.
    """

    def __init__(self, in_channels: int, dim: int = 64, n_layers: int = 4, norm: str = "none",
                 activation: str = "lrelu", pad_type: str = "reflect", spectral: bool = False,
                 n_stride1: int = 0, head_kernel: int = 1) -> None:
        layers: list[nn.Module] = [ConvBlock(in_channels, dim, 4, 2, 1, "none", activation, pad_type, spectral)]
        for _ in range(n_layers - 1):
            layers.append(ConvBlock(dim, dim * 2, 4, 2, 1, norm, activation, pad_type, spectral))
            dim *= 2
        for _ in range(n_stride1):
            layers.append(ConvBlock(dim, dim * 2, 4, 1, 1, norm, activation, pad_type, spectral))
            dim *= 2
        head = nn.Conv2d(dim, 1, head_kernel, 1, (head_kernel - 1) // 2, padding_mode=PADDINGS[pad_type])
        layers.append(nn.utils.parametrizations.spectral_norm(head) if spectral else head)
        super().__init__(*layers)

    @staticmethod
    def output_size(size: int, n_layers: int, n_stride1: int = 0, head_kernel: int = 1) -> int:
        """Side of the logit map for an input of side ``size`` (< 1: the input is too small)."""
        for _ in range(n_layers):
            size //= 2
        size -= n_stride1
        return size - head_kernel + 1 + 2 * ((head_kernel - 1) // 2)


class MultiScaleDiscriminator(nn.Module):
    """One ``PatchDiscriminator`` per scale; scale k sees the image average-pooled k times by 2.

    Returns a list of logit maps, finest first. UNIT/MUNIT defaults: 3 scales, 4 layers, LSGAN.
    """

    def __init__(self, in_channels: int, dim: int = 64, n_layers: int = 4, num_scales: int = 3,
                 norm: str = "none", activation: str = "lrelu", pad_type: str = "reflect",
                 spectral: bool = False) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, dim, n_layers, norm, activation, pad_type, spectral)
            for _ in range(num_scales)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for k, dis in enumerate(self.scales):
            if k:
                x = self.downsample(x)
            outputs.append(dis(x))
        return outputs

    @staticmethod
    def smallest_input(n_layers: int, num_scales: int) -> int:
        """Smallest image side for which the coarsest scale still yields a 1x1 logit map."""
        return 2 ** (n_layers + num_scales - 1)


class PreActivationResBlock(nn.Module):
    """(x [-> 1x1 conv] [-> avg pool]) + (LReLU -> 3x3 conv [-> avg pool] -> LReLU -> 3x3 conv), over sqrt(2):
    the residual block of the StarGAN v2 discriminator (Choi et al., CVPR 2020) that TUNIT uses."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False) if in_channels != out_channels else None
        self.act = nn.LeakyReLU(0.2)  # not in place: x is also the shortcut

    def forward(self, x: Tensor) -> Tensor:
        skip = self.shortcut(x) if self.shortcut is not None else x
        h = self.conv1(self.act(x))
        if self.downsample:
            skip, h = F.avg_pool2d(skip, 2), F.avg_pool2d(h, 2)
        return (skip + self.conv2(self.act(h))) / math.sqrt(2)


class MultiTaskDiscriminator(nn.Sequential):
    """One real/fake logit per domain (N x K). A 3x3 conv, then per halving of the image a plain and a
    downsampling residual block (down to 4 x 4), LReLU, a 4x4 conv to 1 x 1, LReLU, a 1x1 conv to K outputs
    (StarGAN v2's discriminator, which TUNIT's official code uses, models/discriminator.py)."""

    def __init__(self, in_channels: int, image_size: int, k: int, dim: int, max_dim: int) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, dim, 3, 1, 1)]
        for _ in range(int(math.log2(image_size)) - 2):
            out = min(dim * 2, max_dim)
            layers += [PreActivationResBlock(dim, dim, False), PreActivationResBlock(dim, out, True)]
            dim = out
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(dim, dim, 4), nn.LeakyReLU(0.2), nn.Conv2d(dim, k, 1), nn.Flatten()]
        super().__init__(*layers)

    def judge(self, x: Tensor, domains: Tensor) -> Tensor:
        """Logit of output ``domains[n]`` for image n (N): each image judged by its own domain's output."""
        return self(x).gather(1, domains[:, None])[:, 0]
