"""Patch and multi-scale discriminators (pix2pixHD/UNIT/MUNIT style).

Discriminators return raw logits; the adversarial objective lives in ``unpaired.losses.adversarial`` so
any discriminator can be trained with any GAN loss.
"""

from __future__ import annotations

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
