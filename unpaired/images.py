"""Image tensors: uint8 <-> float [-1, 1], PIL <-> arrays, crops, labelled grids and image files.

PIL + NumPy, no torchvision. Knows nothing of methods or training; data, methods, metrics, training and
inference all convert images here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor


def to_float(image: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return image.float().div_(127.5).sub_(1.0)


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


def pil_to_array(im: Image.Image, channels: int) -> np.ndarray:
    """Convert a decoded PIL image of any mode to a uint8 ``H x W`` (channels=1) or ``H x W x 3`` array.

    Transparent pixels are composited onto white (the usual look of transparent PNGs in viewers, and what
    dropping alpha would otherwise turn into arbitrary colours), and 16-bit gray is scaled by 255/65535 rather
    than clipped, which is what PIL's own ``convert("L")`` would do.
    """
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im).astype(np.float64)
        a = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        im = Image.fromarray(a)  # 2-D uint8 -> mode L
        mode = "L"
    elif mode == "1":
        im = im.convert("L")
        mode = "L"
    elif mode == "P" or mode == "PA":
        im = im.convert("RGBA") if (mode == "PA" or "transparency" in im.info) else im.convert("RGB")
        mode = im.mode
    elif mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
        mode = "LA"
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"

    if mode in ("LA", "La", "RGBA", "RGBa"):
        if mode == "La":
            im = im.convert("LA")
        elif mode == "RGBa":
            im = im.convert("RGBA")
        a = np.asarray(im).astype(np.float32)
        color, alpha = a[..., :-1], a[..., -1:] / 255.0
        a = np.rint(color * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)  # -> L or RGB
        mode = im.mode

    if channels == 1:
        if mode != "L":
            im = im.convert("RGB").convert("L") if mode not in ("RGB", "F") else im.convert("L")
    else:
        if mode != "RGB":
            im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def crop_and_flip(image: Tensor, size: int, gen: torch.Generator | None, flip: bool) -> Tensor:
    """Random (gen given) or centre square crop of side ``size``, then an optional random flip."""
    _, h, w = image.shape
    if h < size or w < size:
        image = torch.nn.functional.interpolate(image[None].float(), scale_factor=size / min(h, w),
                                                mode="bilinear", antialias=True, align_corners=False)[0]
        image = image.round_().clamp_(0, 255).to(torch.uint8)
        _, h, w = image.shape
    if gen is None:
        top, left = (h - size) // 2, (w - size) // 2
    else:
        top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
    image = image[:, top:top + size, left:left + size]
    if flip and gen is not None and bool(torch.rand(1, generator=gen) < 0.5):
        image = image.flip(-1)
    return image


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


def landmark_palette(count: int) -> list[tuple[float, float, float]]:
    """``count`` distinct RGB colours in [0, 1] (evenly spaced hues): landmark k is always drawn in colour k, so the
    same landmark has the same colour on an input, its heatmap and its translation."""
    import colorsys

    return [colorsys.hsv_to_rgb(k / max(count, 1), 0.9, 1.0) for k in range(count)]


def draw_landmarks(image: Image.Image, points: Tensor, radius: float | None = None) -> Image.Image:
    """A copy of ``image`` (as RGB) with a dot on each landmark (``points``: K x 2, (x, y) in normalised coordinates,
    -1 and 1 the outer edges, y down), in the colours of ``landmark_palette``."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    radius = radius if radius is not None else max(1.0, min(out.size) / 40)
    palette = landmark_palette(len(points))
    for (x, y), rgb in zip(points.detach().float().cpu().tolist(), palette, strict=True):
        cx, cy = (x + 1) / 2 * out.width, (y + 1) / 2 * out.height
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=tuple(round(255 * c) for c in rgb),
                     outline=(0, 0, 0))
    return out
