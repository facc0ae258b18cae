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

from unpaired.config import config_from_dict, to_object, weights_dict
from unpaired.methods import Method, build_method
from unpaired.training.checkpoint import CheckpointError, load_checkpoint
from unpaired.training.images import tensor_to_pil
from unpaired.training.trainer import resolve_device


class Translator:
    """A trained method ready for inference, in eval mode on ``device``."""

    def __init__(self, method: Method, config: Any, device: torch.device, step: int) -> None:
        self.method = method.eval()
        self.config = config
        self.device = device
        self.step = step

    @property
    def image_size(self) -> int:
        return int(self.config.data.image_size)

    def channels(self, domain: str) -> int:
        return self.method.channels[domain]

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str = "a2b", **options: Any) -> Tensor:
        """N x C x H x W (or C x H x W) in [-1, 1] from the source domain -> the target domain."""
        single = images.dim() == 3
        batch = images[None] if single else images
        source = Method.check_direction(direction)[0]
        if batch.shape[1] != self.channels(source):
            raise ValueError(f"domain '{source}' images have {self.channels(source)} channels, got {batch.shape[1]}")
        out = self.method.translate(batch.to(self.device).float(), direction, **options)
        return out[0] if single else out

    def prepare(self, image: Image.Image, direction: str, size: int | None = None) -> Tensor:
        """PIL image -> 1 x C x H x W in [-1, 1]: the source domain's channels, shorter side ``size``
        (default: the training image size), sides rounded to what the network's strides need."""
        from unpaired.data.sources import _to_array

        size = size or self.image_size
        multiple = getattr(self.method, "size_multiple", 1)
        w, h = image.size
        scale = size / min(w, h)
        new_w = max(multiple, round(w * scale / multiple) * multiple)
        new_h = max(multiple, round(h * scale / multiple) * multiple)
        array = _to_array(image.resize((new_w, new_h), Image.BICUBIC), self.channels(direction[0]))
        if array.ndim == 2:
            array = array[..., None]
        return torch.tensor(array).permute(2, 0, 1)[None].float().div(127.5).sub(1)  # copy: PIL's is read-only

    def translate_image(self, image: Image.Image | str | Path, direction: str = "a2b", size: int | None = None,
                        keep_size: bool = False, **options: Any) -> list[Image.Image]:
        """One PIL image or file -> translated PIL image(s) (several when the method samples styles)."""
        if not isinstance(image, Image.Image):
            with Image.open(image) as opened:
                image = opened.copy()
        out = self.translate(self.prepare(image, direction, size), direction, **options)
        results = [tensor_to_pil(x) for x in out]
        if keep_size:
            results = [r.resize(image.size, Image.BICUBIC) for r in results]
        return results


def load(checkpoint: str | Path, device: str = "auto", use_ema: bool = True) -> Translator:
    """Load a checkpoint (a file, or a run folder for its latest checkpoint) for inference."""
    device_ = resolve_device(device)
    state = load_checkpoint(Path(checkpoint), map_location=device_)
    from unpaired.methods import METHODS

    if state["method"] not in METHODS:
        raise CheckpointError(f"{state['path']}: unknown method '{state['method']}' "
                              f"(this unpaired knows {', '.join(METHODS.names())})")
    cfg = config_from_dict(state["config"])
    method = build_method(cfg.method, to_object(cfg, "model"), weights_dict(cfg), state["channels"],
                          cfg.data.image_size)
    try:
        method.load_state_dict(state["nets"])
        if use_ema and state.get("ema") is not None:
            method.nets["gen"].load_state_dict(state["ema"])
    except RuntimeError as err:
        raise CheckpointError(f"{state['path']}: weights do not fit method '{cfg.method}' "
                              f"({str(err).splitlines()[0]})") from err
    return Translator(method.to(device_), cfg, device_, int(state["step"]))


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
