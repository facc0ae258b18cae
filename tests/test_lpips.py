"""LPIPS for the diversity of multimodal translation: with LPIPS v0.1's channel weights (the file the lpips package
ships) and a VGG16 weights file, unpaired's distance is the lpips package's, on the same images and backbone."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
import torch
from fidelity_reference import import_lpips

from unpaired.metrics.diversity import LPIPS_CHANNELS, load_lpips_weights, lpips_like, mean_pairwise_distance
from unpaired.nn.vgg import LPIPS_LAYERS, VGG16Features, load_vgg16_features


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """Random VGG16 weights in torchvision's layout (the backbone's values do not matter for the formula)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(VGG16Features().state_dict(), path)
    return path


def test_lpips_equals_the_lpips_package(vgg_file, monkeypatch):
    vgg = load_vgg16_features(vgg_file, LPIPS_LAYERS)
    lpips = import_lpips(vgg.features, monkeypatch)
    reference = lpips.LPIPS(net="vgg", version="0.1", verbose=False).eval()
    weights = load_lpips_weights(Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth")
    assert [len(w) for w in weights] == list(LPIPS_CHANNELS) and all((w >= 0).all() for w in weights)
    gen = torch.Generator().manual_seed(1)
    x, y = (torch.rand(3, 3, 48, 40, generator=gen) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        theirs = reference(x, y).flatten()
        ours = lpips_like(vgg(x), vgg(y), weights)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-7), (ours, theirs)
    assert not torch.allclose(ours, lpips_like(vgg(x), vgg(y)))  # the learned weights matter

    samples = torch.rand(2, 3, 3, 32, 32, generator=gen) * 2 - 1  # N=2 inputs x K=3 outputs
    with torch.no_grad():
        pairs = [reference(s[i:i + 1], s[j:j + 1]).item() for s in samples for i, j in combinations(range(3), 2)]
    assert mean_pairwise_distance(samples, vgg, weights) == pytest.approx(sum(pairs) / len(pairs), rel=1e-5)


def test_a_file_that_is_not_lpips_weights_is_refused(tmp_path):
    torch.save({"lin0.model.1.weight": torch.ones(1, 3, 1, 1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth: not LPIPS v0\.1's VGG weights"):
        load_lpips_weights(tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError, match=r"none\.pth: no such LPIPS weights file"):
        load_lpips_weights(tmp_path / "none.pth")


def test_eval_translation_reports_the_diversity_and_its_distance(vgg_file, tmp_path, monkeypatch):
    from conftest import make_image_folders
    from fidelity_reference import random_inception
    from test_cli import assert_error, run_cli
    from test_every_method import tiny_config

    from unpaired.metrics.diversity import LPIPS_VERSION
    from unpaired.training.trainer import Trainer

    monkeypatch.setenv("UNPAIRED_HOME", str(tmp_path / "home"))
    lpips = import_lpips(load_vgg16_features(vgg_file, LPIPS_LAYERS).features, monkeypatch)
    lin = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
    inception = random_inception(tmp_path / "inception.pth")
    data = make_image_folders(tmp_path / "data", {"trainA": 4, "trainB": 4, "testA": 2, "testB": 2})
    Trainer(tiny_config("munit", data, 1, "train.checkpoint_every=1000"), tmp_path / "munit").fit()
    common = ["eval", "translation", "--data", data, "--inception-weights", inception, "--diversity", 3]
    for extra, distance in ((["--vgg-weights", vgg_file, "--lpips-weights", lin], LPIPS_VERSION),
                            ([], "pixel L1 fallback")):
        code, out, err = run_cli(*common, "--checkpoint", tmp_path / "munit", *extra)
        assert code == 0, err
        assert "Diversity (3 styles per input, mean pairwise distance): " in out and distance in out
    assert_error(run_cli(*common, "--checkpoint", tmp_path / "munit", "--vgg-weights", vgg_file), "--lpips-weights")
    Trainer(tiny_config("unit", data, 1, "train.checkpoint_every=1000"), tmp_path / "unit").fit()
    assert_error(run_cli(*common, "--checkpoint", tmp_path / "unit"), "unit has no style prior", "--diversity")
