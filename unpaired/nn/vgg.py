"""VGG16 convolutional features (Simonyan & Zisserman, ICLR 2015) for perceptual losses and distances.

The weights are never downloaded: ``load_vgg16_features(path)`` reads a state_dict the user provides, in
the layout of torchvision's ``vgg16`` (keys ``features.0.weight`` ... ``features.28.bias``; the
``classifier.*`` keys of a full model are ignored, and keys without the ``features.`` prefix are accepted).
Inputs are images in [-1, 1] with 1 or 3 channels; gray is repeated to RGB and the images are normalised
with the ImageNet mean/std that torchvision's weights expect.

MUNIT's official code uses a Caffe-converted VGG16 with BGR inputs in [0, 255]; the architecture is the
same, only the input convention follows the weights, so torchvision-layout weights use torchvision's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

# 13 convs in 5 stages; a max-pool ends each stage
_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> dict[str, int]:
    """'relu{stage}_{k}' -> index of that ReLU in ``features`` (torchvision's numbering)."""
    names, index = {}, 0
    for s, widths in enumerate(_STAGES, 1):
        for k in range(1, len(widths) + 1):
            names[f"relu{s}_{k}"] = index + 1  # conv at index, its ReLU right after
            index += 2
        index += 1  # max-pool
    return names


LAYERS = _layer_names()
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
"""The five VGG layers LPIPS (Zhang et al., CVPR 2018) compares."""


def layer_stride(layer: str) -> int:
    """Downsampling factor of a layer's feature map relative to the input (2 per max-pool before it)."""
    return 2 ** (int(layer.removeprefix("relu").split("_")[0]) - 1)


class VGG16Features(nn.Module):
    """``forward(x)`` -> list of feature maps at ``layers`` (names like 'relu4_3'), in the order given.

    Only the layers up to the deepest requested one run. All 13 convs are present whatever ``layers``
    says, so any VGG16 ``features`` state_dict loads.
    """

    def __init__(self, layers: Sequence[str] = ("relu5_3",)) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG16 layer(s) {', '.join(unknown) or '(none given)'}; "
                             f"valid: {', '.join(LAYERS)}")
        self.layers = tuple(layers)
        modules: list[nn.Module] = []
        width = 3
        for widths in _STAGES:
            for out in widths:
                modules += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU()]
                width = out
            modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        wanted = {LAYERS[name]: name for name in self.layers}
        found: dict[str, Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                found[wanted[index]] = x
                if len(found) == len(wanted):
                    break
        return [found[name] for name in self.layers]


def load_vgg16_features(path: str | Path, layers: Sequence[str] = ("relu5_3",)) -> VGG16Features:
    """A frozen ``VGG16Features`` (eval mode, no gradients for its weights) with weights from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such VGG16 weights file (a torchvision-layout vgg16 state_dict; "
                                "weights are never downloaded)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors of all kinds: name the file
        raise ValueError(f"{path}: not a readable state_dict file ({str(err).splitlines()[0]})") from err
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state_dict (a mapping of names to tensors)")
    state = {(k if k.startswith("features.") else f"features.{k}"): v for k, v in state.items()
             if not k.startswith("classifier.")}
    net = VGG16Features(layers)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: not VGG16 features weights ({str(err).splitlines()[0]}; "
                         "expected torchvision's vgg16 layout, keys features.0.weight ... features.28.bias)") from err
    return net.eval().requires_grad_(False)
