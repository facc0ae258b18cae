"""FID, KID and IS of image sets the way papers compute them: the FID Inception network (``inception.py``) on
folders of images or on uint8 tensors, real-image features cached, one report.

``score_features(real, fake)`` gives, with the defaults of torch-fidelity (whose values the tests reproduce
within 1e-4 relative on a shared network):

- ``fid``: Frechet distance of the 2048-d pool features (``frechet.frechet_distance``), its matrix square root
  by the symmetric eigenvalue route: 4x faster than SciPy's ``sqrtm`` at 2048 dimensions (3 s against 13 s on one
  core) and equal to it, and to torch-fidelity's eigenvalues of S_a S_b, within 1e-7 relative even for the
  singular covariances of fewer images than dimensions;
- ``kid_mean``, ``kid_std``: the unbiased polynomial-kernel MMD^2 over ``kid_subsets`` subsets of
  ``kid_subset_size`` images each, drawn as torch-fidelity draws them (``sampling='sequential'``, seed 2020);
  report the subset size with the value (torch-fidelity's default 1000; smaller sets need a smaller one);
- ``is_mean``, ``is_std``: the Inception Score of the fake set, ``isc_splits`` splits (10).

Images are read as torch-fidelity reads a folder: PIL, converted to RGB, uint8, at their own size (each is resized
to 299 by the network's preprocessing). Features of a file list are cached in ``$UNPAIRED_HOME/cache/inception``
keyed by the files (path, size, modification time), the weights file (path, size, modification time) and the
preprocessing version, so scoring several runs against one real test set reads it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from unpaired.data import DataError, list_images, unpaired_home
from unpaired.io import atomic_write
from unpaired.metrics.frechet import frechet_distance, kernel_inception_distance
from unpaired.metrics.inception import FIDInception, inception_features, inception_score
from unpaired.metrics.paired import check_outputs

PREPROCESSING = "pil-rgb-uint8/tf1-bilinear-299/(x-128)/128/v1"
"""Part of the cache key: a change of how images become network input must not reuse old features."""
TORCH_FIDELITY_SEED = 2020


@dataclass
class Features:
    """Inception features of N images: pool (N x 2048) and unbiased logits (N x 1008), float32."""

    pool: Tensor
    logits: Tensor

    def __len__(self) -> int:
        return len(self.pool)


@dataclass
class Settings:
    """How the scores are computed (written into every report)."""

    kid_subset_size: int = 1000
    kid_subsets: int = 100
    isc_splits: int = 10
    seed: int = TORCH_FIDELITY_SEED
    batch_size: int = 32


def pil_to_uint8(image: Image.Image) -> Tensor:
    """A PIL image as uint8 3 x H x W, converted to RGB (as torch-fidelity reads folders)."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()


def read_uint8(path: Path) -> Tensor:
    """An image file as ``pil_to_uint8`` gives it; a DataError naming an unreadable file."""
    try:
        with Image.open(path) as image:
            return pil_to_uint8(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read this image ({err})") from None


def batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[i:i + size] for i in range(0, len(items), size))


def features_of_images(net: FIDInception, images: Sequence[Tensor] | Iterable[Sequence[Tensor]], batch_size: int = 32,
                       desc: str | None = None, total: int | None = None) -> Features:
    """Features of uint8 C x H x W images: a sequence (cut into ``batch_size`` batches), or an iterable of batches;
    a progress bar named ``desc`` when given."""
    chunks = batches(images, batch_size) if isinstance(images, Sequence) else images
    total = len(images) if isinstance(images, Sequence) else total
    pools, logits = [], []
    with tqdm(total=total, desc=desc, unit="img", disable=desc is None, leave=False) as bar:
        for chunk in chunks:
            pool, logit = inception_features(net, chunk)
            pools.append(pool)
            logits.append(logit)
            bar.update(len(chunk))
    if not pools:
        raise DataError("no images to score")
    return Features(torch.cat(pools), torch.cat(logits))


def files_of(folder: Path) -> list[Path]:
    """The images of a folder (sorted), or a DataError naming it when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files, _ignored = list_images(folder)
    if not files:
        raise DataError(f"{folder}: no images (.png .jpg .jpeg .bmp .webp) in this folder")
    return sorted(files)


def cache_key(files: Sequence[Path], weights: Path) -> str:
    def stamp(path: Path) -> list:
        stat = Path(path).stat()
        return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]

    payload = json.dumps({"files": [stamp(f) for f in files], "weights": stamp(weights), "how": PREPROCESSING})
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def cache_dir() -> Path:
    return unpaired_home() / "cache" / "inception"


def features_of_files(net: FIDInception, files: Sequence[Path], weights: Path | None = None, batch_size: int = 32,
                      desc: str | None = None, cache: bool = True) -> Features:
    """Features of image files; with ``cache`` (and the ``weights`` file named, part of the key) read from and
    written to ``cache_dir()``."""
    path = cache_dir() / f"{cache_key(files, weights)}.npz" if cache and weights is not None else None
    if path is not None and path.is_file():
        with np.load(path) as stored:
            return Features(torch.from_numpy(stored["pool"]), torch.from_numpy(stored["logits"]))
    loaded = (list(map(read_uint8, chunk)) for chunk in batches(list(files), batch_size))
    features = features_of_images(net, loaded, batch_size, desc=desc, total=len(files))
    if path is not None:
        def write(handle: Any) -> None:
            np.savez(handle, pool=features.pool.numpy(), logits=features.logits.numpy())

        with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
            atomic_write(path, write)
    return features


def score_features(real: Features, fake: Features, settings: Settings | None = None) -> dict[str, float]:
    """FID, KID (mean, std) of ``fake`` against ``real`` and the IS of ``fake`` (see the module docstring)."""
    s = settings or Settings()
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(real)} real and {len(fake)} fake")
    # fake first: torch-fidelity's input1, whose subset its generator draws first
    kid_mean, kid_std = kernel_inception_distance(fake.pool, real.pool, s.kid_subsets, s.kid_subset_size, s.seed,
                                                  sampling="sequential")
    is_mean, is_std = inception_score(fake.logits, min(s.isc_splits, len(fake)), seed=s.seed)
    return {"fid": frechet_distance(real.pool, fake.pool, sqrtm="eigh"), "kid_mean": kid_mean, "kid_std": kid_std,
            "is_mean": is_mean, "is_std": is_std}


def kid_subset_size(settings: Settings, *sizes: int) -> Settings:
    """``settings`` with the KID subset size lowered to the smallest set when a set is smaller (said in reports)."""
    smallest = min(sizes)
    if settings.kid_subset_size <= smallest:
        return settings
    return Settings(**{**settings.__dict__, "kid_subset_size": smallest})


REPORT_FILES = ("report.json", "report.md")


def check_report_folder(out: Path, overwrite: bool) -> None:
    """Refuse (DataError) a file for ``out``, or report files already there unless ``overwrite``."""
    check_outputs(out, overwrite, REPORT_FILES)


def markdown(report: dict[str, Any]) -> str:
    """report.md: what was compared, the scores, and how they were computed."""
    s, scores = report["settings"], report["scores"]
    lines = [f"# {report['title']}", "", f"real: `{report['real']}` ({report['n_real']} images)  ",
             f"fake: `{report['fake']}` ({report['n_fake']} images)", "",
             "| FID | KID (x 1000) | IS |", "|---|---|---|",
             f"| {scores['fid']:.4f} | {1000 * scores['kid_mean']:.4f} +- {1000 * scores['kid_std']:.4f} | "
             f"{scores['is_mean']:.4f} +- {scores['is_std']:.4f} |", ""]
    if report.get("paired"):
        paired = report["paired"]
        lines += [f"Paired with the target test images of the same name ({paired['pairs']} pairs):", "",
                  "| " + " | ".join(paired["mean"]) + " |", "|" + "---|" * len(paired["mean"]),
                  "| " + " | ".join(f"{v:.4f}" for v in paired["mean"].values()) + " |", ""]
    if report.get("diversity"):
        d = report["diversity"]
        lines += [f"Diversity ({d['styles']} styles per input, mean pairwise distance): {d['mean']:.4f}, "
                  f"{d['distance']}.", ""]
    lines += [f"Network: FID Inception v3 (2015-12-05 weights) read from `{report['weights']}`; images resized to 299 "
              "by TensorFlow-1 bilinear sampling, (x - 128) / 128, as torch-fidelity.  ",
              f"KID: {s['kid_subsets']} subsets of {s['kid_subset_size']} images, polynomial kernel, seed {s['seed']}. "
              f"IS of the fake set, {s['isc_splits']} splits.", ""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: Path, overwrite: bool = False) -> list[Path]:
    """report.json and report.md in ``out`` (each written atomically)."""
    check_report_folder(out, overwrite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("report.json", json.dumps(report, indent=2) + "\n"), ("report.md", markdown(report))):
        data = text.encode()
        atomic_write(out / name, lambda handle, data=data: handle.write(data))
        written.append(out / name)
    return written


def fid_report(title: str, real: str, fake: str, real_features: Features, fake_features: Features,
               settings: Settings, weights: Path) -> dict[str, Any]:
    """Score ``fake`` against ``real`` (the KID subset size lowered to the smaller set if needed) as a report."""
    settings = kid_subset_size(settings, len(real_features), len(fake_features))
    return {"title": title, "real": real, "fake": fake, "n_real": len(real_features), "n_fake": len(fake_features),
            "scores": score_features(real_features, fake_features, settings), "settings": dict(settings.__dict__),
            "weights": str(weights), "preprocessing": PREPROCESSING}
