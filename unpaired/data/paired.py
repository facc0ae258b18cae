"""Aligned pairs in the pix2pix layout: one image file holds domain A on its left half and B on its right.

This is how the pix2pix data sets ship (maps, facades, cityscapes, edges2shoes...): ``maps/train/1.jpg`` is
1200x600 with the aerial photo (A) left and the map (B) right. Two uses:

* **paired evaluation** (``unpaired eval paired``): translate one half, compare with the other;
* **unpaired training on a paired set** (``--data pairs:DIR`` or ``pairs:DIR@0.8``). The files of ``DIR``,
  in natural order (``2.jpg`` before ``10.jpg``), are cut in two: the first ``fraction`` (default 0.8) is the
  *train* split, the rest the *test* split (the hold-out that ``eval paired --data pairs:DIR@0.8`` scores).
  To keep training honestly **unpaired**, the train split's two domains come from *disjoint* files: domain A
  is the left halves of the files at even positions of the train split, domain B the right halves of those
  at odd positions, so the two halves of one pair are never both seen in training (each domain is also
  shuffled on its own by the trainer). This is stricter than the CycleGAN/GcGAN ``maps`` setup, whose
  trainA/ and trainB/ hold both halves of every training pair, and it gives each domain half of the train
  files. The test split keeps both halves of the same files, aligned (for sample grids and evaluation).
  With ``@1`` every file is for training and the test split reuses them (with a warning).
* **supervised training on aligned pairs** (a method that declares ``paired_data``, pix2pix): ``aligned=True``
  gives the train split's two halves of *every* train file, image i of A and of B one pair; the same test split.
  The hold-out is the same as for unpaired training on the same spec, so both are scored on the same pairs.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from unpaired.images import pil_to_array

from .errors import DataError, DataWarning
from .sources import (
    IMAGE_EXTENSIONS,
    DomainPair,
    FolderSource,
    _reason,
    _resize_short_side,
    check_source_options,
    list_images,
)

__all__ = [
    "DEFAULT_TRAIN_FRACTION",
    "PAIRS_PREFIX",
    "PairedFolderSource",
    "list_pairs",
    "open_pairs",
    "pair_files",
    "parse_pairs_spec",
    "split_pairs",
]

PAIRS_PREFIX = "pairs:"
DEFAULT_TRAIN_FRACTION = 0.8
SIDES = {"a": "left", "b": "right"}


def natural_key(name: str) -> list[object]:
    """Sort key that orders the numbers inside names by value: 2.jpg < 10.jpg < 100.jpg."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def list_pairs(folder: Path) -> list[Path]:
    """The image files directly inside ``folder`` in natural order; a DataError when there are none."""
    folder = Path(folder)
    files, ignored = list_images(folder)
    if not files:
        subs = sorted(p.name + "/" for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        hint = (f"; it has the sub-folders {', '.join(subs)}: give the one that holds the A|B images (e.g. "
                f"{folder / subs[0].rstrip('/')})") if subs else ""
        other = f" (it holds {len(ignored)} other file(s), e.g. {ignored[0]})" if ignored else ""
        raise DataError(f"{folder}: no images ({' '.join(IMAGE_EXTENSIONS)}) directly in this folder{other}{hint}; "
                        "aligned pairs are single images with A on the left half and B on the right")
    return sorted(files, key=lambda p: natural_key(p.name))


def split_pairs(count: int, fraction: float) -> tuple[list[int], list[int]]:
    """Indices of the train part (the first ``round(fraction * count)``) and of the test part (the rest)."""
    if not 0 < fraction <= 1:
        raise DataError(f"pairs split fraction must be in (0, 1], got {fraction:g} (e.g. pairs:DIR@0.8)")
    if fraction == 1:
        return list(range(count)), []
    if count < 3:
        raise DataError(f"a train/test split of aligned pairs needs at least 3 images, got {count}")
    n_train = min(max(2, round(fraction * count)), count - 1)
    return list(range(n_train)), list(range(n_train, count))


def parse_pairs_spec(spec: str) -> tuple[str, float]:
    """``pairs:DIR`` or ``pairs:DIR@0.8`` -> (DIR, train fraction). A ``@`` not followed by a number is part of
    the folder name."""
    if not spec.lower().startswith(PAIRS_PREFIX):
        raise DataError(f"{spec!r}: not a pairs spec (pairs:DIR or pairs:DIR@0.8)")
    body = spec[len(PAIRS_PREFIX):]
    folder, fraction = body, DEFAULT_TRAIN_FRACTION
    if "@" in body:
        head, tail = body.rsplit("@", 1)
        try:
            fraction = float(tail)
        except ValueError:
            pass
        else:
            folder = head
    if not folder:
        raise DataError(f"--data {spec!r}: no folder after '{PAIRS_PREFIX}' (e.g. pairs:maps/train@0.8)")
    return folder, fraction


def _find(text: str, root: Path | None) -> Path:
    p = Path(text).expanduser()
    if p.is_dir() or root is None or p.is_absolute() or not (Path(root) / p).is_dir():
        return p
    return Path(root) / p


def pair_files(data: str, root: Path | None = None) -> tuple[Path, list[int] | None, str]:
    """What paired evaluation reads from ``data``: (folder, indices or None for all, description).

    ``DIR`` means every image of DIR; ``pairs:DIR`` / ``pairs:DIR@0.8`` means the hold-out (test) part of the
    split that training on the same spec used.
    """
    if not data.lower().startswith(PAIRS_PREFIX):
        folder = _find(data, root)
        return folder, None, f"{folder} (all images)"
    text, fraction = parse_pairs_spec(data)
    folder = _find(text, root)
    train, test = split_pairs(len(list_pairs(folder)), fraction)
    if not test:
        raise DataError(f"{data}: a train fraction of 1 leaves no hold-out images to evaluate; give a smaller "
                        "fraction (e.g. @0.8) or the plain folder to score every image")
    total = len(train) + len(test)
    return folder, test, f"{folder} (hold-out: the last {len(test)} of {total} images, train fraction {fraction:g})"


class PairedFolderSource(FolderSource):
    """One half (``side`` 'a' = left, 'b' = right) of every aligned-pair image in ``folder``.

    ``indices`` selects files by their position in natural order (``list_pairs``), before any unreadable
    file is dropped, so a split stays the same whatever ``on_bad_image`` does. Every image must be exactly
    twice as wide as it is high (two square halves); the halves are resized like ``FolderSource`` images
    (shorter side to ``load_size``). Decoding, the bad-image policy and ``check()`` are ``FolderSource``'s.
    """

    def __init__(self, folder: Path, side: str, channels: int = 3, load_size: int | None = None,
                 indices: list[int] | None = None, on_bad_image: str = "fail") -> None:
        if side not in SIDES:
            raise ValueError(f"side must be 'a' (left halves) or 'b' (right halves), got {side!r}")
        check_source_options(channels, load_size, on_bad_image)
        self.folder = Path(folder)
        self.side = side
        self.name = f"{self.folder} [{SIDES[side]} halves]"
        self.channels = channels
        self.load_size = load_size
        self.on_bad_image = on_bad_image
        self.labels = None
        self.skipped: list[str] = []
        self._problems: dict[str, str] = {}
        self._bad: set[int] = set()
        self.ignored: list[str] = []

        files = list_pairs(self.folder)
        if indices is not None:
            wrong = [i for i in indices if not 0 <= i < len(files)]
            if wrong:
                raise DataError(f"{self.folder}: holds {len(files)} images, no image number {wrong[0]}")
            files = [files[i] for i in indices]
        if not files:
            raise DataError(f"{self.folder}: no images selected")
        self.paths: list[Path] = []
        for path in files:
            problem = self._pair_problem(path)
            if problem is None:
                self.paths.append(path)
            elif self.on_bad_image == "fail":
                raise DataError(f"{path}: {problem}")
            else:
                self._problems[str(path)] = problem
                self.skipped.append(str(path))
                warnings.warn(f"{path}: {problem}; skipping it", DataWarning, stacklevel=2)
        if not self.paths:
            raise DataError(f"{self.folder}: none of its {len(files)} selected image(s) is an aligned pair "
                            f"(first: {self.skipped[0]}: {self._problems[self.skipped[0]]})")

    @staticmethod
    def _pair_problem(path: Path) -> str | None:
        try:
            with Image.open(path) as im:
                w, h = im.size
        except Exception as e:  # PIL raises many types for bad headers
            return f"cannot decode image ({_reason(e)})"
        if h < 1 or w != 2 * h:
            return (f"is {w}x{h}, not an aligned pair: the pix2pix layout puts A and B side by side as two "
                    f"square halves, so the width must be twice the height (e.g. 1200x600)")
        return None

    def _decode(self, path: Path, resize: bool = True) -> np.ndarray:
        with Image.open(path) as im:
            im.load()  # full decode: truncated data raises here
            array = pil_to_array(im, self.channels)
        half = array.shape[1] // 2
        array = array[:, :half] if self.side == "a" else array[:, half:]
        if resize and self.load_size is not None:
            array = np.asarray(_resize_short_side(Image.fromarray(np.ascontiguousarray(array)), self.load_size),
                               dtype=np.uint8)
        return array


def open_pairs(spec: str, split: str, *, image_size: int, channels: int | None, root: Path | None = None,
               on_bad_image: str = "fail", aligned: bool = False):
    """The two domains of ``pairs:DIR[@fraction]`` for ``split`` (see the module docstring); ``aligned``: the train
    split keeps both halves of every file, in the same order (supervised training), instead of disjoint files."""
    text, fraction = parse_pairs_spec(spec)
    folder = _find(text, root)
    if not folder.is_dir():
        raise DataError(f"--data {spec}: {folder} is not a folder" + ("" if folder.is_absolute() or root is None
                                                                      else f" (nor is {Path(root) / text})"))
    train, test = split_pairs(len(list_pairs(folder)), fraction)
    ch = 3 if channels is None else channels
    if split == "train" and aligned:
        index_a = index_b = train
    elif split == "train":
        if len(train) < 2:
            raise DataError(f"--data {spec}: the train part holds {len(train)} image(s); unpaired training on "
                            "aligned pairs needs at least 2 (the domains take disjoint files)")
        index_a, index_b = train[0::2], train[1::2]
    else:
        if not test:
            warnings.warn(f"{spec}: a train fraction of 1 leaves no test images; using the training images for "
                          "the test split (results on it are not a held-out evaluation)", UserWarning, stacklevel=3)
            test = train
        index_a = index_b = test
    a = PairedFolderSource(folder, "a", ch, image_size, index_a, on_bad_image)
    b = PairedFolderSource(folder, "b", ch, image_size, index_b, on_bad_image)
    how = "disjoint files" if split == "train" and not aligned else "aligned"
    return DomainPair(a, b, f"{folder} pairs [{split}, {how}, train fraction {fraction:g}]: "
                            f"A = left halves ({len(a)} images), B = right halves ({len(b)} images)")
