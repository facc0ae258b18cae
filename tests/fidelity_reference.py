"""The reference packages of the metrics tests: torch-fidelity (FID, KID, IS) and lpips (LPIPS); a random FID
Inception network.

torch-fidelity 0.4.0 and lpips 0.1.4 declare torchvision as a dependency, and there is no torchvision for this
platform: `make setup` adds both with ``--no-deps``. torch-fidelity's Inception feature extractor and its FID, KID
and IS code use torch alone; only its dataset and other extractor modules import torchvision at import time.
lpips takes its VGG16 from ``torchvision.models.vgg16(pretrained=...).features``. So ``import_torch_fidelity``
and ``import_lpips`` put a stand-in ``torchvision`` (names only) into ``sys.modules`` when the real one is
missing, lpips is handed the test's own VGG16 features (torchvision's layout, the same weights unpaired reads),
and the numbers come from the packages' own code.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import torch

from unpaired.metrics.inception import FIDInception, preprocess


def _stand_in_torchvision() -> None:
    def placeholder(name: str) -> type:
        def refuse(*args: object, **kwargs: object) -> None:
            raise RuntimeError(f"torchvision.{name} is a test stand-in (torchvision is not installed)")

        return type(name, (), {"__init__": refuse})

    modules = {name: types.ModuleType(name) for name in (
        "torchvision", "torchvision.datasets", "torchvision.transforms", "torchvision.transforms.functional",
        "torchvision.models")}
    for name in ("CIFAR10", "CIFAR100", "STL10"):
        setattr(modules["torchvision.datasets"], name, placeholder(name))
    for name in ("Compose", "Resize", "CenterCrop", "Normalize"):
        setattr(modules["torchvision.transforms"], name, placeholder(name))
    modules["torchvision.transforms"].functional = modules["torchvision.transforms.functional"]
    for attribute in ("datasets", "transforms", "models"):
        setattr(modules["torchvision"], attribute, modules[f"torchvision.{attribute}"])
    sys.modules.update(modules)


def import_torch_fidelity():
    try:
        import torchvision  # noqa: F401  (the real one, where it exists)
    except ImportError:
        _stand_in_torchvision()
    import torch_fidelity  # a test dependency: `make setup` installs it (pip install --no-deps torch-fidelity)

    return torch_fidelity


def import_lpips(features: torch.nn.Sequential, monkeypatch) -> Any:
    """The lpips package, whose ``vgg16`` backbone is ``features`` (never torchvision's download)."""
    try:
        import torchvision  # noqa: F401  (the real one, where it exists)
    except ImportError:
        _stand_in_torchvision()
    import lpips  # a test dependency: `make setup` installs it (pip install --no-deps lpips)

    def vgg16(pretrained: bool = True, **kwargs: Any) -> types.SimpleNamespace:
        return types.SimpleNamespace(features=features)

    monkeypatch.setattr(lpips.pretrained_networks.tv, "vgg16", vgg16, raising=False)
    return lpips


def random_inception(path: Path, seed: int = 0) -> Path:
    """A FID Inception network with random weights, saved to ``path`` as a state dict. Its batch-norm statistics
    are set from one batch of random images so that activations keep a unit scale through the 94 layers (with
    the default statistics the pool features shrink towards 0 and every distance with them)."""
    torch.manual_seed(seed)
    net = FIDInception()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0  # the running statistics become the calibration batch's
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    images = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(8)]
    with torch.no_grad():
        net.train()(preprocess(images))
    torch.save(net.state_dict(), path)
    return path
