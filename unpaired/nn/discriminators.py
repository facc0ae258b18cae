"""Patch and multi-scale discriminators (pix2pixHD/UNIT/MUNIT style).

Discriminators return raw logits; the adversarial objective lives in ``unpaired.losses.adversarial`` so
any discriminator can be trained with any GAN loss.
"""

from __future__ import annotations

from torch import Tensor, nn

from unpaired.nn.blocks import ConvBlock


class PatchDiscriminator(nn.Sequential):
    """``n_layers`` 4x4 stride-2 convs then a 1x1 conv to one logit per patch."""

    def __init__(self, in_channels: int, dim: int = 64, n_layers: int = 4, norm: str = "none",
                 activation: str = "lrelu", pad_type: str = "reflect", spectral: bool = False) -> None:
        layers: list[nn.Module] = [ConvBlock(in_channels, dim, 4, 2, 1, "none", activation, pad_type, spectral)]
        for _ in range(n_layers - 1):
            layers.append(ConvBlock(dim, dim * 2, 4, 2, 1, norm, activation, pad_type, spectral))
            dim *= 2
        head = nn.Conv2d(dim, 1, 1)
        layers.append(nn.utils.parametrizations.spectral_norm(head) if spectral else head)
        super().__init__(*layers)


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
