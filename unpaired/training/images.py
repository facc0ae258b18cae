"""Image grids and image files from tensors in [-1, 1] (PIL + NumPy, no torchvision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor


def to_uint8(images: Tensor) -> np.ndarray:
    """N x C x H x W in [-1, 1] -> N x H x W x 3 uint8 (gray repeated to RGB)."""
    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    array = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).contiguous().numpy()


def tensor_to_pil(image: Tensor) -> Image.Image:
    """C x H x W in [-1, 1] -> PIL image ('L' for one channel, 'RGB' for three)."""
    array = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if array.shape[0] == 1:
        return Image.fromarray(array[0].numpy(), mode="L")
    return Image.fromarray(array.permute(1, 2, 0).numpy(), mode="RGB")


def image_grid(rows: dict[str, Tensor], pad: int = 2, label_width: int = 56, min_cell: int = 64) -> Image.Image:
    """One labelled row per entry; small images (digits) are enlarged to ``min_cell`` pixels."""
    cells = {name: to_uint8(batch) for name, batch in rows.items()}
    h, w = next(iter(cells.values())).shape[1:3]
    scale = max(1, -(-min_cell // max(h, w)))
    h, w = h * scale, w * scale
    columns = max(len(c) for c in cells.values())
    grid = Image.new("RGB", (label_width + columns * (w + pad) + pad, len(cells) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for r, (name, images) in enumerate(cells.items()):
        top = pad + r * (h + pad)
        draw.text((4, top + h // 2 - 6), name, fill="black", font=font)
        for c, image in enumerate(images):
            tile = Image.fromarray(image)
            if scale > 1:
                tile = tile.resize((w, h), Image.NEAREST)
            grid.paste(tile, (label_width + pad + c * (w + pad), top))
    return grid


def save_grid(rows: dict[str, Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows).save(path)
    return path
