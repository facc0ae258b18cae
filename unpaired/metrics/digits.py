"""A small digit classifier used as a judge: does a translated digit keep its class?

Class preservation is the share of translated images x_ab that a classifier trained on *real* domain-b
images (with b's labels) assigns to the label of their source image x_a. The judge never takes part in
training the translator; it only scores it, like the oracle classifiers of the CycleGAN/GcGAN digit
protocols. Images are float tensors in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from unpaired.data import data_root, open_digits, open_labelled
from unpaired.io import atomic_write
from unpaired.metrics.frechet import frechet_distance
from unpaired.nn.classifiers import DigitClassifier, load_digit_network, save_digit_network


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 images -> float in [-1, 1]; float images pass through."""
    return images.float().div(127.5).sub(1) if images.dtype == torch.uint8 else images.float()


def _jitter(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random shifts of up to 2 pixels: cheap augmentation that makes the judge robust to small offsets."""
    shifts = torch.randint(-2, 3, (2,), generator=gen).tolist()
    return torch.roll(x, shifts=shifts, dims=(2, 3))


def train_classifier(images: Tensor, labels: Tensor, steps: int = 600, batch_size: int = 128, lr: float = 1e-3,
                     seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
                     desc: str = "digit judge") -> DigitClassifier:
    """Train a ``DigitClassifier`` on (images, labels); deterministic for a given seed on CPU. Shows a progress
    bar named ``desc`` on stderr unless ``progress`` is False."""
    gen = torch.Generator().manual_seed(seed)
    devices = [device] if torch.device(device).type == "cuda" else []
    # init and dropout draw from the global generator: seed it here, and leave the caller's stream alone
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = DigitClassifier(images.shape[1]).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
        model.train()
        for _ in tqdm(range(steps), desc=desc, unit="step", disable=not progress):
            index = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
            x = _jitter(to_unit_range(images[index]), gen).to(device)
            loss = F.cross_entropy(model(x), labels[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def class_probabilities(model: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """``N x classes`` softmax of ``model`` (eval mode) on uint8 or [-1, 1] images, on the CPU."""
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model(to_unit_range(images[i:i + batch_size]).to(device)).float().softmax(1).cpu()
                      for i in range(0, images.shape[0], batch_size)])


def predict(model: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    return class_probabilities(model, images, batch_size).argmax(1)


def accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    return float((predict(model, images) == labels).float().mean())


@torch.no_grad()
def class_preservation(translate: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, judge: nn.Module,
                       batch_size: int = 256) -> float:
    """Share of ``translate(images)`` that ``judge`` (trained on the target domain) labels as ``labels``."""
    translated = torch.cat([translate(to_unit_range(images[i:i + batch_size])).float().cpu()
                            for i in range(0, images.shape[0], batch_size)])
    return accuracy(judge, translated, labels)


def cached_digit_judge(name: str, images: Tensor, labels: Tensor, steps: int, folder: str | Path,
                       seed: int = 0, progress: bool = True) -> DigitClassifier:
    """A judge (:func:`train_classifier`) for one real digit domain, cached as a plain state_dict in ``folder``.

    The file is named by ``name``, the images' side and channels, ``steps`` and ``seed``, so judges for other
    sizes or budgets never collide; a file already there is loaded instead of training again."""
    path = Path(folder) / f"judge_{name}_{images.shape[-1]}px_{images.shape[1]}ch_{steps}steps_seed{seed}.pt"
    if path.is_file():
        model = DigitClassifier(images.shape[1])
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    model = train_classifier(images, labels, steps=steps, seed=seed, progress=progress, desc=f"digit judge {name}")
    atomic_write(path, lambda handle: torch.save(model.state_dict(), handle))
    return model


def train_digit_judges(root: object, size: int, channels: dict[str, int], names: tuple[str, str] = ("mnist", "usps"),
                       steps: int = 600, progress: bool = True) -> dict[str, DigitClassifier]:
    """One judge per domain (``a``: ``names[0]``, ``b``: ``names[1]``), each trained on that real domain's labelled
    training digits at the translator's ``size`` and ``channels``; a progress bar each unless ``progress`` is False."""
    judges = {}
    for domain, name in zip("ab", names, strict=True):
        train = open_digits(name, root, "train", size, channels[domain])
        judges[domain] = train_classifier(train.images, train.labels, steps=steps, progress=progress,
                                          desc=f"digit judge {name}")
    return judges


def score_digit_translation(translator: object, root: object, names: tuple[str, str] = ("mnist", "usps"),
                            count: int = 1000, judge_steps: int = 600, progress: bool = True,
                            judges: dict[str, nn.Module] | None = None) -> dict[str, float]:
    """Class preservation both ways on the first ``count`` test digits, with judges trained on each real domain
    (``judges`` from ``train_digit_judges``, or trained here for ``judge_steps``).

    ``translator`` is an ``unpaired.inference.Translator`` trained on ``names[0]:names[1]``.
    """
    size = translator.image_size  # type: ignore[attr-defined]
    channels = {d: translator.channels(d) for d in "ab"}  # type: ignore[attr-defined]
    if judges is None:
        judges = train_digit_judges(root, size, channels, names, judge_steps, progress)
    test = {d: open_digits(n, root, "test", size, channels[d]) for d, n in zip("ab", names, strict=True)}
    scores = {f"judge_accuracy_{names[i]}": accuracy(judges[d], test[d].images, test[d].labels)
              for i, d in enumerate("ab")}
    for source, target in (("a", "b"), ("b", "a")):
        images, labels = test[source].images[:count], test[source].labels[:count]
        pair = f"{names['ab'.index(source)]}_to_{names['ab'.index(target)]}"
        scores[f"kept_{pair}"] = class_preservation(
            lambda x, d=f"{source}2{target}": translator.translate(x, d),  # type: ignore[attr-defined]
            images, labels, judges[target])
        # the same judge on the untranslated source digits: what doing nothing would score
        scores[f"untranslated_{pair}"] = accuracy(judges[target], images, labels)
    return scores


# -- digit FID: one feature network for both digit domains -------------------------------------------------------
#
# FID proper compares Inception-v3 pool features; Inception knows nothing of 16-32 px digits (and its weights are
# not available here). "Digit FID" uses a DigitClassifier trained once on the labelled training digits of *both*
# domains (e.g. MNIST + USPS, resized to one size and channel count) as the feature network: its 128 globally
# pooled penultimate activations (before dropout and the linear layer) play Inception's pool3 role, and
# ``unpaired.metrics.frechet.frechet_distance`` compares translated and real target images in that space. The
# network is trained on the user's machine and saved in a run or bench folder (``FEATURE_NET_FILE``); it is
# never shipped with the package. Values are comparable only between runs that use the same feature network
# and the same set sizes (FID is biased by the sample size).

FEATURE_NET_FILE = "digit_features.pt"


def train_feature_net(sets: list[tuple[Tensor, Tensor]], steps: int = 1000, batch_size: int = 128,
                      lr: float = 1e-3, seed: int = 0, device: str | torch.device = "cpu",
                      progress: bool = True) -> DigitClassifier:
    """A ``DigitClassifier`` trained on several labelled digit sets together (e.g. MNIST and USPS train).

    Every batch takes an equal share from each set (so the 7,291 USPS digits weigh as much as the 60,000 MNIST
    ones), with the judge's recipe otherwise: Adam, one-cycle schedule, random shifts of up to 2 pixels.
    The sets must share image size and channels. Deterministic for a given seed on CPU. Shows a progress bar on
    stderr unless ``progress`` is False."""
    if not sets:
        raise ValueError("train_feature_net needs at least one (images, labels) set")
    shapes = {tuple(images.shape[1:]) for images, _ in sets}
    if len(shapes) != 1:
        raise ValueError(f"the sets must share channels and size (C x H x W), got {sorted(shapes)}")
    gen = torch.Generator().manual_seed(seed)
    shares = [batch_size // len(sets) + (i < batch_size % len(sets)) for i in range(len(sets))]
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # init and dropout from `seed`; the caller's RNG is left alone
        torch.manual_seed(seed)
        model = DigitClassifier(sets[0][0].shape[1]).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
        model.train()
        for _ in tqdm(range(steps), desc="digit feature network", unit="step", disable=not progress):
            _feature_net_step(model, optimizer, sets, shares, gen, device)
            schedule.step()
    return model.eval()


def _feature_net_step(model: nn.Module, optimizer: torch.optim.Optimizer, sets: list[tuple[Tensor, Tensor]],
                      shares: list[int], gen: torch.Generator, device: str | torch.device) -> None:
    picks = [(images, labels, torch.randint(0, len(images), (share,), generator=gen))
             for (images, labels), share in zip(sets, shares, strict=True)]
    x = torch.cat([images[index] for images, _, index in picks])
    y = torch.cat([labels[index] for _, labels, index in picks])
    loss = F.cross_entropy(model(_jitter(to_unit_range(x), gen).to(device)), y.to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _feature_trunk(model: nn.Module) -> nn.Module:
    """The layers of a ``DigitClassifier`` up to its global pooling (everything before dropout + linear)."""
    if not (isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Linear)
            and isinstance(model[-2], nn.Dropout)):
        raise TypeError(f"expected a DigitClassifier (... pooling, Flatten, Dropout, Linear), "
                        f"got {type(model).__name__}")
    return nn.Sequential(*list(model)[:-2])


def _fit_input(model: nn.Module, x: Tensor) -> Tensor:
    """Match the feature network's input: channels (gray repeated to RGB, RGB to luminance) and, when the network
    records the size it was trained at (``model.image_size``), that size (bilinear, antialiased)."""
    channels = model[0].in_channels
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        elif x.shape[1] == 3 and channels == 1:
            x = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise ValueError(f"the feature network takes {channels}-channel images, got {x.shape[1]} channels")
    size = getattr(model, "image_size", None)
    if size and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.no_grad()
def digit_features(model: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """N x 128 features of ``images`` (uint8, or float in [-1, 1]): the feature network's globally pooled
    penultimate activations, in eval mode (batch norm running statistics, no dropout). Float32, on the CPU."""
    trunk = _feature_trunk(model)
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([trunk(_fit_input(model, to_unit_range(images[i:i + batch_size])).to(device)).float().cpu()
                      for i in range(0, images.shape[0], batch_size)])


def digit_fid(model: nn.Module, fake_images: Tensor, real_images: Tensor) -> float:
    """Frechet distance between the digit features of ``fake_images`` (e.g. translations) and ``real_images``
    (real target-domain digits). Compare values only at equal set sizes and with the same feature network."""
    return frechet_distance(digit_features(model, fake_images), digit_features(model, real_images))


def feature_net_path(path: str | Path) -> Path:
    """A folder -> its ``FEATURE_NET_FILE``; a file path is kept."""
    path = Path(path)
    return path / FEATURE_NET_FILE if path.is_dir() or not path.suffix else path


def save_feature_net(model: DigitClassifier, path: str | Path, **info: Any) -> Path:
    """Write the feature network (a file, or ``FEATURE_NET_FILE`` in a folder): ``save_digit_network`` of kind
    ``digit_features``. ``info``: plain values to keep with it (training sets, steps, accuracies)."""
    return save_digit_network(model, feature_net_path(path), "digit_features", **info)


def load_feature_net(path: str | Path, device: str | torch.device = "cpu") -> DigitClassifier:
    """Read a network written by ``save_feature_net`` (a file, or ``FEATURE_NET_FILE`` in a folder)."""
    path = feature_net_path(path)
    try:
        return load_digit_network(path, "digit_features", device)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no digit feature network here (train one with ensure_feature_net)") from None


def ensure_feature_net(folder: str | Path, root: Any = None, names: tuple[str, ...] = ("mnist", "usps"),
                       image_size: int = 32, channels: int = 1, steps: int = 1000, seed: int = 0,
                       progress: bool = True) -> DigitClassifier:
    """The digit feature network saved in ``folder``, trained first (and saved) when it is not there yet.

    Training uses the ``train`` split of each labelled digit set in ``names`` (named sets, .h5 files or
    class-folder trees, see :func:`unpaired.data.open_labelled`) (read from ``root``, default the data
    root), resized to ``image_size`` with ``channels``; accuracy on each ``test`` split is kept in ``info``.
    An existing file trained with other sets, size or channels is an error, never silently replaced."""
    path = feature_net_path(folder)
    wanted = {"sets": list(names), "image_size": image_size, "channels": channels}
    if path.exists():
        model = load_feature_net(path)
        found = {k: model.info.get(k) for k in wanted}
        if found != wanted:
            raise ValueError(f"{path} holds a feature network for {found}, not {wanted}: use another folder or "
                             "delete the file to train a new one")
        return model
    root = data_root() if root is None else root
    train = [open_labelled(n, root, "train", image_size, channels) for n in names]
    model = train_feature_net([(s.images, s.labels) for s in train], steps=steps, seed=seed, progress=progress)
    model.image_size = image_size
    test = [open_labelled(n, root, "test", image_size, channels) for n in names]
    scores = {n: round(accuracy(model, s.images, s.labels), 4) for n, s in zip(names, test, strict=True)}
    model.info = {**wanted, "steps": steps, "seed": seed, "test_accuracy": scores}
    save_feature_net(model, path, **model.info)
    return model
