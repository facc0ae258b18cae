"""Convolution, residual and normalisation blocks shared by every method.

The vocabulary follows the MUNIT/UNIT reference networks (Huang et al. 2018; Liu et al. 2017): a network
is a stack of ``ConvBlock`` (pad -> conv -> norm -> activation) and ``ResBlock``; norms and activations
are chosen by short names so configs can switch them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class LayerNorm(nn.Module):
    """Per-sample normalisation over (C, H, W) with a per-channel affine, as in the UNIT/MUNIT decoders.

    Unlike ``nn.LayerNorm`` the affine parameters do not depend on the spatial size, so one network
    serves any image size. Computed as a one-group ``group_norm``: the fused kernel applies the affine
    itself and keeps only its input for backward (the reference code's mean/std/affine chain keeps four
    full-size tensors). The reference divides by (std + eps) with an unbiased std; this uses the usual
    sqrt(var + eps), which differs by O(1/(C*H*W)).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, 1, self.gamma, self.beta, self.eps)


def make_norm(kind: str, channels: int) -> nn.Module:
    """'in' instance norm (no affine, as in the reference code), 'ln', 'bn', 'none', or 'adain' (instance norm
    with a per-sample affine assigned from outside, see ``unpaired.nn.adain``)."""
    if kind == "adain":
        from unpaired.nn.adain import AdaptiveInstanceNorm2d

        return AdaptiveInstanceNorm2d(channels)
    if kind == "in":
        return nn.InstanceNorm2d(channels)
    if kind == "ln":
        return LayerNorm(channels)
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; valid: in, ln, bn, none, adain")


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


def _compute_dtype(x: Tensor) -> torch.dtype:
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def _unpad(grad: Tensor, x: Tensor, pad: int, mode: str) -> Tensor:
    if pad == 0:
        return grad
    if mode == "reflect":
        return torch.ops.aten.reflection_pad2d_backward(grad, x, [pad] * 4)
    if mode == "replicate":
        return torch.ops.aten.replication_pad2d_backward(grad, x, [pad] * 4)
    return grad[..., pad:-pad, pad:-pad]


class _PaddedConv(torch.autograd.Function):
    """conv2d(pad(upsample(x))) that keeps x, not the padded (and upsampled) copy, for backward.

    A padded conv normally stores its padded input, and after a nearest x2 upsampling that copy is four
    times the size of x: together about a third of a UNIT generator's training memory. Padding and
    nearest upsampling are cheap to redo, so backward recomputes them. The backward is written with
    differentiable aten ops, so double backward (WGAN-GP, R1) works. Under autocast the conv runs in the
    autocast dtype, as ``F.conv2d`` would.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, pad: int, mode: str,
                scale: int) -> Tensor:
        dtype = _compute_dtype(x)
        x = x.to(dtype)
        ctx.save_for_backward(x, weight, bias)
        ctx.conf = (stride, pad, mode, dtype, scale)
        with torch.autocast(x.device.type, enabled=False):
            w = weight.to(dtype)
            b = bias.to(dtype) if bias is not None else None
            return F.conv2d(_expand(x, pad, mode, scale), w, b, stride)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        x, weight, bias = ctx.saved_tensors
        stride, pad, mode, dtype, scale = ctx.conf
        with torch.autocast(x.device.type, enabled=False):
            up = F.interpolate(x, scale_factor=scale, mode="nearest") if scale > 1 else x
            expanded = F.pad(up, (pad,) * 4, mode=mode) if pad else up
            mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias is not None and ctx.needs_input_grad[2]]
            g_expanded, g_weight, g_bias = torch.ops.aten.convolution_backward(
                grad.to(dtype), expanded, weight.to(dtype), [weight.shape[0]] if bias is not None else None,
                [stride, stride], [0, 0], [1, 1], False, [0, 0], 1, mask)
            g_x = None
            if g_expanded is not None:
                g_x = _unpad(g_expanded, up, pad, mode)
                if scale > 1:
                    g_x = torch.ops.aten.upsample_nearest2d_backward(g_x, list(up.shape[2:]), list(x.shape),
                                                                     float(scale), float(scale))
        return (g_x, g_weight.to(weight.dtype) if g_weight is not None else None,
                g_bias.to(bias.dtype) if g_bias is not None else None, None, None, None, None)


def _expand(x: Tensor, pad: int, mode: str, scale: int) -> Tensor:
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="nearest")
    return F.pad(x, (pad,) * 4, mode=mode) if pad else x


class PaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (optionally after a nearest x``upsample``) that stores no padded/upsampled copy."""

    def __init__(self, *args: object, upsample: int = 1, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        pad = self.padding[0]
        if self.upsample == 1 and (self.padding_mode == "zeros" or pad == 0):
            return super().forward(x)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        if not torch.is_grad_enabled():  # inference saves nothing for backward: the plain ops, which export reads
            return F.conv2d(_expand(x, pad, mode, self.upsample), self.weight, self.bias, self.stride[0])
        return _PaddedConv.apply(x, self.weight, self.bias, self.stride[0], pad, mode, self.upsample)


class ConvBlock(nn.Sequential):
    """[nearest x upsample ->] pad -> conv -> norm -> activation.

    ``spectral`` wraps the convolution in spectral normalisation.
    """

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
        upsample: int = 1,
    ) -> None:
        if pad_type not in PADDINGS:
            raise ValueError(f"unknown padding '{pad_type}'; valid: {', '.join(PADDINGS)}")
        # A bias right before a mean-subtracting norm is cancelled exactly: leave it out.
        conv = PaddedConv2d(in_channels, out_channels, kernel_size, stride, padding,
                            padding_mode=PADDINGS[pad_type], bias=norm not in ("bn", "in", "adain"),
                            upsample=upsample)
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


class Upsample2x(ConvBlock):
    """Nearest-neighbour x2 then a 5x5 conv (no checkerboard artefacts, unlike transposed convs)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "ln", activation: str = "relu",
                 pad_type: str = "zero") -> None:
        super().__init__(in_channels, out_channels, 5, 1, 2, norm, activation, pad_type, upsample=2)


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


class LinearBlock(nn.Sequential):
    """linear -> activation (the MLP layer of MUNIT; its LinearBlock's norm option is unused there)."""

    def __init__(self, in_features: int, out_features: int, activation: str = "relu") -> None:
        super().__init__(nn.Linear(in_features, out_features), make_activation(activation))


class MLP(nn.Sequential):
    """``n_layers`` linear layers: in -> dim (act) -> ... -> dim (act) -> out (no activation).

    MUNIT maps the style code (style_dim 8) to the decoder's AdaIN parameters with 3 layers of width 256
    (NVlabs/MUNIT configs: mlp_dim 256; networks.py: MLP(style_dim, num_adain_params, mlp_dim, 3)).
    Inputs may be N x D or N x D x 1 x 1 (the style encoder's output).
    """

    def __init__(self, in_features: int, out_features: int, dim: int = 256, n_layers: int = 3,
                 activation: str = "relu") -> None:
        if n_layers < 1:
            raise ValueError(f"an MLP needs at least one layer, got n_layers={n_layers}")
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(n_layers - 1):
            layers.append(LinearBlock(width, dim, activation))
            width = dim
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.flatten(1))
