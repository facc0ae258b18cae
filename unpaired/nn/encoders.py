"""Image encoders: a 7x7 stem, stride-2 downsampling convs, then residual blocks."""

from __future__ import annotations

from torch import nn

from unpaired.nn.blocks import ConvBlock, ResBlocks


class DownsamplingEncoder(nn.Sequential):
    """x (C x H x W) -> features (dim * 2**n_down x H/2**n_down x W/2**n_down).

    The content encoder of MUNIT and the private encoder front of UNIT (Liu et al. 2017, Sec. 3; the
    official networks use a 7x7 stem, 4x4 stride-2 downsampling and 3x3 residual blocks).
    """

    def __init__(self, in_channels: int, dim: int, n_down: int, n_res: int, norm: str = "in",
                 activation: str = "relu", pad_type: str = "reflect") -> None:
        layers: list[nn.Module] = [ConvBlock(in_channels, dim, 7, 1, 3, norm, activation, pad_type)]
        for _ in range(n_down):
            layers.append(ConvBlock(dim, dim * 2, 4, 2, 1, norm, activation, pad_type))
            dim *= 2
        layers.append(ResBlocks(n_res, dim, norm, activation, pad_type))
        super().__init__(*layers)
        self.out_channels = dim
