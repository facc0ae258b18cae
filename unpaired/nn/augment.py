"""Random photometric and geometric augmentation of image batches, in torch ops (no torchvision).

TUNIT (Baek et al., ICCV 2021, https://arxiv.org/abs/2006.06500, Sec. 3.1) trains its guiding network on pairs
of an image and a randomly augmented copy, which must be assigned the same domain (IIC) and give matching
style codes (the contrastive positive pair). Its official code (clovaai/tunit, datasets/datasetgetter.py)
draws the copy with torchvision's RandomAffine(20, translate=(0.1, 0.1), shear=10), RandomResizedCrop(scale
(0.9, 1.1), ratio (0.9, 1.1)), ColorJitter(0.4, 0.4, 0.4, 0.125) and RandomHorizontalFlip; ``Augmentation``
below has those defaults and works on a whole batch on its device, each image with its own random draw.

Differences from torchvision, none of which changes what the augmentation is for: the affine transform and
the crop are composed into one resampling (bilinear; torchvision resamples twice); a crop larger than the
image (scale > 1) is clamped to the whole image, which is what torchvision's fallback does after failed tries;
the colour changes come in a fixed order (brightness, contrast, saturation, hue) instead of a random one; hue
is rotated about the gray axis in YIQ space instead of shifted in HSV. Pixels that come from outside the image
are black (-1), as torchvision's fill 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_LUMA = torch.tensor([0.299, 0.587, 0.114])


@dataclass
class Augmentation:
    """Ranges of the random transforms (0 switches one off). Images are N x C x H x W in [-1, 1]."""

    rotate: float = 20.0
    """Rotation, uniform in +-degrees."""
    translate: float = 0.1
    """Shift, uniform in +- this fraction of the width (and of the height)."""
    shear: float = 10.0
    """Shear along x, uniform in +-degrees."""
    scale: float = 0.1
    """Area of the crop, uniform in 1 +- scale times the image's (clamped to the whole image)."""
    ratio: float = 0.1
    """Aspect ratio of the crop, log-uniform in [1 - ratio, 1 + ratio]."""
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.125
    """Hue rotation, uniform in +- this fraction of a full turn."""
    flip: bool = True
    """Mirror left-right with probability 1/2."""

    def __call__(self, images: Tensor) -> Tensor:
        out = self.geometric(images)
        out = self.photometric(out)
        if self.flip:
            mirrored = torch.rand(len(out), device=out.device) < 0.5
            out = torch.where(mirrored[:, None, None, None], out.flip(-1), out)
        return out

    def _uniform(self, n: int, half_width: float, device: torch.device) -> Tensor:
        return (torch.rand(n, device=device) * 2 - 1) * half_width

    def sampling_maps(self, n: int, device: torch.device) -> Tensor:
        """N x 2 x 3 sampling maps (``resample``'s theta): a random affine map (rotation, shear, shift) followed by
        a random crop, composed. Coordinates are normalised to [-1, 1] on both axes."""
        angle = self._uniform(n, math.radians(self.rotate), device)
        shear = self._uniform(n, math.radians(self.shear), device)
        shift = torch.stack([self._uniform(n, 2 * self.translate, device),
                             self._uniform(n, 2 * self.translate, device)], 1)
        cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
        # forward map of the affine part: rotation after a shear along x; grid_sample needs its inverse
        forward = torch.stack([torch.stack([cos, cos * tan - sin], 1), torch.stack([sin, sin * tan + cos], 1)], 1)
        inverse = torch.linalg.inv(forward)
        area = 1 + self._uniform(n, self.scale, device)
        log_ratio = self._uniform(n, 0.5 * (math.log1p(self.ratio) - math.log1p(-self.ratio)), device) \
            + 0.5 * (math.log1p(self.ratio) + math.log1p(-self.ratio))
        aspect = log_ratio.exp()
        crop = torch.stack([(area * aspect).sqrt(), (area / aspect).sqrt()], 1).clamp(max=1.0)
        corner = (torch.rand(n, 2, device=device) * 2 - 1) * (1 - crop)  # the crop's centre stays inside
        # output w -> crop (diag(crop) w + corner) -> affine inverse (A^-1 (v - shift))
        matrix = inverse * crop[:, None, :]
        offset = (inverse @ (corner - shift)[:, :, None])[:, :, 0]
        return torch.cat([matrix, offset[:, :, None]], 2)

    def geometric(self, images: Tensor) -> Tensor:
        return resample(images, self.sampling_maps(len(images), images.device))

    def photometric(self, images: Tensor) -> Tensor:
        n, c = images.shape[:2]
        device = images.device
        x = (images.float() + 1) / 2  # [0, 1], where torchvision's ColorJitter works
        if self.brightness:
            x = (x * (1 + self._uniform(n, self.brightness, device))[:, None, None, None]).clamp(0, 1)
        if self.contrast:
            gray_mean = _gray(x).mean((1, 2, 3), keepdim=True)
            factor = (1 + self._uniform(n, self.contrast, device))[:, None, None, None]
            x = (factor * x + (1 - factor) * gray_mean).clamp(0, 1)
        if c == 3 and self.saturation:
            factor = (1 + self._uniform(n, self.saturation, device))[:, None, None, None]
            x = (factor * x + (1 - factor) * _gray(x)).clamp(0, 1)
        if c == 3 and self.hue:
            x = _rotate_hue(x, self._uniform(n, 2 * math.pi * self.hue, device)).clamp(0, 1)
        return (x * 2 - 1).to(images.dtype)


def resample(images: Tensor, theta: Tensor, outside: float | None = -1.0) -> Tensor:
    """``images`` (N x C x H x W) read through the N x 2 x 3 sampling maps ``theta``: output point u (normalised
    coordinates, ``align_corners=False``) shows the input at ``theta @ (u, 1)``, bilinear. What comes from outside
    the frame is ``outside`` (default -1: black), or with None the frame's edge pixels continued."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    if outside is None:
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # sample (x - outside) with zero padding: outside pixels become 0, i.e. `outside` after shifting back
    return F.grid_sample(images - outside, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + outside


def _gray(x: Tensor) -> Tensor:
    """N x 1 x H x W luma (ITU-R 601, as torchvision's rgb_to_grayscale); one-channel images pass through."""
    if x.shape[1] == 1:
        return x
    return (x * _LUMA.to(x)[None, :, None, None]).sum(1, keepdim=True)


def _rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    """Rotate the chroma plane (I, Q of YIQ) of each RGB image by its angle (radians); luma is kept."""
    to_yiq = _RGB_TO_YIQ.to(x)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    transform = torch.linalg.inv(to_yiq) @ rotation @ to_yiq  # N x 3 x 3, RGB -> RGB
    return torch.einsum("nij,njhw->nihw", transform, x)
