"""Classifier networks: the small digit classifier that judges translations, builds the digit-FID feature
network and gives UNIT's semantic-consistency term its frozen classifier, and its file format.

A network file is plain data (``torch.load(..., weights_only=True)`` opens it), written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from unpaired.io import atomic_write

DIGIT_NETWORK_FORMAT = 1
"""Format version of the files ``save_digit_network`` writes."""


class DigitClassifier(nn.Sequential):
    """Three 3x3 conv stages (32, 64, 128 channels) with max pooling, global pooling, a linear layer."""

    def __init__(self, in_channels: int = 1, classes: int = 10) -> None:
        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        super().__init__(
            *stage(in_channels, 32), nn.MaxPool2d(2),
            *stage(32, 64), nn.MaxPool2d(2),
            *stage(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(0.2), nn.Linear(128, classes),
        )


def save_digit_network(model: DigitClassifier, path: str | Path, kind: str = "digit_classifier",
                       **info: Any) -> Path:
    """Write a ``DigitClassifier`` to the file ``path`` atomically as plain data that ``torch.load(...,
    weights_only=True)`` opens: ``{"kind", "format", "state_dict", "in_channels", "image_size", "info"}``.
    ``kind`` says what the network is for (``digit_features``: the FID network; ``digit_classifier``: e.g. the
    source classifier of a semantic-consistency term); ``info``: plain values to keep with it."""
    path = Path(path)
    state = {"kind": kind, "format": DIGIT_NETWORK_FORMAT,
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "in_channels": int(model[0].in_channels), "image_size": getattr(model, "image_size", None),
             "info": info}
    atomic_write(path, lambda handle: torch.save(state, handle))
    return path


def load_digit_network(path: str | Path, kind: str = "digit_classifier",
                       device: str | torch.device = "cpu") -> DigitClassifier:
    """Read a network of ``kind`` written by ``save_digit_network`` (never runs code from the file); eval mode,
    with ``image_size`` and ``info`` attributes. A missing file, another kind or a damaged file raise an error
    naming the file."""
    path = Path(path)
    what = ("digit feature network" if kind == "digit_features" else kind.replace("_", " ")) + " file"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no {what} here") from None
    except Exception as err:
        raise ValueError(f"{path}: not a {what} ({err})") from err
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else None
        raise ValueError(f"{path}: not a {what}" + (f" (it holds a {found})" if found else ""))
    if state.get("format", 0) > DIGIT_NETWORK_FORMAT:
        raise ValueError(f"{path}: format {state['format']} is newer than this unpaired reads "
                         f"({DIGIT_NETWORK_FORMAT})")
    model = DigitClassifier(state["in_channels"])
    model.load_state_dict(state["state_dict"])
    model.image_size = state["image_size"]
    model.info = dict(state.get("info") or {})
    return model.to(device).eval()
