"""A small digit classifier used as a judge: does a translated digit keep its class?

Class preservation is the share of translated images x_ab that a classifier trained on *real* domain-b
images (with b's labels) assigns to the label of their source image x_a. The judge never takes part in
training the translator; it only scores it, like the oracle classifiers of the CycleGAN/GcGAN digit
protocols. Images are float tensors in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DigitClassifier(nn.Sequential):
    """Three 3x3 conv stages (32, 64, 128 channels) with max pooling, global pooling, a linear layer."""

    def __init__(self, in_channels: int = 1, classes: int = 10) -> None:
        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        super().__init__(
            *stage(in_channels, 32), nn.MaxPool2d(2),
            *stage(32, 64), nn.MaxPool2d(2),
            *stage(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(0.2), nn.Linear(128, classes),
        )


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 images -> float in [-1, 1]; float images pass through."""
    return images.float().div(127.5).sub(1) if images.dtype == torch.uint8 else images.float()


def _jitter(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random shifts of up to 2 pixels: cheap augmentation that makes the judge robust to small offsets."""
    shifts = torch.randint(-2, 3, (2,), generator=gen).tolist()
    return torch.roll(x, shifts=shifts, dims=(2, 3))


def train_classifier(images: Tensor, labels: Tensor, steps: int = 600, batch_size: int = 128, lr: float = 1e-3,
                     seed: int = 0, device: str | torch.device = "cpu") -> DigitClassifier:
    """Train a ``DigitClassifier`` on (images, labels); deterministic for a given seed on CPU."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DigitClassifier(images.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
        x = _jitter(to_unit_range(images[index]), gen).to(device)
        loss = F.cross_entropy(model(x), labels[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model(to_unit_range(images[i:i + batch_size]).to(device)).argmax(1).cpu()
                      for i in range(0, images.shape[0], batch_size)])


def accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    return float((predict(model, images) == labels).float().mean())


@torch.no_grad()
def class_preservation(translate: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, judge: nn.Module,
                       batch_size: int = 256) -> float:
    """Share of ``translate(images)`` that ``judge`` (trained on the target domain) labels as ``labels``."""
    translated = torch.cat([translate(to_unit_range(images[i:i + batch_size])).float().cpu()
                            for i in range(0, images.shape[0], batch_size)])
    return accuracy(judge, translated, labels)


def score_digit_translation(translator: object, root: object, names: tuple[str, str] = ("mnist", "usps"),
                            count: int = 1000, judge_steps: int = 600) -> dict[str, float]:
    """Class preservation both ways on the first ``count`` test digits, with judges trained on each real domain.

    ``translator`` is an ``unpaired.inference.Translator`` trained on ``names[0]:names[1]``.
    """
    from unpaired.data import open_digits

    size = translator.image_size  # type: ignore[attr-defined]
    channels = {d: translator.channels(d) for d in "ab"}  # type: ignore[attr-defined]
    train = {d: open_digits(n, root, "train", size, channels[d]) for d, n in zip("ab", names, strict=True)}
    test = {d: open_digits(n, root, "test", size, channels[d]) for d, n in zip("ab", names, strict=True)}
    judges = {d: train_classifier(train[d].images, train[d].labels, steps=judge_steps) for d in "ab"}
    scores = {f"judge_accuracy_{names[i]}": accuracy(judges[d], test[d].images, test[d].labels)
              for i, d in enumerate("ab")}
    for source, target in (("a", "b"), ("b", "a")):
        images, labels = test[source].images[:count], test[source].labels[:count]
        key = f"kept_{names['ab'.index(source)]}_to_{names['ab'.index(target)]}"
        scores[key] = class_preservation(lambda x, d=f"{source}2{target}": translator.translate(x, d),  # type: ignore[attr-defined]
                                         images, labels, judges[target])
    return scores
