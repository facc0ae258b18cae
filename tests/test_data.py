"""Tests of the data layer (unpaired.data).

Unit tests build tiny images, IDX/HDF5/LIBSVM/.mat files and HTTP servers in tmp_path, so they are fast and
never touch the internet. Tests marked ``data`` read the real data sets under the data root
(``$UNPAIRED_DATA``) and skip, saying which file is missing, when it does not have them.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import http.server
import struct
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from unpaired.data import (
    DATA_ENV,
    DIGIT_SETS,
    RESOURCES,
    DataError,
    DataWarning,
    DomainPair,
    FolderSource,
    ImageSource,
    Resource,
    TensorSource,
    data_root,
    download,
    load_mnist,
    load_svhn,
    load_usps,
    open_digits,
    open_domains,
    read_idx,
)

# -------------------- helpers


def save_image(path: Path, size: tuple[int, int] = (12, 8), color=(200, 30, 60), mode: str = "RGB") -> Path:
    """Write a solid image of ``size`` (w, h) to ``path`` (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def noise_jpeg(path: Path, size: int = 64, seed: int = 0) -> Path:
    """A JPEG of random noise: large enough that cutting it in half leaves real scan data missing."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=95)
    return path


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_idx(path: Path, arr: np.ndarray, magic: int | None = None, gz: bool = False) -> Path:
    """Write ``arr`` (uint8) as an IDX file; ``magic`` overrides the magic number to make a broken file."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 2051 if arr.ndim == 3 else 2049
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def tiny_mnist(
    root: Path, n_train: int = 6, n_test: int = 4, gz: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    y = (np.arange(n_train) % 10).astype(np.uint8)
    ext = ".gz" if gz else ""
    write_idx(root / "mnist" / f"train-images-idx3-ubyte{ext}", x, gz=gz)
    write_idx(root / "mnist" / f"train-labels-idx1-ubyte{ext}", y, gz=gz)
    write_idx(root / "mnist" / f"t10k-images-idx3-ubyte{ext}", x[:n_test], gz=gz)
    write_idx(root / "mnist" / f"t10k-labels-idx1-ubyte{ext}", y[:n_test], gz=gz)
    return x, y


def tiny_usps_h5(root: Path, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    rng = np.random.default_rng(2)
    data = rng.random((n, 256), dtype=np.float32)
    target = (np.arange(n) % 10).astype(np.int32)
    (root / "usps").mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "usps" / "usps.h5", "w") as f:
        for split in ("train", "test"):
            g = f.create_group(split)
            g["data"] = data
            g["target"] = target
    return data, target


def tiny_svhn(root: Path, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import savemat

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = np.array([[10], [1], [9]][:n], dtype=np.uint8)
    (root / "svhn").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        savemat(root / "svhn" / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


# -------------------- data_root


def test_data_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_root() == tmp_path


def test_data_root_default_is_user_cache(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    root = data_root()
    assert root.is_absolute()
    assert root.parts[-2:] == ("unpaired", "data")


# -------------------- TensorSource


def test_tensor_source_basics():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    src = TensorSource(x, torch.tensor([3, 7]), name="toy/train")
    assert isinstance(src, ImageSource)
    assert len(src) == 2 and src.channels == 1 and src.name == "toy/train"
    assert torch.equal(src[1], x[1])
    assert src.file_name(1) == "000001.png"
    assert src.labels.dtype == torch.int64 and src.labels.tolist() == [3, 7]
    assert TensorSource(x).labels is None


def test_tensor_source_rejects_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        TensorSource(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        TensorSource(torch.zeros(2, 2, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="labels"):
        TensorSource(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([1, 2, 3]))


# -------------------- FolderSource: scan


def test_folder_scan_sorted_filters_and_reports_ignored(tmp_path):
    d = tmp_path / "dom"
    save_image(d / "b.png")
    save_image(d / "a.jpg")
    save_image(d / "c.JPEG")
    save_image(d / "d.bmp")
    save_image(d / "e.webp")
    save_image(d / ".hidden.png")
    (d / "notes.txt").write_text("hello")
    save_image(d / "sub" / "deeper.png")
    with pytest.warns(DataWarning, match=r"left out 1 file: notes\.txt \(not an image type\)$"):
        src = FolderSource(d)
    assert [src.file_name(i) for i in range(len(src))] == ["a.jpg", "b.png", "c.JPEG", "d.bmp", "e.webp"]
    assert src.ignored == ["notes.txt"]
    assert src.skipped == []
    assert src.name == str(d) and src.channels == 3 and src.labels is None
    x = src[1]
    assert x.dtype == torch.uint8 and x.shape == (3, 8, 12) and x.is_contiguous()
    assert x[:, 0, 0].tolist() == [200, 30, 60]


def test_folder_names_the_files_it_leaves_out(tmp_path):
    d = tmp_path / "dom"
    save_image(d / "a.png")
    for name in ("b.txt", "c.txt", "d.txt", "e.txt"):
        (d / name).write_text("x")
    (d / "broken.png").symlink_to(d / "gone.png")
    with pytest.warns(DataWarning) as caught:
        src = FolderSource(d)
    assert len(src) == 1 and src.ignored == ["b.txt", "broken.png", "c.txt", "d.txt", "e.txt"]
    assert [str(w.message) for w in caught] == [f"{d}: left out 5 files: b.txt (not an image type), broken.png "
                                                "(dangling link), c.txt (not an image type) and 2 more"]


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="folder does not exist") as e:
        FolderSource(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(e.value)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images of the supported types") as e:
        FolderSource(tmp_path / "empty")
    assert ".png" in str(e.value) and ".jpg" in str(e.value) and str(tmp_path / "empty") in str(e.value)


def test_folder_with_only_other_files(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no images") as e:
        FolderSource(d)
    assert "readme.txt" in str(e.value)


def test_invalid_arguments(tmp_path):
    save_image(tmp_path / "d" / "a.png")
    with pytest.raises(ValueError, match="on_bad_image"):
        FolderSource(tmp_path / "d", on_bad_image="ignore")
    with pytest.raises(ValueError, match="channels"):
        FolderSource(tmp_path / "d", channels=2)


def test_index_out_of_range(tmp_path):
    save_image(tmp_path / "d" / "a.png")
    save_image(tmp_path / "d" / "b.png", color=(1, 2, 3))
    src = FolderSource(tmp_path / "d")
    assert torch.equal(src[-1], src[1])
    with pytest.raises(IndexError):
        src[2]


# -------------------- bad images


@pytest.mark.parametrize("kind", ["random_bytes", "zero_bytes"])
def test_bad_header_fail_policy(tmp_path, kind):
    d = tmp_path / "dom"
    save_image(d / "a.png")
    bad = d / "bad.jpg"
    bad.write_bytes(np.random.default_rng(0).bytes(500) if kind == "random_bytes" else b"")
    with pytest.raises(DataError, match="cannot decode image") as e:
        FolderSource(d)
    assert str(bad) in str(e.value)


@pytest.mark.parametrize("kind", ["random_bytes", "zero_bytes"])
def test_bad_header_skip_policy(tmp_path, kind):
    d = tmp_path / "dom"
    save_image(d / "a.png")
    save_image(d / "c.png")
    bad = d / "b.jpg"
    bad.write_bytes(np.random.default_rng(0).bytes(500) if kind == "random_bytes" else b"")
    with pytest.warns(RuntimeWarning, match=r"b\.jpg"):
        src = FolderSource(d, on_bad_image="skip")
    assert len(src) == 2
    assert src.skipped == [str(bad)]
    assert [src.file_name(i) for i in range(2)] == ["a.png", "c.png"]
    problems = src.check()
    assert [p for p, _ in problems] == [str(bad)]


def test_all_images_bad_is_an_error_even_when_skipping(tmp_path):
    d = tmp_path / "dom"
    d.mkdir()
    (d / "a.png").write_bytes(b"not a png")
    with pytest.warns(RuntimeWarning), pytest.raises(DataError, match="none of its 1 image"):
        FolderSource(d, on_bad_image="skip")


def test_truncated_jpeg_fail_policy(tmp_path):
    d = tmp_path / "dom"
    noise_jpeg(d / "a.jpg")
    bad = truncate(noise_jpeg(d / "b.jpg", seed=1))
    src = FolderSource(d)  # the header is fine: caught on decode
    assert len(src) == 2
    assert src[0].shape == (3, 64, 64)
    with pytest.raises(DataError, match="cannot decode image") as e:
        src[1]
    assert str(bad) in str(e.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_jpeg_skip_policy_returns_next_good_image(tmp_path):
    d = tmp_path / "dom"
    noise_jpeg(d / "a.jpg", seed=0)
    bad = truncate(noise_jpeg(d / "b.jpg", seed=1))
    noise_jpeg(d / "c.jpg", seed=2)
    src = FolderSource(d, on_bad_image="skip")
    with pytest.warns(RuntimeWarning, match=r"b\.jpg"):
        x = src[1]
    assert torch.equal(x, src[2])
    assert src.skipped == [str(bad)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per file only
        assert torch.equal(src[1], src[2])
    assert src.skipped == [str(bad)]


def test_truncated_last_image_wraps_to_first(tmp_path):
    d = tmp_path / "dom"
    noise_jpeg(d / "a.jpg", seed=0)
    truncate(noise_jpeg(d / "b.jpg", seed=1))
    src = FolderSource(d, on_bad_image="skip")
    with pytest.warns(RuntimeWarning):
        assert torch.equal(src[1], src[0])


@pytest.mark.parametrize("progress", [False, True])
def test_check_reports_every_broken_file(tmp_path, progress):
    d = tmp_path / "dom"
    noise_jpeg(d / "a.jpg")
    b = truncate(noise_jpeg(d / "b.jpg", seed=1))
    c = truncate(noise_jpeg(d / "c.jpg", seed=2))
    save_image(d / "d.png")
    src = FolderSource(d)  # "fail" policy: check() still reports instead of raising
    problems = src.check(progress=progress)
    assert [p for p, _ in problems] == [str(b), str(c)]
    assert all("truncated" in why for _, why in problems)


# -------------------- conversions


def load_one(tmp_path: Path, name: str, channels: int = 3, load_size: int | None = None) -> torch.Tensor:
    src = FolderSource(tmp_path, channels=channels, load_size=load_size)
    return src[[src.file_name(i) for i in range(len(src))].index(name)]


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((2, 2, 4), dtype=np.uint8)
    a[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    a[0, 1] = (255, 0, 0, 255)  # opaque red
    a[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid gray
    a[1, 1] = (0, 0, 255, 255)
    Image.fromarray(a).save(tmp_path / "x.png")
    x = load_one(tmp_path, "x.png")
    assert x[:, 0, 0].tolist() == [255, 255, 255]
    assert x[:, 0, 1].tolist() == [255, 0, 0]
    assert x[:, 1, 0].tolist() == [127, 127, 127]
    assert x[:, 1, 1].tolist() == [0, 0, 255]


def test_la_composited_on_white_gray_and_rgb(tmp_path):
    a = np.array([[[0, 0], [0, 255]]], dtype=np.uint8)  # 1x2 LA: transparent black, opaque black
    Image.frombytes("LA", (2, 1), a.tobytes()).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode == "LA"
    g = load_one(tmp_path, "x.png", channels=1)
    assert g.shape == (1, 1, 2) and g[0, 0].tolist() == [255, 0]
    c = load_one(tmp_path, "x.png", channels=3)
    assert c.shape == (3, 1, 2) and c[:, 0, 0].tolist() == [255] * 3 and c[:, 0, 1].tolist() == [0] * 3


def test_palette_images(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "opaque.png")
    p.save(tmp_path / "transparent.png", transparency=0)  # palette entry 0 (red) is transparent
    x = load_one(tmp_path, "opaque.png")
    assert x[:, 0, 0].tolist() == [255, 0, 0] and x[:, 0, 1].tolist() == [0, 255, 0]
    x = load_one(tmp_path, "transparent.png")
    assert x[:, 0, 0].tolist() == [255, 255, 255] and x[:, 0, 1].tolist() == [0, 255, 0]


def test_16bit_gray_scaled_to_8bit(tmp_path):
    a = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode.startswith("I;16")
    g = load_one(tmp_path, "x.png", channels=1)
    assert g[0, 0].tolist() == [0, 100, 255]
    c = load_one(tmp_path, "x.png", channels=3)
    assert c[:, 0, 2].tolist() == [255, 255, 255]


def test_cmyk_jpeg_to_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "x.jpg", quality=100)  # red in CMYK
    assert Image.open(tmp_path / "x.jpg").mode == "CMYK"
    x = load_one(tmp_path, "x.jpg").int()
    assert x.shape == (3, 8, 8)
    assert abs(x[0, 4, 4].item() - 255) <= 3 and x[1, 4, 4].item() <= 3 and x[2, 4, 4].item() <= 3


def test_gray_to_rgb_and_rgb_to_gray(tmp_path):
    save_image(tmp_path / "g.png", color=77, mode="L")
    save_image(tmp_path / "c.png", color=(255, 0, 0))
    x = load_one(tmp_path, "g.png", channels=3)
    assert x.shape == (3, 8, 12) and x[:, 0, 0].tolist() == [77, 77, 77]
    y = load_one(tmp_path, "c.png", channels=1)
    assert y.shape == (1, 8, 12) and y[0, 0, 0].item() == 76  # ITU-R 601 luma of pure red


@pytest.mark.parametrize(
    ("size", "load_size", "expect"),
    [
        ((40, 20), 10, (10, 20)),  # landscape: height is the short side
        ((20, 40), 10, (20, 10)),  # portrait
        ((30, 30), 16, (16, 16)),
        ((33, 20), 40, (40, 66)),  # upscaling too
        ((40, 20), None, (20, 40)),  # native size
    ],
)
def test_load_size_resizes_shorter_side_keeping_aspect(tmp_path, size, load_size, expect):
    save_image(tmp_path / "x.png", size=size)
    x = load_one(tmp_path, "x.png", load_size=load_size)
    assert tuple(x.shape) == (3, *expect)
    assert x[:, expect[0] // 2, expect[1] // 2].tolist() == [200, 30, 60]  # solid colour survives resampling


def test_folder_source_in_dataloader(tmp_path):
    for i in range(4):
        save_image(tmp_path / f"{i}.png", size=(10, 10), color=(i, i, i))
    loader = torch.utils.data.DataLoader(FolderSource(tmp_path), batch_size=2)
    batches = list(loader)
    assert [tuple(b.shape) for b in batches] == [(2, 3, 10, 10)] * 2
    assert batches[1][1, 0, 0, 0].item() == 3


# -------------------- IDX / MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    imgs = np.random.default_rng(0).integers(0, 256, (3, 5, 4), dtype=np.uint8)
    labels = np.array([1, 2, 9], dtype=np.uint8)
    assert np.array_equal(read_idx(write_idx(tmp_path / "i", imgs, gz=gz)), imgs)
    got = read_idx(write_idx(tmp_path / "l", labels, gz=gz))
    assert got.dtype == np.uint8 and np.array_equal(got, labels)


def test_idx_wrong_magic(tmp_path):
    p = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((2, 3, 3), np.uint8), magic=2052)
    with pytest.raises(DataError, match="magic number 2052") as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_idx_wrong_size(tmp_path):
    p = write_idx(tmp_path / "x", np.zeros((2, 3, 3), np.uint8))
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(DataError, match="incomplete") as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_idx_corrupt_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b"\x00" * 100)[:20])
    with pytest.raises(DataError, match="download it again"):
        read_idx(p)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist(tmp_path, gz):
    x, y = tiny_mnist(tmp_path, gz=gz)
    imgs, labels = load_mnist(tmp_path, "train")
    assert np.array_equal(imgs, x) and labels.dtype == np.int64 and labels.tolist() == y.tolist()
    imgs, labels = load_mnist(tmp_path, "test")
    assert imgs.shape == (4, 28, 28) and len(labels) == 4


def test_load_mnist_missing_files_says_what_to_do(tmp_path):
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path, "train")
    msg = str(e.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in msg
    assert str(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz") in msg
    assert DATA_ENV in msg and "unpaired data download mnist" in msg


def test_load_mnist_count_mismatch(tmp_path):
    tiny_mnist(tmp_path)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8), gz=True)
    with pytest.raises(DataError, match="6 images but"):
        load_mnist(tmp_path, "train")


def test_bad_split(tmp_path):
    with pytest.raises(DataError, match="split"):
        load_mnist(tmp_path, "val")


# -------------------- USPS / SVHN


def test_load_usps_h5(tmp_path):
    data, target = tiny_usps_h5(tmp_path)
    imgs, labels = load_usps(tmp_path, "train")
    assert imgs.shape == (5, 16, 16) and imgs.dtype == np.uint8
    assert np.array_equal(imgs.reshape(5, -1), np.rint(data * 255).astype(np.uint8))
    assert labels.dtype == np.int64 and labels.tolist() == target.tolist()


def write_usps_libsvm(path: Path, rows: list[tuple[int, np.ndarray]]) -> None:
    lines = [f"{label} " + " ".join(f"{k + 1}:{v:.6f}" for k, v in enumerate(vals)) for label, vals in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))


def test_load_usps_libsvm(tmp_path):
    v = np.full(256, -1.0)
    v[0], v[1], v[2] = 1.0, 0.0, -0.5
    write_usps_libsvm(tmp_path / "usps" / "usps.bz2", [(1, v), (10, v), (5, -v)])
    write_usps_libsvm(tmp_path / "usps" / "usps.t.bz2", [(3, v)])
    imgs, labels = load_usps(tmp_path, "train")
    assert imgs.shape == (3, 16, 16) and imgs.dtype == np.uint8
    assert labels.tolist() == [0, 9, 4]
    assert imgs[0, 0, :4].tolist() == [255, 128, 64, 0]
    assert imgs[2, 15, 15] == 255
    imgs, labels = load_usps(tmp_path, "test")
    assert imgs.shape == (1, 16, 16) and labels.tolist() == [2]


def test_load_usps_libsvm_bad_lines(tmp_path):
    write_usps_libsvm(tmp_path / "usps" / "usps.bz2", [(11, np.zeros(256))])
    with pytest.raises(DataError, match="label 11"):
        load_usps(tmp_path, "train")
    for bad in ("1 0:0.5", "1 257:0.5", "1 3:x", "1 3"):
        (tmp_path / "usps" / "usps.t.bz2").write_bytes(bz2.compress(f"2 1:0.1\n{bad}\n".encode()))
        with pytest.raises(DataError, match="line 2 is not"):
            load_usps(tmp_path, "test")


def test_load_usps_prefers_h5_and_reports_missing(tmp_path):
    with pytest.raises(DataError) as e:
        load_usps(tmp_path, "test")
    assert str(tmp_path / "usps" / "usps.t.bz2") in str(e.value) and "usps.h5" in str(e.value)
    tiny_usps_h5(tmp_path)
    write_usps_libsvm(tmp_path / "usps" / "usps.bz2", [(1, np.zeros(256))])
    assert load_usps(tmp_path, "train")[0].shape[0] == 5


def test_load_svhn(tmp_path):
    x, _ = tiny_svhn(tmp_path)
    imgs, labels = load_svhn(tmp_path, "train")
    assert imgs.shape == (3, 3, 32, 32) and imgs.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 9]
    assert imgs[2, 1, 5, 7] == x[5, 7, 1, 2]


def test_load_svhn_without_scipy(tmp_path, monkeypatch):
    tiny_svhn(tmp_path)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(DataError, match="needs scipy"):
        load_svhn(tmp_path, "test")


def test_load_svhn_missing(tmp_path):
    with pytest.raises(DataError, match="unpaired data download svhn") as e:
        load_svhn(tmp_path, "train")
    assert str(tmp_path / "svhn" / "train_32x32.mat") in str(e.value)


# -------------------- open_digits


def test_digit_registry():
    assert set(DIGIT_SETS) == {"mnist", "usps", "svhn"}


def test_open_digits_resizes_and_labels(tmp_path):
    tiny_mnist(tmp_path)
    src = open_digits("mnist", tmp_path, "train", image_size=32)
    assert src.name == "mnist/train" and len(src) == 6 and src.channels == 1
    assert src[0].shape == (1, 32, 32) and src[0].dtype == torch.uint8
    assert src.labels.tolist() == [0, 1, 2, 3, 4, 5]
    same = open_digits("mnist", tmp_path, "test", image_size=28)
    assert np.array_equal(same[0][0].numpy(), load_mnist(tmp_path, "test")[0][0])


def test_open_digits_constant_image_stays_constant(tmp_path):
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte", np.full((2, 28, 28), 200, np.uint8))
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.array([1, 2], np.uint8))
    for size in (14, 32):
        assert (open_digits("mnist", tmp_path, "test", image_size=size).images == 200).all()


def test_open_digits_channel_conversion(tmp_path):
    tiny_mnist(tmp_path)
    x = open_digits("mnist", tmp_path, "train", image_size=28, channels=3)
    assert x.channels == 3 and torch.equal(x[0][0], x[0][2])
    tiny_svhn(tmp_path)
    s = open_digits("svhn", tmp_path, "train", image_size=32)
    assert s.channels == 3
    g = open_digits("svhn", tmp_path, "train", image_size=32, channels=1)
    expect = (s.images.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1).round()
    assert g.channels == 1 and torch.equal(g.images[:, 0].float(), expect)


def test_open_digits_unknown_name(tmp_path):
    with pytest.raises(DataError, match="mnist, svhn, usps"):
        open_digits("emnist", tmp_path, "train", image_size=28)


# -------------------- download


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server (127.0.0.1, free port) serving tmp_path/srv; yields (folder, URL, requests)."""
    srv = tmp_path / "srv"
    srv.mkdir()
    log: list[str] = []
    handler = type("H", (_QuietHandler,), {"requests": log})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(srv)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv, f"http://127.0.0.1:{server.server_address[1]}/", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part")


def test_download_success(tmp_path, http_root):
    srv, url, _ = http_root
    payload = b"hello digits" * 1000
    (srv / "a.bin").write_bytes(payload)
    root = tmp_path / "root"
    paths = download("toy", root, [Resource("a.bin", md5(payload), [url + "a.bin"])], progress=True)
    assert paths == [root / "toy" / "a.bin"]
    assert paths[0].read_bytes() == payload
    assert leftovers(root / "toy") == []


def test_download_md5_mismatch_falls_back_to_next_url(tmp_path, http_root):
    srv, url, log = http_root
    good = b"good bytes"
    (srv / "bad").mkdir()
    (srv / "bad" / "a.bin").write_bytes(b"evil bytes")
    (srv / "a.bin").write_bytes(good)
    res = Resource("a.bin", md5(good), [url + "bad/a.bin", url + "a.bin"])
    [p] = download("toy", tmp_path, [res], progress=False)
    assert p.read_bytes() == good
    assert log == ["/bad/a.bin", "/a.bin"]
    assert leftovers(tmp_path / "toy") == []


def test_download_all_fail(tmp_path, http_root):
    srv, url, _ = http_root
    (srv / "a.bin").write_bytes(b"wrong content")
    urls = [url + "missing.bin", url + "a.bin", "http://127.0.0.1:1/a.bin"]
    res = Resource("a.bin", md5(b"right content"), urls)
    with pytest.raises(DataError) as e:
        download("toy", tmp_path, [res], progress=False, timeout=5)
    msg = str(e.value)
    assert all(u in msg for u in urls)
    assert "404" in msg and "md5 mismatch" in msg
    assert str(tmp_path / "toy") in msg and res.md5 in msg
    assert not (tmp_path / "toy" / "a.bin").exists()
    assert leftovers(tmp_path / "toy") == []


def test_download_keeps_file_with_right_md5(tmp_path, http_root):
    _, url, log = http_root
    data = b"already here"
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.bin").write_bytes(data)
    [p] = download("toy", tmp_path, [Resource("a.bin", md5(data), [url + "a.bin"])], progress=False)
    assert p.read_bytes() == data and log == []


def test_download_replaces_file_with_wrong_md5(tmp_path, http_root):
    srv, url, _ = http_root
    (srv / "a.bin").write_bytes(b"fresh")
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.bin").write_bytes(b"stale")
    [p] = download("toy", tmp_path, [Resource("a.bin", md5(b"fresh"), [url + "a.bin"])], progress=False)
    assert p.read_bytes() == b"fresh"


def test_download_unknown_name(tmp_path):
    with pytest.raises(DataError, match="mnist"):
        download("imagenet", tmp_path)


def test_resources_table():
    mnist = {r.filename: r for r in RESOURCES["mnist"]}
    assert mnist["train-images-idx3-ubyte.gz"].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert mnist["t10k-labels-idx1-ubyte.gz"].urls[0].startswith("https://ossci-datasets.s3.amazonaws.com/")
    assert [r.filename for r in RESOURCES["usps"]] == ["usps.bz2", "usps.t.bz2"]
    assert {r.filename for r in RESOURCES["svhn"]} == {"train_32x32.mat", "test_32x32.mat"}
    for rs in RESOURCES.values():
        for r in rs:
            assert len(r.md5) == 32 and r.urls and all(u.endswith(r.filename) for u in r.urls)


# -------------------- open_domains


def cyclegan_folder(root: Path, with_test: bool = True) -> Path:
    d = root / "h2z"
    for i in range(3):
        save_image(d / "trainA" / f"{i}.jpg", size=(40, 30))
    for i in range(2):
        save_image(d / "trainB" / f"{i}.png", size=(30, 40))
    if with_test:
        save_image(d / "testA" / "t.png", size=(20, 20))
        save_image(d / "testB" / "t.png", size=(20, 20))
    return d


def test_open_domains_cyclegan_layout(tmp_path):
    d = cyclegan_folder(tmp_path)
    pair = open_domains(str(d), "train", image_size=16, channels=None)
    assert isinstance(pair, DomainPair)
    assert (len(pair.a), len(pair.b)) == (3, 2)
    assert pair.a.channels == pair.b.channels == 3
    assert pair.a[0].shape == (3, 16, 21) and pair.b[0].shape == (3, 21, 16)
    assert "trainA" in pair.description
    test = open_domains(str(d), "test", image_size=16, channels=1)
    assert (len(test.a), len(test.b)) == (1, 1) and test.a[0].shape == (1, 16, 16)


def test_open_domains_test_falls_back_to_train(tmp_path):
    d = cyclegan_folder(tmp_path, with_test=False)
    with pytest.warns(UserWarning) as rec:
        pair = open_domains(str(d), "test", image_size=16, channels=None)
    msgs = " ".join(str(w.message) for w in rec)
    assert "no testA/" in msgs and "no testB/" in msgs
    assert (len(pair.a), len(pair.b)) == (3, 2)


def test_open_domains_relative_folder_found_under_root(tmp_path, monkeypatch):
    cyclegan_folder(tmp_path)
    monkeypatch.chdir(tmp_path.parent)
    pair = open_domains("h2z", "train", image_size=8, channels=None, root=tmp_path)
    assert len(pair.a) == 3


def test_open_domains_two_folders(tmp_path):
    d = cyclegan_folder(tmp_path)
    pair = open_domains(f"{d / 'trainA'}:{d / 'trainB'}", "train", image_size=8, channels=None)
    assert (len(pair.a), len(pair.b)) == (3, 2)


def test_open_domains_digit_sets(tmp_path):
    tiny_mnist(tmp_path)
    tiny_usps_h5(tmp_path)
    tiny_svhn(tmp_path)
    pair = open_domains("mnist:usps", "train", image_size=20, channels=None, root=tmp_path)
    assert pair.a.name == "mnist/train" and pair.b.name == "usps/train"
    assert pair.a.channels == pair.b.channels == 1 and pair.b[0].shape == (1, 20, 20)
    assert pair.b.labels is not None
    pair = open_domains("svhn:mnist", "test", image_size=32, channels=None, root=tmp_path)
    assert pair.a.channels == pair.b.channels == 3
    pair = open_domains("svhn:mnist", "test", image_size=32, channels=1, root=tmp_path)
    assert pair.a.channels == pair.b.channels == 1


def test_open_domains_digit_set_and_folder(tmp_path):
    tiny_mnist(tmp_path)
    d = cyclegan_folder(tmp_path)
    pair = open_domains(f"mnist:{d / 'trainB'}", "train", image_size=16, channels=None, root=tmp_path)
    assert pair.a.channels == pair.b.channels == 3  # mixed channels -> both 3
    assert pair.a[0].shape == (3, 16, 16)


@pytest.mark.parametrize("spec", ["nothing/here", "mnist", "mnist:nowhere", ":usps", ""])
def test_open_domains_bad_spec_explains_forms(tmp_path, spec):
    with pytest.raises(DataError) as e:
        open_domains(spec, "train", image_size=8, channels=None, root=tmp_path)
    msg = str(e.value)
    assert "--data path/to/horse2zebra" in msg and "--data mnist:usps" in msg and "photos/:paintings/" in msg


def test_open_domains_plain_image_folder_alone(tmp_path):
    save_image(tmp_path / "imgs" / "a.png")
    with pytest.raises(DataError, match="trainA"):
        open_domains(str(tmp_path / "imgs"), "train", image_size=8, channels=None)


def test_open_domains_skip_policy_passes_through(tmp_path):
    d = cyclegan_folder(tmp_path)
    (d / "trainA" / "zz.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"zz\.jpg"):
        open_domains(str(d), "train", image_size=8, channels=None)
    with pytest.warns(RuntimeWarning):
        pair = open_domains(str(d), "train", image_size=8, channels=None, on_bad_image="skip")
    assert len(pair.a) == 3


# -------------------- real data


@pytest.fixture
def real_root():
    return data_root()


def need(root: Path, *rel: str) -> None:
    missing = [r for r in rel if not (root / r).exists()]
    if missing:
        pytest.skip(f"real data not found: {', '.join(str(root / m) for m in missing)} (set {DATA_ENV})")


@pytest.mark.data
def test_real_mnist(real_root):
    need(real_root, "mnist/train-images-idx3-ubyte.gz", "mnist/t10k-images-idx3-ubyte.gz")
    x, y = load_mnist(real_root, "train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y[0] == 5 and np.bincount(y, minlength=10).sum() == 60000 and y.max() == 9
    x, y = load_mnist(real_root, "test")
    assert x.shape == (10000, 28, 28) and np.bincount(y, minlength=10).sum() == 10000
    src = open_digits("mnist", real_root, "test", image_size=32, channels=3)
    assert len(src) == 10000 and src[0].shape == (3, 32, 32)


@pytest.mark.data
def test_real_usps(real_root):
    need(real_root, "usps/usps.h5")
    x, y = load_usps(real_root, "train")
    assert x.shape == (7291, 16, 16)
    assert np.bincount(y).tolist() == [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
    x, y = load_usps(real_root, "test")
    assert x.shape == (2007, 16, 16)
    assert np.bincount(y).tolist() == [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]
    assert x.max() == 255 and x.min() == 0


@pytest.mark.data
def test_real_usps_libsvm_format_agrees_with_h5(real_root, tmp_path):
    """The LIBSVM reader at full size: the real digits in LIBSVM form read back as the h5 gives them."""
    need(real_root, "usps/usps.h5")
    import h5py

    fmt = "%d " + " ".join(f"{k + 1}:%.6f" for k in range(256)) + "\n"
    (tmp_path / "usps").mkdir()
    with h5py.File(real_root / "usps" / "usps.h5", "r") as f:
        for split, name in (("train", "usps"), ("test", "usps.t")):  # un-compressed names: bz2 is slow
            data, target = f[split]["data"][()], f[split]["target"][()]
            values = (2 * data.astype(np.float64) - 1).tolist()
            text = "".join(fmt % (t + 1, *row) for t, row in zip(target.tolist(), values, strict=True))
            (tmp_path / "usps" / name).write_text(text)
    train_x, train_y = load_usps(tmp_path, "train")
    test_x, _ = load_usps(tmp_path, "test")
    assert (len(train_x), len(test_x)) == (7291, 2007)
    assert np.bincount(train_y).tolist() == [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
    h5_x, h5_y = load_usps(real_root, "train")
    assert np.array_equal(train_y, h5_y)
    assert np.abs(train_x.astype(int) - h5_x.astype(int)).max() <= 1


@pytest.mark.data
def test_real_horse2zebra_grayscale_loads_as_rgb(real_root):
    need(real_root, "horse2zebra/trainB/n02391049_9726.jpg")
    assert Image.open(real_root / "horse2zebra/trainB/n02391049_9726.jpg").mode == "L"
    src = FolderSource(real_root / "horse2zebra/trainB")
    x = src[[src.file_name(i) for i in range(len(src))].index("n02391049_9726.jpg")]
    assert x.shape == (3, 256, 256) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


@pytest.mark.data
def test_real_horse2zebra_domains(real_root):
    need(real_root, "horse2zebra/trainA", "horse2zebra/testB")
    train = open_domains(str(real_root / "horse2zebra"), "train", image_size=128, channels=None)
    assert (len(train.a), len(train.b)) == (250, 250)
    assert train.a[0].shape == (3, 128, 128)
    test = open_domains("horse2zebra", "test", image_size=256, channels=None, root=real_root)
    assert (len(test.a), len(test.b)) == (120, 140)
    assert test.a.check() == []


@pytest.mark.data
def test_real_file_names_with_spaces(real_root):
    need(real_root, "summer2winter_yosemite/trainA")
    src = FolderSource(real_root / "summer2winter_yosemite/trainA", load_size=64)
    names = [src.file_name(i) for i in range(len(src))]
    assert len(src) == 200 and " " in names[0]
    assert src[0].shape[0] == 3 and min(src[0].shape[1:]) == 64


@pytest.mark.data
def test_real_large_images_resized(real_root):
    need(real_root, "gta2city_samples/trainA")
    src = FolderSource(real_root / "gta2city_samples/trainA", load_size=256)
    x = src[0]
    assert x.shape[1] == 256 and x.shape[2] > 256
