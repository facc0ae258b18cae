"""Fetch the named digit sets from their public mirrors, with md5 checks and atomic writes.

Mirrors come and go (yann.lecun.com has been unreachable for long stretches), so each file has several URLs
tried in turn, and a file only appears under its final name once its checksum is right: an interrupted or
corrupted download can never be mistaken for good data by the loaders in :mod:`unpaired.data.digits`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .errors import DataError

__all__ = ["RESOURCES", "Resource", "download", "md5sum"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Resource:
    """One file of a named data set: its name under ``root/<set>/``, its md5, and the URLs to try in order."""

    filename: str
    md5: str
    urls: list[str]


_MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
_LIBSVM = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"


def _mnist(filename: str, md5: str) -> Resource:
    return Resource(filename, md5, [m + filename for m in _MNIST_MIRRORS])


RESOURCES: dict[str, list[Resource]] = {
    "mnist": [
        _mnist("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _mnist("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        _mnist("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        _mnist("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ],
    "usps": [
        Resource("usps.bz2", "ec16c51db3855ca6c91edd34d0e9b197", [_LIBSVM + "usps.bz2"]),
        Resource("usps.t.bz2", "8ea070ee2aca1ac39742fdd1ef5ed118", [_LIBSVM + "usps.t.bz2"]),
    ],
    "svhn": [
        Resource("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", [_SVHN + "train_32x32.mat"]),
        Resource("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", [_SVHN + "test_32x32.mat"]),
    ],
}
"""Files of each downloadable data set; they are saved under ``root/<name>/``."""


def md5sum(path: Path) -> str:
    """Hex md5 of a file, read in chunks (the SVHN training file is 182 MB)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not possible (nor needed) on Windows."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fetch(url: str, res: Resource, dest: Path, timeout: float, progress: bool) -> None:
    """Download ``url`` to ``dest`` via a temp file in its folder; raise on any failure or md5 mismatch."""
    req = urllib.request.Request(url, headers={"User-Agent": "unpaired-data-download"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{res.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            bar = None
            if progress:
                bar = tqdm(
                    total=int(total) if total and total.isdigit() else None,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=res.filename,
                    leave=False,
                )
            try:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if got != res.md5:
            raise ValueError(f"md5 mismatch: got {got}, expected {res.md5}")
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def download(
    name: str,
    root: Path,
    resources: list[Resource] | None = None,
    progress: bool = True,
    *,
    timeout: float = 60.0,
) -> list[Path]:
    """Make sure every file of data set ``name`` is in ``root/name/`` with the right md5; return their paths.

    Files already present with the right md5 are kept (so running it twice is cheap). Otherwise each URL is
    tried in turn; a download that fails or has the wrong md5 is discarded and the next URL is tried. If some
    file cannot be fetched from any URL, :class:`DataError` lists the URLs, the errors, and how to place the
    file by hand -- after the other files have been fetched.
    """
    key = name.lower()
    if resources is None:
        if key not in RESOURCES:
            raise DataError(
                f"no download is known for {name!r}; downloadable sets: {', '.join(sorted(RESOURCES))}"
            )
        resources = RESOURCES[key]
    folder = Path(root) / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"{folder}: cannot create the folder ({e}); choose another data root with "
            "the UNPAIRED_DATA environment variable"
        ) from e
    paths: list[Path] = []
    failures: list[str] = []
    for res in resources:
        dest = folder / res.filename
        if dest.is_file():
            if md5sum(dest) == res.md5:
                log.info("%s: present, md5 ok", dest)
                paths.append(dest)
                continue
            log.warning("%s: present but its md5 is wrong; downloading it again", dest)
        errors: list[str] = []
        for url in res.urls:
            try:
                _fetch(url, res, dest, timeout, progress)
            except (
                Exception
            ) as e:  # network errors come in many types (URLError, TimeoutError, IncompleteRead...)
                errors.append(f"    {url}: {type(e).__name__}: {e}")
                log.warning("download of %s failed: %s", url, e)
                continue
            paths.append(dest)
            break
        else:
            failures.append(
                f"  {res.filename} (md5 {res.md5}) -> {dest}\n"
                + ("\n".join(errors) or "    (no URLs to try)")
            )
    if failures:
        raise DataError(
            f"could not download {len(failures)} file(s) of {name!r}:\n" + "\n".join(failures) + "\n"
            f"To install by hand: on a machine with internet access, download each file from one of the URLs "
            f"above, check its md5, and save it in {folder}/ with the name shown; then run the command again."
        )
    return paths
