"""Landmarks as TransGaGa models geometry (Wu et al., CVPR 2019, Sec. 3.1-3.2): K heatmaps, each a softmax over
space, whose first moments are the landmark points; Gaussian maps rendered back from points; a PCA of the
landmark coordinates that keeps their principal directions and drops the rest (the noise).

Points are ``N x K x 2`` tensors of (x, y) in normalised image coordinates: -1 and 1 are the outer edges of the
frame, y points down, pixel centres at ``(2 i + 1) / size - 1`` (``grid_sample`` with ``align_corners=False``).
The coordinate ramps are computed from the tensors themselves (no Python sizes), so the same code traces to
TorchScript and exports to ONNX for any image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired.images import landmark_palette
from unpaired.nn.augment import resample
from unpaired.nn.encoders import DownsamplingEncoder


def pixel_centres(row: Tensor) -> Tensor:
    """Normalised coordinates of the pixel centres along a 1-D slice ``row`` of an image (its length n):
    ``(2 i + 1) / n - 1``, i = 0..n-1, in ``row``'s dtype."""
    count = torch.ones_like(row).cumsum(0)  # 1..n, from the tensor: the size stays symbolic when traced
    return (2 * count - 1) / count[-1:] - 1


def _axes(maps: Tensor) -> tuple[Tensor, Tensor]:
    """The x and y pixel-centre ramps of ``... x H x W`` maps."""
    first = maps.reshape(-1, *maps.shape[-2:])[0]
    return pixel_centres(first[0]), pixel_centres(first[:, 0])


def spatial_softmax(logits: Tensor) -> Tensor:
    """``N x K x H x W`` logits -> heatmaps: each channel a probability distribution over its H x W positions."""
    return logits.flatten(2).softmax(-1).view_as(logits)


def first_moments(heatmaps: Tensor) -> Tensor:
    """The centre of mass of each heatmap (``N x K x H x W``, each summing to 1): ``N x K x 2`` points (x, y)."""
    xs, ys = _axes(heatmaps)
    x = (heatmaps.sum(-2) * xs).sum(-1)
    y = (heatmaps.sum(-1) * ys).sum(-1)
    return torch.stack([x, y], -1)


def spatial_variance(heatmaps: Tensor, points: Tensor | None = None) -> Tensor:
    """``N x K``: each heatmap's spread around its centre ``points`` (default: its first moments),
    ``sum_u g(u) |u - p|^2`` in squared normalised units; 0 for a heatmap that is one pixel."""
    points = first_moments(heatmaps) if points is None else points
    xs, ys = _axes(heatmaps)
    dx = (xs - points[..., :1]) ** 2  # N x K x W
    dy = (ys - points[..., 1:]) ** 2  # N x K x H
    return (heatmaps.sum(-2) * dx).sum(-1) + (heatmaps.sum(-1) * dy).sum(-1)


def render_landmarks(points: Tensor, like: Tensor, sigma: float) -> Tensor:
    """``N x K x H x W`` Gaussian maps of standard deviation ``sigma`` (normalised units) centred on ``points``
    (``N x K x 2``), at the height and width of ``like`` (any ``... x H x W`` tensor), peak value 1."""
    xs, ys = _axes(like)
    xs, ys = xs.to(points.dtype), ys.to(points.dtype)
    gx = torch.exp(-((xs - points[..., :1]) ** 2) / (2 * sigma**2))  # N x K x W
    gy = torch.exp(-((ys - points[..., 1:]) ** 2) / (2 * sigma**2))  # N x K x H
    return gy[..., :, None] * gx[..., None, :]


def random_similarity(count: int, degrees: float, scale: float, shift: float, device: torch.device | str = "cpu"
                      ) -> tuple[Tensor, Tensor]:
    """``count`` random maps ``q = M p + t`` of normalised points: a rotation within +-``degrees``, a scale within
    1 +- ``scale``, a shift within +-``shift`` on each axis (uniform draws from the global generator). Returns
    (M: ``count x 2 x 2``, t: ``count x 2``)."""
    angle = (torch.rand(count, device=device) * 2 - 1) * degrees * torch.pi / 180
    factor = 1 + (torch.rand(count, device=device) * 2 - 1) * scale
    cos, sin = torch.cos(angle) * factor, torch.sin(angle) * factor
    matrix = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    return matrix, (torch.rand(count, 2, device=device) * 2 - 1) * shift


def move_points(points: Tensor, matrix: Tensor, offset: Tensor) -> Tensor:
    """``N x K x 2`` points under the maps ``M p + t`` of ``random_similarity``."""
    return points @ matrix.transpose(1, 2) + offset[:, None, :]


def move_images(images: Tensor, matrix: Tensor, offset: Tensor) -> Tensor:
    """``images`` under the maps ``M p + t``: what was at p is at M p + t after (``grid_sample`` reads the output at
    u from the input at M^-1 (u - t)); the frame's edge pixels continue beyond it (the background, as a rule)."""
    inverse = torch.linalg.inv(matrix)
    return resample(images, torch.cat([inverse, -(inverse @ offset[..., None])], -1), outside=None)


class GeometryEncoder(nn.Module):
    """E^g: image -> K heatmaps (softmax over space) at 1/2**n_down of the image side, and their first moments.

    A ``DownsamplingEncoder`` (7x7 stem, stride-2 convs, residual blocks, instance norm) and a 1x1 conv to K
    logit maps. The paper uses a stacked hourglass; this smaller encoder is our choice for digits on a CPU."""

    def __init__(self, in_channels: int, landmarks: int, dim: int, n_down: int, n_res: int, activation: str = "relu",
                 pad_type: str = "reflect") -> None:
        super().__init__()
        self.body = DownsamplingEncoder(in_channels, dim, n_down, n_res, "in", activation, pad_type)
        self.head = nn.Conv2d(self.body.out_channels, landmarks, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(heatmaps ``N x K x h x w``, points ``N x K x 2``)."""
        heatmaps = spatial_softmax(self.head(self.body(x)).float())
        return heatmaps, first_moments(heatmaps)


class LandmarkPCA(nn.Module):
    """A running PCA of one domain's landmark coordinates (``2K``-vectors), kept in buffers (so checkpoints and
    EMA copies carry it): ``denoise(p)`` projects points onto the mean plus the span of the ``dims`` principal
    directions (TransGaGa, Sec. 3.2: "PCA ... to remove noise" before the geometry transformer).

    ``update(points)`` folds a batch into a running mean and covariance (exponential average with ``momentum``;
    the first batch sets them) and recomputes the basis. The projection (not the coefficients) is what the
    model uses, so a change of sign or order among the basis vectors from one update to the next changes
    nothing downstream."""

    def __init__(self, landmarks: int, dims: int, momentum: float = 0.05) -> None:
        super().__init__()
        size = 2 * landmarks
        if not 1 <= dims <= size:
            raise ValueError(f"PCA dimensions must be within 1..2*landmarks={size}, got {dims}")
        if not 0 < momentum <= 1:
            raise ValueError(f"PCA momentum must be in (0, 1], got {momentum}")
        self.dims, self.momentum = dims, momentum
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("covariance", torch.zeros(size, size))
        self.register_buffer("basis", torch.eye(size)[:, :dims].contiguous())
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, points: Tensor, momentum: float | None = None) -> None:
        """Fold ``points`` (``N x K x 2``) into the running statistics; ``momentum`` 1 fits them alone."""
        rate = self.momentum if momentum is None else momentum
        flat = points.detach().flatten(1).double()
        mean = flat.mean(0)
        centred = flat - mean
        covariance = centred.T @ centred / len(flat)
        if int(self.batches) == 0:
            rate = 1.0
        new_mean = (1 - rate) * self.mean.double() + rate * mean
        # the covariance about the new mean: each part's own spread plus its mean's offset from the new mean
        old_offset, new_offset = self.mean.double() - new_mean, mean - new_mean
        self.covariance.copy_((1 - rate) * (self.covariance.double() + torch.outer(old_offset, old_offset))
                              + rate * (covariance + torch.outer(new_offset, new_offset)))
        self.mean.copy_(new_mean)
        _, vectors = torch.linalg.eigh(self.covariance.double())  # ascending eigenvalues
        self.basis.copy_(vectors[:, -self.dims:].flip(1))
        self.batches += 1

    def embed(self, points: Tensor) -> Tensor:
        """``N x K x 2`` points -> ``N x dims`` coefficients along the principal directions."""
        return (points.flatten(1) - self.mean.to(points.dtype)) @ self.basis.to(points.dtype)

    def reconstruct(self, coefficients: Tensor) -> Tensor:
        """``N x dims`` coefficients -> ``N x K x 2`` points."""
        flat = self.mean.to(coefficients.dtype) + coefficients @ self.basis.to(coefficients.dtype).T
        return flat.unflatten(1, (-1, 2))

    def denoise(self, points: Tensor) -> Tensor:
        """``points`` projected onto the principal subspace: exact for points in it, noise outside it dropped."""
        return self.reconstruct(self.embed(points))


def landmark_colours(count: int) -> Tensor:
    """``count x 3`` colours in [0, 1]: ``unpaired.images.landmark_palette`` as a tensor."""
    return torch.tensor(landmark_palette(count))


def colour_heatmaps(heatmaps: Tensor, size: tuple[int, int]) -> Tensor:
    """``N x K x h x w`` heatmaps -> ``N x 3 x H x W`` image in [-1, 1] for a grid: each map scaled to peak 1 and
    painted in its landmark colour, enlarged (nearest) to ``size``."""
    peak = heatmaps.flatten(2).amax(-1).clamp_min(1e-12)[..., None, None]
    colours = landmark_colours(heatmaps.shape[1]).to(heatmaps)
    painted = torch.einsum("nkhw,kc->nchw", heatmaps / peak, colours).clamp(0, 1)
    return F.interpolate(painted, size=size, mode="nearest") * 2 - 1


def overlay_landmarks(images: Tensor, points: Tensor, sigma: float = 0.06) -> Tensor:
    """``N x C x H x W`` images in [-1, 1] with a coloured dot on each landmark (gray images become RGB)."""
    images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    dots = render_landmarks(points.to(images.dtype), images, sigma)  # N x K x H x W
    colours = landmark_colours(points.shape[1]).to(images) * 2 - 1
    weight = dots.amax(1, keepdim=True)
    painted = torch.einsum("nkhw,kc->nchw", dots, colours) / dots.sum(1, keepdim=True).clamp_min(1e-6)
    return images * (1 - weight) + painted * weight
