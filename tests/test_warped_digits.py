"""The warped-digits benchmark data (unpaired.data.warped_digits): deterministic, its warp invertible, its truth
the warped version of each test digit, and ``unpaired data make warped-digits`` writing the folder layout."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_cli import assert_error, run_cli
from test_data import tiny_mnist

from unpaired.data import DataError, FolderSource
from unpaired.data.warped_digits import (
    SHRINK,
    THICKEN,
    load_warped_digits,
    pad_digits,
    restyle,
    stroke_mask,
    to_domain_b,
    warp_images,
    warp_points,
    write_warped_digits,
)


def blob(size: int = 32, centre: tuple[float, float] = (16.0, 14.0), width: float = 3.0) -> torch.Tensor:
    """A 1 x 1 x size x size float image of one smooth Gaussian spot (values 0..255)."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    return (255 * torch.exp(-((xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2) / (2 * width**2)))[None, None]


def test_the_point_warp_and_its_inverse_compose_to_the_identity_everywhere():
    points = torch.rand(1000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4 - 2
    assert torch.allclose(warp_points(warp_points(points), inverse=True), points, atol=1e-12)
    assert torch.allclose(warp_points(warp_points(points, inverse=True)), points, atol=1e-12)
    # and it is far from the identity: the frame's corners move by a good part of the frame
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    assert (warp_points(corners) - corners).norm(dim=1).min() > 0.5


def test_the_image_warp_rotates_by_40_degrees_and_is_undone_by_its_inverse():
    spot = blob(centre=(24.0, 16.0))  # right of the centre, on the horizontal middle line
    moved = warp_images(spot)
    assert not torch.allclose(moved, spot, atol=20)
    # the spot's centre of mass follows the point map
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    mass = moved[0, 0] / moved.sum()
    found = torch.stack([((xx + 0.5) * mass).sum(), ((yy + 0.5) * mass).sum()]) / 16 - 1
    expected = warp_points(torch.tensor([24.0 / 16 - 1, 0.0]))
    assert torch.allclose(found, expected, atol=0.05), (found, expected)
    # undone where the warp kept it in the frame: bilinear resampling twice blurs it a little
    back = warp_images(moved, inverse=True)
    assert (back - spot).abs().max() < 0.12 * 255 and (back - spot).abs().mean() < 0.01 * 255


def test_uint8_warps_stay_uint8_and_a_warped_digit_stays_inside_the_frame():
    digits = pad_digits(np.full((2, 28, 28), 0, np.uint8), 32)
    digits[:, :, 4:28, 12:20] = 255  # a tall bar spanning the digit box
    warped = warp_images(digits)
    assert warped.dtype == torch.uint8 and warped.shape == (2, 1, 32, 32)
    # bend and rotation keep areas, the shrink scales them by SHRINK^2: all the ink is still in the frame
    assert float(warped.float().sum()) == pytest.approx(SHRINK**2 * float(digits.float().sum()), rel=0.03)


def test_domain_b_strokes_are_thickened_and_coloured_and_its_stroke_mask_finds_them():
    ink = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    ink[..., 10:22, 15] = 255  # a one-pixel line
    styled = restyle(ink)
    assert styled.shape == (1, 3, 32, 32) and styled.dtype == torch.uint8
    expected = F.max_pool2d(ink.float(), THICKEN, 1, THICKEN // 2)[:, 0] > 127
    assert torch.equal(stroke_mask(styled, "b"), expected)
    assert torch.equal(stroke_mask(styled.float() / 127.5 - 1, "b"), expected)  # float images in [-1, 1] too
    # orange strokes on a dark background: red above blue on the strokes, below it elsewhere
    on, off = styled[0, :, expected[0]].float(), styled[0, :, ~expected[0]].float()
    assert (on[0] > on[2]).all() and (off[0] < off[2]).all()
    assert len(torch.unique(styled[0, 2, ~expected[0]])) > 5  # a textured background, not a flat one
    assert torch.equal(stroke_mask(ink, "a"), ink[:, 0] > 127)
    with pytest.raises(ValueError, match="domain"):
        stroke_mask(ink, "c")


def test_the_splits_keep_training_halves_apart_and_pair_each_test_digit_with_its_truth(tmp_path):
    images, labels = tiny_mnist(tmp_path, n_train=10, n_test=4)
    train = load_warped_digits(tmp_path, "train", 32)
    assert train.rows_a.tolist() == [0, 1, 2, 3, 4] and train.rows_b.tolist() == [5, 6, 7, 8, 9]
    assert train.labels_b.tolist() == labels[5:].tolist()
    assert torch.equal(train.a, pad_digits(images[:5], 32))
    assert train.b.shape == (5, 3, 32, 32)
    test = load_warped_digits(tmp_path, "test", 32)
    assert torch.equal(test.rows_a, test.rows_b)
    assert torch.equal(test.b, to_domain_b(test.a))  # the truth of test digit i is its own warped version
    assert len(load_warped_digits(tmp_path, "test", 32, limit=3).a) == 3


def test_writing_is_deterministic_and_readable_as_two_domains(tmp_path):
    tiny_mnist(tmp_path / "data", n_train=8, n_test=3)
    counts = write_warped_digits(tmp_path / "one", tmp_path / "data", progress=False)
    write_warped_digits(tmp_path / "two", tmp_path / "data", progress=False)
    assert counts == {"trainA": 4, "trainB": 4, "testA": 3, "testB": 3}
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "one" / "testA").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one" / "testB").iterdir())
    with open(tmp_path / "one" / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 14 and {r["domain"] for r in rows} == {"A", "B"}
    info = json.loads((tmp_path / "one" / "warped_digits.json").read_text())
    assert info["settings"]["rotation_degrees"] == 40.0 and info["counts"] == counts
    assert Image.open(tmp_path / "one" / "trainA" / "00000.png").mode == "L"
    assert Image.open(tmp_path / "one" / "trainB" / "00004.png").mode == "RGB"
    assert len(FolderSource(tmp_path / "one" / "trainB", channels=3)) == 4
    with pytest.raises(DataError, match="already holds"):
        write_warped_digits(tmp_path / "one", tmp_path / "data", progress=False)


def test_cli_makes_the_data_set_and_refuses_to_overwrite(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "data", n_train=6, n_test=2)
    monkeypatch.setenv("UNPAIRED_DATA", str(tmp_path / "data"))
    code, out, err = run_cli("data", "make", "warped-digits", "--out", tmp_path / "warped", "--limit", "2")
    assert code == 0, err
    assert "trainA: 2" in out and len(list((tmp_path / "warped" / "testB").glob("*.png"))) == 2
    assert_error(run_cli("data", "make", "warped-digits", "--out", tmp_path / "warped"), tmp_path / "warped")
