"""FID, KID and IS as papers compute them: unpaired's FID Inception network, preprocessing and formulas give
torch-fidelity's values (within 1e-4 relative) on the same images with the same weights file; weights files that
are missing or wrong are refused in one line; real-image features are cached; `unpaired eval fid` and
`unpaired eval translation` write their reports."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folders
from fidelity_reference import import_torch_fidelity, random_inception
from PIL import Image
from test_cli import assert_error, run_cli
from test_every_method import tiny_config

from unpaired.metrics import fidelity
from unpaired.metrics.fidelity import Settings, features_of_files, features_of_images, score_features
from unpaired.metrics.frechet import kernel_inception_distance
from unpaired.metrics.inception import (
    WEIGHTS_FILES,
    FIDInception,
    WeightsError,
    find_weights,
    inception_score,
    load_inception,
    resize_like_tf1,
)
from unpaired.training.trainer import Trainer


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """One random-weight FID Inception network, saved once and read by unpaired and torch-fidelity alike."""
    return random_inception(tmp_path_factory.mktemp("weights") / "random_inception.pth")


@pytest.fixture(scope="module")
def net(weights) -> FIDInception:
    return load_inception(weights)


def noisy_images(n: int, size: tuple[int, int], seed: int, spread: int = 60) -> list[torch.Tensor]:
    """``n`` uint8 RGB images around one random base image (so the two sets' distributions differ)."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (3, *size), generator=gen)
    return [(base + torch.randint(-spread, spread, (3, *size), generator=gen)).clamp(0, 255).to(torch.uint8)
            for _ in range(n)]


class Images(torch.utils.data.Dataset):
    def __init__(self, images: list[torch.Tensor]) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def test_fid_kid_and_is_equal_torch_fidelity(net, weights):
    torch_fidelity = import_torch_fidelity()
    real, fake = noisy_images(14, (40, 48), seed=1), noisy_images(12, (33, 29), seed=2)  # resized to 299 both
    settings = Settings(kid_subset_size=8, kid_subsets=20, isc_splits=3)  # explicit subset size and splits
    ours = score_features(features_of_images(net, real), features_of_images(net, fake), settings)
    theirs = torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(real), fid=True, kid=True, isc=True, cuda=False, cache=False,
        verbose=False, feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(weights),
        kid_subset_size=8, kid_subsets=20, isc_splits=3, batch_size=8, save_cpu_ram=True)
    pairs = {"fid": "frechet_inception_distance", "kid_mean": "kernel_inception_distance_mean",
             "kid_std": "kernel_inception_distance_std", "is_mean": "inception_score_mean",
             "is_std": "inception_score_std"}
    for key, their_key in pairs.items():
        assert relative(ours[key], theirs[their_key]) <= 1e-4, (key, ours[key], theirs[their_key])
    assert ours["fid"] > 1 and ours["kid_mean"] > 0 and ours["is_mean"] > 1  # not a comparison of zeros


def test_features_and_resize_match_torch_fidelity_bit_for_bit(net, weights):
    torch_fidelity = import_torch_fidelity()
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.rand(2, 3, 37, 52) * 255
    assert torch.equal(resize_like_tf1(x), interpolate_bilinear_2d_like_tensorflow1x(x, (299, 299),
                                                                                     align_corners=False))
    images = noisy_images(3, (31, 45), seed=3)
    extractor = torch_fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                           feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        pool, logits = extractor(torch.stack(images))
    ours = features_of_images(net, images)
    assert torch.allclose(ours.pool, pool, rtol=1e-5, atol=1e-5)
    assert torch.allclose(ours.logits, logits, rtol=1e-5, atol=1e-4)


def test_inception_score_and_kid_follow_their_definitions():
    confident = torch.full((20, 10), -30.0)
    confident[torch.arange(20), torch.arange(20) % 10] = 30.0  # every image sure of its class, 10 classes used
    mean, std = inception_score(confident, splits=2, shuffle=False)
    assert mean == pytest.approx(10, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
    assert inception_score(torch.zeros(8, 10), splits=4) == pytest.approx((1.0, 0.0))  # no information: 1
    with pytest.raises(ValueError, match="N >= splits"):
        inception_score(torch.zeros(3, 10), splits=4)
    a, b = np.random.default_rng(0).normal(size=(2, 30, 5))
    with pytest.raises(ValueError, match="KID subset size 40 is larger than a set"):
        kernel_inception_distance(a, b, subset_size=40, sampling="sequential")
    full = kernel_inception_distance(a, b, subsets=3, subset_size=30, sampling="sequential")
    assert full[0] == pytest.approx(kernel_inception_distance(a, b, subsets=1, subset_size=30)[0])  # all: no draw


def test_missing_and_wrong_weights_files_are_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("UNPAIRED_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsError, match=rf"{tmp_path}/home/weights/{WEIGHTS_FILES[0]}: no FID Inception weights"):
        find_weights()
    with pytest.raises(WeightsError, match=r"nothere\.pth: no such file"):
        find_weights(tmp_path / "nothere.pth")
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(WeightsError, match=r"text\.pth: not a PyTorch weights file"):
        load_inception(tmp_path / "text.pth")
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(WeightsError, match=r"linear\.pth: not the FID Inception weights .* missing"):
        load_inception(tmp_path / "linear.pth")
    state = FIDInception().state_dict()
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet head, not the FID graph's 1008 classes
    torch.save(state, tmp_path / "imagenet.pth")
    with pytest.raises(WeightsError, match=r"1 of another shape \(e\.g\. fc\.weight: \(1000, 2048\)"):
        load_inception(tmp_path / "imagenet.pth")
    (tmp_path / "home" / "weights").mkdir(parents=True)
    shutil.copy(tmp_path / "imagenet.pth", tmp_path / "home" / "weights" / WEIGHTS_FILES[1])  # torch-fidelity's name
    assert find_weights() == tmp_path / "home" / "weights" / WEIGHTS_FILES[1]


def write_images(folder: Path, images: list[torch.Tensor], prefix: str = "x") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"{prefix}{i}.png")
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(paths[-1])
    return paths


def test_real_features_are_cached_by_file_list_and_settings(net, weights, tmp_path, monkeypatch):
    monkeypatch.setenv("UNPAIRED_HOME", str(tmp_path / "home"))
    files = write_images(tmp_path / "real", noisy_images(3, (20, 20), seed=4))
    first = features_of_files(net, files, weights)
    assert len(list((tmp_path / "home" / "cache" / "inception").glob("*.npz"))) == 1

    def no_network(*args, **kwargs):
        raise AssertionError("the network ran although the features were cached")

    monkeypatch.setattr(fidelity, "inception_features", no_network)
    again = features_of_files(net, files, weights)
    assert torch.equal(first.pool, again.pool) and torch.equal(first.logits, again.logits)
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed file: computed again
    with pytest.raises(AssertionError, match="cached"):
        features_of_files(net, files, weights)
    with pytest.raises(AssertionError, match="cached"):  # another list of files
        features_of_files(net, files[:2], weights)


def test_cli_eval_fid_writes_its_report(weights, net, tmp_path, monkeypatch):
    monkeypatch.setenv("UNPAIRED_HOME", str(tmp_path / "home"))
    real = write_images(tmp_path / "real", noisy_images(4, (24, 24), seed=5))
    fake = write_images(tmp_path / "fake", noisy_images(3, (24, 24), seed=6))
    code, out, err = run_cli("eval", "fid", "--real", tmp_path / "real", "--fake", tmp_path / "fake",
                             "--inception-weights", weights, "--kid-subset-size", 10, "--isc-splits", 3,
                             "--out", tmp_path / "report")
    assert code == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["settings"]["kid_subset_size"] == 3  # lowered to the smaller set, and recorded
    expected = score_features(features_of_files(net, real, weights, cache=False),
                              features_of_files(net, fake, weights, cache=False),
                              Settings(kid_subset_size=3, isc_splits=3))
    assert report["scores"] == pytest.approx(expected, rel=1e-9)
    assert "| FID |" in (tmp_path / "report" / "report.md").read_text() and "| FID |" in out
    assert_error(run_cli("eval", "fid", "--real", tmp_path / "real", "--fake", tmp_path / "fake",
                         "--inception-weights", weights, "--out", tmp_path / "report"), "report.json", "--overwrite")
    assert_error(run_cli("eval", "fid", "--real", tmp_path / "real", "--fake", tmp_path / "fake"),
                 WEIGHTS_FILES[0], "--inception-weights", one_line=True)
    assert_error(run_cli("eval", "fid", "--real", tmp_path / "real", "--fake", tmp_path / "fake",
                         "--inception-weights", real[0]), real[0], "not a PyTorch weights file")


def test_cli_eval_translation_scores_the_test_split_and_pairs(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("UNPAIRED_HOME", str(tmp_path / "home"))
    data = make_image_folders(tmp_path / "data", {"trainA": 4, "trainB": 4, "testA": 3, "testB": 3})
    Trainer(tiny_config("unit", data, 1, "train.checkpoint_every=1000"), tmp_path / "run").fit()
    code, out, err = run_cli("eval", "translation", "--checkpoint", tmp_path / "run", "--data", data,
                             "--inception-weights", weights, "--out", tmp_path / "eval")
    assert code == 0, err
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["n_real"] == report["n_fake"] == 3 and report["paired"] is None  # a0.png has no b0.png
    assert np.isfinite(report["scores"]["fid"]) and report["checkpoint"] == str(tmp_path / "run")
    for i in range(3):  # aligned pairs: the same names in testA and testB
        (data / "testB" / f"b{i}.png").rename(data / "testB" / f"a{i}.png")
    code, out, err = run_cli("eval", "translation", "--checkpoint", tmp_path / "run", "--data", data,
                             "--direction", "a2b", "--inception-weights", weights, "--kid-subset-size", 3)
    assert code == 0, err
    assert "Paired with the target test images of the same name (3 pairs)" in out and "rmse" in out
    code, _, err = run_cli("export", "--checkpoint", tmp_path / "run", "--format", "torchscript")  # an exported file
    assert code == 0, err
    code, out, err = run_cli("eval", "translation", "--checkpoint", tmp_path / "run" / "export" / "unit_a2b.pt",
                             "--data", data, "--inception-weights", weights, "--kid-subset-size", 3)
    assert code == 0, err
    assert "(3 pairs)" in out
