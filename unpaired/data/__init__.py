"""Data layer: image sources (folders, digit sets), the ``--data`` resolver, and dataset downloads.

Everything the rest of the package needs is re-exported here, so callers write
``from unpaired.data import open_domains, FolderSource``.
"""

from __future__ import annotations

from .collection import CollectionSource
from .digits import (
    DIGIT_CHANNELS,
    DIGIT_SETS,
    is_labelled_set,
    load_mnist,
    load_svhn,
    load_usps,
    missing_files,
    open_digits,
    open_labelled,
    read_digit_h5,
    read_idx,
)
from .download import RESOURCES, Resource, download, md5sum
from .errors import DataError, DataWarning
from .paired import PairedFolderSource, open_pairs
from .resolve import open_collection, open_domains
from .sources import (
    DATA_ENV,
    IMAGE_EXTENSIONS,
    DomainPair,
    FolderSource,
    ImageSource,
    TensorSource,
    data_root,
    list_images,
    unpaired_home,
)

__all__ = [
    "DATA_ENV",
    "DIGIT_CHANNELS",
    "DIGIT_SETS",
    "IMAGE_EXTENSIONS",
    "RESOURCES",
    "CollectionSource",
    "DataError",
    "DataWarning",
    "DomainPair",
    "FolderSource",
    "ImageSource",
    "PairedFolderSource",
    "Resource",
    "TensorSource",
    "data_root",
    "download",
    "is_labelled_set",
    "list_images",
    "load_mnist",
    "load_svhn",
    "load_usps",
    "md5sum",
    "missing_files",
    "open_collection",
    "open_digits",
    "open_domains",
    "open_labelled",
    "open_pairs",
    "read_digit_h5",
    "read_idx",
    "unpaired_home",
]
