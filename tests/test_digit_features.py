"""Digit FID: the feature network trained on two digit domains, its features, save/load, on tiny synthetic digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_data import tiny_mnist, tiny_usps_h5

import unpaired.metrics.digits as digits
from unpaired.metrics.digits import (
    accuracy,
    digit_features,
    digit_fid,
    ensure_feature_net,
    load_feature_net,
    save_feature_net,
    train_feature_net,
)
from unpaired.metrics.frechet import frechet_distance
from unpaired.nn.classifiers import DigitClassifier


def bars(n: int, domain: str = "a", classes: int = 4, size: int = 16, seed: int = 0):
    """'Digits' whose class is the position of a vertical bar; domain a: thin bright bars on a dark
    background, domain b: wide dimmer bars on a lighter background (another style, the same classes)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=gen)
    low, high, bar = (0, 40, 255) if domain == "a" else (60, 110, 190)
    images = torch.randint(low, high, (n, 1, size, size), generator=gen, dtype=torch.uint8)
    width = size // classes
    thin = 1 if domain == "a" else 0
    for i, label in enumerate(labels.tolist()):
        images[i, 0, :, label * width + thin:(label + 1) * width - thin] = bar
    return images, labels


@pytest.fixture(scope="module")
def net():
    sets = [bars(256, "a"), bars(32, "b", seed=1)]
    return train_feature_net(sets, steps=60, batch_size=32, lr=3e-3, seed=1)


def test_features_are_the_pooled_penultimate_activations():
    torch.manual_seed(0)
    model = DigitClassifier(1).eval()
    images, _ = bars(10)
    features = digit_features(model, images, batch_size=4)
    assert features.shape == (10, 128) and features.dtype == torch.float32
    assert (features >= 0).all()  # after ReLU and average pooling
    with torch.no_grad():
        logits = model(digits.to_unit_range(images))
        assert torch.allclose(model[-1](features), logits, atol=1e-5)  # the linear layer's input


def test_feature_net_learns_both_domains_and_is_deterministic(net):
    for domain, seed in (("a", 5), ("b", 6)):
        images, labels = bars(128, domain, seed=seed)
        assert accuracy(net, images, labels) > 0.95
    again = train_feature_net([bars(256, "a"), bars(32, "b", seed=1)], steps=60, batch_size=32, lr=3e-3, seed=1)
    for key, value in net.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_feature_net_batches_draw_equally_from_each_set(monkeypatch):
    seen = []
    forward = DigitClassifier.forward

    def spy(self, x):
        seen.append((len(x), int((x.flatten(1).mean(1) > 0).sum())))  # rows from the bright set
        return forward(self, x)

    monkeypatch.setattr(DigitClassifier, "forward", spy)
    dark = (torch.zeros(300, 1, 8, 8, dtype=torch.uint8), torch.zeros(300, dtype=torch.long))
    bright = (torch.full((10, 1, 8, 8), 255, dtype=torch.uint8), torch.ones(10, dtype=torch.long))
    train_feature_net([dark, bright], steps=3, batch_size=7)
    assert seen == [(7, 3)] * 3  # 4 + 3 of 7, although the sets hold 300 and 10 images


def test_feature_net_rejects_sets_of_different_shapes():
    with pytest.raises(ValueError, match="share channels and size"):
        train_feature_net([bars(8, size=16), bars(8, size=12)], steps=1)
    with pytest.raises(ValueError, match="at least one"):
        train_feature_net([], steps=1)


def test_digit_fid_orders_distributions(net):
    a1, la1 = bars(200, "a", seed=10)
    a2, _ = bars(200, "a", seed=11)
    b1, _ = bars(200, "b", seed=12)
    assert digit_fid(net, a1, a1) == pytest.approx(0, abs=1e-6)
    same = digit_fid(net, a1, a2)
    other_style = digit_fid(net, b1, a2)
    only_two_classes = digit_fid(net, a1[la1 < 2], a2)
    assert same < 0.25 * other_style and same < 0.25 * only_two_classes
    expected = frechet_distance(digit_features(net, b1), digit_features(net, a2))
    assert other_style == pytest.approx(expected, rel=1e-9)
    # float images in [-1, 1] give the same features as their uint8 originals
    assert digit_fid(net, b1.float() / 127.5 - 1, a2) == pytest.approx(other_style, rel=1e-5)


def test_features_adapt_channels_and_size(net):
    images, _ = bars(6, "a", seed=3)
    gray = digit_features(net, images)
    rgb = images.expand(-1, 3, -1, -1)
    assert torch.allclose(digit_features(net, rgb), gray, atol=1e-4)  # luminance of equal channels
    net.image_size = 16
    try:
        large = torch.nn.functional.interpolate(digits.to_unit_range(images), scale_factor=2, mode="nearest")
        expected = torch.nn.functional.interpolate(large, size=(16, 16), mode="bilinear", antialias=True)
        assert torch.allclose(digit_features(net, large), digit_features(net, expected), atol=1e-6)
    finally:
        net.image_size = None
    with pytest.raises(ValueError, match="1-channel images, got 2"):
        digit_features(net, images.expand(-1, 2, -1, -1))
    with pytest.raises(TypeError, match="expected a DigitClassifier"):
        digit_features(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), images)


def test_save_and_load_round_trip(net, tmp_path):
    net.image_size = 16
    try:
        path = save_feature_net(net, tmp_path, sets=["x", "y"], steps=60)
    finally:
        net.image_size = None
    assert path == tmp_path / digits.FEATURE_NET_FILE
    plain = torch.load(path, weights_only=True)  # plain data: opening it runs no code
    assert plain["kind"] == "digit_features" and plain["in_channels"] == 1 and plain["image_size"] == 16
    loaded = load_feature_net(tmp_path)
    assert not loaded.training and loaded.image_size == 16 and loaded.info == {"sets": ["x", "y"], "steps": 60}
    images, _ = bars(20, "b", seed=4)
    assert torch.equal(digit_features(loaded, images), digit_features(net, images))
    assert load_feature_net(path).info == loaded.info  # a file path works as well as its folder


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no digit feature network"):
        load_feature_net(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a digit feature network file"):
        load_feature_net(junk)
    other = tmp_path / "other.pt"
    torch.save({"kind": "something else"}, other)
    with pytest.raises(ValueError, match="not a digit feature network file"):
        load_feature_net(other)
    newer = tmp_path / "newer.pt"
    torch.save({"kind": "digit_features", "format": 99}, newer)
    with pytest.raises(ValueError, match="newer"):
        load_feature_net(newer)


def test_ensure_feature_net_trains_once_on_both_domains(tmp_path, monkeypatch):
    root = tmp_path / "data"
    tiny_mnist(root, n_train=20, n_test=10)
    tiny_usps_h5(root, n=12)
    folder = tmp_path / "bench"
    calls = []
    train = digits.train_feature_net

    def counting(sets, **kwargs):
        calls.append([tuple(images.shape) for images, _ in sets])
        return train(sets, **kwargs)

    monkeypatch.setattr(digits, "train_feature_net", counting)
    model = ensure_feature_net(folder, root, image_size=16, channels=1, steps=2)
    assert calls == [[(20, 1, 16, 16), (12, 1, 16, 16)]]  # MNIST and USPS train, resized to one size
    assert (folder / digits.FEATURE_NET_FILE).is_file()
    assert model.image_size == 16 and set(model.info["test_accuracy"]) == {"mnist", "usps"}
    again = ensure_feature_net(folder, root, image_size=16, channels=1, steps=2)
    assert len(calls) == 1  # loaded, not trained again
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 1, 16, 16), dtype=np.uint8))
    assert torch.equal(digit_features(again, images), digit_features(model, images))
    with pytest.raises(ValueError, match="use another folder or delete the file"):
        ensure_feature_net(folder, root, image_size=32, channels=1, steps=2)
