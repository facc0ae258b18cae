"""One mixed collection of images, for methods that find its domains themselves (TUNIT).

``--data MIXED_DIR`` names one folder: its images, and the images of its sub-folders (one level down), form a
single pool. Sub-folder names are labels only when the method asks for them (``label_fraction`` > 0: TUNIT's
semi-supervised and supervised modes); otherwise they are never read, so a folder sorted by hand into
``cat/ dog/ wild/`` and the same images in one heap give the same training run. To make that exact, images
are ordered by file name whatever sub-folder holds them (the relative path breaks ties).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .errors import DataError
from .sources import IMAGE_EXTENSIONS, FolderSource, ImageSource, check_source_options, list_images

__all__ = ["CollectionSource", "labelled_subset"]


class CollectionSource(ImageSource):
    """The images directly in ``folder`` and in its sub-folders, as one source.

    ``label_fraction`` 0: no labels (``labels`` is None). Above 0, an image's label is the index of its
    sub-folder among the sorted sub-folder names (``class_names``), kept for the first ``label_fraction`` of
    each sub-folder's images in collection order (at least one each, as TUNIT's official semi-supervised split)
    and -1 for the others and for images directly in ``folder``; 1 (every label) refuses such loose images.
    """

    def __init__(self, folder: Path, channels: int = 3, load_size: int | None = None, on_bad_image: str = "fail",
                 label_fraction: float = 0.0) -> None:
        check_source_options(channels, load_size, on_bad_image)
        if not 0.0 <= label_fraction <= 1.0:
            raise ValueError(f"label_fraction must be within 0..1, got {label_fraction}")
        self.folder = Path(folder)
        self.name = str(self.folder)
        self.channels = channels
        loose, _ = list_images(self.folder)
        subfolders = sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        parts: list[FolderSource] = []
        if loose:
            parts.append(FolderSource(self.folder, channels, load_size, on_bad_image))
        filled = [sub for sub in subfolders if list_images(sub)[0]]  # an empty sub-folder adds nothing
        parts += [FolderSource(sub, channels, load_size, on_bad_image) for sub in filled]
        if not parts:
            raise DataError(f"{self.folder}: no images ({' '.join(IMAGE_EXTENSIONS)}) in this folder or in its "
                            "sub-folders; a single-collection method (e.g. tunit) trains on one folder of images, "
                            "or on one folder whose sub-folders hold the images")
        self.parts = parts
        entries = [(path.name, str(path.relative_to(self.folder)), k, i)
                   for k, part in enumerate(parts) for i, path in enumerate(part.paths)]
        entries.sort()
        self._index = [(k, i) for _, _, k, i in entries]
        self.relative_paths = [relative for _, relative, _, _ in entries]
        self.class_names: list[str] | None = None
        self.labels = None
        if label_fraction > 0:
            self._read_labels(parts, filled, bool(loose), label_fraction)

    def _read_labels(self, parts: list[FolderSource], filled: list[Path], has_loose: bool, fraction: float) -> None:
        if not filled:
            raise DataError(f"{self.folder}: labels were asked for (a semi-supervised or supervised mode) but the "
                            "folder has no sub-folders; put each class's images in a sub-folder named after it")
        if has_loose and fraction >= 1.0:
            example = parts[0].paths[0].name
            raise DataError(f"{self.folder}: every image needs a label (supervised mode, or scoring against the "
                            f"sub-folder names), but {len(parts[0])} image(s) lie directly in the folder (e.g. "
                            f"{example}), outside any class sub-folder")
        self.class_names = [sub.name for sub in filled]
        part_label = [-1] * has_loose + list(range(len(filled)))
        labels = torch.tensor([part_label[k] for k, _ in self._index], dtype=torch.int64)
        self.labels = labelled_subset(labels, fraction)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> torch.Tensor:
        k, j = self._index[i]
        return self.parts[k][j]

    def file_name(self, i: int) -> str:
        k, j = self._index[i]
        return self.parts[k].file_name(j)


def labelled_subset(labels: torch.Tensor, fraction: float) -> torch.Tensor:
    """``labels`` with all but the first ``ceil(fraction * n_c)`` images of each class c set to -1 (unlabelled);
    at least one image of each class stays labelled. -1 entries stay -1."""
    if fraction >= 1.0:
        return labels.clone()
    kept = torch.full_like(labels, -1)
    for c in labels.unique().tolist():
        if c < 0:
            continue
        members = (labels == c).nonzero().flatten()
        count = max(1, math.ceil(fraction * len(members)))
        kept[members[:count]] = c
    return kept
