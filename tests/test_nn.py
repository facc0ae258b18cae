"""Shared building blocks (unpaired.nn): shapes, normalisation, initialisation and name errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unpaired.nn.blocks import (
    ConvBlock,
    LayerNorm,
    ResBlock,
    ResBlocks,
    Upsample2x,
    init_weights,
    make_activation,
    make_norm,
)
from unpaired.nn.decoders import UpsamplingDecoder
from unpaired.nn.discriminators import MultiScaleDiscriminator, PatchDiscriminator
from unpaired.nn.encoders import DownsamplingEncoder


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -------------------- blocks


@pytest.mark.parametrize(("kernel", "stride", "padding", "size", "out_size"),
                         [(3, 1, 1, 16, 16), (4, 2, 1, 16, 8), (7, 1, 3, 10, 10), (1, 1, 0, 5, 5)])
@pytest.mark.parametrize("pad_type", ["zero", "reflect", "replicate"])
def test_conv_block_shape(kernel, stride, padding, size, out_size, pad_type):
    block = ConvBlock(3, 5, kernel, stride, padding, norm="in", activation="lrelu", pad_type=pad_type)
    assert block(torch.randn(2, 3, size, size)).shape == (2, 5, out_size, out_size)


def test_conv_block_layers_and_bias():
    conv, norm, act = ConvBlock(3, 4, 3, 1, 1, norm="in", activation="tanh")
    assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.InstanceNorm2d) and isinstance(act, nn.Tanh)
    assert conv.bias is None  # cancelled by the mean-subtracting norm
    conv, norm, act = ConvBlock(3, 4, 3, 1, 1, norm="ln", activation="none", pad_type="reflect")
    assert conv.bias is not None and conv.padding_mode == "reflect"
    assert isinstance(norm, LayerNorm) and isinstance(act, nn.Identity)
    assert ConvBlock(3, 4, 3, norm="bn")[0].bias is None
    assert ConvBlock(3, 4, 3, norm="none")[0].bias is not None


def test_conv_block_tanh_output_range():
    y = ConvBlock(3, 2, 3, 1, 1, activation="tanh")(10 * torch.randn(2, 3, 8, 8))
    assert y.abs().max() <= 1


def test_conv_block_spectral_norm():
    block = ConvBlock(3, 4, 3, 1, 1, spectral=True)
    assert hasattr(block[0], "parametrizations")
    block(torch.randn(1, 3, 8, 8))  # power iteration runs
    sigma = torch.linalg.matrix_norm(block[0].weight.detach().flatten(1), ord=2)
    assert sigma == pytest.approx(1.0, abs=0.1)


def _reference(block: nn.Module, pad: int, pad_type: str, upsample: bool):
    """The same computation from plain torch ops, with the block's own weights: [nearest x2] -> pad -> conv
    (no padding) -> the block's norm and activation."""
    conv = next(m for m in block.modules() if isinstance(m, nn.Conv2d))
    norm, act = [m for m in block.modules() if not isinstance(m, (nn.Conv2d, nn.Sequential, nn.Upsample))][-2:]
    mode = {"zero": "constant", "reflect": "reflect", "replicate": "replicate"}[pad_type]

    def run(x):
        if upsample:
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        x = nn.functional.conv2d(nn.functional.pad(x, (pad,) * 4, mode=mode), conv.weight, conv.bias, conv.stride)
        return act(norm(x))

    return run


@pytest.mark.parametrize("pad_type", ["zero", "reflect", "replicate"])
@pytest.mark.parametrize(("kind", "stride"), [("conv", 1), ("conv", 2), ("up", 1)])
def test_conv_block_matches_plain_ops_with_gradients(pad_type, kind, stride):
    """Forward, backward and double backward (WGAN-GP/R1 differentiate through input gradients) equal those
    of pad + conv written with plain torch ops, for every padding and for the upsampling block."""
    if kind == "up":
        block = Upsample2x(3, 4, norm="ln", activation="lrelu", pad_type=pad_type).double()
        reference = _reference(block, 2, pad_type, upsample=True)
    else:
        block = ConvBlock(3, 4, 3, stride, 1, norm="none", activation="lrelu", pad_type=pad_type).double()
        reference = _reference(block, 1, pad_type, upsample=False)
    params = list(block.parameters())
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    probe = torch.randn_like(block(x))

    def grads(fn):
        y = fn(x)
        g = torch.autograd.grad((y * probe).sum(), [x, *params], create_graph=True)
        penalty = g[0].pow(2).sum()  # a gradient penalty on the input gradient
        return (y, *g, *torch.autograd.grad(penalty, [x, *params]))

    for got, want in zip(grads(block), grads(reference), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_res_block_keeps_shape_and_is_residual():
    block = ResBlock(6, norm="in", pad_type="reflect")
    x = torch.randn(2, 6, 8, 8)
    assert block(x).shape == x.shape
    with torch.no_grad():  # zero body -> identity
        for p in block.body.parameters():
            p.zero_()
    assert torch.equal(block(x), x)
    blocks = ResBlocks(3, 6)
    assert len(blocks) == 3 and blocks(x).shape == x.shape
    assert len(list(ResBlocks(0, 6).parameters())) == 0


def test_upsample2x_shape():
    assert Upsample2x(8, 4)(torch.randn(2, 8, 5, 7)).shape == (2, 4, 10, 14)


def test_layer_norm_normalises_each_sample_over_chw():
    norm = LayerNorm(4)
    x = torch.randn(3, 4, 5, 6) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1, 1, 1) + torch.tensor(
        [0.0, 5.0, -50.0]).view(3, 1, 1, 1)
    y = norm(x)
    flat = y.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.var(1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    # per sample: changing one sample leaves the others' outputs alone (unlike batch norm)
    x2 = x.clone()
    x2[0] *= 1000
    torch.testing.assert_close(norm(x2)[1:], y[1:])
    # not per channel: channels keep their relative offsets
    x3 = torch.randn(1, 4, 5, 6)
    x3[:, 0] += 10
    assert norm(x3)[0, 0].mean() > 1


def test_layer_norm_affine_is_per_channel_and_size_independent():
    norm = LayerNorm(3)
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([1.0, 2.0, 3.0]))
        norm.beta.copy_(torch.tensor([0.0, 1.0, -1.0]))
    for size in (4, 9):
        x = torch.randn(2, 3, size, size)
        plain = nn.functional.layer_norm(x, x.shape[1:])
        expected = plain * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + torch.tensor([0.0, 1.0, -1.0]).view(
            1, 3, 1, 1)
        torch.testing.assert_close(norm(x), expected)
    assert [p.shape for p in norm.parameters()] == [(3,), (3,)]


# -------------------- networks


@pytest.mark.parametrize(("in_ch", "dim", "n_down", "n_res", "size"),
                         [(3, 8, 2, 1, 32), (1, 4, 1, 0, 16), (3, 6, 3, 2, 24)])
def test_downsampling_encoder_shape(in_ch, dim, n_down, n_res, size):
    enc = DownsamplingEncoder(in_ch, dim, n_down, n_res)
    assert enc.out_channels == dim * 2**n_down
    y = enc(torch.randn(2, in_ch, size, size))
    assert y.shape == (2, dim * 2**n_down, size // 2**n_down, size // 2**n_down)


@pytest.mark.parametrize(("dim", "out_ch", "n_up", "n_res", "size"), [(32, 3, 2, 1, 8), (16, 1, 1, 0, 5)])
def test_upsampling_decoder_shape_and_range(dim, out_ch, n_up, n_res, size):
    dec = UpsamplingDecoder(dim, out_ch, n_up, n_res)
    y = dec(torch.randn(2, dim, size, size))
    assert y.shape == (2, out_ch, size * 2**n_up, size * 2**n_up)
    assert y.abs().max() <= 1


def test_encoder_decoder_round_trip_shape():
    enc = DownsamplingEncoder(3, 8, 2, 1)
    dec = UpsamplingDecoder(enc.out_channels, 1, 2, 1)
    assert dec(enc(torch.randn(1, 3, 20, 28))).shape == (1, 1, 20, 28)


def test_patch_discriminator_shape():
    dis = PatchDiscriminator(3, dim=4, n_layers=3)
    assert dis(torch.randn(2, 3, 32, 32)).shape == (2, 1, 4, 4)


def test_multiscale_discriminator_maps():
    dis = MultiScaleDiscriminator(3, dim=4, n_layers=2, num_scales=3)
    outputs = dis(torch.randn(2, 3, 32, 32))
    assert isinstance(outputs, list) and len(outputs) == 3
    # scale k sees the image pooled k times (32, 16, 8); 2 stride-2 layers divide by 4
    assert [tuple(o.shape) for o in outputs] == [(2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2)]
    assert len(dis.scales) == 3


def test_multiscale_discriminator_one_channel_non_square():
    dis = MultiScaleDiscriminator(1, dim=4, n_layers=2, num_scales=2)
    outputs = dis(torch.randn(1, 1, 16, 32))
    assert [tuple(o.shape) for o in outputs] == [(1, 1, 4, 8), (1, 1, 2, 4)]


@pytest.mark.parametrize(("n_layers", "num_scales"), [(2, 2), (2, 3), (3, 2), (4, 3)])
def test_smallest_input(n_layers, num_scales):
    side = MultiScaleDiscriminator.smallest_input(n_layers, num_scales)
    assert side == 2 ** (n_layers + num_scales - 1)
    dis = MultiScaleDiscriminator(1, dim=2, n_layers=n_layers, num_scales=num_scales)
    outputs = dis(torch.randn(1, 1, side, side))
    assert outputs[-1].shape[-2:] == (1, 1)
    with pytest.raises(RuntimeError):  # half that leaves the coarsest scale nothing to look at
        dis(torch.randn(1, 1, side // 2, side // 2))


def test_spectral_discriminator_runs():
    dis = MultiScaleDiscriminator(3, dim=4, n_layers=2, num_scales=2, spectral=True)
    assert [tuple(o.shape) for o in dis(torch.randn(2, 3, 16, 16))] == [(2, 1, 4, 4), (2, 1, 2, 2)]


# -------------------- initialisation


def _big_modules():
    return nn.Sequential(nn.Conv2d(64, 64, 3), nn.Linear(256, 128))


def test_init_gaussian():
    net = _big_modules()
    init_weights(net, "gaussian", gain=0.02)
    for m in net:
        assert m.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert abs(m.weight.mean().item()) < 0.002
        assert torch.count_nonzero(m.bias) == 0


def test_init_kaiming():
    net = _big_modules()
    init_weights(net, "kaiming")
    conv, linear = net
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert linear.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0


def test_init_xavier():
    net = _big_modules()
    init_weights(net, "xavier")
    conv, linear = net
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2) * math.sqrt(2 / (64 * 9 + 64 * 9)), rel=0.05)
    assert linear.weight.std().item() == pytest.approx(math.sqrt(2) * math.sqrt(2 / (256 + 128)), rel=0.05)


def test_init_orthogonal():
    linear = nn.Linear(64, 16)
    init_weights(linear, "orthogonal")
    w = linear.weight.detach()
    torch.testing.assert_close(w @ w.T, 2 * torch.eye(16), atol=1e-4, rtol=0)


def test_init_reaches_spectral_norm_and_skips_norm_layers():
    block = ConvBlock(32, 32, 3, 1, 1, norm="ln", spectral=True)
    ln_gamma = block[1].gamma.detach().clone()
    init_weights(block, "gaussian", gain=0.5)
    assert block[0].parametrizations.weight.original.std().item() == pytest.approx(0.5, rel=0.1)
    assert torch.equal(block[1].gamma, ln_gamma)


def test_init_unknown_kind_lists_valid():
    with pytest.raises(ValueError, match=r"unknown init 'uniform'; valid: kaiming, gaussian, xavier, orthogonal"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")


# -------------------- names


def test_norm_and_activation_names():
    assert isinstance(make_norm("in", 3), nn.InstanceNorm2d)
    assert isinstance(make_norm("bn", 3), nn.BatchNorm2d)
    assert isinstance(make_norm("ln", 3), LayerNorm)
    assert isinstance(make_norm("none", 3), nn.Identity)
    for name, cls in [("relu", nn.ReLU), ("lrelu", nn.LeakyReLU), ("prelu", nn.PReLU), ("selu", nn.SELU),
                      ("tanh", nn.Tanh), ("none", nn.Identity)]:
        assert isinstance(make_activation(name), cls)
    assert make_activation("lrelu").negative_slope == 0.2


def test_unknown_norm_lists_valid():
    with pytest.raises(ValueError, match="unknown norm 'group'; valid: in, ln, bn, none"):
        ConvBlock(3, 4, 3, norm="group")


def test_unknown_activation_lists_valid():
    with pytest.raises(ValueError, match="unknown activation 'gelu'; valid: relu, lrelu, prelu, selu, tanh, none"):
        ConvBlock(3, 4, 3, activation="gelu")


def test_unknown_padding_lists_valid():
    with pytest.raises(ValueError, match="unknown padding 'circular'; valid: reflect, replicate, zero"):
        ConvBlock(3, 4, 3, pad_type="circular")
    with pytest.raises(ValueError, match="unknown padding"):
        DownsamplingEncoder(3, 4, 1, 0, pad_type="zeros")
