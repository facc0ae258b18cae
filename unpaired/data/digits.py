"""Named digit data sets (MNIST, USPS, SVHN) read from their usual distribution files.

Digit-to-digit translation (MNIST<->USPS, SVHN->MNIST) is the standard small benchmark for unpaired methods,
and its metric needs the class labels, so these sets are read whole into memory with their labels and served
as a :class:`TensorSource`. Files are read in the formats people actually have (official IDX ``.gz``, the
Kaggle USPS HDF5 or the LIBSVM USPS files, the official SVHN ``.mat``); nothing is converted or cached
on disk.
"""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError
from .sources import DATA_ENV, FolderSource, TensorSource

__all__ = [
    "DIGIT_CHANNELS",
    "DIGIT_SETS",
    "is_labelled_set",
    "load_mnist",
    "load_svhn",
    "load_usps",
    "open_digits",
    "open_labelled",
    "read_digit_h5",
    "read_idx",
]

SPLITS = ("train", "test")

IDX_IMAGES = 2051
IDX_LABELS = 2049

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
USPS_LIBSVM = {"train": "usps.bz2", "test": "usps.t.bz2"}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def _check_split(name: str, split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"{name}: unknown split {split!r}; use one of {', '.join(SPLITS)}")


def _missing(name: str, root: Path, needed: list[Path], note: str = "") -> DataError:
    """The error for absent data files: which files, where they go, and how to get them."""
    files = "\n".join(f"  {p}" for p in needed)
    return DataError(
        f"{name}: data files not found. Needed:\n{files}\n"
        f"Put the files there{note}, or point the environment variable {DATA_ENV} at a folder that holds "
        f"{needed[0].parent.name}/ (the data root now is {root}). When online, "
        f"`unpaired data download {name.split('/')[0]}` fetches them."
    )


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or raw): magic 2051 gives ``N x rows x cols`` uint8, 2049 gives ``N`` uint8.

    The header is validated against the file size, so a truncated download or an HTML error page saved under
    the file's name is reported as such instead of producing garbage digits.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the IDX file ({e}); delete it and download it again") from e
    if len(raw) < 8:
        raise DataError(f"{path}: file is too short to be an IDX file ({len(raw)} bytes); download it again")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IDX_IMAGES, IDX_LABELS):
        raise DataError(
            f"{path}: not an MNIST IDX file (magic number {magic}, expected {IDX_IMAGES} for images or "
            f"{IDX_LABELS} for labels); the file is probably damaged or something else, download it again"
        )
    ndim = 3 if magic == IDX_IMAGES else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is cut short; the file is incomplete, download it again")
    dims = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    expected = int(np.prod(dims))
    got = len(raw) - header
    if got != expected:
        raise DataError(
            f"{path}: IDX header says {' x '.join(map(str, dims))} = {expected} bytes of data but the file "
            f"has {got}; the file is incomplete or damaged, download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find(folder: Path, names: list[str]) -> Path | None:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    return None


def load_mnist(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from ``root/mnist/``: uint8 images ``N x 28 x 28`` and int64 labels.

    Accepts the official gzipped files and their un-gzipped versions (also with the ``.`` spelling Kaggle
    uses, ``train-images.idx3-ubyte``).
    """
    _check_split("mnist", split)
    folder = Path(root) / "mnist"
    found = []
    for base in MNIST_FILES[split]:
        dotted = base.replace("-idx", ".idx")
        p = _find(folder, [base + ".gz", base, dotted, dotted + ".gz"])
        if p is None:
            raise _missing(
                f"mnist/{split}",
                Path(root),
                [folder / (b + ".gz") for b in MNIST_FILES[split]],
                " (gzipped or not)",
            )
        found.append(p)
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{found[0]} / {found[1]}: image and label files are swapped; check the file names")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{found[0]} has {images.shape[0]} images but {found[1]} has {labels.shape[0]} labels; "
            "the files are from different splits or incomplete, download them again"
        )
    if labels.size and labels.max() > 9:
        raise DataError(
            f"{found[1]}: labels must be digits 0-9, found {int(labels.max())}; download it again"
        )
    return images, labels.astype(np.int64)


def read_digit_h5(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Labelled images from an HDF5 file in the Kaggle USPS layout: groups ``train/`` and ``test/``, each with
    ``data`` and ``target``.

    ``data`` is ``N x side*side`` (flattened square gray images, as in usps.h5), ``N x H x W`` or
    ``N x H x W x C``; float values are taken to lie in [0, 1], integers in 0-255. ``target`` holds N integer
    labels. Returns uint8 images (``N x H x W`` or ``N x C x H x W``) and int64 labels.
    """
    import h5py  # function-local: loads the HDF5 library (~20 ms), needed only for .h5 digit files

    try:
        with h5py.File(path, "r") as f:
            if split not in f:
                raise DataError(
                    f"{path}: has no group {split!r} (groups: {', '.join(f.keys()) or 'none'}); expected the "
                    "Kaggle USPS layout with groups train/ and test/, each holding data and target"
                )
            g = f[split]
            if "data" not in g or "target" not in g:
                raise DataError(
                    f"{path}: group {split!r} must hold datasets 'data' and 'target'; "
                    f"it holds {', '.join(g.keys()) or 'nothing'}"
                )
            data = np.asarray(g["data"][()])
            target = np.asarray(g["target"][()]).reshape(-1)
    except OSError as e:
        raise DataError(f"{path}: cannot read the HDF5 file ({e}); it may be damaged, get it again") from e
    side = round(float(np.sqrt(data.shape[1]))) if data.ndim == 2 else 0
    layout_ok = (data.ndim == 2 and side * side == data.shape[1]) or data.ndim == 3 or (
        data.ndim == 4 and data.shape[3] in (1, 3))
    if not layout_ok or data.shape[0] != target.shape[0] or data.shape[0] == 0:
        raise DataError(
            f"{path}: {split}/data has shape {data.shape} and {split}/target {target.shape}; expected N images "
            "(N x side*side flattened gray, N x H x W or N x H x W x C) and N labels"
        )
    if not np.issubdtype(target.dtype, np.number) or np.any(target < 0) or np.any(target != np.round(target)):
        raise DataError(f"{path}: {split}/target must hold non-negative integer labels")
    scale = 255.0 if np.issubdtype(data.dtype, np.floating) else 1.0
    images = np.clip(np.rint(data.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    if data.ndim == 2:
        images = images.reshape(-1, side, side)
    elif data.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    return images, target.astype(np.int64)


def _usps_from_libsvm(path: Path) -> tuple[np.ndarray, np.ndarray]:
    opener = bz2.open if path.suffix == ".bz2" else open
    images: list[np.ndarray] = []
    labels: list[int] = []
    try:
        with opener(path, "rt", encoding="ascii") as f:
            for lineno, line in enumerate(f, 1):
                head, _, rest = line.strip().partition(" ")
                if not head:
                    continue
                try:
                    label = int(float(head))
                    kv = np.array(rest.replace(":", " ").split(), dtype=np.float64).reshape(-1, 2)
                    idx = kv[:, 0].astype(np.int64)
                    if idx.size and (idx.min() < 1 or idx.max() > 256):
                        raise ValueError(f"feature index {int(idx.min())}..{int(idx.max())}")
                except ValueError as e:
                    raise DataError(
                        f"{path}: line {lineno} is not 'label index:value ...' with indices 1-256 ({e}); "
                        "the file is damaged, download it again"
                    ) from e
                row = np.zeros(256, dtype=np.float64)  # LIBSVM sparse format: absent features are 0
                row[idx - 1] = kv[:, 1]
                if not 1 <= label <= 10:
                    raise DataError(f"{path}: line {lineno} has label {label}, expected 1-10 (digits 0-9)")
                labels.append(label - 1)
                images.append(row)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(
            f"{path}: cannot read the file ({e}); it is damaged or incomplete, download it again"
        ) from e
    if not images:
        raise DataError(f"{path}: file holds no digits; download it again")
    x = np.stack(images)
    x = np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8).reshape(-1, 16, 16)
    return x, np.asarray(labels, dtype=np.int64)


def missing_files(name: str, root: Path) -> list[str]:
    """Files digit set ``name`` needs under ``root`` (both splits) that are not there, as readable paths."""
    folder = Path(root) / name
    if name == "mnist":
        return [str(folder / f"{base}.gz") for split in SPLITS for base in MNIST_FILES[split]
                if _find(folder, [base + ".gz", base]) is None]
    if name == "usps":
        libsvm = [folder / f for f in USPS_LIBSVM.values()]
        if (folder / "usps.h5").is_file() or all(_find(folder, [p.name, p.stem]) for p in libsvm):
            return []
        return [f"{folder / 'usps.h5'} (or {' + '.join(str(p) for p in libsvm)})"]
    if name == "svhn":
        return [str(folder / f) for f in SVHN_FILES.values() if not (folder / f).is_file()]
    raise DataError(f"unknown digit set {name!r}; the named digit sets are {', '.join(sorted(DIGIT_SETS))}")


def load_usps(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """USPS from ``root/usps/``: uint8 images ``N x 16 x 16`` and int64 labels (7291 train, 2007 test).

    Reads ``usps.h5`` (Kaggle layout, pixel values in [0, 1]) if present, else the LIBSVM files ``usps.bz2`` /
    ``usps.t.bz2`` (labels 1-10 for digits 0-9, values in [-1, 1]), which are what ``unpaired data download
    usps`` fetches.
    """
    _check_split("usps", split)
    folder = Path(root) / "usps"
    h5 = folder / "usps.h5"
    if h5.is_file():
        return read_digit_h5(h5, split)
    name = USPS_LIBSVM[split]
    p = _find(folder, [name, name[: -len(".bz2")]])
    if p is None:
        raise _missing(
            f"usps/{split}", Path(root), [folder / name], " (or the Kaggle file usps.h5 in the same folder)"
        )
    return _usps_from_libsvm(p)


def load_svhn(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """SVHN from ``root/svhn/{train,test}_32x32.mat``: uint8 images ``N x 3 x 32 x 32`` and int64 labels.

    The official files store digit 0 as label 10; it is mapped back to 0. Reading them needs scipy.
    """
    _check_split("svhn", split)
    path = Path(root) / "svhn" / SVHN_FILES[split]
    if not path.is_file():
        raise _missing(f"svhn/{split}", Path(root), [path])
    try:
        from scipy.io import loadmat  # function-local: scipy is optional and slow to import (~0.2 s)
    except ImportError as e:
        raise DataError(
            f"{path}: reading SVHN .mat files needs scipy; install it with `pip install scipy`"
        ) from e
    try:
        mat = loadmat(str(path))
    except Exception as e:  # scipy raises ValueError/OSError/NotImplementedError (v7.3 files) for bad files
        raise DataError(
            f"{path}: cannot read the .mat file ({type(e).__name__}: {e}); download it again"
        ) from e
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: expected variables X and y (official SVHN format); download it again")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
        raise DataError(f"{path}: X has shape {x.shape} and y {y.shape}; expected 32 x 32 x 3 x N and N")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8)
    labels = y.astype(np.int64) % 10
    return images, labels


DIGIT_SETS: dict[str, Callable[[Path, str], tuple[np.ndarray, np.ndarray]]] = {
    "mnist": load_mnist,
    "usps": load_usps,
    "svhn": load_svhn,
}
"""Loader for each named digit set: ``loader(root, split) -> (uint8 images, int64 labels)``."""

DIGIT_CHANNELS: dict[str, int] = {"mnist": 1, "usps": 1, "svhn": 3}
"""Native number of channels of each digit set, known without reading the files."""


def _resize(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 ``N x C x H x W`` to ``size x size`` in chunks, so memory stays bounded for 60k images."""
    if x.shape[-2:] == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for s in range(0, x.shape[0], chunk):
        y = F.interpolate(
            x[s : s + chunk].float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        out[s : s + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _luminance(x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """ITU-R 601 luma of uint8 RGB ``N x 3 x H x W`` (the weights PIL's ``convert("L")`` uses), in chunks."""
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    out = torch.empty((x.shape[0], 1, *x.shape[2:]), dtype=torch.uint8)
    for s in range(0, x.shape[0], chunk):
        y = (x[s : s + chunk].float() * w).sum(1, keepdim=True)
        out[s : s + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def open_digits(
    name: str, root: Path, split: str, image_size: int, channels: int | None = None
) -> TensorSource:
    """Load digit set ``name`` whole, resized once to ``image_size`` square, as a labelled TensorSource.

    ``channels=None`` keeps the set's native channels; 3 repeats gray, 1 takes the luminance of colour, so
    that sets with different channels (SVHN and MNIST) can be used as the two domains of one model.
    """
    key = name.lower()
    if key not in DIGIT_SETS:
        raise DataError(
            f"unknown digit set {name!r}; the named digit sets are {', '.join(sorted(DIGIT_SETS))}"
        )
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size!r}")
    images, labels = DIGIT_SETS[key](Path(root), split)
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if channels == 1 and x.shape[1] == 3:  # before resizing: less to resize
        x = _luminance(x)
    x = _resize(x, image_size)
    if channels == 3 and x.shape[1] == 1:  # after resizing: less to resize
        x = x.repeat(1, 3, 1, 1)
    return TensorSource(x, torch.from_numpy(labels), name=f"{key}/{split}")


# -- labelled digit sets beyond the named ones: the user's own files ------------------------------------------
H5_SUFFIXES = (".h5", ".hdf5")


def class_folder_split(folder: Path, split: str) -> Path | None:
    """``folder/split`` when ``folder`` is in the class-folder layout (``split/<class>/`` image folders)."""
    sub = Path(folder) / split
    if sub.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in sub.iterdir()):
        return sub
    return None


def is_labelled_set(text: str, root: Path | None = None) -> bool:
    """Whether ``text`` names a labelled digit set: a named set, an HDF5 file in the USPS layout, or a folder
    with ``train/<class>/`` sub-folders (looked up as given, then under ``root``)."""
    if text.lower() in DIGIT_SETS:
        return True
    for p in (Path(text).expanduser(), Path(root or ".") / text):
        if p.is_file() and p.suffix.lower() in H5_SUFFIXES:
            return True
        if p.is_dir() and class_folder_split(p, "train") is not None:
            return True
    return False


def load_class_folders(folder: Path, split: str, image_size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of ``folder/split/<class>/``, resized to ``image_size`` square: uint8 ``N x C x H x W`` and labels.

    Class folders named by integers get those integers as labels (``0/ ... 9/``); otherwise the sorted folder
    names are numbered from 0. Every class folder must hold at least one image.
    """
    sub = class_folder_split(folder, split)
    if sub is None:
        raise DataError(f"{folder}: has no {split}/ folder with one sub-folder of images per class "
                        f"(expected {folder}/{split}/<class>/*.png)")
    classes = sorted(p.name for p in sub.iterdir() if p.is_dir() and not p.name.startswith("."))
    numeric = all(c.isdigit() for c in classes)
    images, labels = [], []
    for index, name in enumerate(classes):
        source = FolderSource(sub / name, channels=channels)
        label = int(name) if numeric else index
        for i in range(len(source)):
            x = source[i].unsqueeze(0)
            if x.shape[-2:] != (image_size, image_size):
                x = F.interpolate(x.float(), size=(image_size, image_size), mode="bilinear", align_corners=False,
                                  antialias=True).round_().clamp_(0, 255).to(torch.uint8)
            images.append(x)
            labels.append(label)
    return torch.cat(images), torch.tensor(labels, dtype=torch.int64)


def open_labelled(text: str, root: Path, split: str, image_size: int, channels: int | None = None) -> TensorSource:
    """A labelled digit domain as a TensorSource: a named set (:func:`open_digits`), an HDF5 file in the USPS
    layout (:func:`read_digit_h5`) or a class-folder tree (:func:`load_class_folders`)."""
    if text.lower() in DIGIT_SETS:
        return open_digits(text, root, split, image_size, channels)
    _check_split(text, split)
    path = next((p for p in (Path(text).expanduser(), Path(root) / text) if p.exists()), None)
    if path is None:
        raise DataError(f"{text}: neither a named digit set ({', '.join(sorted(DIGIT_SETS))}) nor an existing "
                        f"file or folder (looked in {Path(text).expanduser().absolute()} and {Path(root) / text})")
    if path.is_file():
        if path.suffix.lower() not in H5_SUFFIXES:
            raise DataError(f"{path}: a labelled digit file must be HDF5 (.h5) in the USPS layout")
        raw, labels = read_digit_h5(path, split)
        x = torch.from_numpy(np.ascontiguousarray(raw))
        x = x.unsqueeze(1) if x.ndim == 3 else x
        y = torch.from_numpy(labels)
    else:
        x, y = load_class_folders(path, split, image_size, channels or 1)
    if channels == 1 and x.shape[1] == 3:
        x = _luminance(x)
    x = _resize(x, image_size)
    if channels == 3 and x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return TensorSource(x, y, name=f"{path.name}/{split}")
