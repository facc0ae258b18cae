"""Inference from a checkpoint: ``unpaired.load(path)`` gives a ``Translator``.

The checkpoint holds the method name, the resolved config and the weights, so nothing else is needed.
EMA weights are used when the run kept them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from unpaired.config import ConfigError, config_from_dict, to_object, weights_dict
from unpaired.devices import resolve_device
from unpaired.images import pil_to_array, tensor_to_pil
from unpaired.methods import METHODS, Method, build_method
from unpaired.training.checkpoint import CheckpointError, load_checkpoint


class UnsupportedOptionError(ValueError):
    """A translate option (e.g. ``styles``) that the checkpoint's method does not have."""


class Translator:
    """A trained method ready for inference, in eval mode on ``device``."""

    def __init__(self, method: Method, config: Any, device: torch.device, step: int, uses_ema: bool) -> None:
        self.method = method.eval()
        self.config = config
        self.device = device
        self.step = step
        self.uses_ema = uses_ema
        """Whether the generators hold the run's EMA copy rather than its trained weights."""

    @property
    def image_size(self) -> int:
        return int(self.config.data.image_size)

    def channels(self, domain: str) -> int:
        return self.method.channels[domain]

    def check_options(self, options: Iterable[str]) -> None:
        """Refuse translate options the method does not declare in ``translate_options``."""
        supported = self.method.translate_options
        for name in options:
            if name not in supported:
                takes = f"it takes {', '.join(sorted(supported))}" if supported else "it takes no translate options"
                raise UnsupportedOptionError(f"method {self.method.name} has no {name} ({takes})")

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str = "a2b", **options: Any) -> Tensor:
        """N x C x H x W (or C x H x W) in [-1, 1] from the source domain -> the target domain.

        ``options`` are the method's own (``method.translate_options``), e.g. MUNIT's ``styles=K``,
        ``reference=``, ``style=``, ``interpolate=K``, ``seed=``; methods that give K outputs per input return
        N*K images, input-major. A single C x H x W image gives C x H x W, or K x C x H x W for K outputs.
        """
        self.check_options(options)
        single = images.dim() == 3
        batch = images[None] if single else images
        source = Method.check_direction(direction)[0]
        if batch.shape[1] != self.channels(source):
            raise ValueError(f"domain '{source}' images have {self.channels(source)} channels, got {batch.shape[1]}")
        options = {k: v.to(self.device).float() if isinstance(v, Tensor) else v for k, v in options.items()}
        out = self.method.translate(batch.to(self.device).float(), direction, **options)
        return out[0] if single and len(out) == 1 else out

    def prepare(self, image: Image.Image, direction: str, size: int | None = None, domain: str | None = None) -> Tensor:
        """PIL image -> 1 x C x H x W in [-1, 1]: the channels of ``domain`` (default: the source domain of
        ``direction``), shorter side ``size`` (default: the training image size), sides rounded to what the
        network's strides need."""
        return prepare_image(image, self.channels(domain or direction[0]), size or self.image_size,
                             getattr(self.method, "size_multiple", 1))

    def translate_image(self, image: Image.Image | str | Path, direction: str = "a2b", size: int | None = None,
                        keep_size: bool = False, **options: Any) -> list[Image.Image]:
        """One PIL image or file -> translated PIL image(s) (several when the method samples styles).

        A ``reference`` option given as a PIL image or file (an example of the target domain) is prepared
        like the input."""
        image = open_image(image)
        if isinstance(options.get("reference"), (Image.Image, str, Path)):
            options["reference"] = self.prepare(open_image(options["reference"]), direction, size, domain=direction[-1])
        out = self.translate(self.prepare(image, direction, size), direction, **options)
        results = [tensor_to_pil(x) for x in out]
        if keep_size:
            results = [r.resize(image.size, Image.BICUBIC) for r in results]
        return results


    @torch.no_grad()
    def landmark_points(self, image: Image.Image | str | Path, direction: str,
                        size: int | None = None) -> tuple[Tensor, Tensor, Image.Image]:
        """For a method with landmark geometry: the landmarks (K x 2) of one input image, those its translation
        is decoded from, and the input as the model sees it (prepared: resized, the source domain's channels)."""
        from unpaired.methods.base import LandmarkGeometry, require

        method = require(self.method, LandmarkGeometry, "landmarks")
        x = self.prepare(open_image(image), direction, size).to(self.device)
        return (method.landmarks(direction[0], x)[0].cpu(), method.translated_landmarks(x, direction)[0].cpu(),
                tensor_to_pil(x[0]))


def prepare_image(image: Image.Image, channels: int, size: int, multiple: int = 1) -> Tensor:
    """PIL image -> 1 x ``channels`` x H x W float32 in [-1, 1], bicubic-resized so that its shorter side is
    ``size``, both sides rounded to multiples of ``multiple`` (the network's total stride)."""
    w, h = image.size
    scale = size / min(w, h)
    new_w = max(multiple, round(w * scale / multiple) * multiple)
    new_h = max(multiple, round(h * scale / multiple) * multiple)
    array = pil_to_array(image.resize((new_w, new_h), Image.BICUBIC), channels)
    if array.ndim == 2:
        array = array[..., None]
    return torch.tensor(array).permute(2, 0, 1)[None].float().div(127.5).sub(1)  # copy: PIL's is read-only


def open_image(image: Image.Image | str | Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    with Image.open(image) as opened:
        return opened.copy()


def load(checkpoint: str | Path, device: str = "auto", use_ema: bool = True) -> Translator:
    """Load a checkpoint (a file, or a run folder for its latest checkpoint) for inference."""
    device_ = resolve_device(device)
    state = load_checkpoint(Path(checkpoint), map_location=device_)
    if state["method"] not in METHODS:
        raise CheckpointError(f"{state['path']}: unknown method '{state['method']}' "
                              f"(this unpaired knows {', '.join(METHODS.names())})")
    stored = state.get("config") or {}
    if stored.get("method") != state["method"]:
        raise CheckpointError(f"{state['path']}: checkpoint says method '{state['method']}' but holds a configuration "
                              f"for '{stored.get('method')}'")
    try:
        cfg = config_from_dict(stored, drop_removed=True)
    except ConfigError as err:
        raise CheckpointError(f"{state['path']}: stored configuration is not valid here ({err})") from err
    method = build_method(cfg.method, to_object(cfg, "model"), weights_dict(cfg), state["channels"],
                          cfg.data.image_size)
    try:
        method.load_state_dict(state["nets"])
        uses_ema = use_ema and state.get("ema") is not None
        if uses_ema:
            method.nets["gen"].load_state_dict(state["ema"])
    except RuntimeError as err:
        raise CheckpointError(f"{state['path']}: weights do not fit method '{cfg.method}' "
                              f"({str(err).splitlines()[0]})") from err
    return Translator(method.to(device_), cfg, device_, int(state["step"]), uses_ema)


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
