"""The method interface: networks + named loss terms; the trainer does everything else.

A method is an ``nn.Module`` whose networks sit in ``self.nets``, a ``ModuleDict`` with one entry per
*group*: each group gets one optimiser, and groups are updated in the order they were added (for GANs:
``dis`` first, then ``gen``). Per training step the trainer calls

1. ``forward_step(batch)`` once: every translation the losses need, with autograd graphs;
2. for each group: ``loss_terms(group, step)``, a dict of raw, unweighted terms. The trainer multiplies
   each by its weight in ``loss_weights`` (the part of a term's name before any ``/``; ``gan/a`` uses
   ``gan``), backpropagates the sum into that group's parameters only and steps its optimiser.

So no image is generated twice per step: the discriminator sees the step's translations detached, the
generator reuses them with their graph. The ``gen`` group holds every network inference needs (EMA copies are
kept of it). A method skips the work of terms whose weight is 0
(``self.active(name)``), which is how the papers' ablations are run.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from unpaired.registry import Registry

Batch = dict[str, Tensor]
Step = dict[str, Any]

DIRECTIONS = ("a2b", "b2a")


class Method(nn.Module):
    """Base class; subclasses set the class attributes and fill the four members below."""

    name: ClassVar[str]
    Config: ClassVar[type]
    """Dataclass of architecture options (the ``model:`` config section)."""
    Weights: ClassVar[type]
    """Dataclass with one float per loss-term name (the ``loss_weights:`` config section)."""
    visual_names: ClassVar[tuple[str, ...]] = ()
    """Rows of the training image grid, in order."""
    size_multiple: int = 1
    """Image sides must be multiples of this (the networks' total stride)."""

    def __init__(self, cfg: Any, weights: dict[str, float], channels: dict[str, int], image_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.weights = dict(weights)
        self.channels = dict(channels)
        self.image_size = image_size
        self.nets = nn.ModuleDict()

    # -- filled by each method -------------------------------------------------------------------
    def prepare(self, sources: dict[str, Any]) -> None:
        """Called once before a fresh run's first step with the training ``ImageSource`` of each domain
        (e.g. to estimate data statistics). Keep what it computes in buffers or extra state, so it is
        checkpointed; it is not called again on resume."""

    def forward_step(self, batch: Batch) -> Step:
        raise NotImplementedError

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        raise NotImplementedError

    def translate(self, x: Tensor, direction: str, **options: Any) -> Tensor:
        raise NotImplementedError

    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Named image batches for the training grid, computed without gradients."""
        raise NotImplementedError

    # -- shared helpers ----------------------------------------------------------------------------
    @property
    def groups(self) -> list[str]:
        return list(self.nets.keys())

    def active(self, term: str) -> bool:
        """Whether a loss term (by weight name) contributes; methods skip the work of inactive ones."""
        return self.weights.get(term.split("/")[0], 0.0) > 0

    def weight_of(self, term: str) -> float:
        key = term.split("/")[0]
        if key not in self.weights:
            raise KeyError(f"{self.name}: loss term '{term}' has no weight '{key}' in loss_weights")
        return self.weights[key]

    @staticmethod
    def check_direction(direction: str) -> str:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got '{direction}'")
        return direction


METHODS: Registry[type[Method]] = Registry("method")


def build_method(name: str, cfg: Any, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> Method:
    return METHODS.get(name)(cfg, weights, channels, image_size)


def cat_batches(*xs: Tensor) -> Tensor:
    """Concatenate along the batch axis, so one call of a shared network serves several inputs."""
    return torch.cat(xs, 0) if len(xs) > 1 else xs[0]
