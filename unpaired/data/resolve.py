"""Turn the user's ``--data`` string into the two domains of an unpaired translation task.

One short string covers the common cases, so a user never writes a data config by hand:

* ``path/to/horse2zebra`` -- a folder in the CycleGAN layout: ``trainA/ trainB/`` (and ``testA/ testB/``);
* ``mnist:usps`` -- two named digit sets;
* ``photos/:paintings/`` -- two plain folders of images (one domain each), which can be mixed with digit sets;
* ``pairs:maps/train@0.8`` -- aligned A|B images (pix2pix layout) used unpaired; see :mod:`unpaired.data.paired`.

Methods that learn from one mixed collection (TUNIT) read ``--data MIXED_DIR`` with :func:`open_collection`
instead: one folder of images or of sub-folders of images; see :mod:`unpaired.data.collection`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .collection import CollectionSource
from .digits import DIGIT_CHANNELS, DIGIT_SETS, H5_SUFFIXES, is_labelled_set, open_labelled
from .errors import DataError
from .paired import open_pairs
from .sources import DATA_ENV, DomainPair, FolderSource, ImageSource, data_root

__all__ = ["open_collection", "open_domains"]

FORMS = (
    "Accepted forms of --data:\n"
    "  --data path/to/horse2zebra    a folder holding trainA/ and trainB/ (and testA/, testB/)\n"
    "  --data mnist:usps             two named digit sets (" + ", ".join(sorted(DIGIT_SETS)) + ")\n"
    "  --data photos/:paintings/     two folders of images, one per domain (a digit set may replace either)\n"
    "  --data mnist:my_digits.h5     labelled digits of your own: an HDF5 file in the USPS layout, or a folder\n"
    "                                DIR with DIR/train/<class>/ and DIR/test/<class>/ image folders\n"
    "  --data pairs:maps/train@0.8   aligned A|B images (pix2pix layout): first 80% train (A and B from disjoint\n"
    "                                files), last 20% test\n"
    f"Relative folders are looked up in the current folder, then in the data root (${DATA_ENV})."
)


def _find_folder(text: str, root: Path) -> Path | None:
    """``text`` as an existing folder: as given (relative to the current folder), else under the data root."""
    p = Path(text).expanduser()
    if p.is_dir():
        return p
    if not p.is_absolute() and (root / p).is_dir():
        return root / p
    return None


def _is_domain(text: str, root: Path) -> bool:
    return is_labelled_set(text, root) or _find_folder(text, root) is not None


def _split_pair(spec: str, root: Path) -> tuple[str, str] | None:
    """Split ``X:Y`` at the colon that leaves a valid domain on both sides (paths may hold colons: C:\\)."""
    cuts = [i for i, c in enumerate(spec) if c == ":"]
    if not cuts:
        return None
    for i in cuts:
        x, y = spec[:i], spec[i + 1 :]
        if x and y and _is_domain(x, root) and _is_domain(y, root):
            return x, y
    if len(cuts) == 1:
        return spec[: cuts[0]], spec[cuts[0] + 1 :]
    return None


def _pick_split(folder: Path, split: str, side: str) -> Path:
    sub = folder / f"{split}{side}"
    if sub.is_dir():
        return sub
    train = folder / f"train{side}"
    if split == "test" and train.is_dir():
        warnings.warn(
            f"{folder}: has no test{side}/ folder; using train{side}/ for the test split "
            "(results on it are not a held-out evaluation)",
            UserWarning,
            stacklevel=3,
        )
        return train
    present = sorted(p.name + "/" for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    raise DataError(
        f"{folder}: has no {split}{side}/ folder (it has: {', '.join(present) or 'no sub-folders'}); "
        "a data set folder needs trainA/ and trainB/ (and testA/, testB/ for testing), each full of images.\n"
        f"{FORMS}"
    )


def _open_side(
    text: str, root: Path, split: str, image_size: int, channels: int, on_bad_image: str
) -> ImageSource:
    if is_labelled_set(text, root):  # a digit set, named or the user's own (.h5 file, DIR/train/<class>/)
        return open_labelled(text, root, split, image_size, channels)
    folder = _find_folder(text, root) or Path(text)  # open_domains has checked that it exists
    return FolderSource(folder, channels=channels, load_size=image_size, on_bad_image=on_bad_image)


def _side_channels(text: str, channels: int | None) -> int:
    if channels is not None:
        return channels
    if text.lower().endswith(H5_SUFFIXES):
        return 1  # the USPS layout holds gray digits
    return DIGIT_CHANNELS.get(text.lower(), 3)


def _describe(src: ImageSource) -> str:
    return f"{src.name} ({len(src)} images)"


def open_domains(
    spec: str,
    split: str,
    *,
    image_size: int,
    channels: int | None,
    root: Path | None = None,
    on_bad_image: str = "fail",
    aligned: bool = False,
) -> DomainPair:
    """Open the two domains named by ``spec`` (the ``--data`` string) for ``split`` ("train" or "test").

    ``aligned``: the caller trains on pairs (image i of A and of B show one scene), which only ``pairs:DIR`` gives;
    any other ``spec`` is refused with a ``DataError`` saying so.

    Folders are read with their shorter side resized to ``image_size`` (cropping is left to the caller, which
    knows whether it trains or tests); digit sets are resized to ``image_size`` square. ``channels=None``
    means 3 for folders and the native channels for digit sets, except that when the two domains would differ
    (SVHN and MNIST), both get 3, so one network shape fits both.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3 (or unset), got {channels!r}")
    root = data_root() if root is None else Path(root)
    spec = spec.strip()
    if not spec:
        raise DataError(f"--data is empty.\n{FORMS}")
    if spec.lower().startswith("pairs:"):
        return open_pairs(spec, split, image_size=image_size, channels=channels, root=root, on_bad_image=on_bad_image,
                          aligned=aligned)
    if aligned:
        raise DataError(f"--data {spec!r}: unpaired data, but this method trains on aligned pairs; give a folder of "
                        "A|B images (pix2pix layout: A on the left half, B on the right) as --data pairs:DIR "
                        "(pairs:DIR@0.8 holds the last 20 % out for evaluation)")

    folder = None if spec.lower() in DIGIT_SETS else _find_folder(spec, root)
    if folder is not None:
        ch = 3 if channels is None else channels
        if not (folder / "trainA").is_dir() and not (folder / f"{split}A").is_dir():
            raise DataError(
                f"{folder}: is a folder but has no trainA/ and trainB/ folders; if it holds the images of "
                f"one domain, name two domains as --data {spec.rstrip('/')}:OTHER.\n{FORMS}"
            )
        fa, fb = _pick_split(folder, split, "A"), _pick_split(folder, split, "B")
        a = FolderSource(fa, channels=ch, load_size=image_size, on_bad_image=on_bad_image)
        b = FolderSource(fb, channels=ch, load_size=image_size, on_bad_image=on_bad_image)
        return DomainPair(a, b, f"{folder} [{split}]: A = {_describe(a)}, B = {_describe(b)}")

    pair = _split_pair(spec, root)
    if pair is None:
        hint = ""
        if spec.lower() in DIGIT_SETS:
            other = next(n for n in sorted(DIGIT_SETS) if n != spec.lower())
            hint = f" {spec!r} is one digit set; name two domains, e.g. --data {spec}:{other}."
        raise DataError(f"--data {spec!r}: not a folder, nor two domains written X:Y.{hint}\n{FORMS}")
    x, y = pair
    if not x or not y:
        raise DataError(
            f"--data {spec!r}: one side of ':' is empty; name two domains, e.g. mnist:usps.\n{FORMS}"
        )
    for side in (x, y):  # report a misspelt side before spending time loading the other one
        if not _is_domain(side, root):
            raise DataError(
                f"--data: {side!r} is neither a folder (looked in {Path(side).expanduser().absolute()}"
                + ("" if Path(side).is_absolute() else f" and {root / side}")
                + f") nor a named digit set.\n{FORMS}"
            )
    cx, cy = _side_channels(x, channels), _side_channels(y, channels)
    if cx != cy:
        cx = cy = 3
    a = _open_side(x, root, split, image_size, cx, on_bad_image)
    b = _open_side(y, root, split, image_size, cy, on_bad_image)
    return DomainPair(a, b, f"[{split}] A = {_describe(a)}, B = {_describe(b)}")


def open_collection(
    spec: str,
    split: str,
    *,
    image_size: int,
    channels: int | None,
    root: Path | None = None,
    on_bad_image: str = "fail",
    label_fraction: float = 0.0,
) -> DomainPair:
    """The one mixed collection named by ``spec`` (a folder), as domain ``a`` of a ``DomainPair`` (``b`` None).

    The collection has no held-out split: ``split`` "test" (the trainer's sample grids) reads the same images.
    Sub-folder names become labels only for ``label_fraction`` > 0; see ``CollectionSource``.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    root = data_root() if root is None else Path(root)
    spec = spec.strip()
    folder = _find_folder(spec, root) if spec else None
    if folder is None:
        looked = Path(spec).expanduser().absolute()
        raise DataError(f"--data {spec!r}: not a folder (looked in {looked}"
                        + ("" if Path(spec).is_absolute() else f" and {root / spec}")
                        + "); this method learns from one mixed collection: --data MIXED_DIR, a folder of images "
                        "or of sub-folders of images (digit sets and X:Y pairs are for two-domain methods)")
    source = CollectionSource(folder, channels=3 if channels is None else channels, load_size=image_size,
                              on_bad_image=on_bad_image, label_fraction=label_fraction)
    if source.labels is None:
        labels = "no labels read"
    else:
        known = int((source.labels >= 0).sum())
        labels = f"labels of {known} from the sub-folder names {', '.join(source.class_names or [])}"
    return DomainPair(source, None, f"{folder} [{split}]: one collection of {len(source)} images ({labels})")
