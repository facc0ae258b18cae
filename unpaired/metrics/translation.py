"""``unpaired eval translation``: translate a data set's test split and score it against the target test split
with FID, KID and IS (``fidelity.py``), and with the paired metrics (``paired.py``: RMSE, pixel accuracy) when the
two test folders hold images of the same names (aligned pairs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from unpaired.data import DataError
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


def evaluate_translation(translator: Any, net: FIDInception, weights: Path, data: Path, direction: str,
                         settings: Settings, size: int | None = None, limit: int | None = None) -> dict[str, Any]:
    """The report of ``translator`` on ``data``/test<source> against ``data``/test<target>."""
    source, target = direction[0].upper(), direction[-1].upper()
    sources = files_of(Path(data) / f"test{source}")[:limit]
    targets = files_of(Path(data) / f"test{target}")
    fakes = translate_files(translator, sources, direction, size)
    real: Features = features_of_files(net, targets, weights, settings.batch_size, desc=f"inception test{target}")
    fake = features_of_images(net, fakes, settings.batch_size, desc="inception translations")
    report = fid_report(f"Translation {direction}", str(Path(data) / f"test{target}"),
                        f"{Path(data) / f'test{source}'} translated {direction}", real, fake, settings, weights)
    report["paired"] = paired_scores(fakes, sources, {p.stem: p for p in targets})
    return report
