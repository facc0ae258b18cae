"""The digit judge and class preservation, on tiny synthetic 'digits' (a bright bar whose position is the class)."""

from __future__ import annotations

import torch

from unpaired.metrics.digits import (
    accuracy,
    class_preservation,
    predict,
    to_unit_range,
    train_classifier,
)
from unpaired.nn.classifiers import DigitClassifier


def bars(n: int, classes: int = 4, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=gen)
    images = torch.randint(0, 40, (n, 1, size, size), generator=gen, dtype=torch.uint8)
    width = size // classes
    for i, label in enumerate(labels.tolist()):
        images[i, 0, :, label * width:(label + 1) * width] = 255
    return images, labels


def test_classifier_shapes():
    assert DigitClassifier(3, 10)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_to_unit_range():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2)
    assert torch.equal(to_unit_range(x), torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2))


def test_trained_judge_is_accurate_and_deterministic():
    images, labels = bars(256)
    first = train_classifier(images, labels, steps=60, batch_size=32, lr=3e-3, seed=1)
    torch.rand(5)  # whatever the caller's random stream did in between
    second = train_classifier(images, labels, steps=60, batch_size=32, lr=3e-3, seed=1)
    for p, q in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    test_images, test_labels = bars(128, seed=7)
    assert accuracy(first, test_images, test_labels) > 0.95
    assert torch.equal(predict(first, test_images), predict(second, test_images))


def test_class_preservation_scores_the_translation():
    images, labels = bars(256)
    judge = train_classifier(images, labels, steps=60, batch_size=32, lr=3e-3)
    test_images, test_labels = bars(128, seed=3)
    kept = class_preservation(lambda x: x, test_images, test_labels, judge)
    assert kept == accuracy(judge, test_images, test_labels) > 0.95
    mirrored = class_preservation(lambda x: x.flip(-1), test_images, test_labels, judge)  # bar k -> bar 3-k
    assert mirrored < 0.2


def test_judge_training_shows_a_progress_bar_unless_asked_not_to(capsys):
    images, labels = bars(16)
    train_classifier(images, labels, steps=3, batch_size=4, desc="digit judge usps")
    err = capsys.readouterr().err
    assert "digit judge usps" in err and "3/3" in err
    train_classifier(images, labels, steps=3, batch_size=4, progress=False)
    assert capsys.readouterr().err == ""


def test_cached_digit_judge_trains_once_then_loads_the_file(tmp_path):
    from unpaired.metrics.digits import cached_digit_judge

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 1, 16, 16), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (32,), generator=gen)
    first = cached_digit_judge("toy", images, labels, 2, tmp_path, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["judge_toy_16px_1ch_2steps_seed0.pt"]
    again = cached_digit_judge("toy", images, labels, 2, tmp_path, progress=False)
    x = images[:4].float().div(127.5).sub(1)
    assert torch.equal(first(x), again(x)) and not again.training
