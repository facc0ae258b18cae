"""The image history buffer of Shrivastava et al. (2017), as CycleGAN uses it (Zhu et al. 2017, Sec. 4).

The discriminator is updated with a mix of this step's translations and earlier ones, which damps
oscillation. Behaviour of the official ``ImagePool.query`` (junyanz/pytorch-CycleGAN-and-pix2pix,
util/image_pool.py), image by image: while fewer than ``size`` images are stored, the new image is stored
and returned; once full, with probability 1/2 a uniformly chosen stored image is returned and replaced by
the new one, otherwise the new image is returned and nothing is stored. ``size`` 0 returns the input.

Unlike the official buffer (Python's ``random``, never saved) the draws come from torch's global random
generator, which the trainer checkpoints, and the stored images are the module's extra state, so they are
part of ``state_dict()``: a resumed run continues with the very same buffer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class ImagePool(nn.Module):
    def __init__(self, size: int = 50) -> None:
        super().__init__()
        if size < 0:
            raise ValueError(f"image pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Query with a batch of (detached) translations; returns a batch of the same shape."""
        if self.size == 0:
            return images.detach()
        images = images.detach()
        if self.images and self.images[0].device != images.device:  # e.g. restored on the CPU, training on CUDA
            self.images = [stored.to(images.device) for stored in self.images]
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.to(torch.float32, copy=True))  # own float32 copies
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                k = int(torch.randint(self.size, ()))
                out.append(self.images[k].to(image.dtype))
                self.images[k] = image.to(torch.float32, copy=True)
            else:
                out.append(image)
        return torch.stack(out)

    # -- checkpointing: plain tensors only, so checkpoints load with weights_only=True ----------------
    def get_extra_state(self) -> dict[str, Any]:
        stored = torch.stack(self.images) if self.images else torch.empty(0)
        return {"images": stored}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        stored = state["images"]
        self.images = [image.clone() for image in stored] if stored.numel() else []

    def extra_repr(self) -> str:
        return f"size={self.size}"
