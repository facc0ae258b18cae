"""UNIT's digit domain-adaptation protocol: a classifier that sees labels only in the source domain, helped by
unpaired translation, scored on the target domain's test set.

The table this reproduces is UNIT's (Liu, Breuel, Kautz, "Unsupervised Image-to-Image Translation Networks",
NeurIPS 2017, Table 2: MNIST->USPS 0.9597, USPS->MNIST 0.9358, SVHN->MNIST 0.9053), which follows CoGAN's
protocol (Liu & Tuzel, NeurIPS 2016). One run:

1. trains the translator (any registered method, default UNIT with the shipped ``unit_adaptation`` config) on the
   *unlabelled* training images of both domains, through the shared trainer. When the translator config asks for
   a semantic-consistency term (``loss_weights.semantic`` > 0, CyCADA's; ``unit_adaptation`` does), the protocol
   first trains the ``source_only`` classifier below and hands it over, frozen, as that term's judge
   (``model.semantic_classifier``): translations must keep the class it reads in their inputs. It sees source
   labels only, like every row but ``target_supervised``;
2. translates the labelled source training digits into the target domain;
3. trains digit classifiers with the same network and recipe, each on a different input:

   * ``source_only``: source digits, nothing from the target domain (no adaptation: the floor);
   * ``translated``: the source digits translated into the target domain, with their source labels (the common
     "translate, then classify" alternative);
   * ``translated_self_ensembling``: as ``translated``, plus a mean-teacher consistency loss on unlabelled
     target training images (self-ensembling: French, Mackiewicz, Fisher, "Self-ensembling for visual domain
     adaptation", ICLR 2018; their defaults: teacher EMA 0.99, confidence threshold 0.968, consistency weight
     3), with batch-norm statistics re-estimated on the target training images at the end (AdaBN: Li et al.,
     "Revisiting batch normalization for practical domain adaptation", 2016);
   * ``self_ensembling`` (optional ablation): the same without translation (source digits + consistency);
   * ``ensemble``: the ``translated_self_ensembling`` and ``self_ensembling`` classifiers of the same run read
     every target image together (the mean of their class probabilities): one has learnt the digits from their
     translations, the other from the source digits themselves, so their mistakes differ. No training of its
     own; it needs both rows;
   * ``ensemble_without_translation`` (optional control): ``self_ensembling`` averaged the same way with a second
     ``self_ensembling`` classifier of another seed, so that the share of ``ensemble``'s gain that comes from
     averaging two networks, rather than from the translation, is measured;
   * ``discriminator_head`` (optional; the paper's own way): a classification head on the discriminators'
     features, trained jointly with UNIT on source labels (source digits through D_source, their translations
     through D_target), the discriminators sharing all layers but the first (CoGAN/UNIT weight sharing), then
     applied to real target digits through D_target. Asking for this row trains the translator with the head
     and the shared discriminator layers, and that translator then serves every row of the run;
   * ``target_supervised``: target training digits *with their labels* (the upper limit; the only place target
     labels are used for training, and only in this row);

4. reports target test accuracy of each, its accuracy on a validation split carved out of the source training
   data (the only data that may choose anything), the row the protocol's rule selects on that split alone
   (``selected_row``: the highest source-validation accuracy among the rows trained without target labels), and
   the digit FID of the translations.

Target labels are read for the test set (to score) and for the ``target_supervised`` row; the functions that
train the other rows never receive them (``tests/test_adaptation.py`` shuffles them and gets the same
training trace).

Where the paper is silent or its files are not available, choices are written into the report's ``settings``:
images are resized to 28x28 (the CoGAN/UNIT MNIST-USPS size; their ``usps_28x28.pkl`` re-split is not
available, so USPS is the standard 7,291 / 2,007 split of ``usps.h5``, upsampled from 16x16).
"""

from __future__ import annotations

import copy
import json
import math
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from unpaired.config import PACKAGED_CONFIGS, ConfigError, apply_overrides, build_config, to_object
from unpaired.data import DIGIT_CHANNELS, TensorSource, data_root, open_labelled
from unpaired.devices import resolve_device, resolve_precision
from unpaired.images import save_grid
from unpaired.inference import load as load_translator
from unpaired.io import atomic_json, atomic_write
from unpaired.methods import METHODS
from unpaired.methods.base import AuxiliaryClassifier, methods_with, require
from unpaired.metrics.digits import accuracy, class_probabilities, digit_fid, ensure_feature_net, to_unit_range
from unpaired.nn.augment import resample
from unpaired.nn.classifiers import DigitClassifier, load_digit_network, save_digit_network
from unpaired.training.batches import StepBatches
from unpaired.training.trainer import RunFolderError, Trainer

VARIANTS = ("source_only", "translated", "translated_self_ensembling", "self_ensembling", "ensemble",
            "ensemble_without_translation", "discriminator_head", "target_supervised")
ENSEMBLES = {"ensemble": ("translated_self_ensembling", "self_ensembling"),
             "ensemble_without_translation": ("self_ensembling", "ensemble_without_translation")}
"""Each ensemble row and the rows whose classifiers it averages (``ensemble_without_translation`` trains its own
second member: a ``self_ensembling`` classifier of another seed)."""
SCORED_ONLY = {name for name, members in ENSEMBLES.items() if name not in members}
"""Rows without a classifier of their own."""
DEFAULT_VARIANTS = ("source_only", "translated_self_ensembling", "self_ensembling", "ensemble",
                    "ensemble_without_translation", "discriminator_head", "target_supervised")
HEAD_ONLY_VARIANTS = ("source_only", "discriminator_head", "target_supervised")
"""The default rows for a translator whose translation is an optimisation per image (it declares itself not
exportable: CoGAN's inversion), which would take hours over the 54,000 source digits the translated rows read."""
FID_STEPS = 1000
"""Default training steps of the digit FID's feature network."""
# (unpaired/cli.py repeats these two names so that `--help` needs no torch; a test keeps them equal)
SELECTABLE = tuple(v for v in VARIANTS if v != "target_supervised")
"""The rows the protocol's rule may pick: every row trained without target labels."""
SELECTION_RULE = ("the row of highest accuracy on the source validation split (held-out source training digits, "
                  "translated for the translated rows) among the rows trained without target labels")
PAPER = {"mnist->usps": 0.9597, "usps->mnist": 0.9358, "svhn->mnist": 0.9053}
"""UNIT's own figures (NeurIPS 2017, Table 2)."""


@dataclass
class AdaptationSettings:
    """Everything one adaptation run depends on; written into its report."""

    source: str = "mnist"
    target: str = "usps"
    method: str = "unit"
    config: str | None = None
    """Translator config file or shipped name; default ``<method>_adaptation`` where one is shipped (UNIT),
    else ``<method>_digits``."""
    overrides: list[str] = field(default_factory=list)
    """Extra ``--set`` overrides of the translator config."""
    image_size: int = 28
    translator_steps: int | None = None
    """Translator training steps; None: the config's ``train.max_steps`` (2000 in ``unit_adaptation``)."""
    translator_minutes: float | None = 20.0
    """Wall-time cap of the translator (None: none); ``unit_adaptation``'s 2000 steps take ~13 min on 2 cores."""
    classifier_steps: int = 6000
    """6000, not 2000: on MNIST -> USPS seed 0 it raised self-ensembling's *source validation* accuracy from 0.974
    to 0.983 (the split carved out of the source training digits, the only data that chooses settings here)."""
    batch_size: int = 128
    lr: float = 1e-3
    consistency_weight: float = 3.0
    confidence: float = 0.968
    class_balance: float = 0.005
    """Weight of the class-balance term on the student's mean target prediction (French et al.'s default)."""
    teacher_decay: float = 0.99
    validation_fraction: float = 0.1
    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    seed: int = 0
    precision: str = "auto"
    """fp32, bf16 or auto, for the translator and the classifiers."""
    limit: int | None = None
    """Use only the first N images of each split (quick checks and tests)."""
    fid_steps: int = 1000
    """Training steps of the digit feature network behind the digit FID (0: no FID)."""

    def check(self) -> None:
        """Raise ``ConfigError`` naming the first bad setting."""
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ConfigError(f"unknown adaptation variant(s) {unknown or '(none given)'}; choose from "
                             f"{', '.join(VARIANTS)}")
        for name, members in ENSEMBLES.items():
            missing = [v for v in members if v not in self.variants]
            if name in self.variants and missing:
                raise ConfigError(f"the {name} row averages the {' and '.join(members)} classifiers; add "
                                 f"{', '.join(missing)} to the variants")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must lie in (0, 1), got {self.validation_fraction}")
        for name in ("image_size", "classifier_steps", "batch_size", "translator_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


# -- augmentation and training of the classifiers ---------------------------------------------------------------

def random_affine(x: Tensor, gen: torch.Generator, degrees: float = 10.0, scale: tuple[float, float] = (0.9, 1.1),
                  shift: float = 0.1, noise: float = 0.1) -> Tensor:
    """Per-image random rotation, scale and shift (fraction of the half-width), plus Gaussian noise; for
    ``N x C x H x W`` in [-1, 1], background (-1) filled in. The augmentation of French et al. (2018)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(degrees)
    zoom = torch.empty(n).uniform_(*scale, generator=gen)
    offset = (torch.rand(n, 2, generator=gen) * 2 - 1) * shift
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)
    out = resample(x, theta)
    return out + noise * torch.randn(out.shape, generator=gen).to(out)


def class_balance_loss(probabilities: Tensor) -> Tensor:
    """Binary cross-entropy between the batch's mean predicted probability of each class and the uniform 1/K,
    summed over the K classes: it keeps self-ensembling from collapsing the unlabelled domain onto a few classes
    (French et al., 2018, Sec. 3.3)."""
    k = probabilities.shape[1]
    mean = probabilities.mean(0).clamp(1e-6, 1 - 1e-6)
    return -((1 / k) * mean.log() + (1 - 1 / k) * (1 - mean).log()).sum()


@dataclass
class ClassifierRun:
    model: nn.Module
    trace: list[float]
    """Training loss every 50 steps (a fingerprint of the run: equal inputs give an equal trace)."""
    seconds: float


def _batches(n: int, batch_size: int, steps: int, gen: torch.Generator) -> Iterator[Tensor]:
    for _ in range(steps):
        yield torch.randint(0, n, (batch_size,), generator=gen)


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, images: Tensor, batch_size: int = 512) -> None:
    """Re-estimate every batch-norm layer's running statistics on ``images`` (AdaBN): cumulative averages over
    one pass, without augmentation, in equal batches. Used to fit a classifier to the unlabelled target images it
    is tested on."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    device = next(model.parameters()).device
    # equal batches, because the cumulative average weighs every batch alike: a short last batch is left out
    # (unless it is the only one)
    full = max(1, images.shape[0] // batch_size) * batch_size
    for i in range(0, min(full, images.shape[0]), batch_size):
        model(to_unit_range(images[i:i + batch_size]).to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def train_digit_classifier(images: Tensor, labels: Tensor, settings: AdaptationSettings, seed: int,
                           unlabelled: Tensor | None = None, device: torch.device | str = "cpu",
                           bf16: bool = False, progress: bool = True, desc: str = "digit classifier") -> ClassifierRun:
    """A ``DigitClassifier`` trained on labelled ``images`` with augmentation; with ``unlabelled`` images (of the
    domain it will be tested on) a mean teacher is trained alongside, and the teacher is returned with its
    batch-norm statistics re-estimated on ``unlabelled`` (self-ensembling + AdaBN).

    Only images and labels of the labelled set and the *images* of the unlabelled set come in: there is no
    way for unlabelled-set labels to reach this function. Deterministic for a given seed on CPU. Shows a progress
    bar named ``desc`` on stderr unless ``progress`` is False."""
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # init and dropout from `seed`; the caller's RNG is left alone
        torch.manual_seed(seed)
        student = DigitClassifier(images.shape[1]).to(device).to(memory_format=torch.channels_last)
        teacher = copy.deepcopy(student).requires_grad_(False) if unlabelled is not None else None
        optimizer = torch.optim.Adam(student.parameters(), lr=settings.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr,
                                                       total_steps=settings.classifier_steps)
        trace: list[float] = []
        running = 0.0
        pairs = zip(_batches(images.shape[0], settings.batch_size, settings.classifier_steps, gen),
                    _batches(unlabelled.shape[0] if unlabelled is not None else 1, settings.batch_size,
                             settings.classifier_steps, gen), strict=True)
        bar = tqdm(pairs, total=settings.classifier_steps, desc=desc, unit="step", disable=not progress)
        for step, (index, target_index) in enumerate(bar, 1):
            student.train()
            x = random_affine(to_unit_range(images[index]), gen).to(device, memory_format=torch.channels_last)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(student(x).float(), labels[index].to(device))
                if teacher is not None:
                    target = to_unit_range(unlabelled[target_index])  # type: ignore[index]
                    view_s = random_affine(target, gen).to(device, memory_format=torch.channels_last)
                    view_t = random_affine(target, gen).to(device, memory_format=torch.channels_last)
                    # separate batches per domain, so batch norm normalises each domain by its own statistics
                    p_student = student(view_s).float().softmax(1)
                    with torch.no_grad():
                        teacher.train()
                        p_teacher = teacher(view_t).float().softmax(1)
                    confident = (p_teacher.max(1).values > settings.confidence).float()
                    consistency = ((p_student - p_teacher) ** 2).mean(1).mul(confident).mean()
                    loss = loss + settings.consistency_weight * consistency
                    if settings.class_balance:
                        loss = loss + settings.class_balance * class_balance_loss(p_student) * confident.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if teacher is not None:
                with torch.no_grad():
                    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
                        t.lerp_(s, 1 - settings.teacher_decay)
            running += float(loss.detach())
            if step % 50 == 0:
                trace.append(round(running / 50, 6))
                running = 0.0
        model = teacher if teacher is not None else student
        if unlabelled is not None:
            recalibrate_batch_norm(model, unlabelled)
        model.eval()
    return ClassifierRun(model, trace, time.perf_counter() - started)


# -- the protocol ------------------------------------------------------------------------------------------------

@dataclass
class DigitDomains:
    """Labelled digits of both domains at one size and channel count; ``source_fit`` / ``source_val`` split the
    source training set."""

    source_fit: tuple[Tensor, Tensor]
    source_val: tuple[Tensor, Tensor]
    source_test: tuple[Tensor, Tensor]
    target_train_images: Tensor
    target_train_labels: Tensor
    target_test: tuple[Tensor, Tensor]
    channels: int


def load_digit_domains(settings: AdaptationSettings, root: Path) -> DigitDomains:
    channels = 1 if all(DIGIT_CHANNELS.get(n.lower(), 1) == 1 for n in (settings.source, settings.target)) else 3

    def load(name: str, split: str) -> tuple[Tensor, Tensor]:
        data = open_labelled(name, root, split, settings.image_size, channels)
        n = len(data) if settings.limit is None else min(settings.limit, len(data))
        return data.images[:n], data.labels[:n]  # type: ignore[index]

    source_x, source_y = load(settings.source, "train")
    order = torch.randperm(source_x.shape[0], generator=torch.Generator().manual_seed(settings.seed))
    n_val = max(1, round(settings.validation_fraction * source_x.shape[0]))
    val, fit = order[:n_val], order[n_val:]
    target_x, target_y = load(settings.target, "train")
    return DigitDomains((source_x[fit], source_y[fit]), (source_x[val], source_y[val]), load(settings.source, "test"),
                        target_x, target_y, load(settings.target, "test"), channels)


def default_rows(method: str) -> tuple[tuple[str, ...], int]:
    """(rows, digit FID network steps) run by default with translator ``method``: every default row and the FID,
    or, for a method that translates by an optimisation per image, the rows that read no translation and no FID."""
    try:
        exportable = METHODS.get(method).exportable
    except KeyError as err:
        raise ConfigError(str(err.args[0])) from err
    if exportable:
        return DEFAULT_VARIANTS, FID_STEPS
    return HEAD_ONLY_VARIANTS, 0


def translator_config_name(settings: AdaptationSettings) -> str:
    """The translator config: the user's, else ``<method>_adaptation`` where shipped, else ``<method>_digits``."""
    if settings.config:
        return settings.config
    shipped = (PACKAGED_CONFIGS / f"{settings.method}_adaptation.yaml").is_file()
    return f"{settings.method}_{'adaptation' if shipped else 'digits'}"


def wants_semantic_classifier(cfg: Any) -> bool:
    """Whether a translator config asks for a semantic-consistency term (which needs the source classifier)."""
    return float(cfg.get("loss_weights", {}).get("semantic", 0.0)) > 0


def _translator_config(settings: AdaptationSettings, classes: int, progress: bool = True) -> Any:
    sets = [f"data.source={settings.source}:{settings.target}", f"data.image_size={settings.image_size}",
            f"train.seed={settings.seed}", f"train.precision={settings.precision}",
            f"train.progress={str(progress).lower()}"]
    if settings.translator_steps:
        sets.append(f"train.max_steps={settings.translator_steps}")
    if settings.translator_minutes:
        sets.append(f"train.max_minutes={settings.translator_minutes}")
    cfg = build_config(settings.method, [translator_config_name(settings)], sets + list(settings.overrides))
    if "discriminator_head" in settings.variants:  # the paper's way: a head on the (shared) discriminator layers
        paper = METHODS.get(settings.method).classifier_head_settings(to_object(cfg, "model"), classes)
        if paper is None:
            having = ", ".join(methods_with(AuxiliaryClassifier))
            raise ConfigError(f"the discriminator_head row needs a method with a classifier head ({having}); "
                              f"{settings.method} has none: leave the row out of --variants")
        cfg = apply_overrides(cfg, paper + list(settings.overrides))  # the user's overrides still win
    return cfg


def train_translator(cfg: Any, run_dir: Path, domains: DigitDomains, progress: bool = True) -> Any:
    """Train (or, when ``run_dir`` holds an unfinished run of the same settings, resume) the translator of config
    ``cfg`` on the protocol's training data: the source digits left after the validation split is carved out
    (with their labels, which only a classifier head reads) and the unlabelled target training digits; returns
    the Translator. The validation digits stay unseen, so that every row's validation accuracy is honest."""
    done = run_dir / "translator_done.json"
    if done.is_file():  # a finished translator (e.g. of a run killed later, while training classifiers)
        _stage(progress, f"translator: reusing the finished {cfg.method} in {run_dir}")
        return load_translator(run_dir, device=json.loads(done.read_text())["device"])
    resume = (run_dir / "config.yaml").is_file()  # killed while training: continue exactly where it stopped
    budget = f", {cfg.train.max_minutes:g} min at most" if cfg.train.max_minutes else ""
    _stage(progress, f"translator: {'continuing' if resume else 'training'} {cfg.method} for up to "
                     f"{cfg.train.max_steps} steps{budget} in {run_dir}")
    trainer = Trainer(cfg, run_dir, resume=resume)
    protocol = {"a": TensorSource(*domains.source_fit, trainer.domains.a.name),
                "b": TensorSource(domains.target_train_images, None, trainer.domains.b.name)}
    trainer.batches = StepBatches(protocol, cfg.train.batch_size, cfg.data.image_size, cfg.train.seed,
                                  cfg.data.flip, trainer.world.rank, trainer.world.size, labels=trainer.batches.labels)
    result = trainer.fit()
    summary = {"step": result.step, "stopped_by": result.stopped_by, "seconds": round(result.seconds, 1),
               "images_per_second": round(result.images_per_second, 1), "device": str(trainer.device)}
    atomic_json(done, summary, indent=None)
    return load_translator(run_dir, device=str(trainer.device))


@torch.no_grad()
def head_accuracy(translator: Any, images: Tensor, labels: Tensor, domain: str, batch_size: int = 512) -> float:
    """Accuracy of the translator's own classifier head (UNIT ``classify``) on ``images`` of ``domain``."""
    method = require(translator.method, AuxiliaryClassifier, "the classifier head's accuracy").eval()
    device = next(method.parameters()).device
    predictions = torch.cat([method.classify(to_unit_range(images[i:i + batch_size]).to(device), domain)
                             .argmax(1).cpu() for i in range(0, images.shape[0], batch_size)])
    return float((predictions == labels).float().mean())


@torch.no_grad()
def translate_all(translator: Any, images: Tensor, direction: str, batch_size: int = 512,
                  bf16: bool = False, progress: bool = False, desc: str = "translate") -> Tensor:
    """uint8 digits -> their translations, as uint8 (what saved images would hold); ``bf16``: under bf16
    autocast (as the translator trained); ``progress``: a progress bar named ``desc`` on stderr."""
    out = []
    device_type = translator.device.type
    for i in tqdm(range(0, images.shape[0], batch_size), desc=desc, unit="batch", disable=not progress):
        with torch.autocast(device_type, torch.bfloat16, enabled=bf16):
            y = translator.translate(to_unit_range(images[i:i + batch_size]), direction).float().cpu()
        out.append(y.add(1).mul(127.5).round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def vote_accuracy(probabilities: list[Tensor], labels: Tensor) -> float:
    """Accuracy of the mean of several ``N x classes`` probability tables (one: that classifier's accuracy)."""
    return float((torch.stack(probabilities).sum(0).argmax(1) == labels).float().mean())


def ensemble_accuracy(models: list[nn.Module], images: list[Tensor], labels: Tensor) -> float:
    """Accuracy of the mean class probabilities of ``models``, each reading its own view of the same ``labels``'
    images (``images[i]`` for ``models[i]``, e.g. translated for a classifier trained on translations)."""
    return vote_accuracy([class_probabilities(m, x) for m, x in zip(models, images, strict=True)], labels)


SOURCE_CLASSIFIER_FILE = "source_classifier.pt"


def source_classifier(domains: DigitDomains, settings: AdaptationSettings, out: Path, device: torch.device,
                      bf16: bool, progress: bool = True) -> tuple[ClassifierRun, Path]:
    """The ``source_only`` classifier (source digits and labels only), trained once per run folder and kept in
    ``out``/source_classifier.pt: it is both the no-adaptation row and the frozen judge of a translator's
    semantic-consistency term. A killed run reuses the file."""
    path = out / SOURCE_CLASSIFIER_FILE
    if path.is_file():
        _stage(progress, f"classifier source_only: reusing {path}")
        model = load_digit_network(path, "digit_classifier", device)
        return ClassifierRun(model, list(model.info["trace"]), model.info["seconds"]), path
    run = train_digit_classifier(*domains.source_fit, settings, settings.seed, device=device, bf16=bf16,
                                 progress=progress, desc="classifier source_only")
    save_digit_network(run.model, path, "digit_classifier", trace=run.trace, seconds=run.seconds,
                       source=settings.source, seed=settings.seed)
    return run, path


SETTINGS_FILE = "settings.json"


def claim_run_folder(out: Path, settings: AdaptationSettings) -> None:
    """Create ``out`` and record the run's settings there, or check that a folder used before ran the very same
    settings: its finished translator and source classifier are reused, so a folder of other settings (another
    config, seed, size...) is refused with the differences, never mixed into this run."""
    path = out / SETTINGS_FILE
    mine = asdict(settings)
    if path.is_file():
        theirs = json.loads(path.read_text())
        if theirs != mine:
            changed = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise RunFolderError(f"{out}: holds an adaptation run with other settings ({', '.join(changed)}); "
                                 "choose another --out, or delete that folder")
        return
    if out.is_dir() and any(out.iterdir()):
        raise RunFolderError(f"{out}: folder exists, is not empty and holds no {SETTINGS_FILE} of an adaptation "
                             "run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_json(path, mine)


def _stage(progress: bool, text: str) -> None:
    """A line on stderr saying which stage starts and its size (beside the stages' progress bars)."""
    if progress:
        tqdm.write(text, file=sys.stderr)


def run_adaptation(settings: AdaptationSettings, out: Path, root: Path | None = None,
                   device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """One full adaptation run into ``out`` (translator/, report.json, report.md, examples.png); with
    ``progress``, each stage says on stderr that it starts and shows a progress bar."""
    settings.check()
    root = data_root() if root is None else Path(root)
    out = Path(out)
    started = time.perf_counter()
    domains = load_digit_domains(settings, root)  # bad data is reported before anything is written
    claim_run_folder(out, settings)
    torch_device = resolve_device(device)
    bf16 = resolve_precision(settings.precision, torch_device) == "bf16"
    task = f"{settings.source}->{settings.target}".lower()
    _stage(progress, f"adaptation {task}: {domains.source_fit[0].shape[0]} labelled source digits (+"
                     f"{domains.source_val[0].shape[0]} for validation), {domains.target_train_images.shape[0]} "
                     f"unlabelled target digits, {domains.target_test[0].shape[0]} target test digits -> {out}")

    timings: dict[str, float] = {}
    translated = val_translated = test_translated = None
    needs_translator = any(v.startswith("translated") or v == "discriminator_head" for v in settings.variants)
    needs_translator = needs_translator or bool(settings.fid_steps)
    cfg = _translator_config(settings, int(domains.source_fit[1].max()) + 1, progress) if needs_translator else None
    # the source-only classifier first: it is a row, and the frozen judge of a semantic-consistency term
    semantic = cfg is not None and wants_semantic_classifier(cfg)
    source_run = source_file = None
    if semantic or "source_only" in settings.variants:
        t0 = time.perf_counter()
        source_run, source_file = source_classifier(domains, settings, out, torch_device, bf16, progress)
        timings["source_classifier"] = time.perf_counter() - t0
    if needs_translator:
        t0 = time.perf_counter()
        if semantic:
            cfg = apply_overrides(cfg, [f"model.semantic_classifier={source_file.resolve()}"])  # type: ignore[union-attr]
        translator = train_translator(cfg, out / "translator", domains, progress)
        timings["translator"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # only what a row or the FID reads is translated: a method that translates by an optimisation per image
        # (CoGAN's inversion) would spend hours on 54,000 source digits that a discriminator_head run never reads
        rows_read = any(v.startswith("translated") for v in settings.variants)
        wanted = {"train": rows_read, "validation": rows_read, "test": rows_read or bool(settings.fid_steps)}
        translated, val_translated, test_translated = [
            translate_all(translator, images, "a2b", bf16=bf16, progress=progress, desc=f"translate source {split}")
            if wanted[split] else None
            for split, images in (("train", domains.source_fit[0]), ("validation", domains.source_val[0]),
                                  ("test", domains.source_test[0]))]
        timings["translate"] = time.perf_counter() - t0

    inputs: dict[str, tuple[Tensor, Tensor, Tensor | None, Tensor]] = {}  # variant: (x, y, unlabelled, x_val)
    fit_x, fit_y = domains.source_fit
    target_x = domains.target_train_images
    for variant in settings.variants:
        if variant == "translated":
            inputs[variant] = (translated, fit_y, None, val_translated)  # type: ignore[assignment]
        elif variant == "translated_self_ensembling":
            inputs[variant] = (translated, fit_y, target_x, val_translated)  # type: ignore[assignment]
        elif variant in ("self_ensembling", "ensemble_without_translation"):
            inputs[variant] = (fit_x, fit_y, target_x, domains.source_val[0])
    rows: dict[str, dict[str, Any]] = {}
    # class probabilities of each self-ensembled row on (target test, source validation): its accuracies, and
    # what the ensembles average, from one pass of each classifier
    probabilities: dict[str, tuple[Tensor, Tensor]] = {}
    test_x, test_y = domains.target_test
    val_y = domains.source_val[1]
    trained = [v for v in settings.variants if v not in SCORED_ONLY | {"source_only", "discriminator_head"}]
    if trained:
        _stage(progress, f"classifiers: {len(trained)} to train, {settings.classifier_steps} steps each "
                         f"({', '.join(trained)}); each is scored on {test_x.shape[0]} target test digits")
    for i, variant in enumerate(settings.variants):
        if variant in SCORED_ONLY:  # no classifier of its own: scored below, once its members are trained
            continue
        desc = f"classifier {variant} ({trained.index(variant) + 1}/{len(trained)})" if variant in trained else ""
        if variant == "source_only":  # trained above
            run = source_run  # type: ignore[assignment]
            rows[variant] = {"target_test_accuracy": accuracy(run.model, test_x, test_y),
                             "source_validation_accuracy": accuracy(run.model, *domains.source_val)}
        elif variant == "discriminator_head":  # trained with the translator; only scored here
            started_head = time.perf_counter()
            rows[variant] = {
                "target_test_accuracy": head_accuracy(translator, test_x, test_y, "b"),
                "source_validation_accuracy": head_accuracy(translator, *domains.source_val, "a"),
                "trace": [], "seconds": round(time.perf_counter() - started_head, 1)}
            continue
        elif variant == "target_supervised":  # the upper limit: the one row trained with target labels
            run = train_digit_classifier(target_x, domains.target_train_labels, settings, settings.seed + i,
                                         device=torch_device, bf16=bf16, progress=progress, desc=desc)
            rows[variant] = {"target_test_accuracy": accuracy(run.model, test_x, test_y)}
        else:
            x, y, unlabelled, x_val = inputs[variant]
            run = train_digit_classifier(x, y, settings, settings.seed + i, unlabelled=unlabelled,
                                         device=torch_device, bf16=bf16, progress=progress, desc=desc)
            probabilities[variant] = class_probabilities(run.model, test_x), class_probabilities(run.model, x_val)
            rows[variant] = {"target_test_accuracy": vote_accuracy([probabilities[variant][0]], test_y),
                             "source_validation_accuracy": vote_accuracy([probabilities[variant][1]], val_y)}
        rows[variant].update(trace=run.trace, seconds=round(run.seconds, 1))
    for name, members in ENSEMBLES.items():
        if name in settings.variants:
            row = rows.setdefault(name, {"trace": [], "seconds": 0.0})
            if name in members:  # the row's own classifier, scored alone too
                row["member_target_test_accuracy"] = row.pop("target_test_accuracy")
            # each member has read the validation digits as it was trained on them: translated, or as they are
            row["target_test_accuracy"] = vote_accuracy([probabilities[v][0] for v in members], test_y)
            row["source_validation_accuracy"] = vote_accuracy([probabilities[v][1] for v in members], val_y)

    fid = None
    if settings.fid_steps and test_translated is not None:
        t0 = time.perf_counter()
        n = min(test_translated.shape[0], test_x.shape[0])
        _stage(progress, f"digit FID: {n} translated source test digits against {n} target test digits (feature "
                         f"network: {settings.fid_steps} steps, trained once per folder)")
        feature_net = ensure_feature_net(out, root, (settings.source, settings.target), settings.image_size,
                                         domains.channels, steps=settings.fid_steps, progress=progress)
        fid = {"translated_vs_target_test": digit_fid(feature_net, test_translated[:n], test_x[:n]),
               "untranslated_vs_target_test": digit_fid(feature_net, domains.source_test[0][:n], test_x[:n]),
               "images": n, "feature_net_test_accuracy": feature_net.info.get("test_accuracy")}
        timings["fid"] = time.perf_counter() - t0
    if test_translated is not None:
        write_examples(domains.source_test[0][:16], test_translated[:16], out / "examples.png")

    timings["total"] = time.perf_counter() - started
    report = {
        "task": task,
        "settings": asdict(settings),
        "data": {"source_fit": int(fit_x.shape[0]), "source_validation": int(domains.source_val[0].shape[0]),
                 "target_train_unlabelled": int(target_x.shape[0]), "target_test": int(test_x.shape[0]),
                 "image_size": settings.image_size, "channels": domains.channels, "root": str(root)},
        "translator_config": translator_config_name(settings) if needs_translator else None,
        "semantic_consistency": bool(semantic),
        "accuracy": {v: r["target_test_accuracy"] for v, r in rows.items()},
        "selected": _selection(rows),
        "rows": rows,
        "digit_fid": fid,
        "paper_unit": PAPER.get(task),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "device": str(torch_device), "torch": torch.__version__},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_report(report, out)
    return report


def _selection(rows: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    validation = {v: r["source_validation_accuracy"] for v, r in rows.items() if "source_validation_accuracy" in r}
    if not any(v in SELECTABLE for v in validation):
        return None
    row = selected_row(validation)
    return {"row": row, "rule": SELECTION_RULE, "target_test_accuracy": rows[row]["target_test_accuracy"]}


def selected_row(validation: dict[str, float]) -> str:
    """The protocol's rule (``SELECTION_RULE``): which row to report, chosen on source validation accuracies
    alone, never on target data. Ties go to the row named first in ``VARIANTS``."""
    candidates = [v for v in SELECTABLE if v in validation]
    if not candidates:
        raise ValueError(f"no row the rule can pick among {sorted(validation)}")
    return max(candidates, key=lambda v: validation[v])  # max keeps the first of equal values


def write_examples(sources: Tensor, translations: Tensor, path: Path) -> Path:
    """Two rows: source test digits, and their translations."""
    return save_grid({"source": to_unit_range(sources), "translated": to_unit_range(translations)}, path)


def markdown_report(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [f"# Domain adaptation {report['task']}", "",
             f"Target test accuracy of digit classifiers trained with source labels only; translator "
             f"`{s['method']}` (seed {s['seed']}), {s['image_size']}x{s['image_size']}.", "",
             "| classifier | target test accuracy | source validation accuracy | train seconds |",
             "|---|---|---|---|"]
    selected = (report.get("selected") or {}).get("row")
    for variant, row in report["rows"].items():
        val = row.get("source_validation_accuracy")
        name = f"**{variant}** (selected)" if variant == selected else variant
        lines.append(f"| {name} | {row['target_test_accuracy']:.4f} | "
                     f"{'-' if val is None else f'{val:.4f}'} | {row['seconds']} |")
    if report.get("paper_unit"):
        lines.append(f"| UNIT paper | {report['paper_unit']:.4f} | | |")
    if selected:
        lines += ["", f"Selected: `{selected}`, by the protocol's rule: {SELECTION_RULE}."]
    fid = report.get("digit_fid")
    if fid:
        lines += ["", "Digit FID of the translated source test digits against real target test digits: "
                      f"{fid['translated_vs_target_test']:.3f} "
                      f"(untranslated: {fid['untranslated_vs_target_test']:.3f}, {fid['images']} images each)."]
    lines += ["", f"Data: {json.dumps(report['data'])}", "", f"Seconds: {json.dumps(report['seconds'])}", "",
              f"Settings: `{json.dumps(s)}`", "", f"Machine: {json.dumps(report['machine'])}; date {report['date']}."]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    atomic_json(out / "report.json", report)
    md = markdown_report(report).encode()
    atomic_write(out / "report.md", lambda handle: handle.write(md))


__all__ = ["DEFAULT_VARIANTS", "ENSEMBLES", "HEAD_ONLY_VARIANTS", "SELECTABLE", "SELECTION_RULE", "VARIANTS",
           "AdaptationSettings", "ClassifierRun", "class_balance_loss", "default_rows", "ensemble_accuracy",
           "random_affine", "recalibrate_batch_norm", "run_adaptation", "selected_row", "train_digit_classifier",
           "translate_all", "vote_accuracy"]
