"""``unpaired eval translation``: translate a data set's test split and score it against the target test split
with FID, KID and IS (``fidelity.py``), and with the paired metrics (``paired.py``: RMSE, pixel accuracy) when the
two test folders hold images of the same names (aligned pairs); for methods with a style prior (MUNIT),
optionally the diversity of K styles per input (``diversity.py``: LPIPS v0.1 when its weights and VGG16's are
given, else the pixel L1 fallback, named in the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from unpaired.data import DataError
from unpaired.inference import open_image
from unpaired.methods.base import StylePrior, require
from unpaired.metrics.diversity import LPIPS_VERSION, load_lpips_weights, translation_diversity
from unpaired.metrics.fidelity import (
    Features,
    Settings,
    features_of_files,
    features_of_images,
    fid_report,
    files_of,
    pil_to_uint8,
    read_uint8,
)
from unpaired.metrics.inception import FIDInception
from unpaired.metrics.paired import resize_truth, score_images
from unpaired.nn.vgg import LPIPS_LAYERS, load_vgg16_features

STYLE_SEED = 0
"""Methods that draw a style per translation (MUNIT) draw it from this seed: the score is reproducible."""


def translate_files(translator: Any, files: list[Path], direction: str, size: int | None) -> list[torch.Tensor]:
    """Each file translated (one output each) as uint8 3 x H x W, with a progress bar."""
    options = {"seed": STYLE_SEED} if "seed" in getattr(getattr(translator, "method", None), "translate_options",
                                                          ()) else {}
    out = []
    for path in tqdm(files, desc=f"translate {direction}", unit="img", leave=False):
        try:
            image = translator.translate_image(path, direction, size=size, **options)[0]
        except (OSError, SyntaxError) as err:
            raise DataError(f"{path}: cannot read this image ({err})") from None
        out.append(pil_to_uint8(image))
    return out


def paired_scores(fakes: list[torch.Tensor], sources: list[Path], targets: dict[str, Path]) -> dict[str, Any] | None:
    """Mean RMSE and pixel accuracies of each translation against the target image of the same name (resized to
    the translation's size, bilinear), when every source has one; else None."""
    if not all(p.stem in targets for p in sources):
        return None
    totals: dict[str, list[float]] = {}
    for fake, source in zip(fakes, sources, strict=True):
        truth = resize_truth(read_uint8(targets[source.stem]), tuple(fake.shape[1:]))
        for key, value in score_images(fake[None].float(), truth[None].float()).items():
            totals.setdefault(key, []).append(float(value[0]))
    return {"pairs": len(sources), "mean": {k: float(np.mean(v)) for k, v in totals.items()}}


def style_diversity(translator: Any, files: list[Path], direction: str, k: int, size: int | None = None,
                    vgg_weights: Path | None = None, lpips_weights: Path | None = None) -> dict[str, Any]:
    """Mean pairwise distance of K translations of each file (K prior styles from ``STYLE_SEED``), averaged over
    the files, with the distance it used."""
    method = require(getattr(translator, "method", translator), StylePrior, "--diversity")
    if (vgg_weights is None) != (lpips_weights is None):
        raise ValueError("LPIPS needs both --vgg-weights (torchvision's VGG16) and --lpips-weights (lpips's "
                         "v0.1 vgg.pth)")
    features = weights = None
    distance = "pixel L1 fallback (mean |a - b| in [-1, 1] units; no LPIPS weights given)"
    if vgg_weights is not None:
        device = next(method.parameters()).device
        features, weights = load_vgg16_features(vgg_weights, LPIPS_LAYERS).to(device), load_lpips_weights(lpips_weights)
        distance = LPIPS_VERSION
    values = [translation_diversity(translator, translator.prepare(open_image(path), direction, size), direction, k,
                                    STYLE_SEED, features, weights)
              for path in tqdm(files, desc=f"diversity ({k} styles)", unit="img", leave=False)]
    return {"styles": k, "distance": distance, "mean": float(np.mean(values))}


def evaluate_translation(translator: Any, net: FIDInception, weights: Path, data: Path, direction: str,
                         settings: Settings, size: int | None = None, limit: int | None = None,
                         diversity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report of ``translator`` on ``data``/test<source> against ``data``/test<target>; ``diversity``: the
    keyword arguments of ``style_diversity`` (k, vgg_weights, lpips_weights) to add it."""
    source, target = direction[0].upper(), direction[-1].upper()
    sources = files_of(Path(data) / f"test{source}")[:limit]
    targets = files_of(Path(data) / f"test{target}")
    fakes = translate_files(translator, sources, direction, size)
    real: Features = features_of_files(net, targets, weights, settings.batch_size, desc=f"inception test{target}")
    fake = features_of_images(net, fakes, settings.batch_size, desc="inception translations")
    report = fid_report(f"Translation {direction}", str(Path(data) / f"test{target}"),
                        f"{Path(data) / f'test{source}'} translated {direction}", real, fake, settings, weights)
    report["paired"] = paired_scores(fakes, sources, {p.stem: p for p in targets})
    if diversity:
        report["diversity"] = style_diversity(translator, sources, direction, size=size, **diversity)
    return report
