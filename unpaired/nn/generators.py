"""Image-to-image generators: the one-to-one family's (CycleGAN, DiscoGAN, DualGAN, DistanceGAN, GcGAN) and the
content + AdaIN generator of the style-based methods (MUNIT, TUNIT).

- ``ResnetGenerator``: the CycleGAN generator (Zhu et al. 2017, appendix 7.2, after Johnson et al. 2016):
  c7s1-dim, d(2 dim), d(4 dim), R(4 dim) x n_res, u(2 dim), u(dim), c7s1-C tanh.
- ``UNetGenerator``: stride-2 4x4 convs down, stride-2 4x4 transposed convs up. With ``skips`` it is the
  U-Net of pix2pix (Isola et al. 2017) that DualGAN uses (Yi et al. 2017, Sec. 4); without, it is DiscoGAN's
  encoder-decoder (Kim et al. 2017, Sec. 4).

All of them are built from the shared ``ConvBlock`` / ``ResBlocks`` plus the transposed-convolution block
below, and map images in [-1, 1] to images in [-1, 1].

- ``AdaINGenerator``: a content encoder (instance norm) and a decoder whose residual (and optionally upsampling)
  blocks are AdaIN, with the MLP that turns a style code into their parameters (MUNIT, Huang et al. 2018,
  Sec. 3.2; TUNIT's generator is the same design), optionally with a style encoder of its own (MUNIT's E^s).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from unpaired.nn.adain import adain_params, num_adain_params
from unpaired.nn.blocks import MLP, ConvBlock, ResBlocks, make_activation, make_norm
from unpaired.nn.decoders import UpsamplingDecoder
from unpaired.nn.encoders import DownsamplingEncoder

UPSAMPLING = ("transpose", "nearest")


class TransposedConvBlock(nn.Sequential):
    """x2 transposed conv -> norm -> activation [-> dropout].

    ``kernel_size`` 3 (CycleGAN: padding 1, output padding 1) or 4 (pix2pix/DiscoGAN: padding 1); both give
    exactly twice the input size. The bias is left out before a mean-subtracting norm, which cancels it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, norm: str = "in",
                 activation: str = "relu", dropout: float = 0.0) -> None:
        if kernel_size not in (3, 4):
            raise ValueError(f"transposed conv kernel must be 3 or 4, got {kernel_size}")
        conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, 2, 1, output_padding=kernel_size % 2,
                                  bias=norm not in ("bn", "in"))
        layers = [conv, make_norm(norm, out_channels), make_activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


def upsampling_block(in_channels: int, out_channels: int, norm: str, mode: str, pad_type: str) -> nn.Module:
    """'transpose': 3x3 transposed conv (CycleGAN); 'nearest': nearest x2 then a 3x3 conv (no checkerboard
    artefacts; Odena et al. 2016)."""
    if mode == "transpose":
        return TransposedConvBlock(in_channels, out_channels, 3, norm, "relu")
    if mode == "nearest":
        return ConvBlock(in_channels, out_channels, 3, 1, 1, norm, "relu", pad_type, upsample=2)
    raise ValueError(f"unknown upsampling '{mode}'; valid: {', '.join(UPSAMPLING)}")


class ResnetGenerator(nn.Sequential):
    """CycleGAN's generator: 7x7 stem, ``n_down`` 3x3 stride-2 convs, ``n_res`` residual blocks, ``n_down``
    x2 upsamplings, 7x7 conv to tanh.

    As in the official code (junyanz/pytorch-CycleGAN-and-pix2pix, ``ResnetGenerator``) the 7x7 convs and
    the residual blocks use ``pad_type`` (reflect) padding and the stride-2 convs zero padding.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int = 64, n_down: int = 2, n_res: int = 9,
                 norm: str = "in", pad_type: str = "reflect", upsample: str = "transpose") -> None:
        layers: list[nn.Module] = [ConvBlock(in_channels, dim, 7, 1, 3, norm, "relu", pad_type)]
        for _ in range(n_down):
            layers.append(ConvBlock(dim, dim * 2, 3, 2, 1, norm, "relu", "zero"))
            dim *= 2
        layers.append(ResBlocks(n_res, dim, norm, "relu", pad_type))
        for _ in range(n_down):
            layers.append(upsampling_block(dim, dim // 2, norm, upsample, pad_type))
            dim //= 2
        layers.append(ConvBlock(dim, out_channels, 7, 1, 3, "none", "tanh", pad_type))
        super().__init__(*layers)


class UNetGenerator(nn.Module):
    """``n_down`` levels of 4x4 stride-2 conv (LeakyReLU 0.2) down and 4x4 stride-2 transposed conv (ReLU) up.

    Level i has ``dim * min(2**i, 8)`` channels. The outermost down conv and the innermost level have no
    norm (pix2pix; the innermost level is 1x1 for 8 levels at 256 px). With ``skips`` each up conv after the
    innermost one also sees the mirrored down features (concatenated), as in pix2pix/DualGAN; without, it is
    DiscoGAN's encoder-decoder. ``dropout`` (DualGAN's noise z, p = 0.5) is applied after the three innermost
    up convs, as in DualGAN's released generator (d1-d3).
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int = 64, n_down: int = 8, norm: str = "bn",
                 skips: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if n_down < 1:
            raise ValueError(f"a U-Net needs at least one level, got n_down={n_down}")
        self.skips = skips
        channels = [dim * min(2**i, 8) for i in range(n_down)]
        self.down = nn.ModuleList()
        previous = in_channels
        for i, c in enumerate(channels):
            plain = i == 0 or i == n_down - 1
            self.down.append(ConvBlock(previous, c, 4, 2, 1, "none" if plain else norm, "lrelu", "zero"))
            previous = c
        self.up = nn.ModuleList()
        for i in reversed(range(1, n_down)):
            width = channels[i] * (2 if skips and i < n_down - 1 else 1)
            self.up.append(TransposedConvBlock(width, channels[i - 1], 4, norm, "relu",
                                               dropout if i >= n_down - 3 else 0.0))
        width = channels[0] * (2 if skips and n_down > 1 else 1)
        self.out = nn.Sequential(nn.ConvTranspose2d(width, out_channels, 4, 2, 1), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        features = []
        for block in self.down:
            x = block(x)
            features.append(x)
        features.pop()  # the innermost output is x itself
        for block in self.up:
            x = block(x)
            skip = features.pop()
            if self.skips:
                x = torch.cat([x, skip], 1)
        return self.out(x)


class AdaINGenerator(nn.Module):
    """G(c, s): ``content`` (E^c, instance norm, ``n_down`` halvings and ``n_res`` residual blocks), ``decoder``
    (``n_res`` AdaIN residual blocks and ``n_down`` upsamplings, normalised by ``up_norm``) and the ``mlp`` that
    turns a style code (``style_dim``) into the decoder's AdaIN parameters. ``style_encoder``, when given, builds
    a ``style`` module (E^s) right after the content encoder (MUNIT; TUNIT's styles come from its guiding network).

    ``content_channels`` (default ``channels``): channels of what the content encoder reads, when that is not an
    image of the output domain (TransGaGa's rendered landmark maps).

    The submodule names (``content``, ``style``, ``decoder``, ``mlp``) are the checkpoints' parameter names.
    """

    def __init__(self, channels: int, dim: int, n_down: int, n_res: int, style_dim: int, mlp_dim: int,
                 mlp_layers: int, activation: str = "relu", pad_type: str = "reflect", up_norm: str = "ln",
                 style_encoder: Callable[[], nn.Module] | None = None, content_channels: int | None = None) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.content = DownsamplingEncoder(content_channels or channels, dim, n_down, n_res, "in", activation,
                                           pad_type)
        if style_encoder is not None:
            self.style = style_encoder()
        self.decoder = UpsamplingDecoder(self.content.out_channels, channels, n_down, n_res, "adain", activation,
                                         pad_type, up_norm=up_norm)
        self.mlp = MLP(style_dim, num_adain_params(self.decoder), mlp_dim, mlp_layers, activation)

    def decode(self, content: Tensor, style: Tensor) -> Tensor:
        """G(c, s): sample i of ``content`` is decoded with style code i (N x style_dim)."""
        with adain_params(self.decoder, self.mlp(style)):
            return self.decoder(content)

    def decode_with_styles(self, content: Tensor, styles: Tensor, paired: bool = False) -> Tensor:
        """Every content code with every style code (K x style_dim, or style_dim for one; N x style_dim x 1 x 1
        is read as N x style_dim): N*K images, input-major (``out[i * K + k]`` is content i in style k). With
        ``paired``, content i with style i only (K = N codes): N images."""
        styles = self.check_styles(styles)
        styles = styles.to(device=content.device, dtype=content.dtype)
        n, k = content.shape[0], styles.shape[0]
        if paired:
            if k != n:
                raise ValueError(f"paired styles need one code per input: {n} inputs, {k} codes")
            return self.decode(content, styles)
        return self.decode(content.repeat_interleave(k, 0), styles.repeat(n, 1))

    def check_styles(self, styles: Tensor) -> Tensor:
        """Style codes as K x style_dim, or a ValueError naming the shape expected."""
        if styles.dim() == 4 and styles.shape[2:] == (1, 1):
            styles = styles.flatten(1)
        if styles.dim() == 1:
            styles = styles[None]
        if styles.dim() != 2 or styles.shape[1] != self.style_dim:
            raise ValueError(f"style codes must be K x {self.style_dim} (or {self.style_dim} for one), "
                             f"got {tuple(styles.shape)}")
        return styles
