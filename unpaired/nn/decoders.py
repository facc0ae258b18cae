"""Image decoders: residual blocks, nearest x2 upsampling + 5x5 convs, then a 7x7 conv to tanh."""

from __future__ import annotations

from torch import nn

from unpaired.nn.blocks import ConvBlock, ResBlocks, Upsample2x


class UpsamplingDecoder(nn.Sequential):
    """features (dim x h x w) -> image (out_channels x h*2**n_up x w*2**n_up) in [-1, 1].

    The decoder of UNIT/MUNIT: residual blocks with ``res_norm`` (instance norm in UNIT, AdaIN in
    MUNIT), then upsampling blocks with ``up_norm``: layer norm, as in the official networks (TUNIT's
    official decoder uses AdaIN there too).
    """

    def __init__(self, dim: int, out_channels: int, n_up: int, n_res: int, res_norm: str = "in",
                 activation: str = "relu", pad_type: str = "reflect", up_norm: str = "ln") -> None:
        layers: list[nn.Module] = [ResBlocks(n_res, dim, res_norm, activation, pad_type)]
        for _ in range(n_up):
            layers.append(Upsample2x(dim, dim // 2, up_norm, activation, pad_type))
            dim //= 2
        layers.append(ConvBlock(dim, out_channels, 7, 1, 3, "none", "tanh", pad_type))
        super().__init__(*layers)
