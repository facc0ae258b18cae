"""The FID Inception network in plain torch, read from a weights file the user gives; Inception Score.

FID, KID and IS as papers report them are computed with one particular network: the TensorFlow Inception v3 graph
of 2015-12-05 that the original FID code (TTUR) used, converted to PyTorch as ``pt_inception-2015-12-05-6726825d.pth``
(pytorch-fid) or ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity; the same tensors). ``FIDInception``
is that architecture (torchvision's Inception v3 layout with the TensorFlow graph's differences: average pools
that leave padding out of the count, a max pool in the last block's pool branch, 1008 classes, BatchNorm eps
1e-3), written here so that neither torchvision nor a download is needed. Its parameter names are those of the
weights files, so ``load_inception(path)`` reads either. Weights are never downloaded: give the file
(``--inception-weights FILE``) or put it in ``default_weights_dir()`` (``$UNPAIRED_HOME/weights``).

Preprocessing, as torch-fidelity does it (and TTUR's TensorFlow graph): RGB uint8 images of any size are resized
to 299 x 299 by ``resize_like_tf1`` (bilinear, TensorFlow 1.x's sampling grid: source = destination * in / out,
no half-pixel offset, no antialiasing), then mapped to [-1, 1) by (x - 128) / 128. Gray images are repeated to
three channels. Features: the 2048-d average pool (FID, KID) and the 1008 logits before the fc bias
(``logits_unbiased``, torch-fidelity's input to IS).

``inception_score`` is torch-fidelity's computation (Salimans et al. 2016): the images shuffled with a seeded
permutation, cut into ``splits`` chunks, exp(mean KL(p(y|x) || p(y))) per chunk, mean and standard deviation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired.data import unpaired_home

WEIGHTS_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
"""The names the converted 2015-12-05 weights go by (pytorch-fid's, torch-fidelity's), looked for in that order."""
INPUT_SIZE = 299
POOL_DIM = 2048
CLASSES = 1008


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, or not the FID Inception network's."""


def default_weights_dir() -> Path:
    return unpaired_home() / "weights"


def find_weights(path: str | Path | None = None) -> Path:
    """``path`` when given (it must exist), else the first of ``WEIGHTS_FILES`` in ``default_weights_dir()``."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such file (the FID Inception weights, {WEIGHTS_FILES[0]})")
        return path
    folder = default_weights_dir()
    for name in WEIGHTS_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder / WEIGHTS_FILES[0]}: no FID Inception weights file; give one with --inception-weights "
                       f"FILE or put {WEIGHTS_FILES[0]} (pytorch-fid's release file) or {WEIGHTS_FILES[1]} "
                       f"(torch-fidelity's) in {folder} ($UNPAIRED_HOME/weights); unpaired never downloads weights")


class _Conv(nn.Module):
    """Convolution without bias -> BatchNorm (eps 1e-3, TensorFlow's) -> ReLU; parameters ``conv.*``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _pool(kind: str | None, x: Tensor) -> Tensor:
    if kind == "avg":  # TensorFlow's average pool leaves the padding out of the count
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    if kind == "max1":  # the graph's last block pools with max where the paper (and torchvision) average
        return F.max_pool2d(x, 3, stride=1, padding=1)
    if kind == "max2":
        return F.max_pool2d(x, 3, stride=2)
    return x


ConvSpec = tuple  # (name, in, out, kernel[, stride[, padding]])


class _Mixed(nn.Module):
    """An Inception block: branches whose outputs are concatenated. A branch is (pool before it or None, a chain of
    convolutions, and optionally two last convolutions applied side by side to the chain's output and
    concatenated: the 1x3 / 3x1 pairs of the E blocks)."""

    def __init__(self, branches: list[tuple[str | None, list[ConvSpec], tuple[ConvSpec, ...]]]) -> None:
        super().__init__()
        self.branches = [(pool, [c[0] for c in chain], [c[0] for c in split]) for pool, chain, split in branches]
        for _, chain, split in branches:
            for name, *spec in (*chain, *split):
                self.add_module(name, _Conv(*spec))

    def forward(self, x: Tensor) -> Tensor:
        outputs = []
        for pool, chain, split in self.branches:
            y = _pool(pool, x)
            for name in chain:
                y = getattr(self, name)(y)
            outputs += [getattr(self, name)(y) for name in split] if split else [y]
        return torch.cat(outputs, 1)


def _block_a(cin: int, pool_features: int) -> _Mixed:
    return _Mixed([(None, [("branch1x1", cin, 64, 1)], ()),
                   (None, [("branch5x5_1", cin, 48, 1), ("branch5x5_2", 48, 64, 5, 1, 2)], ()),
                   (None, [("branch3x3dbl_1", cin, 64, 1), ("branch3x3dbl_2", 64, 96, 3, 1, 1),
                           ("branch3x3dbl_3", 96, 96, 3, 1, 1)], ()),
                   ("avg", [("branch_pool", cin, pool_features, 1)], ())])


def _block_b(cin: int) -> _Mixed:
    return _Mixed([(None, [("branch3x3", cin, 384, 3, 2)], ()),
                   (None, [("branch3x3dbl_1", cin, 64, 1), ("branch3x3dbl_2", 64, 96, 3, 1, 1),
                           ("branch3x3dbl_3", 96, 96, 3, 2)], ()),
                   ("max2", [], ())])


def _block_c(cin: int, c7: int) -> _Mixed:
    row, col = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
    return _Mixed([(None, [("branch1x1", cin, 192, 1)], ()),
                   (None, [("branch7x7_1", cin, c7, 1), ("branch7x7_2", c7, c7, *row),
                           ("branch7x7_3", c7, 192, *col)], ()),
                   (None, [("branch7x7dbl_1", cin, c7, 1), ("branch7x7dbl_2", c7, c7, *col),
                           ("branch7x7dbl_3", c7, c7, *row), ("branch7x7dbl_4", c7, c7, *col),
                           ("branch7x7dbl_5", c7, 192, *row)], ()),
                   ("avg", [("branch_pool", cin, 192, 1)], ())])


def _block_d(cin: int) -> _Mixed:
    return _Mixed([(None, [("branch3x3_1", cin, 192, 1), ("branch3x3_2", 192, 320, 3, 2)], ()),
                   (None, [("branch7x7x3_1", cin, 192, 1), ("branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
                           ("branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 192, 3, 2)], ()),
                   ("max2", [], ())])


def _block_e(cin: int, pool: str) -> _Mixed:
    def pair(prefix: str) -> tuple[ConvSpec, ConvSpec]:
        return (f"{prefix}a", 384, 384, (1, 3), 1, (0, 1)), (f"{prefix}b", 384, 384, (3, 1), 1, (1, 0))

    return _Mixed([(None, [("branch1x1", cin, 320, 1)], ()),
                   (None, [("branch3x3_1", cin, 384, 1)], pair("branch3x3_2")),
                   (None, [("branch3x3dbl_1", cin, 448, 1), ("branch3x3dbl_2", 448, 384, 3, 1, 1)],
                    pair("branch3x3dbl_3")),
                   (pool, [("branch_pool", cin, 192, 1)], ())])


class FIDInception(nn.Module):
    """The FID Inception v3 (see the module docstring). ``forward`` takes images already resized and scaled
    (N x 3 x 299 x 299 in [-1, 1]) and gives the 2048-d pool features and the 1008 logits without the fc bias."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, 2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, 1, 1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = _block_a(192, 32), _block_a(256, 64), _block_a(288, 64)
        self.Mixed_6a = _block_b(288)
        self.Mixed_6b, self.Mixed_6c = _block_c(768, 128), _block_c(768, 160)
        self.Mixed_6d, self.Mixed_6e = _block_c(768, 160), _block_c(768, 192)
        self.Mixed_7a = _block_d(768)
        self.Mixed_7b, self.Mixed_7c = _block_e(1280, "avg"), _block_e(2048, "max1")
        self.fc = nn.Linear(POOL_DIM, CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        pool = x.mean((2, 3))
        return pool, pool.mm(self.fc.weight.T)


def load_inception(path: str | Path | None = None, device: str | torch.device = "cpu") -> FIDInception:
    """The network with the weights of ``path`` (default: ``find_weights()``), in eval mode, without gradients.
    The file is read with ``weights_only=True`` (no code runs from it); a file that is not these weights raises
    ``WeightsError`` naming it and what does not fit."""
    path = find_weights(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip or torch errors: not a weights file
        raise WeightsError(f"{path}: not a PyTorch weights file ({str(err).splitlines()[0][:200]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    net = FIDInception()
    expected = net.state_dict()
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict of the FID Inception network")
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}  # torchvision-layout files have them
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and getattr(state[k], "shape", None) != expected[k].shape]
    if missing or unexpected or wrong:
        problems = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                    f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                    f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)}, expected "
                    f"{tuple(expected[wrong[0]].shape)})" if wrong else ""]
        raise WeightsError(f"{path}: not the FID Inception weights ({WEIGHTS_FILES[0]}): tensors "
                           f"{', '.join(p for p in problems if p)}")
    net.load_state_dict(state)
    return net.to(device).eval().requires_grad_(False)


def resize_like_tf1(x: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """Bilinear resize of N x C x H x W float32 to size x size as TensorFlow 1.x's ``resize_bilinear``
    (align_corners False): output pixel i samples input position i * in / out, no half-pixel offset, the last row
    and column repeated past the edge, no antialiasing. The grid is computed in float32, as torch-fidelity does."""

    def grid(n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        position = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(
            n_in / size, dtype=torch.float32, device=x.device)
        low = position.long()
        return low, (low + 1).clamp_max(n_in - 1), position - low.float()

    (y0, y1, dy), (x0, x1, dx) = grid(x.shape[2]), grid(x.shape[3])
    top, bottom = x[:, :, y0], x[:, :, y1]
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * dx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * dx
    return top + (bottom - top) * dy[:, None]


def preprocess(images: Iterable[Tensor], device: str | torch.device = "cpu") -> Tensor:
    """uint8 C x H x W images (C = 1 or 3, any sizes) -> N x 3 x 299 x 299 float32 in [-1, 1): resized one by one
    with ``resize_like_tf1``, then (x - 128) / 128."""
    batch = []
    for image in images:
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected uint8 C x H x W images with 1 or 3 channels, got {image.dtype} "
                             f"{tuple(image.shape)}")
        image = image.to(device).float()[None]
        batch.append(resize_like_tf1(image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image))
    return (torch.cat(batch) - 128) / 128


@torch.no_grad()
def inception_features(net: FIDInception, images: Iterable[Tensor]) -> tuple[Tensor, Tensor]:
    """Pool features (N x 2048) and unbiased logits (N x 1008), float32 on the CPU, of a batch of uint8 images."""
    device = next(net.parameters()).device
    pool, logits = net(preprocess(images, device))
    return pool.float().cpu(), logits.float().cpu()


def inception_score(logits: Tensor | np.ndarray, splits: int = 10, shuffle: bool = True,
                    seed: int = 2020) -> tuple[float, float]:
    """Inception Score of N x classes logits: mean and standard deviation over ``splits`` chunks of
    exp(E_x KL(p(y|x) || p(y))), p(y) the chunk's mean prediction; computed in float64 after a seeded shuffle
    (NumPy's RandomState(seed).permutation, as torch-fidelity)."""
    logits = torch.as_tensor(logits)
    if logits.dim() != 2 or len(logits) < splits or splits < 1:
        raise ValueError(f"inception_score needs N x classes logits with N >= splits >= 1, got {tuple(logits.shape)} "
                         f"and {splits} splits")
    n = len(logits)
    if shuffle:
        logits = logits[torch.from_numpy(np.random.RandomState(seed).permutation(n))]
    logits = logits.double()
    p, log_p = logits.softmax(1), logits.log_softmax(1)
    scores = []
    for i in range(splits):
        chunk = slice(i * n // splits, (i + 1) * n // splits)
        q = p[chunk].mean(0, keepdim=True)
        scores.append(float((p[chunk] * (log_p[chunk] - q.log())).sum(1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))
