"""Image sources: one domain, one split, as a map-style collection of uint8 images.

Every data set the package reads -- a folder of photos or a named digit set -- is turned into an
:class:`ImageSource`, so the training code only deals with one interface: ``len(src)``, ``src[i]`` (a uint8
``C x H x W`` tensor) and ``src.file_name(i)`` (for writing translated images under their original names).
Sources return *uint8* so that they stay small in memory and in DataLoader worker queues; conversion to float,
cropping and flipping are done by the caller.
"""

from __future__ import annotations

import os
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from unpaired.images import pil_to_array

from .errors import DataError, DataWarning

__all__ = [
    "DATA_ENV",
    "HOME_ENV",
    "IMAGE_EXTENSIONS",
    "DomainPair",
    "FolderSource",
    "ImageSource",
    "TensorSource",
    "data_root",
    "list_images",
    "unpaired_home",
]


DATA_ENV = "UNPAIRED_DATA"
HOME_ENV = "UNPAIRED_HOME"
"""Environment variable naming the folder where named data sets (mnist/, usps/, svhn/...) live."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
"""File extensions (lower case) that a folder scan treats as images."""

BAD_IMAGE_POLICIES = ("fail", "skip")


def data_root() -> Path:
    """Folder where named data sets live: ``$UNPAIRED_DATA`` if set, else ``unpaired_home() / "data"``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return unpaired_home() / "data"


def unpaired_home() -> Path:
    """unpaired's own folder of re-creatable files (data sets, weights files the user puts there, caches):
    ``$UNPAIRED_HOME`` if set, else the user's cache folder.

    The default follows each platform's convention for re-creatable downloads (``~/.cache`` or
    ``$XDG_CACHE_HOME`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows), so the
    package never writes data into the current directory by surprise.
    """
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "unpaired"


class ImageSource(Dataset, ABC):
    """One domain and one split of images, indexable like a list.

    Subclasses set ``name`` (shown in logs and error messages), ``channels`` (1 or 3, the same for every
    image) and ``labels`` (int64 class labels when the data set has them, used by digit-classifier metrics;
    ``None`` otherwise).
    """

    name: str
    channels: int
    labels: torch.Tensor | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, i: int) -> torch.Tensor:
        """Image ``i`` as a uint8 tensor of shape ``channels x H x W``."""

    @abstractmethod
    def file_name(self, i: int) -> str:
        """A file name for image ``i``, so translated outputs can be saved under a recognisable name."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} images, {self.channels} channel(s))"


class TensorSource(ImageSource):
    """Images already in memory at their final size (digit sets), as a uint8 ``N x C x H x W`` tensor."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, name: str = "tensor"
    ) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            got = (
                f"{images.dtype} tensor of shape {tuple(images.shape)}"
                if isinstance(images, torch.Tensor)
                else (type(images).__name__)
            )
            raise TypeError(f"TensorSource {name!r}: needs a uint8 tensor of shape N x C x H x W, got {got}")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"TensorSource {name!r}: needs 1 or 3 channels, got {images.shape[1]}")
        if labels is not None:
            labels = torch.as_tensor(labels).to(torch.int64)
            if labels.shape != (images.shape[0],):
                raise ValueError(
                    f"TensorSource {name!r}: {images.shape[0]} images but labels shaped {tuple(labels.shape)}"
                )
        self.images = images
        self.labels = labels
        self.name = name
        self.channels = int(images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]

    def file_name(self, i: int) -> str:
        return f"{i:06d}.png"


@dataclass
class DomainPair:
    """The two domains (A and B) of one split, and a one-line description for logs; ``b`` is None for a single
    mixed collection (``open_collection``)."""

    a: ImageSource
    b: ImageSource | None
    description: str

    def sources(self) -> dict[str, ImageSource]:
        """{'a': A, 'b': B}, or {'a': the collection}."""
        return {"a": self.a} if self.b is None else {"a": self.a, "b": self.b}


def list_images(folder: Path) -> tuple[list[Path], list[str]]:
    """Image files directly inside ``folder`` sorted by name, and the names of other files that were ignored
    (dangling links among them).

    Not recursive, so that a data set folder can hold sub-folders (for example outputs) without them leaking
    into the domain. Hidden files (``.DS_Store``, ``._x.jpg`` from macOS) are skipped silently.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: folder does not exist; check the path (and --data) and try again")
    if not folder.is_dir():
        raise DataError(f"{folder}: is a file, not a folder; give the folder that holds the images")
    images: list[Path] = []
    ignored: list[Path] = []
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as e:
        raise DataError(f"{folder}: cannot list the folder ({e}); check its permissions") from e
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.is_file():
            (images if p.suffix.lower() in IMAGE_EXTENSIONS else ignored).append(p)
        elif p.is_symlink() and not p.exists():  # a link to nothing, whatever its name
            ignored.append(p)
    return images, [p.name for p in ignored]


def left_out(folder: Path, names: list[str], shown: int = 3) -> str:
    """One line naming the files of ``folder`` that ``list_images`` left out and why: the first ``shown``, then
    how many more."""
    listed = ", ".join(f"{name} ({'not an image type' if (folder / name).exists() else 'dangling link'})"
                       for name in names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{folder}: left out {len(names)} file{'s' * (len(names) != 1)}: {listed}{more}"


def _reason(e: BaseException) -> str:
    msg = str(e).strip()
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _resize_short_side(im: Image.Image, size: int) -> Image.Image:
    w, h = im.size
    if min(w, h) == size:
        return im
    new = (size, max(1, round(h * size / w))) if w <= h else (max(1, round(w * size / h)), size)
    return im.resize(new, Image.Resampling.BICUBIC)


def check_source_options(channels: int, load_size: int | None, on_bad_image: str) -> None:
    """Validate the options every folder-backed source takes (ValueError naming the bad one)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise ValueError(f"on_bad_image must be one of {BAD_IMAGE_POLICIES}, got {on_bad_image!r}")
    if load_size is not None and load_size < 1:
        raise ValueError(f"load_size must be a positive number of pixels, got {load_size!r}")


class FolderSource(ImageSource):
    """The images directly inside one folder (one domain), decoded on access.

    Construction scans the folder and reads each file's header, so that a non-image with an image extension
    or an empty file is reported before training starts instead of hours into it. The full decode happens in
    ``__getitem__``; corrupt data found there (for example a truncated JPEG) is handled by ``on_bad_image``:
    ``"fail"`` raises :class:`DataError`, ``"skip"`` warns once, records the path in ``self.skipped`` and
    returns the next good image so that batches stay full.

    Attributes besides those of :class:`ImageSource`: ``folder``, ``paths`` (the image files in use),
    ``ignored`` (names of non-image files that were ignored) and ``skipped`` (paths dropped as unreadable).
    """

    def __init__(
        self,
        folder: Path,
        channels: int = 3,
        load_size: int | None = None,
        on_bad_image: str = "fail",
    ) -> None:
        check_source_options(channels, load_size, on_bad_image)
        self.folder = Path(folder)
        self.name = str(self.folder)
        self.channels = channels
        self.load_size = load_size
        self.on_bad_image = on_bad_image
        self.labels = None
        self.skipped: list[str] = []
        self._problems: dict[str, str] = {}  # path -> reason, for files dropped or found bad
        self._bad: set[int] = set()  # indices into self.paths found corrupt in __getitem__ (skip policy)

        candidates, self.ignored = list_images(self.folder)
        if not candidates:
            found = ""
            if self.ignored:
                found = f"; it holds {len(self.ignored)} other file(s), e.g. {', '.join(self.ignored[:3])}"
            raise DataError(
                f"{self.folder}: folder has no images of the supported types "
                f"({' '.join(IMAGE_EXTENSIONS)}){found}; put the domain's images directly in this folder "
                "(sub-folders are not searched)"
            )
        if self.ignored:
            warnings.warn(left_out(self.folder, self.ignored), DataWarning, stacklevel=2)

        self.paths: list[Path] = []
        for p in candidates:
            problem = self._check_header(p)
            if problem is None:
                self.paths.append(p)
            else:
                self._bad_file(p, problem)
        if not self.paths:
            raise DataError(
                f"{self.folder}: none of its {len(candidates)} image file(s) could be read "
                f"(first: {self.skipped[0]}: {self._problems[self.skipped[0]]}); "
                "replace the files with valid images"
            )

    @staticmethod
    def _check_header(path: Path) -> str | None:
        try:
            with Image.open(path) as im:
                w, h = im.size
                if w < 1 or h < 1:
                    return f"image has size {w}x{h}"
        except Exception as e:  # PIL raises many types for bad headers (OSError, SyntaxError, ValueError...)
            return _reason(e)
        return None

    def _bad_file(self, path: Path, reason: str) -> None:
        """Apply the bad-image policy to ``path``: raise, or record it and warn (once per file)."""
        if self.on_bad_image == "fail":
            raise DataError(
                f"{path}: cannot decode image ({reason}); delete or replace the file, "
                "or pass on_bad_image='skip' (unpaired train --set data.on_bad_image=skip) to leave such files out"
            )
        key = str(path)
        if key not in self._problems:
            self._problems[key] = reason
            self.skipped.append(key)
            warnings.warn(f"{path}: cannot decode image ({reason}); skipping it", DataWarning, stacklevel=3)

    def _decode(self, path: Path, resize: bool = True) -> np.ndarray:
        """Fully decode ``path``; raises whatever PIL raises for corrupt or truncated data."""
        with Image.open(path) as im:
            im.load()  # forces the full decode: truncated data raises here (LOAD_TRUNCATED_IMAGES is False)
            if resize and self.load_size is not None:
                arr = pil_to_array(im, self.channels)
                small = _resize_short_side(Image.fromarray(arr), self.load_size)
                return np.asarray(small, dtype=np.uint8)
            return pil_to_array(im, self.channels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        n = len(self.paths)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{self.name}: index {i} out of range for {n} images")
        for k in range(n):
            j = (i + k) % n
            if j in self._bad:
                continue
            try:
                arr = self._decode(self.paths[j])
            except Exception as e:
                self._bad_file(self.paths[j], _reason(e))  # raises under "fail"
                self._bad.add(j)
                continue
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            arr = np.ascontiguousarray(arr)
            if not arr.flags.writeable:  # PIL hands out read-only buffers; torch wants writable memory
                arr = arr.copy()
            return torch.from_numpy(arr)
        raise DataError(
            f"{self.folder}: none of its images could be decoded (see the warnings above); "
            "replace the files with valid images"
        )

    def file_name(self, i: int) -> str:
        return self.paths[i].name

    def check(self, progress: bool = False) -> list[tuple[str, str]]:
        """Fully decode every file and return ``(path, problem)`` for each one that is broken.

        Meant for a ``data check`` command: it reports every problem at once instead of stopping at the first,
        whatever ``on_bad_image`` is, and includes the files dropped at construction under ``"skip"``.
        """
        problems: list[tuple[str, str]] = [(p, self._problems[p]) for p in self.skipped]
        items: Iterable[Path] = self.paths
        if progress:
            items = tqdm(self.paths, desc=f"checking {self.folder.name}", unit="img")
        seen = set(self.skipped)
        for p in items:
            if str(p) in seen:
                continue
            try:
                self._decode(p, resize=False)
            except Exception as e:
                problems.append((str(p), _reason(e)))
        return problems
